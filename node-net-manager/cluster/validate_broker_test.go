package cluster_test

import (
	"encoding/json"
	"net/netip"
	"slices"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// Hostile answers through a real broker: for a job the node has cached, the
// cluster's refresh answers with a service IP outside the service ranges,
// and a query by IP is answered with a wildcard for a job name. Each is
// rejected and counted; the cached job keeps answering as before, no entry
// comes from either answer, and no subscription follows the wildcard.
func TestHostileAnswersKeepTheCache(t *testing.T) {
	w := newReleaseWorld(t, -1)
	rr := w.deployOnN2(t, remoteJob, "10.18.2.2")
	before := lookup(t, w.tab, table.Query{IP: rr})
	if len(before) != 1 || before[0].NodeIP != n2Addr.Addr() {
		t.Fatalf("before: %+v", before)
	}
	w.m.Silent(true) // the crafted answers are the only ones
	good := w.m.Instances(remoteJob)
	hostile := cluster.TableResult{AppName: remoteJob, QueryKey: remoteJob, InstanceList: slices.Clone(good)}
	hostile.InstanceList[0].ServiceIP = []cluster.ServiceIP{{IPType: "RR", Address: "192.0.2.99"}}
	raw, _ := json.Marshal(hostile)
	asked := len(w.m.Messages("tablequery/request"))
	w.m.Announce(remoteJob, "DEPLOYMENT") // n1 refreshes the job
	waitFor(t, "the refresh's query", func() bool { return len(w.m.Messages("tablequery/request")) > asked })
	if err := w.m.Answer("n1", raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rejection", func() bool { return w.tab.Rejected()[cluster.ReasonServiceIP] == 1 })
	after, _ := w.tab.Cached(ctx(t), table.Query{IP: rr})
	if len(after) != 1 || after[0].NodeIP != n2Addr.Addr() || !slices.Equal(after[0].ServiceIPs, before[0].ServiceIPs) {
		t.Fatalf("after the hostile refresh: %+v, want %+v", after, before)
	}
	if es, _ := w.tab.Cached(ctx(t), table.Query{IP: netip.MustParseAddr("192.0.2.99")}); len(es) != 0 {
		t.Fatalf("an entry from the hostile answer: %+v", es)
	}

	// A query by IP answered with a job name that is a topic wildcard.
	unknown := netip.MustParseAddr("10.30.200.1")
	done := make(chan []table.Entry, 1)
	asked = len(w.m.Messages("tablequery/request"))
	go func() { es, _ := w.tab.Lookup(ctx(t), table.Query{IP: unknown}); done <- es }()
	waitFor(t, "the query by IP", func() bool { return len(w.m.Messages("tablequery/request")) > asked })
	raw, _ = json.Marshal(cluster.TableResult{AppName: "+", QueryKey: unknown.String(), InstanceList: good})
	if err := w.m.Answer("n1", raw); err != nil {
		t.Fatal(err)
	}
	if es := <-done; len(es) != 0 {
		t.Fatalf("lookup answered from a hostile answer: %+v", es)
	}
	if got := w.tab.Rejected(); got[cluster.ReasonJob] != 1 || got[cluster.ReasonServiceIP] != 1 {
		t.Fatalf("Rejected() = %v", got)
	}
	if got := w.link.Client().Watching(); !slices.Equal(got, []string{remoteJob}) {
		t.Fatalf("watching %v", got)
	}
	if es, _ := w.tab.Cached(ctx(t), table.Query{IP: rr}); len(es) != 1 {
		t.Fatalf("the cached job after both: %+v", es)
	}
}
