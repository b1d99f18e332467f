package cluster

import (
	"context"
	"fmt"
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
	// used holds every job the node follows (cached or watched): when it
	// was last used (asked about, or answered from by a lookup) and through
	// which connection.
	used map[string]interest
	// wmu orders following and releasing a job (track, store and Watch
	// against the release's check, delete and Unwatch), so neither undoes
	// the other halfway.
	wmu     sync.Mutex
	janitor *janitor // releases unused jobs; nil until the first job is followed
	closed  bool
	rej     rejections // what the table refused of the cluster's answers (under mu)
	// refreshing orders the refreshes of a job (under mu): see Refresh.
	refreshing map[string]*sync.Mutex
}

// interest is the node's in one job.
type interest struct {
	last time.Time
	c    *Client // the connection it follows the job through
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
	// Ranges are the service ranges: only addresses in them are asked about,
	// and every service IP of the cluster's answers is inside one.
	Ranges []netip.Prefix
	// NodeSubnets, when set, returns this node's node subnets now (the node
	// may move at registration): an answer placing an instance of another
	// node inside them is rejected. It must not wait for a deploy.
	NodeSubnets func() []netip.Prefix
	// OnChange, when set, runs after the cluster's answer about a job
	// changed the cached entries, and after a release removed some.
	OnChange func()
	// ReleaseAfter is how long the node keeps following a job it has no
	// instance of after the job's last use (a lookup answered from or
	// filling its entries): then it unsubscribes, tells the cluster
	// (interest/remove) and drops the job's entries. 0 is
	// DefaultReleaseAfter; negative keeps every job for the table's life.
	ReleaseAfter time.Duration
	Log          logrus.FieldLogger
}

// DefaultReleaseAfter is TableOptions.ReleaseAfter's default, the
// reference's interest timeout.
const DefaultReleaseAfter = 10 * time.Second

// NewTable returns a Table. Attach its Refresh as the link client's
// OnUpdate, and HandleEvent to the node's event bus.
func NewTable(o TableOptions) *Table {
	if o.Log == nil {
		o.Log = logrus.StandardLogger()
	}
	if o.ReleaseAfter == 0 {
		o.ReleaseAfter = DefaultReleaseAfter
	}
	return &Table{o: o, jobs: map[string][]table.Entry{}, misses: map[netip.Addr]time.Time{}, used: map[string]interest{}}
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
	job, err := t.query(ctx, c, tq, true)
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

// query asks the cluster, caches the job's entries and follows the job. A
// use (a lookup) starts following it; a refresh (use false) only updates a
// job still followed, not one released meanwhile.
func (t *Table) query(ctx context.Context, c *Client, tq TableQuery, use bool) (string, error) {
	r, err := c.Query(ctx, tq)
	if err != nil {
		return "", err
	}
	if r.AppName == "" {
		return "", nil
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if !use && !t.following(r.AppName) {
		t.o.Log.WithField("job", r.AppName).Debug("cluster: an answer about a job released meanwhile")
		return r.AppName, nil
	}
	if !t.store(r, tq.Sname) {
		return "", nil // rejected: the job is neither followed nor changed
	}
	t.track(r.AppName, c, use)
	t.watch(c, r.AppName)
	return r.AppName, nil
}

// Refresh asks the cluster about a job again (on its update); a job the
// node no longer follows is left alone. The refreshes of one job run one
// at a time: two in flight (the one a deploy here starts and the one the
// cluster's announcement of another node's instance starts) could store
// their answers in either order, the older last, and the node would keep
// a stale view until the job changed again.
func (t *Table) Refresh(job string) {
	c := t.o.Link.Client()
	if c == nil || !t.following(job) {
		return
	}
	l := t.refreshLock(job)
	l.Lock()
	defer l.Unlock()
	if _, err := t.query(context.Background(), c, TableQuery{Sname: job}, false); err != nil {
		t.o.Log.WithError(err).WithField("job", job).Warn("cluster: refresh a job")
	}
}

// refreshLock is the lock that orders a job's refreshes.
func (t *Table) refreshLock(job string) *sync.Mutex {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.refreshing == nil {
		t.refreshing = map[string]*sync.Mutex{}
	}
	l := t.refreshing[job]
	if l == nil {
		l = &sync.Mutex{}
		t.refreshing[job] = l
	}
	return l
}

// HandleEvent follows the jobs of the node's own instances: the proxy needs
// their cluster-wide instance IPs (an events.Bus handler). An instance's
// removal counts as a use of its job, so a job left without instances here
// is released a full ReleaseAfter later at the earliest.
func (t *Table) HandleEvent(_ context.Context, ev events.Event) error {
	c := t.o.Link.Client()
	if c == nil {
		return nil
	}
	job := ev.Service.ServiceName
	switch ev.Type {
	case events.ServiceCreated:
		t.follow(c, job) // the cluster announces the instance it records
		go t.Refresh(job)
	case events.ServiceRemoved:
		t.mu.Lock()
		t.usedLocked(job)
		t.mu.Unlock()
	}
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
		t.follow(c, job)
		t.Refresh(job)
	}
}

// follow starts following a job (a use of it) and subscribes to its updates.
func (t *Table) follow(c *Client, job string) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.track(job, c, true)
	t.watch(c, job)
}

