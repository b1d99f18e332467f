package integration

import (
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/deploy"
)

// A service reaches another through a port mapping on the node's own
// address (hairpin): the DNAT applies on the bridge, and the reply is
// translated back.
func TestPortMappingHairpin(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	a, b := newContainer(t), newContainer(t)
	deployContainer(t, n, a, "app.ns.client.ns", 0, "")
	deployContainer(t, n, b, "app.ns.web.ns", 0, "18085:8080/tcp")
	serveEcho(t, b.ns, "tcp", ":8080")
	assertEcho(t, a.ns, "tcp4", "10.18.0.1:18085")
	undeploy(t, n, deploy.KindContainer, "app.ns.client.ns", 0)
	undeploy(t, n, deploy.KindContainer, "app.ns.web.ns", 0)
	n.stop(t)
}
