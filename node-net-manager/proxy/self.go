package proxy

import "net/netip"

// SetSelf moves this node's tunnel address (the node's address changed).
// The earlier address stays this node's: entries that still carry it (the
// node's own table, the cluster's answers from before it learned the new
// one) remain local, so flows between the node's own services go on. The
// sessions are kept: those towards other nodes do not depend on it.
func (t *Translator) SetSelf(self netip.AddrPort) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if self == t.self {
		return
	}
	if t.self.IsValid() {
		if t.former == nil {
			t.former = map[netip.Addr]bool{}
		}
		t.former[t.self.Addr()] = true
	}
	delete(t.former, self.Addr())
	t.self = self
}

// Self is this node's tunnel address.
func (t *Translator) Self() netip.AddrPort {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.self
}
