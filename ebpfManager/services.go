package ebpfmanager

import (
	"context"
	"net/netip"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// StandaloneTable gives modules read access to a table.Standalone.
type StandaloneTable struct{ Table *table.Standalone }

// Entries returns every instance in the table.
func (s StandaloneTable) Entries() []module.ServiceEntry { return convert(s.Table.Entries()) }

// Lookup resolves a service IP, instance IP or namespace IP.
func (s StandaloneTable) Lookup(ip netip.Addr) []module.ServiceEntry {
	es, _ := s.Table.Lookup(context.Background(), table.Query{IP: ip})
	return convert(es)
}

func convert(es []table.Entry) []module.ServiceEntry {
	out := make([]module.ServiceEntry, 0, len(es))
	for _, e := range es {
		me := module.ServiceEntry{Name: e.ServiceName, Instance: e.Instance, NsIP: e.NsIP, NsIPv6: e.NsIPv6}
		for _, sip := range e.ServiceIPs {
			me.ServiceIPs = append(me.ServiceIPs, module.ServiceIP{Policy: string(sip.Policy), Address: sip.Address})
		}
		out = append(out, me)
	}
	return out
}
