package cluster

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/events"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// Table is the service table behind the user-space proxy in cluster mode:
// the cluster's view of every service the node asked about, cached per job
// and refreshed when the cluster announces a change. Before the node is
// registered it is the node's own table.
type Table struct {
	o      TableOptions
	mu     sync.Mutex
	jobs   map[string][]table.Entry
	misses map[netip.Addr]time.Time // IPs the cluster knew nothing of, and when
}

// missTTL is how long an IP the cluster does not know is not asked about
// again (the packets to it are dropped meanwhile).
const missTTL = time.Second

// LocalTable is the node's own table, which answers before the node is
// registered and for its own namespace IPs.
type LocalTable interface {
	table.Querier
	Entries() []table.Entry
}

// TableOptions configures a Table.
type TableOptions struct {
	Local LocalTable
	Link  *Link // the cluster is asked through it once it is registered
	// Ranges are the service ranges: only addresses in them are asked about.
	Ranges []netip.Prefix
	// OnChange, when set, runs after the cluster's answer about a job
	// changed the cached entries.
	OnChange func()
	Log      logrus.FieldLogger
}

// NewTable returns a Table. Attach its Refresh as the link client's
// OnUpdate, and HandleEvent to the node's event bus.
func NewTable(o TableOptions) *Table {
	if o.Log == nil {
		o.Log = logrus.StandardLogger()
	}
	return &Table{o: o, jobs: map[string][]table.Entry{}, misses: map[netip.Addr]time.Time{}}
}

