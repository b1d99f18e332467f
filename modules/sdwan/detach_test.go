package main

import (
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Detaching a WAN whose prober is reporting (every probe lost, one report
// a millisecond) returns: the prober is stopped without the gateway's lock,
// which its reports take.
func TestDetachWhileProbesReport(t *testing.T) {
	w := newGW(t, `[]`, `[]`, "")
	w.g.cfg.Health = Health{Interval: Duration{time.Millisecond}, Timeout: Duration{time.Millisecond}, DownAfter: 1, UpAfter: 1, Window: 20}
	var att module.Attachment
	err := w.ns.Do(func() error {
		l, err := netlink.LinkByName("wan1")
		att = module.Attachment{Interface: module.Interface{Name: "wan1", Ifindex: l.Attrs().Index}, Hooks: module.Hooks}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.g.Detach(att); err != nil { // newGW attached it without probes
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if err := w.ns.Do(func() error { return w.g.Attach(att) }); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		done := make(chan error, 1)
		go func() { done <- w.g.Detach(att) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Detach did not return within 5 s (round %d): the prober waits for the lock Detach holds", i)
		}
	}
}
