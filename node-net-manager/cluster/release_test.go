package cluster_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/node-net-manager/table"
	"github.com/oakestra/netmanager/test/clusterstub"
)

// The releases of interest in jobs (interest/remove), against a real broker
// and the stand-in cluster manager. Node n1 runs the table under test; node
// n2 is another node of the cluster, which reports the instances n1 asks
// about. Addresses are read back from the stand-in's answers.

const (
	remoteJob = "app.ns.remote.ns" // its instance runs on n2
	otherJob  = "app.ns.other.ns"  // its instance runs on n2
	localJob  = "app.ns.local.ns"  // its instance runs on n1
)

var (
	n1Addr = netip.MustParseAddrPort("192.0.2.10:50103")
	n2Addr = netip.MustParseAddrPort("192.0.2.20:50103")
)

type releaseWorld struct {
	broker  string
	b       *clusterstub.Broker
	m       *clusterstub.Manager
	local   *table.Standalone // n1's own table
	link    *cluster.Link
	tab     *cluster.Table
	n2      *cluster.Client
	changes atomic.Int32 // OnChange calls
}

// newReleaseWorld registers n1 with a table releasing after `after`; its
// own instances (locals) are deployed before it registers, as a restarted
// node's re-adopted instances are.
func newReleaseWorld(t *testing.T, after time.Duration, locals ...table.Instance) *releaseWorld {
	t.Helper()
	b := clusterstub.StartBroker(t, nil, freeAddr(t))
	w := &releaseWorld{broker: b.Addr, b: b, m: clusterstub.NewManager(t, b.Addr, cluster.SubnetResult{Address: "10.18.1.0"}, cluster.SubnetResult{Address: "10.18.1.64"})}
	var err error
	w.local, err = table.NewStandalone(table.Options{Range: netip.MustParsePrefix("10.40.0.0/16"),
		Node: table.Node{IP: n1Addr.Addr(), Port: int(n1Addr.Port())}})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range locals {
		if _, err := w.local.Add(in); err != nil {
			t.Fatal(err)
		}
	}
	w.link = cluster.NewLink(cluster.LinkOptions{Services: w.services, Node: n1Addr,
		Client:       cluster.Options{OnUpdate: func(job string) { w.tab.Refresh(job) }},
		OnRegistered: func(jobs []string) { w.tab.RefreshAll(jobs) }})
	w.tab = cluster.NewTable(cluster.TableOptions{Local: w.local, Link: w.link, ReleaseAfter: after,
		Ranges:   []netip.Prefix{netip.MustParsePrefix("10.30.0.0/16"), netip.MustParsePrefix("fdff::/16")},
		OnChange: func() { w.changes.Add(1) }})
	t.Cleanup(w.link.Close)
	t.Cleanup(w.tab.Close) // before the link's
	if _, err := w.link.Register(ctx(t), "n1", b.Addr); err != nil {
		t.Fatal(err)
	}
	if w.n2, err = cluster.Connect(ctx(t), cluster.Options{ClientID: "n2", Broker: b.Addr}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.n2.Close)
	return w
}

// services are n1's instances, from its own table.
func (w *releaseWorld) services() []events.Service {
	var out []events.Service
	for _, e := range w.local.Entries() {
		out = append(out, events.Service{ServiceName: e.ServiceName, Instance: e.Instance, IPv4: e.NsIP})
	}
	return out
}

// deployOnN2 makes n2 report an instance of job; it returns the job's
// round-robin IP as the cluster answers it.
func (w *releaseWorld) deployOnN2(t *testing.T, job, nsIP string) netip.Addr {
	t.Helper()
	d := cluster.Deployed{AppName: job, Status: "DEPLOYED", NsIP: nsIP, HostIP: n2Addr.Addr().String(), HostPort: "50103"}
	if err := w.n2.Deployed(d); err != nil {
		t.Fatal(err)
	}
	waitFor(t, job+" on n2", func() bool { return len(w.m.Instances(job)) == 1 })
	r, err := w.n2.Query(ctx(t), cluster.TableQuery{Sname: job})
	if err != nil || len(r.InstanceList) != 1 {
		t.Fatalf("%s as the cluster knows it: %+v %v", job, r, err)
	}
	for _, s := range r.InstanceList[0].ServiceIP {
		if a, err := netip.ParseAddr(s.Address); err == nil && s.IPType == "RR" {
			return a
		}
	}
	t.Fatalf("%s has no round-robin IP: %+v", job, r)
	return netip.Addr{}
}