// watch subscribes to a job's updates; the caller holds wmu.
func (t *Table) watch(c *Client, job string) {
	if err := c.Watch(job); err != nil {
		t.o.Log.WithError(err).WithField("job", job).Warn("cluster: follow a job's updates")
	}
}

// store replaces a job's entries with the cluster's answer about asked (""
// for a query by IP) once it passed CheckAnswer; a rejected answer changes
// nothing (false).
func (t *Table) store(r TableResult, asked string) bool {
	es, ok := t.check(r, asked)
	if !ok {
		return false
	}
	if r.AppName == "" {
		return true
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
	return true
}

func sameEntry(a, b table.Entry) bool {
	return a.ServiceName == b.ServiceName && a.Instance == b.Instance && a.NsIP == b.NsIP && a.NsIPv6 == b.NsIPv6 &&
		a.NodeIP == b.NodeIP && a.NodePort == b.NodePort && slices.Equal(a.ServiceIPs, b.ServiceIPs)
}

// policies are the cluster's IpType values.
var policies = map[string]table.Policy{"RR": table.PolicyRoundRobin, "instance_ip": table.PolicyInstance, "Closest": table.PolicyClosest}

// cached answers q from the cache, as table.Standalone answers it; the
// jobs it answers from count as used.
func (t *Table) cached(q table.Query) []table.Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	if q.ServiceName != "" {
		es, ok := t.jobs[q.ServiceName]
		if ok {
			t.usedLocked(q.ServiceName)
		}
		return append([]table.Entry(nil), es...)
	}
	var out []table.Entry
	for job, es := range t.jobs {
		for _, e := range es {
			if e.NsIP == q.IP || e.NsIPv6 == q.IP {
				t.usedLocked(job)
				return []table.Entry{e}
			}
			for _, s := range e.ServiceIPs {
				if s.Address != q.IP {
					continue
				}
				t.usedLocked(job)
				if s.Policy == table.PolicyInstance {
					return []table.Entry{e}
				}
				out = append(out, e)
			}
		}
	}
	return out
}

// usedLocked records a use of a followed job; the caller holds mu.
func (t *Table) usedLocked(job string) {
	if in, ok := t.used[job]; ok {
		in.last = time.Now()
		t.used[job] = in
	}
}

func (t *Table) inRanges(ip netip.Addr) bool {
	for _, r := range t.o.Ranges {
		if r.Contains(ip) {
			return true
		}
	}
	return false
}

// track records that the node follows job through c, as used now when use
// is set, and starts the janitor; the caller holds wmu.
func (t *Table) track(job string, c *Client, use bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	in, ok := t.used[job]
	if !ok || use {
		in.last = time.Now()
	}
	in.c = c
	t.used[job] = in
	if t.janitor == nil && !t.closed && t.o.ReleaseAfter > 0 {
		t.janitor = startJanitor(t.releaseIdle, janitorTick(t.o.ReleaseAfter))
	}
}

