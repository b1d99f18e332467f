package ebpfmanager_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/ebpfManager/kernel"
	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/test/bpftest"
	"github.com/oakestra/netmanager/test/nstest"
)

// stubPlugins stands in for plugin.Open (a test binary cannot share a plugin's
// build flags); the data planes and attachments are real.
type stubPlugins struct{ kernel.Plugins } // its Stat is the real one

type stubModule struct{}

func (stubModule) Attach(module.Attachment) error { return nil }
func (stubModule) Detach(module.Attachment) error { return nil }
func (stubModule) Close() error                   { return nil }

func (stubPlugins) Open(string) (module.NewFunc, module.MapSizesFunc, error) {
	return func(module.Base) (module.Module, error) { return stubModule{}, nil }, nil, nil
}

// BenchmarkServiceCreated measures what the eBPF Manager adds to a deploy:
// attaching every loaded module (1 or 3 packet counters) to a new service veth,
// both hooks, in chain order. Detaching is not timed.
func BenchmarkServiceCreated(b *testing.B) {
	bpftest.RequireRoot(b)
	obj := bpftest.ModuleObject(b, "modules", "packetcounter")
	mods := filepath.Join(b.TempDir(), "modules")
	_ = os.MkdirAll(filepath.Join(mods, "packetcounter"), 0o755)
	_ = os.Symlink(obj, filepath.Join(mods, "packetcounter", "packetcounter.o"))
	_ = os.WriteFile(filepath.Join(mods, "packetcounter", "packetcounter.so"), nil, 0o644)
	if _, err := kernel.EnsureBPFFS(kernel.DefaultBPFFS); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"tcx", "legacy"} {
		for _, count := range []int{1, 3} {
			b.Run(fmt.Sprintf("%s/modules=%d", mode, count), func(b *testing.B) {
				ns := nstest.NewNetns(b, "nm-bench")
				ns.MustExec(b, "ip", "link", "add", "va", "type", "veth", "peer", "name", "vb")
				k, err := kernel.New(mode)
				if err != nil {
					b.Fatal(err)
				}
				pins := filepath.Join(kernel.DefaultBPFFS, nstest.UniqueName("nm-bench"))
				log := logrus.New()
				log.SetLevel(logrus.PanicLevel)
				m, err := ebpfmanager.New(ebpfmanager.Options{Kernel: k, Plugins: stubPlugins{}, ModulesDir: mods, PinDir: pins,
					Services: func() []events.Service { return nil }, Log: log})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = m.Close() })
				for i := 0; i < count; i++ {
					if _, err := m.Load(ebpfmanager.LoadRequest{Name: "packetcounter"}); err != nil {
						b.Fatal(err)
					}
				}
				err = ns.Do(func() error {
					idx, err := k.Ifindex("va")
					if err != nil {
						return err
					}
					svc := events.Service{ServiceName: "a.b.c.d", HostVeth: "va", HostIfindex: idx}
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if err := m.HandleEvent(context.Background(), events.Event{Type: events.ServiceCreated, Service: svc}); err != nil {
							return err
						}
						b.StopTimer()
						if err := m.HandleEvent(context.Background(), events.Event{Type: events.ServiceRemoved, Service: svc}); err != nil {
							return err
						}
						b.StartTimer()
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
