package cluster

import (
	"errors"
	"maps"
	"net/netip"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/table"
)

// rejectLogEvery is how often one kind of rejection of one job is logged at
// warning level (the others at debug); maxRejectLogKeys bounds what the
// table remembers of it (a hostile cluster names as many jobs as it likes).
const (
	rejectLogEvery   = time.Minute
	maxRejectLogKeys = 1024
)

// rejections are the table's counts of what it refused from the cluster.
type rejections struct {
	byReason map[string]uint64
	leftOut  uint64                  // instances placed on this node that it does not run
	logged   map[[2]string]time.Time // job, reason → last warning
}

// view is what the table judges the cluster's answers by now.
func (t *Table) view() View {
	v := View{Ranges: t.o.Ranges}
	if t.o.NodeSubnets != nil {
		v.Subnets = t.o.NodeSubnets()
	}
	if t.o.Link != nil {
		v.Self = t.o.Link.Node()
	}
	if t.o.Local != nil {
		runs := map[runKey]bool{}
		for _, e := range t.o.Local.Entries() {
			runs[runKey{e.ServiceName, e.NsIP}] = true
		}
		v.Runs = func(job string, ns netip.Addr) bool { return runs[runKey{job, ns}] }
	}
	return v
}

type runKey struct {
	job string
	ns  netip.Addr
}

// check judges an answer about asked ("" for a query by IP): its entries,
// or the rejection, counted and logged.
func (t *Table) check(r TableResult, asked string) ([]table.Entry, bool) {
	es, leftOut, err := CheckAnswer(r, asked, t.view())
	var ae *AnswerError
	if errors.As(err, &ae) {
		t.rejected(r.AppName, ae)
		return nil, false
	}
	if leftOut > 0 {
		t.mu.Lock()
		t.rej.leftOut += uint64(leftOut)
		t.mu.Unlock()
		t.o.Log.WithField("job", r.AppName).WithField("instances", leftOut).
			Debug("cluster: left out instances the answer places on this node, which does not run them")
	}
	return es, true
}

// rejected counts a rejection and logs it: at warning level the first time
// for its job and reason and once a minute after, at debug level between.
func (t *Table) rejected(job string, err *AnswerError) {
	if table.ValidateServiceName(job) != nil {
		job = "" // a name not fit to log or to key by
	}
	key := [2]string{job, err.Reason}
	now := time.Now()
	t.mu.Lock()
	if t.rej.byReason == nil {
		t.rej.byReason = map[string]uint64{}
	}
	t.rej.byReason[err.Reason]++
	last, seen := t.rej.logged[key]
	warn := !seen || now.Sub(last) >= rejectLogEvery
	if warn {
		if t.rej.logged == nil || len(t.rej.logged) >= maxRejectLogKeys {
			t.rej.logged = map[[2]string]time.Time{}
		}
		t.rej.logged[key] = now
	}
	t.mu.Unlock()
	log := t.o.Log.WithError(err).WithField("job", job).WithField("reason", err.Reason)
	if warn {
		log.Warn("cluster: rejected a table answer; the job's cached entries stay")
	} else {
		log.Debug("cluster: rejected a table answer; the job's cached entries stay")
	}
}

// Rejected returns how many of the cluster's table answers the table
// rejected, by reason (every one of Reasons, 0 included).
func (t *Table) Rejected() map[string]uint64 {
	out := make(map[string]uint64, len(Reasons))
	for _, r := range Reasons {
		out[r] = 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	maps.Copy(out, t.rej.byReason)
	return out
}

// LeftOut returns how many instances the cluster's answers placed on this
// node that the node does not run (left out of the entries).
func (t *Table) LeftOut() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rej.leftOut
}
