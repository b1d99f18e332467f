package ebpfmanager

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// liveTable is the service table every module instance is given: SetTunnel
// moves the node address it tells this node's entries by, for instances
// made before as well.
type liveTable struct {
	mu sync.RWMutex
	t  module.ServiceTable
}

func (l *liveTable) get() module.ServiceTable {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.t
}

func (l *liveTable) Entries() []module.ServiceEntry             { return l.get().Entries() }
func (l *liveTable) Lookup(ip netip.Addr) []module.ServiceEntry { return l.get().Lookup(ip) }

// moveSelf makes self the node's tunnel address of a ServiceTable; its
// earlier address stays the node's (entries that still carry it are
// local). Another kind of table is left as it is.
func (l *liveTable) moveSelf(self netip.AddrPort) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, ok := l.t.(ServiceTable)
	if !ok || st.Self == self {
		return
	}
	if st.Self.IsValid() {
		st.Former = append(append([]netip.Addr(nil), st.Former...), st.Self.Addr())
	}
	st.Self = self
	l.t = st
}

// SetTunnel moves this node's tunnel end (its address changed). Running
// instances attached to host interfaces (the proxy's underlay: its kernel
// tunnel sends from the node address) are made anew in place with the new
// module.Base.Tunnel, as an update with the same config does; the others
// are told that the service table changed (it tells local entries by the
// new address now). An instance that cannot be made anew runs on as it was;
// the errors say which.
func (m *Manager) SetTunnel(tunnel netip.AddrPort) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if tunnel == m.opts.Tunnel {
		return nil
	}
	old := m.opts.Tunnel
	m.opts.Tunnel = tunnel
	if lt, ok := m.opts.Table.(*liveTable); ok {
		lt.moveSelf(tunnel)
	}
	var errs []error
	for _, in := range m.sorted() {
		if in.state != StateRunning {
			continue
		}
		if len(in.scope.interfaces) > 0 && in.slaKey == "" {
			if err := m.renew(in); err != nil {
				errs = append(errs, fmt.Errorf("%s: move the tunnel to %s: %w", in.id, tunnel, err))
			}
			continue
		}
		if w, ok := in.mod.(module.ServicesWatcher); ok {
			if err := m.guard(in, "ServicesChanged", w.ServicesChanged); err != nil {
				errs = append(errs, fmt.Errorf("%s: service table changed: %w", in.id, err))
			}
		}
	}
	m.opts.Log.WithFields(logrus.Fields{"from": old, "to": tunnel}).Info("eBPF Manager: the node's tunnel end moved")
	return errors.Join(errs...)
}

// renew makes a running instance anew in place with the same config (its
// control plane gets the current Base); the caller holds mu.
func (m *Manager) renew(old *instance) error {
	nu, so, err := m.successor(old, UpdateRequest{})
	if err != nil {
		return err
	}
	if err := m.swap(old, nu, so); err != nil {
		return err
	}
	m.insts[old.id] = nu
	m.stateMu.Lock()
	state := m.declared[old.id].State
	m.stateMu.Unlock()
	if err := m.declare(nu, state); err != nil {
		m.opts.Log.WithError(err).WithField("id", old.id).Warn("the instance runs anew, but a restart will not know its state")
	}
	return nil
}
