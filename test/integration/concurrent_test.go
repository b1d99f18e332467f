package integration

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/cilium/ebpf"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
)

// Clients at once load, update and delete module instances and deploy and
// undeploy services on a real node; afterwards every service veth runs
// exactly the programs GET /ebpf lists for it, in chain order, and the
// declared state names exactly the listed instances.
func TestConcurrentClientsRealKernel(t *testing.T) {
	t.Parallel()
	stateDir := t.TempDir()
	n := newNode(t, "--state-dir="+stateDir)
	var base []*container
	for i := 0; i < 3; i++ {
		c := newContainer(t)
		deployContainer(t, n, c, fmt.Sprintf("app.ns.base%d.ns", i), 0, "")
		base = append(base, c)
	}
	extra := make([]*container, 12)
	for i := range extra {
		extra[i] = newContainer(t)
	}
	var wg sync.WaitGroup
	for c := 0; c < 12; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(c)))
			for op := 0; op < 3; op++ {
				switch r.Intn(4) {
				case 0, 1:
					_, _, _ = n.d.Client.Raw(ctx(t), http.MethodPost, "/ebpf", fmt.Appendf(nil, `{"name": "packetcounter", "priority": %d}`, 1+r.Intn(40)))
				case 2:
					var list []ebpfmanager.Info
					if n.d.Client.Do(ctx(t), http.MethodGet, "/ebpf", nil, &list) == nil && len(list) > 0 {
						id := list[r.Intn(len(list))].ID
						if r.Intn(2) == 0 {
							_, _, _ = n.d.Client.Raw(ctx(t), http.MethodDelete, "/ebpf/"+id, nil)
						} else {
							_, _, _ = n.d.Client.Raw(ctx(t), http.MethodPut, "/ebpf/"+id, []byte(`{"config": {"maxInterfaces": 64}}`))
						}
					}
				case 3:
					name := fmt.Sprintf("app.ns.extra%d.ns", c)
					pid := extra[c].pid
					_, _, _ = n.d.Client.Raw(ctx(t), http.MethodPost, "/container/deploy", fmt.Appendf(nil, `{"pid": %d, "serviceName": %q, "instanceNumber": 0}`, pid, name))
					if r.Intn(2) == 0 {
						_, _, _ = n.d.Client.Raw(ctx(t), http.MethodPost, "/container/undeploy", fmt.Appendf(nil, `{"serviceName": %q, "instanceNumber": 0}`, name))
					}
				}
			}
		}(c)
	}
	wg.Wait()
	var list []ebpfmanager.Info
	getJSON(t, n, "/ebpf", &list)
	recs, err := n.d.Client.Services(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		for hook, at := range map[string]ebpf.AttachType{"ingress": ebpf.AttachTCXIngress, "egress": ebpf.AttachTCXEgress} {
			var want []ebpf.ProgramID
			for _, in := range list {
				for _, a := range in.Attachments {
					if a.Interface == rec.HostVeth && a.Hook == hook {
						want = append(want, ebpf.ProgramID(a.ProgramID))
					}
				}
			}
			if got := tcxChain(t, n, rec.HostVeth, at); !slices.Equal(got, want) || len(want) != len(list) {
				t.Fatalf("%s %s runs %v; GET /ebpf lists %v of %d instances", rec.HostVeth, hook, got, want, len(list))
			}
		}
	}
	var declared []ebpfmanager.Declared
	data, _ := os.ReadFile(filepath.Join(stateDir, "ebpf.json"))
	_ = json.Unmarshal(data, &declared)
	if len(declared) != len(list) {
		t.Fatalf("declared %d instances, %d listed", len(declared), len(list))
	}
	for i := range list {
		if declared[i].ID != list[i].ID {
			t.Fatalf("declared %v, listed %v", declared, list)
		}
	}
	t.Logf("%d instances on %d services at the end", len(list), len(recs))
	for _, rec := range recs {
		undeploy(t, n, deploy.KindContainer, rec.ServiceName, rec.Instance)
	}
	n.stop(t)
}
