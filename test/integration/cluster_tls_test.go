package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/oakestra/netmanager/test/clustersite"
	"github.com/oakestra/netmanager/test/clusterstub"
	"github.com/oakestra/netmanager/test/nstest"
)

// underlayTLSNode is underlayNode configured for MQTT over TLS, trusting
// the broker by ca, with the test's client certificate.
func underlayTLSNode(t *testing.T, ul *nstest.Netns, i int, certs *clusterstub.Certs, ca string) *node {
	t.Helper()
	n := &node{ns: nstest.NewNetns(t, "nm-node")}
	cfg := clustersite.JoinTLS(t, ul, n.ns, i, certs, ca)
	n.pristine = n.settled(t)
	n.d = nstest.StartDaemon(t, netmanagerBin, n.ns, "--modules-dir", modulesDir, "--config", cfg)
	n.ready = n.settled(t)
	return n
}

// The cluster over TLS: two nodes with the mqtt* keys register at a broker
// that speaks MQTT over TLS only and requires a client certificate, and a
// client on node A reaches a service on node B by its round-robin IP, over
// TCP and UDP, through the tunnel.
func TestClusterTLS(t *testing.T) {
	ul, _, certs := clustersite.NewTLSUnderlay(t)
	m := clustersite.NewTLSManager(t, ul, 2, certs)
	a, b := underlayTLSNode(t, ul, 1, certs, certs.CA), underlayTLSNode(t, ul, 2, certs, certs.CA)
	a.register(t, "node-a")
	b.register(t, "node-b")
	cli, srv := newContainer(t), newContainer(t)
	deployContainer(t, a, cli, "app.ns.cli.ns", 0, "")
	deployContainer(t, b, srv, "app.ns.srv.ns", 0, "")
	serveName(t, srv.ns, "7000", "srv-0")
	waitUntil(t, "the cluster knows both instances", func() bool {
		return len(m.Instances("app.ns.srv.ns")) == 1 && len(m.Instances("app.ns.cli.ns")) == 1
	})
	srvRR := rrPort(m, "app.ns.srv.ns")
	for _, network := range []string{"tcp", "udp"} {
		if got, err := ask(cli, network, srvRR); err != nil || got != "srv-0" {
			t.Fatalf("%s to the service IP on node B, over the TLS cluster: %q %v", network, got, err)
		}
	}
	undeploy(t, b, "container", "app.ns.srv.ns", 0)
	undeploy(t, a, "container", "app.ns.cli.ns", 0)
	for _, n := range []*node{a, b} {
		n.stop(t)
	}
}

// A node whose CA did not sign the broker's certificate refuses the broker:
// POST /register answers 503 naming the broker and the verification
// failure, the node stays standalone as it was (its network, no connection
// to the broker), and the cluster heard nothing from it.
func TestClusterTLSWrongCA(t *testing.T) {
	ul, _, certs := clustersite.NewTLSUnderlay(t)
	m := clustersite.NewTLSManager(t, ul, 1, certs)
	n := underlayTLSNode(t, ul, 1, certs, certs.WrongCA)
	code, out, err := n.d.Client.Raw(ctx(t), "POST", "/register", []byte(`{"client_id": "node-a", "cluster_address": "192.168.77.254"}`))
	var body struct{ Error string }
	_ = json.Unmarshal(out, &body)
	want := "register with the cluster: unavailable: cluster broker ssl://" + clustersite.BrokerAddr + ": tls: failed to verify certificate: x509: certificate signed by unknown authority"
	if err != nil || code != 503 || body.Error != want {
		t.Fatalf("register with the wrong CA: %d %s %v\nwant 503 %q", code, out, err, want)
	}
	n.assertState(t, n.ready, "after the refused registration")
	if conns := n.ns.MustExec(t, "ss", "-Htn", "dst", clustersite.BrokerAddr); strings.TrimSpace(conns) != "" {
		t.Fatalf("connections to the broker left after the refusal:\n%s", conns)
	}
	if msgs := m.Messages("subnet"); len(msgs) != 0 {
		t.Fatalf("the cluster heard from the refused node: %v", msgs)
	}
	// The link kept nothing: a second try is refused the same way.
	if code, out, err := n.d.Client.Raw(ctx(t), "POST", "/register", []byte(`{"client_id": "node-a", "cluster_address": "192.168.77.254"}`)); code != 503 || !strings.Contains(string(out), want) {
		t.Fatalf("register again with the wrong CA: %d %s %v", code, out, err)
	}
	n.stop(t)
}
