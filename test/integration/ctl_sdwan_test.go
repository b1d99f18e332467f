package integration

import (
	"testing"

	"github.com/oakestra/netmanager/test/sdwansite"
)

// sdwan ID rules, lbr, wans and stats (HTTP) and sdwan list, create,
// update and delete (gRPC, inside the gateway's namespace) on docs/sdwan.md's
// two sites, with traffic between their hosts.
func TestCtlSDWAN(t *testing.T) {
	a, _ := sdwansite.New(t, sdwansite.Options{Netmanager: netmanagerBin, ModulesDir: ctlModulesDir()})
	id := a.ID
	onA := func(args ...string) ctlResult {
		t.Helper()
		return runCtlBin(t, []string{"ip", "netns", "exec", a.Node.Name}, nil, append([]string{"--socket", a.Daemon.Socket}, args...)...)
	}
	assertPing(t, a.Host, "10.2.0.5")

	var rules []struct {
		ID                  uint32
		Precedence          uint32
		Dst, Action, Target string
		Flows               uint64
	}
	onA("sdwan", id, "rules", "-o", "json").decode(t, &rules)
	if len(rules) != 1 || rules[0].ID != 1 || rules[0].Dst != "10.2.0.0/16" || rules[0].Target != "lbr" || rules[0].Flows < 1 {
		t.Fatalf("sdwan rules -o json: %+v", rules)
	}
	onA("sdwan", id, "rules").ok(t, "PRECEDENCE", "10.2.0.0/16", "redirect", "lbr")

	var lbrs []struct {
		TOS      *int
		Default  bool
		Overlays []struct{ WAN string }
		Active   map[string]int
	}
	onA("sdwan", id, "lbr", "-o", "json").decode(t, &lbrs)
	if len(lbrs) != 2 || lbrs[0].TOS == nil || *lbrs[0].TOS != 32 || lbrs[0].Overlays[0].WAN != "wan2" || lbrs[0].Active["wan2"] == 0 ||
		!lbrs[1].Default || lbrs[1].Overlays[0].WAN != "wan1" || lbrs[1].Active["wan1"] == 0 { // by class, the default last
		t.Fatalf("sdwan lbr -o json: %+v", lbrs)
	}
	onA("sdwan", id, "lbr").ok(t, "CLASS", "default", "wan1:1", "tos 32", "wan2:1")

	var wans []sdwansite.WANStat
	onA("sdwan", id, "wans", "-o", "json").decode(t, &wans)
	if len(wans) != 2 || wans[0].Name != "wan1" || !wans[0].Up || wans[0].TxPackets < 1 || wans[1].Name != "wan2" {
		t.Fatalf("sdwan wans -o json: %+v", wans)
	}
	onA("sdwan", id, "wans").ok(t, "LATENCY MS", "wan1", "sdwan1", "192.0.2.2", "wan2", "sdwan2")

	var stats struct {
		Counters map[string]uint64
		WANs     []sdwansite.WANStat
	}
	onA("sdwan", id, "stats", "-o", "json").decode(t, &stats)
	if stats.Counters["flowsClassified"] < 1 || len(stats.WANs) != 2 {
		t.Fatalf("sdwan stats -o json: %+v", stats)
	}
	onA("sdwan", id, "stats").ok(t, "COUNTER", "flowsClassified", "wan1")
	ctlSDWANOverGRPC(t, a, onA)
}

// ctlSDWANOverGRPC drops pings to site B's host with a PDR, lists it,
// redirects it to WAN 2 with an update, and deletes it.
func ctlSDWANOverGRPC(t *testing.T, a *sdwansite.Site, onA func(args ...string) ctlResult) {
	t.Helper()
	onA("sdwan", "create", "pdr", "--id", "2", "--precedence", "1", "--dst", "10.2.0.5/32", "--proto", "icmp", "--action", "drop").
		ok(t, "create pdr: ok (the gateway has pdrs 2, lbrs 2)")
	if out, err := a.Host.Exec("ping", "-c", "2", "-W", "1", "10.2.0.5"); err == nil {
		t.Fatalf("ping went through the drop rule:\n%s", out)
	}
	onA("sdwan", "create", "pdr", "--id", "2", "--action", "pass").fails(t, 3, "sdwan create pdr: ")
	var list struct {
		PDRs []struct {
			ID                 uint32
			Dst, Proto, Action string
			Interface          string
		}
		LBRs []struct{ Default bool }
	}
	for _, args := range [][]string{{"sdwan", "list", "--json"}, {"sdwan", "list", "-o", "json"}, {"-o", "json", "sdwan", "--grpc", "127.0.0.1:50051", "list"}} {
		onA(args...).decode(t, &list)
		p := list.PDRs // in precedence order: the new rule first
		if len(p) != 2 || p[0].ID != 2 || p[0].Dst != "10.2.0.5/32" || p[0].Proto != "icmp" || p[0].Action != "drop" || p[1].ID != 1 || len(list.LBRs) != 2 {
			t.Fatalf("%q: %+v", args, list)
		}
	}
	onA("sdwan", "list").ok(t, "PDR", "10.2.0.5/32", "drop", "LBR CLASS", "default")
	onA("sdwan", "update", "pdr", "--id", "2", "--precedence", "1", "--dst", "10.2.0.5/32", "--proto", "icmp", "--action", "redirect", "--interface", "2").
		ok(t, "update pdr: ok")
	before := a.WANs(t)["wan2"].TxPackets
	assertPing(t, a.Host, "10.2.0.5")
	if got := a.WANs(t)["wan2"].TxPackets; got < before+2 {
		t.Fatalf("after the update the pings did not go over WAN 2: tx %d -> %d", before, got)
	}
	onA("sdwan", "delete", "pdr", "--id", "2").ok(t, "delete pdr: ok (the gateway has pdrs 1, lbrs 2)")
	onA("sdwan", "delete", "pdr", "--id", "2").fails(t, 3, "sdwan delete pdr: ")
	onA("sdwan", "create", "pdr", "--id", "3", "--action", "drop", "--tos", "3").fails(t, 2, "--tos: 3 has ECN bits")
	onA("sdwan", "--grpc", "127.0.0.1:1", "list").fails(t, 1, "sdwan list: ")
}
