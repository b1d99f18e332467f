package ebpfmanager

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// TableSource is a service table as modules read it: table.Standalone, or
// the cluster's (whose Lookup must answer from what it has, not wait).
type TableSource interface {
	Entries() []table.Entry
	Lookup(ctx context.Context, q table.Query) ([]table.Entry, error)
}

// ServiceTable gives modules read access to a service table; Self is this
// node's tunnel address, which tells its instances from other nodes'.
// Former are the node's earlier addresses (Manager.SetTunnel): entries that
// still carry one are this node's too.
type ServiceTable struct {
	Source TableSource
	Self   netip.AddrPort
	Former []netip.Addr
}

// Entries returns every instance in the table.
func (s ServiceTable) Entries() []module.ServiceEntry { return s.convert(s.Source.Entries()) }

// Lookup resolves a service IP, instance IP or namespace IP.
func (s ServiceTable) Lookup(ip netip.Addr) []module.ServiceEntry {
	es, _ := s.Source.Lookup(context.Background(), table.Query{IP: ip})
	return s.convert(es)
}

func (s ServiceTable) convert(es []table.Entry) []module.ServiceEntry {
	out := make([]module.ServiceEntry, 0, len(es))
	for _, e := range es {
		me := module.ServiceEntry{Name: e.ServiceName, Instance: e.Instance, NsIP: e.NsIP, NsIPv6: e.NsIPv6, Remote: s.remote(e)}
		if me.Remote {
			port := uint16(e.NodePort)
			if port == 0 {
				port = s.Self.Port() // the cluster's default: every node's tunnel on the same port
			}
			me.Node = netip.AddrPortFrom(e.NodeIP, port)
		}
		for _, sip := range e.ServiceIPs {
			me.ServiceIPs = append(me.ServiceIPs, module.ServiceIP{Policy: string(sip.Policy), Address: sip.Address})
		}
		out = append(out, me)
	}
	return out
}

// remote says whether an entry's instance runs on another node: one with a
// node address that is not this node's (as the user-space proxy decides).
func (s ServiceTable) remote(e table.Entry) bool {
	if !e.NodeIP.IsValid() || !s.Self.IsValid() {
		return false
	}
	mine := e.NodeIP == s.Self.Addr() || slices.Contains(s.Former, e.NodeIP)
	return !mine || (e.NodePort != 0 && e.NodePort != int(s.Self.Port()))
}

// ServicesChanged tells every running instance whose module watches the
// service table (module.ServicesWatcher) that it changed.
func (m *Manager) ServicesChanged() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, in := range m.sorted() {
		w, ok := in.mod.(module.ServicesWatcher)
		if !ok || in.state != StateRunning {
			continue
		}
		if err := m.guard(in, "ServicesChanged", w.ServicesChanged); err != nil {
			errs = append(errs, fmt.Errorf("%s: service table changed: %w", in.id, err))
		}
	}
	return m.count(OpServicesChanged, errors.Join(errs...))
}
