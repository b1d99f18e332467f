package deploy

import (
	"context"
	"errors"
	"sort"

	"github.com/sirupsen/logrus"
)

// RemoveStale undeploys every instance on the node when none of them is
// alive: the NodeEngine that deployed them is gone (a restarted NodeEngine
// registers under a new id and knows nothing of them). When one is alive it
// removes nothing and returns it. Each instance goes as an undeploy does
// (ServiceRemoved first, then its networking, table entry and address; the
// saved state follows); what a teardown could not remove is in err, and
// the instance is forgotten all the same.
func (m *Manager) RemoveStale(ctx context.Context) (removed int, alive *Record, err error) {
	m.ops.Lock()
	defer m.ops.Unlock()
	recs := m.newestFirst()
	if live := firstAlive(recs, m.opts.Liveness); live != nil {
		pub := live.public()
		return 0, &pub, nil
	}
	var errs []error
	for _, r := range recs {
		errs = append(errs, m.teardown(ctx, r))
	}
	if len(recs) > 0 {
		m.opts.Log.WithField("services", len(recs)).Info("removed the deployments of a NodeEngine that is gone")
	}
	return len(recs), nil, errors.Join(errs...)
}

// newestFirst returns the records in reverse deploy order.
func (m *Manager) newestFirst() []*Record {
	m.mu.RLock()
	defer m.mu.RUnlock()
	recs := make([]*Record, 0, len(m.recs))
	for _, r := range m.recs {
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].seq > recs[j].seq })
	return recs
}

// firstAlive returns the first of recs whose workload still runs, nil when
// none does.
func firstAlive(recs []*Record, lv Liveness) *Record {
	for _, r := range recs {
		if isAlive(r, lv) {
			return r
		}
	}
	return nil
}

// isAlive says whether rec's workload still runs. A container's does while
// its process exists and is still in the namespace recorded at deploy (a
// PID the kernel gave to another process since is elsewhere); without a
// recorded namespace (it could not be read), while the process exists. A
// unikernel's does while any process is in the namespace the NetManager
// made for it.
func isAlive(rec *Record, lv Liveness) bool {
	if rec.Kind == KindUnikernel {
		return lv.NetnsInUse(rec.Netns)
	}
	id, ok := lv.ProcessNetns(rec.PID)
	return ok && (rec.netnsID.IsZero() || id == rec.netnsID)
}

// identify records the namespace of a container's process, for isAlive.
func (m *Manager) identify(rec *Record) {
	if rec.Kind != KindContainer {
		return
	}
	if id, ok := m.opts.Liveness.ProcessNetns(rec.PID); ok {
		rec.netnsID = id
	} else {
		m.opts.Log.WithFields(logrus.Fields{"service": rec.ServiceName, "instance": rec.Instance, "pid": rec.PID}).
			Debug("could not read the container's namespace; its liveness is told by its PID alone")
	}
}
