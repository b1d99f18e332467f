package integration

import (
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/oakestra/netmanager/node-net-manager/deploy"
	"github.com/oakestra/netmanager/test/metricsdoc"
)

// seriesWith lists the netmanager_* series of a scrape that carry one of
// the label values (any label), as name{labels}.
func seriesWith(fams map[string]*dto.MetricFamily, values ...string) []string {
	var out []string
	for name, f := range fams {
		if !strings.HasPrefix(name, "netmanager_") {
			continue
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				for _, v := range values {
					if strings.Contains(l.GetValue(), v) {
						out = append(out, name+"{"+l.GetName()+"="+l.GetValue()+"}")
					}
				}
			}
		}
	}
	return out
}

// instanceSeries lists the series whose instance label is id.
func instanceSeries(fams map[string]*dto.MetricFamily, id string) []string {
	var out []string
	for name, f := range fams {
		for _, m := range f.Metric {
			if metricsdoc.Label(m, "instance") == id {
				out = append(out, name)
			}
		}
	}
	return out
}

// No series outlives its subject: once a module instance is deleted, no
// series has its instance label; once a service is undeployed, none names
// its host veth, its name or its address, and the other service's series
// remain.
func TestMetricsHygiene(t *testing.T) {
	n := newNode(t, "--bpf-stats")
	a, b := newContainer(t), newContainer(t)
	deployContainer(t, n, a, "app.ns.alpha.ns", 0, "")
	rb := deployContainer(t, n, b, "app.ns.beta.ns", 0, "")
	vethA, vethB := hostVeths(t, n, "app.ns.alpha.ns", "app.ns.beta.ns")
	pc := loadModule(t, n, `{"name": "packetcounter", "priority": 10}`).ID
	fw := loadModule(t, n, `{"name": "firewall", "priority": 20, "config": {"rules": [{"id": "no-udp-9", "action": "deny", "proto": "udp", "dstPorts": "9"}]}}`).ID
	px := loadModule(t, n, `{"name": "proxy", "priority": 30}`).ID
	fw2 := loadModule(t, n, `{"name": "firewall", "priority": 21}`).ID // stays: its veth series must go with beta
	pingMarked(t, a, rb.NsAddress, 2, "", false)

	fams := scrapeMetrics(t, n)
	for _, id := range []string{pc, fw, px, fw2} {
		if len(instanceSeries(fams, id)) == 0 {
			t.Fatalf("before: no series of instance %s", id)
		}
	}
	if len(seriesWith(fams, vethB)) == 0 {
		t.Fatalf("before: no series of %s", vethB)
	}

	if status, body, err := n.d.Client.Raw(ctx(t), http.MethodDelete, "/ebpf/"+fw, nil); err != nil || status != http.StatusOK {
		t.Fatalf("DELETE /ebpf/%s: %d %v %s", fw, status, err, body)
	}
	fams = scrapeMetrics(t, n)
	if s := instanceSeries(fams, fw); len(s) > 0 {
		t.Errorf("after DELETE /ebpf/%s the scrape still has its series %v", fw, s)
	}
	if len(instanceSeries(fams, pc)) == 0 || len(instanceSeries(fams, px)) == 0 || len(instanceSeries(fams, fw2)) == 0 {
		t.Error("deleting a firewall took the other instances' series")
	}

	undeploy(t, n, deploy.KindContainer, "app.ns.beta.ns", 0)
	fams = scrapeMetrics(t, n)
	if s := seriesWith(fams, vethB, "app.ns.beta.ns", rb.NsAddress); len(s) > 0 {
		t.Errorf("after undeploying beta the scrape still names it: %v", s)
	}
	if len(seriesWith(fams, vethA)) == 0 {
		t.Errorf("alpha's series (%s) went with beta's", vethA)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"netmanager_services", map[string]string{"kind": "container"}},
		{"netmanager_ebpf_attachments", map[string]string{"instance": pc}},
		{"netmanager_ebpf_attachments", map[string]string{"instance": fw2}},
	} {
		if v := mustSample(t, fams, c.name, c.labels); v != 1 {
			t.Errorf("%s%v = %v after the undeploy, want 1", c.name, c.labels, v)
		}
	}
	n.stop(t)
}
