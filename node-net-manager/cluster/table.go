package cluster

import (
	"context"
	"net/netip"
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
	local  table.Querier
	ranges []netip.Prefix // the service ranges: only these are asked about
	link   *Link
	log    logrus.FieldLogger
	mu     sync.Mutex
	jobs   map[string][]table.Entry
	misses map[netip.Addr]time.Time // IPs the cluster knew nothing of, and when
}

// missTTL is how long an IP the cluster does not know is not asked about
// again (the packets to it are dropped meanwhile).
const missTTL = time.Second

// NewTable returns a Table over local that asks the cluster through link
// about addresses in ranges. Attach its Refresh as the link client's
// OnUpdate, and HandleEvent to the node's event bus.
func NewTable(local table.Querier, link *Link, ranges []netip.Prefix, log logrus.FieldLogger) *Table {
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &Table{local: local, ranges: ranges, link: link, log: log, jobs: map[string][]table.Entry{}, misses: map[netip.Addr]time.Time{}}
}

// MustAsk says whether a Lookup of ip would wait for the cluster: the node
// is registered, ip is a service address not cached, and the cluster has
// not just said it does not know it (proxy.Asker).
func (t *Table) MustAsk(ip netip.Addr) bool {
	if t.link.Client() == nil || !t.inRanges(ip) || len(t.cached(table.Query{IP: ip})) > 0 {
		return false
	}
	t.mu.Lock()
	since, missed := t.misses[ip]
	t.mu.Unlock()
	return !missed || time.Since(since) >= missTTL
}

// Lookup answers from the cache, asking the cluster on a miss (blocking, up
// to the client's query timeout).
func (t *Table) Lookup(ctx context.Context, q table.Query) ([]table.Entry, error) {
	c := t.link.Client()
	if c == nil {
		return t.local.Lookup(ctx, q)
	}
	if es := t.cached(q); len(es) > 0 {
		return es, nil
	}
	if q.IP.IsValid() && !t.inRanges(q.IP) {
		// A namespace IP the cache lacks: an instance of this node's is in
		// the node's own table. Its service IPs there are allocated locally,
		// not the cluster's: leave them out, so no flow is sent from them.
		es, err := t.local.Lookup(ctx, q)
		for i := range es {
			es[i].ServiceIPs = nil
		}
		return es, err
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
		t.log.WithError(err).WithField("job", r.AppName).Warn("cluster: follow a job's updates")
	}
	return r.AppName, nil
}

// Refresh asks the cluster about a job again (on its update).
func (t *Table) Refresh(job string) {
	c := t.link.Client()
	if c == nil {
		return
	}
	if _, err := t.query(context.Background(), c, TableQuery{Sname: job}); err != nil {
		t.log.WithError(err).WithField("job", job).Warn("cluster: refresh a job")
	}
}

// HandleEvent follows the jobs of the node's own instances: the proxy needs
// their cluster-wide instance IPs (an events.Bus handler).
func (t *Table) HandleEvent(_ context.Context, ev events.Event) error {
	c := t.link.Client()
	if c == nil || ev.Type != events.ServiceCreated {
		return nil
	}
	job := ev.Service.ServiceName
	if err := c.Watch(job); err != nil { // the cluster announces the instance it records
		t.log.WithError(err).WithField("job", job).Warn("cluster: follow a job's updates")
	}
	go t.Refresh(job)
	return nil
}

// RefreshAll asks the cluster about every job in jobs (the node's own, at
// registration and after a reconnect) and follows them.
func (t *Table) RefreshAll(jobs []string) {
	c := t.link.Client()
	if c == nil {
		return
	}
	for _, job := range jobs {
		if err := c.Watch(job); err != nil {
			t.log.WithError(err).WithField("job", job).Warn("cluster: follow a job's updates")
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
	t.log.WithFields(logrus.Fields{"job": r.AppName, "key": r.QueryKey, "instances": len(es)}).Debug("cluster: table entries")
	t.mu.Lock()
	defer t.mu.Unlock()
	t.jobs[r.AppName] = es
	for _, e := range es {
		for _, s := range e.ServiceIPs {
			delete(t.misses, s.Address)
		}
	}
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
	for _, r := range t.ranges {
		if r.Contains(ip) {
			return true
		}
	}
	return false
}
