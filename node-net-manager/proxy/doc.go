// Package proxy is the NetManager's user-space service proxy: it translates
// packets addressed to Oakestra service IPs (round robin or instance IPs in the
// service range) to an instance's namespace IP, rewrites the source to the
// sender's own instance IP so replies come back through it, keeps the choice
// per flow, and translates the replies back.
//
// The translation is pure (Translator works on packet bytes); Run moves
// packets between it and a TUN device that owns the route to the service range.
// It is the path of nodes without eBPF and the baseline the eBPF proxy is
// measured against. With a resolver that must ask elsewhere (an Asker: the
// cluster's table), Run holds the packets that need its answer and offers
// them again once it is in, so no flow waits for another's question.
package proxy
