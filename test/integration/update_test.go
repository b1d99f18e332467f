package integration

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/test/nstest"
)

func putModule(t *testing.T, n *node, id, body string) (ebpfmanager.Info, time.Duration) {
	t.Helper()
	start := time.Now()
	code, out, err := n.d.Client.Raw(ctx(t), http.MethodPut, "/ebpf/"+id, []byte(body))
	took := time.Since(start)
	if err != nil || code != 200 {
		t.Fatalf("PUT /ebpf/%s %s: %d %s %v", id, body, code, out, err)
	}
	var info ebpfmanager.Info
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	return info, took
}

// PUT /ebpf/{id} swaps a running firewall for one with another config, then
// moves it to another priority, under two steady UDP streams: of the one
// both versions allow no packet is lost, of the one both deny none gets
// through (a moment with no firewall attached would let it), and a config
// that denies the first stream stops it. A refused update leaves the old
// version running.
func TestModuleUpdateInPlace(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	a, b := newContainer(t), newContainer(t)
	deployContainer(t, n, a, "app.ns.cli.ns", 0, "")
	rb := deployContainer(t, n, b, "app.ns.web.ns", 0, "")
	fw := loadModule(t, n, `{"name": "firewall", "priority": 10, "config": {"rules": [{"id": "noping", "action": "deny", "proto": "icmp"}, {"id": "no7009", "action": "deny", "proto": "udp", "dstPorts": "7009"}]}}`)
	loadModule(t, n, `{"name": "packetcounter", "priority": 20}`)
	counter := nstest.CountUDP(t, b.ns, ":7000")
	sctx, stop := context.WithCancel(context.Background())
	defer stop()
	sent := nstest.SendUDP(t, sctx, a.ns, net.JoinHostPort(rb.NsAddress, "7000"), time.Millisecond)
	denied := nstest.CountUDP(t, b.ns, ":7009")
	sentDenied := nstest.SendUDP(t, sctx, a.ns, net.JoinHostPort(rb.NsAddress, "7009"), 100*time.Microsecond)
	time.Sleep(200 * time.Millisecond)

	info, took := putModule(t, n, fw.ID, `{"config": {"rules": [{"id": "noping", "action": "deny", "proto": "icmp"}, {"id": "no7009", "action": "deny", "proto": "udp", "dstPorts": "7009"}, {"id": "nodiscard", "action": "deny", "proto": "udp", "dstPorts": "9"}]}}`)
	t.Logf("config swap: %v for %d attachments", took, len(info.Attachments))
	pingMarked(t, a, rb.NsAddress, 1, "", true)
	time.Sleep(100 * time.Millisecond)
	info, took = putModule(t, n, fw.ID, `{"priority": 30}`)
	t.Logf("priority move: %v for %d attachments", took, len(info.Attachments))
	var list []ebpfmanager.Info
	getJSON(t, n, "/ebpf", &list)
	if info.Priority != 30 || list[1].ID != fw.ID {
		t.Fatalf("after moving: %+v", list)
	}
	var rules []map[string]any
	getJSON(t, n, "/ebpf/"+fw.ID+"/rules", &rules)
	if len(rules) != 3 {
		t.Fatalf("rules after the updates: %v", rules)
	}
	if code, out, _ := n.d.Client.Raw(ctx(t), http.MethodPut, "/ebpf/"+fw.ID, []byte(`{"config": {"rules": [{"action": "nope"}]}}`)); code != 400 {
		t.Fatalf("a bad config: %d %s", code, out)
	}
	time.Sleep(200 * time.Millisecond)
	stop()
	total := sent()
	time.Sleep(200 * time.Millisecond)
	got := counter.Got()
	if total < 300 || uint64(got) != total {
		t.Fatalf("lost %d of %d datagrams across two updates", total-uint64(got), total)
	}
	totalDenied := sentDenied()
	through := denied.Got()
	if totalDenied < 1000 || through != 0 {
		t.Fatalf("%d of %d denied datagrams got through across two updates", through, totalDenied)
	}
	t.Logf("%d allowed datagrams, none lost; %d denied, none through; across two updates", total, totalDenied)

	// A config that denies the stream stops it.
	putModule(t, n, fw.ID, `{"config": {"rules": [{"action": "deny", "proto": "udp", "dstPorts": "7000"}]}}`)
	counter.Reset()
	sctx2, stop2 := context.WithCancel(context.Background())
	sent2 := nstest.SendUDP(t, sctx2, a.ns, net.JoinHostPort(rb.NsAddress, "7000"), time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	stop2()
	sent2()
	if n := counter.Got(); n != 0 {
		t.Fatalf("%d datagrams through a firewall updated to deny them", n)
	}
	undeploy(t, n, deploy.KindContainer, "app.ns.cli.ns", 0)
	undeploy(t, n, deploy.KindContainer, "app.ns.web.ns", 0)
	n.stop(t)
}