// following says whether the node follows job (it was not released).
func (t *Table) following(job string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.used[job]
	return ok
}

// janitorTick is how often the janitor looks for jobs to release: a job is
// released at most a quarter of ReleaseAfter (or a second) late.
func janitorTick(after time.Duration) time.Duration {
	return min(max(after/4, 10*time.Millisecond), time.Second)
}

// janitor runs a function periodically until stopped.
type janitor struct {
	stop chan struct{}
	done chan struct{}
}

func startJanitor(f func(), every time.Duration) *janitor {
	j := &janitor{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(j.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-j.stop:
				return
			case <-tick.C:
				f()
			}
		}
	}()
	return j
}

// Close stops releasing jobs and waits for a release under way; the jobs
// followed stay followed. It is safe to call more than once.
func (t *Table) Close() {
	t.mu.Lock()
	j := t.janitor
	t.janitor, t.closed = nil, true
	t.mu.Unlock()
	if j != nil {
		close(j.stop)
		<-j.done
	}
}

// releaseIdle forgets the misses that expired and releases every job not
// used for ReleaseAfter that has no instance on this node, and every job
// followed through an earlier connection. Nothing is released while the
// broker is unreachable: the cache is all the node has then, and the
// cluster could not be told.
func (t *Table) releaseIdle() {
	c := t.o.Link.Client()
	now := time.Now()
	var idle []string
	t.mu.Lock()
	for ip, since := range t.misses {
		if now.Sub(since) >= missTTL {
			delete(t.misses, ip)
		}
	}
	for job, in := range t.used {
		if now.Sub(in.last) >= t.o.ReleaseAfter || in.c != c {
			idle = append(idle, job)
		}
	}
	t.mu.Unlock()
	if c == nil || !c.Connected() {
		return
	}
	slices.Sort(idle)
	for _, job := range idle {
		t.release(c, job)
	}
}

// release stops following a job that has no instance on this node and was
// not used for ReleaseAfter: it drops the job's entries (OnChange), stops
// the subscription to its updates and tells the cluster (interest/remove).
// A job with an instance here counts as used now instead. A job followed
// through an earlier connection (the node registered anew since) is dropped
// without a word: that connection's interest ended with it.
func (t *Table) release(c *Client, job string) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	keep, err := t.hasLocal(job)
	if err != nil {
		t.o.Log.WithError(err).WithField("job", job).Warn("cluster: keeping a job whose local instances are unknown")
		keep = true
	}
	t.mu.Lock()
	in, ok := t.used[job]
	stale := ok && in.c != c
	if !ok || (!stale && (keep || time.Since(in.last) < t.o.ReleaseAfter)) {
		if ok && keep {
			in.last = time.Now() // looked at again a grace period later
			t.used[job] = in
		}
		t.mu.Unlock()
		return
	}
	es := t.dropLocked(job)
	t.mu.Unlock()
	log := t.o.Log.WithFields(logrus.Fields{"job": job, "instances": len(es)})
	if stale {
		log.Debug("cluster: dropped a job followed before the node registered anew")
	} else if err := c.Unwatch(job); err != nil {
		log.WithError(err).Warn("cluster: release a job")
	} else {
		log.Debug("cluster: released a job no instance here uses")
	}
	if len(es) > 0 && t.o.OnChange != nil {
		t.o.OnChange()
	}
}

// dropLocked forgets a job: its entries (returned), the misses of its
// addresses and the interest; the caller holds mu.
func (t *Table) dropLocked(job string) []table.Entry {
	es := t.jobs[job]
	delete(t.jobs, job)
	delete(t.used, job)
	for _, e := range es {
		for _, s := range e.ServiceIPs {
			delete(t.misses, s.Address)
		}
	}
	return es
}

// hasLocal says whether the node runs an instance of job (the node's own
// table lists them, re-adopted ones included).
func (t *Table) hasLocal(job string) (bool, error) {
	if t.o.Local == nil {
		return false, nil
	}
	es, err := t.o.Local.Lookup(context.Background(), table.Query{ServiceName: job})
	if err != nil {
		return false, fmt.Errorf("local instances of %s: %w", job, err)
	}
	return len(es) > 0, nil
}