func (w *releaseWorld) watching(job string) bool {
	return slices.Contains(w.link.Client().Watching(), job)
}

// removals returns the jobs n1 sent interest/remove for, in order.
func (w *releaseWorld) removals(t *testing.T) []string {
	t.Helper()
	return w.removalsBy(t, "n1")
}

// removalsBy returns the jobs node sent interest/remove for, in order; one
// from another node fails the test.
func (w *releaseWorld) removalsBy(t *testing.T, node string) []string {
	t.Helper()
	var jobs []string
	for _, msg := range w.m.Messages("interest/remove") {
		var ir cluster.InterestRemove
		if err := json.Unmarshal(msg.Payload, &ir); err != nil || msg.Node != node {
			t.Fatalf("interest/remove from %s: %s (%v)", msg.Node, msg.Payload, err)
		}
		jobs = append(jobs, ir.AppName)
	}
	return jobs
}

func lookup(t *testing.T, tab *cluster.Table, q table.Query) []table.Entry {
	t.Helper()
	es, err := tab.Lookup(ctx(t), q)
	if err != nil {
		t.Fatalf("lookup %+v: %v", q, err)
	}
	return es
}

// A job asked about (by name, or by IP) and not used afterwards is released
// once ReleaseAfter has passed, not before: one interest/remove each, the
// subscription gone, its entries gone (OnChange).
func TestReleaseUnusedJobs(t *testing.T) {
	const after = 300 * time.Millisecond
	w := newReleaseWorld(t, after)
	w.deployOnN2(t, remoteJob, "10.18.2.2")
	otherRR := w.deployOnN2(t, otherJob, "10.18.2.3")
	start := time.Now()
	if es := lookup(t, w.tab, table.Query{ServiceName: remoteJob}); len(es) != 1 || es[0].NodeIP != n2Addr.Addr() {
		t.Fatalf("%s by name: %+v", remoteJob, es)
	}
	if es := lookup(t, w.tab, table.Query{IP: otherRR}); len(es) != 1 || es[0].ServiceName != otherJob {
		t.Fatalf("%s by IP %v: %+v", otherJob, otherRR, es)
	}
	if !w.watching(remoteJob) || !w.watching(otherJob) {
		t.Fatalf("watching %v after the lookups", w.link.Client().Watching())
	}
	time.Sleep(after / 3)
	if got := w.removals(t); len(got) != 0 || !w.watching(remoteJob) || !w.watching(otherJob) {
		t.Fatalf("released early: interest/remove %v, watching %v", got, w.link.Client().Watching())
	}
	waitFor(t, "both jobs released", func() bool { return len(w.link.Client().Watching()) == 0 })
	if d := time.Since(start); d < after {
		t.Fatalf("released after %v, before ReleaseAfter (%v)", d, after)
	}
	waitFor(t, "both interest/remove", func() bool { return len(w.removals(t)) == 2 })
	time.Sleep(3 * after) // no second one
	if got := w.removals(t); len(got) != 2 || !slices.Contains(got, remoteJob) || !slices.Contains(got, otherJob) {
		t.Fatalf("interest/remove for %v, want one each for %s and %s", got, remoteJob, otherJob)
	}
	if es := w.tab.Entries(); len(es) != 0 {
		t.Fatalf("entries left after the release: %+v", es)
	}
	if es, _ := w.tab.Cached(ctx(t), table.Query{IP: otherRR}); len(es) != 0 || !w.tab.MustAsk(otherRR) {
		t.Fatalf("%v after the release: cached %+v, must ask %v", otherRR, es, w.tab.MustAsk(otherRR))
	}
	if n := w.changes.Load(); n < 4 { // two jobs stored, two released
		t.Fatalf("%d OnChange calls, want 4", n)
	}
}