// Entries is every instance the table knows: those of the jobs the cluster
// answered about once the node is registered, the node's own before.
func (t *Table) Entries() []table.Entry {
	if t.o.Link.Client() == nil {
		return t.o.Local.Entries()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []table.Entry
	for _, es := range t.jobs {
		out = append(out, es...)
	}
	return out
}

// MustAsk says whether a Lookup of ip would wait for the cluster: the node
// is registered, ip is a service address not cached, and the cluster has
// not just said it does not know it (proxy.Asker).
func (t *Table) MustAsk(ip netip.Addr) bool {
	if t.o.Link.Client() == nil || !t.inRanges(ip) || len(t.cached(table.Query{IP: ip})) > 0 {
		return false
	}
	t.mu.Lock()
	since, missed := t.misses[ip]
	t.mu.Unlock()
	return !missed || time.Since(since) >= missTTL
}

// Cached answers q as Lookup does, from what the table has, never asking
// the cluster.
func (t *Table) Cached(ctx context.Context, q table.Query) ([]table.Entry, error) {
	if t.o.Link.Client() == nil {
		return t.o.Local.Lookup(ctx, q)
	}
	if es := t.cached(q); len(es) > 0 || !q.IP.IsValid() || t.inRanges(q.IP) { // only a namespace IP falls back
		return es, nil
	}
	// A namespace IP the cache lacks: an instance of this node's is in the
	// node's own table. Its service IPs there are allocated locally, not
	// the cluster's: leave them out, so no flow is sent from them.
	es, err := t.o.Local.Lookup(ctx, q)
	for i := range es {
		es[i].ServiceIPs = nil
	}
	return es, err
}

// Lookup answers from the cache, asking the cluster on a miss (blocking, up
// to the client's query timeout).
func (t *Table) Lookup(ctx context.Context, q table.Query) ([]table.Entry, error) {
	c := t.o.Link.Client()
	if c == nil || (q.IP.IsValid() && !t.inRanges(q.IP)) {
		return t.Cached(ctx, q)
	}
	if es := t.cached(q); len(es) > 0 {
		return es, nil
	}
	t.mu.Lock()
	since, missed := t.misses[q.IP]
	t.mu.Unlock()
	if q.IP.IsValid() && missed && time.Since(since) < missTTL {
		return nil, nil
	}
	tq := TableQuery{Sname: q.ServiceName}
	if q.IP.IsValid() {
		tq = TableQuery{Sip: q.IP.String()}
	}
	job, err := t.query(ctx, c, tq)
	if err != nil {
		return nil, err
	}
	if job == "" && q.IP.IsValid() {
		t.mu.Lock()
		t.misses[q.IP] = time.Now()
		t.mu.Unlock()
	}
	return t.cached(q), nil
}

// query asks the cluster, caches the job's entries and follows the job.
func (t *Table) query(ctx context.Context, c *Client, tq TableQuery) (string, error) {
	r, err := c.Query(ctx, tq)
	if err != nil {
		return "", err
	}
	if r.AppName == "" {
		return "", nil
	}
	t.store(r)
	if err := c.Watch(r.AppName); err != nil {
		t.o.Log.WithError(err).WithField("job", r.AppName).Warn("cluster: follow a job's updates")
	}
	return r.AppName, nil
}

// Refresh asks the cluster about a job again (on its update).
func (t *Table) Refresh(job string) {
	c := t.o.Link.Client()
	if c == nil {
		return
	}
	if _, err := t.query(context.Background(), c, TableQuery{Sname: job}); err != nil {
		t.o.Log.WithError(err).WithField("job", job).Warn("cluster: refresh a job")
	}
}

// HandleEvent follows the jobs of the node's own instances: the proxy needs
// their cluster-wide instance IPs (an events.Bus handler).
func (t *Table) HandleEvent(_ context.Context, ev events.Event) error {
	c := t.o.Link.Client()
	if c == nil || ev.Type != events.ServiceCreated {
		return nil
	}
	job := ev.Service.ServiceName
	if err := c.Watch(job); err != nil { // the cluster announces the instance it records
		t.o.Log.WithError(err).WithField("job", job).Warn("cluster: follow a job's updates")
	}
	go t.Refresh(job)
	return nil
}

// RefreshAll asks the cluster about every job in jobs (the node's own, at
// registration and after a reconnect) and follows them.
func (t *Table) RefreshAll(jobs []string) {
	c := t.o.Link.Client()
	if c == nil {
		return
	}
	for _, job := range jobs {
		if err := c.Watch(job); err != nil {
			t.o.Log.WithError(err).WithField("job", job).Warn("cluster: follow a job's updates")
		}
		t.Refresh(job)
	}
}

// store replaces a job's entries with the cluster's answer.
func (t *Table) store(r TableResult) {
	es := make([]table.Entry, 0, len(r.InstanceList))
	for _, in := range r.InstanceList {
		if e, ok := entry(r.AppName, in); ok {
			es = append(es, e)
		}
	}
	t.o.Log.WithFields(logrus.Fields{"job": r.AppName, "key": r.QueryKey, "instances": len(es)}).Debug("cluster: table entries")
	t.mu.Lock()
	changed := !slices.EqualFunc(t.jobs[r.AppName], es, sameEntry)
	t.jobs[r.AppName] = es
	for _, e := range es {
		for _, s := range e.ServiceIPs {
			delete(t.misses, s.Address)
		}
	}
	t.mu.Unlock()
	if changed && t.o.OnChange != nil {
		t.o.OnChange()
	}
}

func sameEntry(a, b table.Entry) bool {
	return a.ServiceName == b.ServiceName && a.Instance == b.Instance && a.NsIP == b.NsIP && a.NsIPv6 == b.NsIPv6 &&
		a.NodeIP == b.NodeIP && a.NodePort == b.NodePort && slices.Equal(a.ServiceIPs, b.ServiceIPs)
}

// policies are the cluster's IpType values.
var policies = map[string]table.Policy{"RR": table.PolicyRoundRobin, "instance_ip": table.PolicyInstance, "Closest": table.PolicyClosest}

// entry converts one instance of the cluster's answer.
func entry(job string, in Instance) (table.Entry, bool) {
	e := table.Entry{ServiceName: job, Instance: in.InstanceNumber, NodePort: in.HostPort}
	var err error
	if e.NsIP, err = netip.ParseAddr(in.NamespaceIP); err != nil {
		return e, false
	}
	e.NsIPv6, _ = netip.ParseAddr(in.NamespaceIPv6)
	if e.NodeIP, err = netip.ParseAddr(in.HostIP); err != nil {
		return e, false
	}
	for _, s := range in.ServiceIP {
		p, ok := policies[s.IPType]
		if !ok {
			p = table.PolicyInstance // as the reference: anything else names one instance
		}
		for _, a := range []string{s.Address, s.AddressV6} {
			if ip, err := netip.ParseAddr(a); err == nil {
				e.ServiceIPs = append(e.ServiceIPs, table.ServiceIP{Policy: p, Address: ip})
			}
		}
	}
	return e, true
}

// cached answers q from the cache, as table.Standalone answers it.
func (t *Table) cached(q table.Query) []table.Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	if q.ServiceName != "" {
		return append([]table.Entry(nil), t.jobs[q.ServiceName]...)
	}
	var out []table.Entry
	for _, es := range t.jobs {
		for _, e := range es {
			if e.NsIP == q.IP || e.NsIPv6 == q.IP {
				return []table.Entry{e}
			}
			for _, s := range e.ServiceIPs {
				if s.Address != q.IP {
					continue
				}
				if s.Policy == table.PolicyInstance {
					return []table.Entry{e}
				}
				out = append(out, e)
			}
		}
	}
	return out
}

func (t *Table) inRanges(ip netip.Addr) bool {
	for _, r := range t.o.Ranges {
		if r.Contains(ip) {
			return true
		}
	}
	return false
}
