package clustersite

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/test/clusterstub"
	"github.com/oakestra/netmanager/test/nstest"
)

// BrokerAddr is the broker's address on the underlay.
const BrokerAddr = "192.168.77.254:10003"

// NewUnderlay makes the underlay namespace (the bridge ulbr) and starts
// the broker in it.
func NewUnderlay(tb testing.TB) (*nstest.Netns, *clusterstub.Broker) {
	tb.Helper()
	ul := newUnderlay(tb)
	return ul, clusterstub.StartBroker(tb, ul, BrokerAddr)
}

// NewTLSUnderlay is NewUnderlay with a broker that speaks MQTT over TLS
// only and requires a client certificate, with the test's certificates
// (the broker's for its underlay IP).
func NewTLSUnderlay(tb testing.TB) (*nstest.Netns, *clusterstub.Broker, *clusterstub.Certs) {
	tb.Helper()
	ul := newUnderlay(tb)
	host, _, _ := net.SplitHostPort(BrokerAddr)
	certs := clusterstub.NewCerts(tb, host)
	return ul, clusterstub.StartTLSBroker(tb, ul, BrokerAddr, certs), certs
}

func newUnderlay(tb testing.TB) *nstest.Netns {
	tb.Helper()
	ul := nstest.NewNetns(tb, "nm-ul")
	ul.MustExec(tb, "ip", "link", "add", "ulbr", "type", "bridge")
	ul.MustExec(tb, "ip", "addr", "add", "192.168.77.254/24", "dev", "ulbr")
	ul.MustExec(tb, "ip", "link", "set", "ulbr", "up")
	return ul
}

// Join links node namespace ns to the underlay as node i (192.168.77.<i>)
// and returns the path of a NetManager config for it: node subnet
// 10.18.<i>.0/24 (fd00:18:<i>::/64), node IP 192.168.77.<i>. The node's
// underlay interface offloads neither checksums nor segmentation, as a NIC
// sending onto a wire between machines: what crosses the underlay is
// MTU-sized frames with every checksum complete. (A veth would otherwise
// carry a checksum left to the "hardware" into the other node, where a
// user-space tunnel reads it unfinished.)
func Join(tb testing.TB, ul, ns *nstest.Netns, i int) string {
	tb.Helper()
	return join(tb, ul, ns, i, "")
}

// JoinTLS is Join with the node configured for MQTT over TLS: the CA it
// trusts the broker's certificate by (ca: certs.CA, or certs.WrongCA for a
// node that must refuse the broker) and certs' client certificate.
func JoinTLS(tb testing.TB, ul, ns *nstest.Netns, i int, certs *clusterstub.Certs, ca string) string {
	tb.Helper()
	return join(tb, ul, ns, i, fmt.Sprintf(`, "mqttCAFile": %q, "mqttCertFile": %q, "mqttKeyFile": %q`, ca, certs.ClientCert, certs.ClientKey))
}

// join is Join with more config keys (extra: `, "key": value...`).
func join(tb testing.TB, ul, ns *nstest.Netns, i int, extra string) string {
	tb.Helper()
	host, peer := fmt.Sprintf("ul%d%s", i, ns.Name[len(ns.Name)-4:]), "underlay0"
	nstest.Run(tb, "ip", "link", "add", host, "netns", ul.Name, "type", "veth", "peer", "name", peer, "netns", ns.Name)
	ul.MustExec(tb, "ip", "link", "set", host, "master", "ulbr", "up")
	ns.MustExec(tb, "ip", "addr", "add", NodeIP(i)+"/24", "dev", peer)
	ns.MustExec(tb, "ip", "link", "set", peer, "up")
	ns.MustExec(tb, "ethtool", "-K", peer, "tx", "off")
	cfg := filepath.Join(tb.TempDir(), "netmanager.json")
	text := fmt.Sprintf(`{"nodeSubnet": "10.18.%d.0/24", "nodeSubnetV6": "fd00:18:%d::/64", "nodeIP": %q%s}`, i, i, NodeIP(i), extra)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// NodeIP is node i's address on the underlay.
func NodeIP(i int) string { return fmt.Sprintf("192.168.77.%d", i) }

// NewManager starts the stand-in cluster manager on the underlay's broker
// with the node subnets a real cluster hands out first, for n nodes, in
// the order the nodes register (Subnet), and the services the tests use,
// created in this order: cli, srv, late (so their round-robin IPs are
// 10.30.0.0-2 and fdff:2000::-2, as a real cluster's first jobs get; ask
// the manager's RR rather than counting on it).
func NewManager(tb testing.TB, ul *nstest.Netns, n int) *clusterstub.Manager {
	tb.Helper()
	var subnets []cluster.SubnetResult
	for i := 1; i <= n; i++ {
		subnets = append(subnets, clusterstub.NodeSubnet(i-1))
	}
	return services(clusterstub.NewManagerIn(tb, ul, BrokerAddr, subnets...))
}

// NewTLSManager is NewManager on NewTLSUnderlay's broker: the stand-in
// connects over TLS with certs' client certificate.
func NewTLSManager(tb testing.TB, ul *nstest.Netns, n int, certs *clusterstub.Certs) *clusterstub.Manager {
	tb.Helper()
	var subnets []cluster.SubnetResult
	for i := 1; i <= n; i++ {
		subnets = append(subnets, clusterstub.NodeSubnet(i-1))
	}
	return services(clusterstub.NewManagerTLS(tb, ul, BrokerAddr, certs.ClientTLS(tb), subnets...))
}

// services creates the tests' jobs, in NewManager's order.
func services(m *clusterstub.Manager) *clusterstub.Manager {
	for _, job := range []string{"app.ns.cli.ns", "app.ns.srv.ns", "app.ns.late.ns"} {
		m.Service(job)
	}
	return m
}

// RestartManager starts old's stand-in again on the underlay's broker, on
// its database: the jobs keep their addresses and those of their
// instances (clusterstub.RestartIn).
func RestartManager(tb testing.TB, ul *nstest.Netns, n int, old *clusterstub.Manager) *clusterstub.Manager {
	tb.Helper()
	var subnets []cluster.SubnetResult
	for i := 1; i <= n; i++ {
		subnets = append(subnets, clusterstub.NodeSubnet(i-1))
	}
	return clusterstub.RestartIn(tb, ul, BrokerAddr, old, subnets...)
}

// Subnet is the node subnets (IPv4, IPv6) the i-th node to register (from
// 1) moves to: the cluster's first address with Oakestra's sizes, /26 and
// /120 (10.18.0.0/26 and fc00::/120 for the first).
func Subnet(i int) (v4, v6 string) {
	s := clusterstub.NodeSubnet(i - 1)
	return s.Address + "/26", s.AddressV6 + "/120"
}
