package nstest

import (
	"regexp"
	"sort"
	"strings"
	"testing"
)

var (
	counters = regexp.MustCompile(`\[\d+:\d+\]`)
	linkNum  = regexp.MustCompile(`^\d+: `)
	// a built-in chain with its default policy, as iptables-save prints it
	builtinAccept = regexp.MustCompile(`^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT$`)
)

// Snapshot describes a namespace's network state — links (name, kind, alias),
// addresses, IPv4 and IPv6 routes, iptables and ip6tables rules, and the
// forwarding sysctls — normalised so that two snapshots of the same state are
// equal strings.
func (n *Netns) Snapshot(t testing.TB) string {
	t.Helper()
	var parts []string
	links := n.MustExec(t, "ip", "-o", "-d", "link", "show")
	var ls []string
	for _, l := range strings.Split(strings.TrimSpace(links), "\n") {
		l = linkNum.ReplaceAllString(l, "")
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		desc := f[0]
		for i, w := range f {
			if w == "alias" && i+1 < len(f) {
				desc += " alias=" + f[i+1]
			}
			if w == "veth" || w == "bridge" {
				desc += " kind=" + w
			}
		}
		ls = append(ls, desc)
	}
	sort.Strings(ls)
	parts = append(parts, "links:\n"+strings.Join(ls, "\n"))
	var addrs []string
	for _, l := range strings.Split(strings.TrimSpace(n.MustExec(t, "ip", "-o", "addr", "show")), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || strings.Contains(l, "scope link") { // kernel-made link-local addresses
			continue
		}
		addrs = append(addrs, f[1]+" "+f[3])
	}
	sort.Strings(addrs)
	parts = append(parts, "addrs:\n"+strings.Join(addrs, "\n"))
	parts = append(parts, "routes:\n"+routes(n.MustExec(t, "ip", "route", "show", "table", "all")))
	parts = append(parts, "routes6:\n"+routes(n.MustExec(t, "ip", "-6", "route", "show", "table", "all")))
	for _, bin := range []string{"iptables-save", "ip6tables-save"} {
		var rules []string
		for _, l := range strings.Split(n.MustExec(t, bin), "\n") {
			l = strings.TrimSpace(counters.ReplaceAllString(l, ""))
			// Empty tables that iptables-nft creates on first use are no rules:
			// compare rules, user chains and non-default policies only.
			if l == "" || l == "COMMIT" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "*") || builtinAccept.MatchString(l) {
				continue
			}
			rules = append(rules, l)
		}
		parts = append(parts, bin+":\n"+strings.Join(rules, "\n"))
	}
	parts = append(parts, "sysctl: "+n.MustExec(t, "sysctl", "-n", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"))
	return strings.Join(parts, "\n")
}

// routes drops what only reflects carrier state ("linkdown") or the kernel's
// IPv6 bookkeeping (link-local fe80::, multicast ff00::/8), which come and go
// with the carrier of a bridge as ports join and leave.
func routes(out string) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(l, "fe80::") || strings.Contains(l, "ff00::/8") {
			continue
		}
		keep = append(keep, strings.Join(strings.Fields(strings.ReplaceAll(l, " linkdown", "")), " "))
	}
	sort.Strings(keep)
	return strings.Join(keep, "\n")
}

// Diff returns a line diff of two snapshots ("-" only in a, "+" only in b), or "".
func Diff(a, b string) string {
	if a == b {
		return ""
	}
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	ca, cb := count(a), count(b)
	var out []string
	for l, k := range ca {
		if cb[l] < k {
			out = append(out, "- "+l)
		}
	}
	for l, k := range cb {
		if ca[l] < k {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "(same lines, different order)"
	}
	return strings.Join(out, "\n")
}
