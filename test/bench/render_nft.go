package bench

import (
	"fmt"
	"strings"
)

// NftVariants are BenchmarkFirewallVsNftables' filters on the service
// path, in the order of its first round.
var NftVariants = []string{"none", "firewall", "nftables"}

// NftSample is one variant's measurements at one rule count, one value
// per round.
type NftSample struct {
	Variant    string    `json:"variant"`
	Rules      int       `json:"rules"`
	PPS        []float64 `json:"udp64PacketsPerS"`
	Gbits      []float64 `json:"tcpGbitPerS"`
	ConnPerSec []float64 `json:"tcpConnPerS"`
}

// NftResult is the whole comparison.
type NftResult struct {
	Rounds  int         `json:"rounds"`
	Samples []NftSample `json:"samples"`
}

// nftFiller is filler rule i of a rule set: one the benchmark's traffic
// (IPv4 from 10.x namespace addresses; UDP to 7000, TCP to 5201 and 7000)
// never matches, as firewall JSON and as the same nft rule.
func nftFiller(i int) (map[string]any, string) {
	ports := []string{"22", "23", "25", "53", "111", "135", "139", "445", "1433", "1521", "2049", "3306", "3389",
		"5432", "5900-5910", "6379", "8080-8089", "9200", "11211", "27017"}
	hi, lo := i/256, i%256
	switch i % 5 {
	case 0:
		p := fmt.Sprintf("172.%d.%d.0/24", 16+hi, lo)
		return map[string]any{"action": "deny", "dst": p, "proto": "tcp"}, "ip daddr " + p + " meta l4proto tcp drop"
	case 1:
		p := fmt.Sprintf("100.%d.%d.0/24", 64+hi, lo)
		return map[string]any{"action": "deny", "src": p, "proto": "udp", "dstPorts": "5000-5999"}, "ip saddr " + p + " udp dport 5000-5999 drop"
	case 2:
		p := ports[(i/5)%len(ports)]
		return map[string]any{"action": "deny", "proto": "tcp", "dstPorts": p}, "tcp dport " + p + " drop"
	case 3:
		p := fmt.Sprintf("198.%d.%d.0/24", 18+hi, lo)
		return map[string]any{"action": "allow", "src": p, "proto": "tcp", "dstPorts": "8000-8099"}, "ip saddr " + p + " tcp dport 8000-8099 accept"
	}
	p := fmt.Sprintf("fd00:dead:%x::/48", i)
	return map[string]any{"action": "deny", "src": p, "proto": "any"}, "ip6 saddr " + p + " drop"
}

// nftAllowed are the last rules of every set, the ones the traffic
// matches: UDP to 7000 (the packet rate), TCP to 5201 (iperf3) and 7000
// (connections).
var nftAllowed = []struct{ proto, port string }{{"udp", "7000"}, {"tcp", "5201"}, {"tcp", "7000"}}

// FirewallRules is a rule set of n rules (n ≥ len(nftAllowed)) for the
// firewall module: n-3 fillers the traffic never matches, then the three
// allows it matches; the default deny is the load's defaultPolicy.
func FirewallRules(n int) []map[string]any {
	var rs []map[string]any
	for i := 0; i < n-len(nftAllowed); i++ {
		r, _ := nftFiller(i)
		r["id"] = fmt.Sprintf("f%d", i)
		rs = append(rs, r)
	}
	for _, a := range nftAllowed {
		rs = append(rs, map[string]any{"id": "allow-" + a.proto + a.port, "action": "allow", "proto": a.proto, "dstPorts": a.port})
	}
	return rs
}

// NftScript is the same rule set as an nft script for `nft -f`: table
// inet name with a forward chain (policy drop) that accepts replies by
// conntrack state first, then the rules of FirewallRules(n) in order; the
// allows count their packets (as the firewall's rules count their hits).
func NftScript(name string, n int) string {
	var s strings.Builder
	fmt.Fprintf(&s, "table inet %s {\n\tchain forward_filter {\n\t\ttype filter hook forward priority filter; policy drop;\n", name)
	s.WriteString("\t\tct state established,related accept\n")
	for i := 0; i < n-len(nftAllowed); i++ {
		_, r := nftFiller(i)
		fmt.Fprintf(&s, "\t\t%s\n", r)
	}
	for _, a := range nftAllowed {
		fmt.Fprintf(&s, "\t\t%s dport %s counter accept\n", a.proto, a.port)
	}
	s.WriteString("\t}\n}\n")
	return s.String()
}

// RenderNft is the markdown table of the comparison: per rule count and
// variant the median over the rounds of each metric, and the ratios
// firewall/nftables and firewall/none.
func RenderNft(r NftResult) string {
	var md strings.Builder
	fmt.Fprintf(&md, "Medians of %d rounds; the variants alternate round by round.\n\n", r.Rounds)
	md.WriteString("| rules | filter | UDP 64 B pkts/s | TCP Gbit/s | TCP conn/s |\n|---|---|---|---|---|\n")
	find := func(v string, n int) NftSample {
		for _, s := range r.Samples {
			if s.Variant == v && s.Rules == n {
				return s
			}
		}
		return NftSample{}
	}
	var counts []int
	for _, s := range r.Samples {
		if s.Variant == NftVariants[0] {
			counts = append(counts, s.Rules)
		}
	}
	for _, n := range counts {
		for _, v := range NftVariants {
			s := find(v, n)
			fmt.Fprintf(&md, "| %d | %s | %.0f | %.2f | %.0f |\n", n, v, median(s.PPS), median(s.Gbits), median(s.ConnPerSec))
		}
		fw, nft, none := find("firewall", n), find("nftables", n), find("none", n)
		ratio := func(a, b NftSample) string {
			return fmt.Sprintf("%.2f× | %.2f× | %.2f×", median(a.PPS)/median(b.PPS), median(a.Gbits)/median(b.Gbits), median(a.ConnPerSec)/median(b.ConnPerSec))
		}
		fmt.Fprintf(&md, "| %d | firewall/nftables | %s |\n", n, ratio(fw, nft))
		fmt.Fprintf(&md, "| %d | firewall/none | %s |\n", n, ratio(fw, none))
	}
	md.WriteString("\nfirewall/nftables round by round (each round measures both, one after the other), the spread the\nratios of medians above come from:\n\n")
	for _, n := range counts {
		fw, nft := find("firewall", n), find("nftables", n)
		fmt.Fprintf(&md, "- %d rules: UDP pkts/s %s; TCP Gbit/s %s; TCP conn/s %s\n", n,
			roundRatios(fw.PPS, nft.PPS), roundRatios(fw.Gbits, nft.Gbits), roundRatios(fw.ConnPerSec, nft.ConnPerSec))
	}
	return md.String()
}

// roundRatios lists a[i]/b[i] for the rounds both have.
func roundRatios(a, b []float64) string {
	var rs []string
	for i := 0; i < len(a) && i < len(b); i++ {
		if b[i] == 0 {
			rs = append(rs, "n/a")
			continue
		}
		rs = append(rs, fmt.Sprintf("%.2f", a[i]/b[i]))
	}
	if len(rs) == 0 {
		return "none"
	}
	return strings.Join(rs, ", ")
}