// A job with an instance on this node is never released, even deployed
// before the node registered (re-adopted after a restart: no event), while
// a job without one is; once its last local instance is removed, it is
// released a grace period later.
func TestReleaseKeepsLocalJobs(t *testing.T) {
	const after = 300 * time.Millisecond
	in := table.Instance{ServiceName: localJob, NsIP: netip.MustParseAddr("10.18.1.2")}
	w := newReleaseWorld(t, after, in)
	w.deployOnN2(t, remoteJob, "10.18.2.2")
	waitFor(t, "the local job followed", func() bool {
		return w.watching(localJob) && len(lookup(t, w.tab, table.Query{ServiceName: localJob})) == 1
	})
	lookup(t, w.tab, table.Query{ServiceName: remoteJob})
	waitFor(t, "the remote job released", func() bool { return !w.watching(remoteJob) })
	if es, _ := w.tab.Cached(ctx(t), table.Query{ServiceName: localJob}); len(es) != 1 {
		t.Fatalf("the local job's entries: %+v", es)
	}
	time.Sleep(3 * after) // its last use is long past
	if got := w.removals(t); !slices.Equal(got, []string{remoteJob}) || !w.watching(localJob) || len(w.tab.Entries()) != 1 {
		t.Fatalf("interest/remove for %v, watching %v, entries %+v; want only %s released", got, w.link.Client().Watching(), w.tab.Entries(), remoteJob)
	}
	// The local instance goes: its job is no longer kept.
	ev := events.Event{Type: events.ServiceRemoved, Service: events.Service{ServiceName: localJob, IPv4: in.NsIP}}
	if err := w.tab.HandleEvent(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	if err := w.local.Remove(localJob, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the local job released", func() bool { return !w.watching(localJob) })
	if d := time.Since(removed); d < after {
		t.Fatalf("released %v after its last instance went, before ReleaseAfter (%v)", d, after)
	}
	waitFor(t, "its interest/remove", func() bool { return len(w.removals(t)) == 2 })
	if got := w.removals(t); got[1] != localJob {
		t.Fatalf("interest/remove for %v", got)
	}
}

// A job looked up again and again (by its IP, as the proxies do) within the
// grace period stays followed; when the lookups stop, it is released.
func TestReleaseKeepsJobsInUse(t *testing.T) {
	const after = 600 * time.Millisecond // lookups every 120 ms: a slow machine does not miss it
	w := newReleaseWorld(t, after)
	rr := w.deployOnN2(t, remoteJob, "10.18.2.2")
	lookup(t, w.tab, table.Query{IP: rr})
	for end := time.Now().Add(3 * after); time.Now().Before(end); time.Sleep(after / 5) {
		// The user-space proxy's new flows (MustAsk, Lookup) and the eBPF
		// proxy's reads (Cached), in turn.
		if w.tab.MustAsk(rr) {
			t.Fatalf("%v must be asked about again while in use", rr)
		}
		lookup(t, w.tab, table.Query{IP: rr})
		if es, _ := w.tab.Cached(ctx(t), table.Query{IP: rr}); len(es) != 1 {
			t.Fatalf("%v cached: %+v", rr, es)
		}
	}
	if got := w.removals(t); len(got) != 0 || !w.watching(remoteJob) {
		t.Fatalf("released while in use: interest/remove %v, watching %v", got, w.link.Client().Watching())
	}
	waitFor(t, "the job released once unused", func() bool { return !w.watching(remoteJob) })
	waitFor(t, "its interest/remove", func() bool { return len(w.removals(t)) == 1 })
}

// A released job asked about again is followed again (subscribed: its
// updates arrive) and released again later; an update in flight at the
// release does not bring it back.
func TestReleaseThenAskAgain(t *testing.T) {
	const after = 300 * time.Millisecond
	w := newReleaseWorld(t, after)
	rr := w.deployOnN2(t, remoteJob, "10.18.2.2")
	lookup(t, w.tab, table.Query{IP: rr})
	waitFor(t, "the release", func() bool { return !w.watching(remoteJob) && len(w.removals(t)) == 1 })
	w.tab.Refresh(remoteJob) // as an update that arrived just after the release
	if w.watching(remoteJob) || len(w.tab.Entries()) != 0 {
		t.Fatalf("a refresh brought a released job back: watching %v, entries %+v", w.link.Client().Watching(), w.tab.Entries())
	}
	queries := len(w.m.Messages("tablequery/request"))
	if !w.tab.MustAsk(rr) {
		t.Fatalf("%v is not asked about again after the release", rr)
	}
	if es := lookup(t, w.tab, table.Query{IP: rr}); len(es) != 1 || !w.watching(remoteJob) {
		t.Fatalf("asked again: %+v, watching %v", es, w.link.Client().Watching())
	}
	if n := len(w.m.Messages("tablequery/request")); n != queries+1 {
		t.Fatalf("%d table queries after asking again, want %d", n, queries+1)
	}
	w.m.Remove(remoteJob, 0) // the update reaches the new subscription
	waitFor(t, "the update applied", func() bool { return len(w.tab.Entries()) == 0 })
	waitFor(t, "the second release", func() bool { return !w.watching(remoteJob) && len(w.removals(t)) == 2 })
}

// Close stops the releases: a job unused after it stays followed.
func TestReleaseStopsAtClose(t *testing.T) {
	const after = 200 * time.Millisecond
	w := newReleaseWorld(t, after)
	w.deployOnN2(t, remoteJob, "10.18.2.2")
	lookup(t, w.tab, table.Query{ServiceName: remoteJob})
	w.tab.Close()
	w.tab.Close()
	time.Sleep(3 * after)
	if got := w.removals(t); len(got) != 0 || !w.watching(remoteJob) {
		t.Fatalf("released after Close: interest/remove %v, watching %v", got, w.link.Client().Watching())
	}
}

// A node registered anew (a restarted NodeEngine's new id, after the old
// session left) drops what it followed before at once, without an
// interest/remove (that session's interest ended with it), asks the
// cluster again and releases under its new id.
func TestReleaseAfterReregistration(t *testing.T) {
	const after = 300 * time.Millisecond
	w := newReleaseWorld(t, after)
	rr := w.deployOnN2(t, remoteJob, "10.18.2.2")
	lookup(t, w.tab, table.Query{IP: rr})
	w.link.Close()
	if _, err := w.link.Register(ctx(t), "n3", w.broker); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the earlier session's job dropped", func() bool { return len(w.tab.Entries()) == 0 })
	time.Sleep(2 * after)
	if got := w.removalsBy(t, "n3"); len(got) != 0 || len(w.link.Client().Watching()) != 0 {
		t.Fatalf("interest/remove %v, watching %v", got, w.link.Client().Watching())
	}
	if es := lookup(t, w.tab, table.Query{IP: rr}); len(es) != 1 || !w.watching(remoteJob) {
		t.Fatalf("asked again under n3: %+v, watching %v", es, w.link.Client().Watching())
	}
	waitFor(t, "the release under n3", func() bool { return !w.watching(remoteJob) && len(w.removalsBy(t, "n3")) == 1 })
}

// While the broker is unreachable nothing is released (the cache is all
// the node has); once it is back, the job unused meanwhile is, with its
// interest/remove.
func TestReleaseWaitsForTheBroker(t *testing.T) {
	const after = 300 * time.Millisecond
	w := newReleaseWorld(t, after)
	rr := w.deployOnN2(t, remoteJob, "10.18.2.2")
	lookup(t, w.tab, table.Query{IP: rr})
	w.b.Stop()
	waitFor(t, "the connection to drop", func() bool { return !w.link.Client().Connected() })
	time.Sleep(3 * after)
	if es, _ := w.tab.Cached(ctx(t), table.Query{IP: rr}); len(es) != 1 || !w.watching(remoteJob) {
		t.Fatalf("with the broker gone: cached %+v, watching %v", es, w.link.Client().Watching())
	}
	time.Sleep(3 * after) // unused for longer than ReleaseAfter
	clusterstub.StartBroker(t, nil, w.broker)
	m := clusterstub.NewManager(t, w.broker)
	waitFor(t, "the release after the reconnect", func() bool { return !w.watching(remoteJob) && len(m.Messages("interest/remove")) == 1 })
	if len(w.tab.Entries()) != 0 {
		t.Fatalf("entries after the release: %+v", w.tab.Entries())
	}
}
