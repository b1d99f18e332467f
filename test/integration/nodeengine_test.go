package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/config"
	"github.com/oakestra/netmanager/test/nstest"
)

// nodeEngine calls the NetManager as Oakestra's NodeEngine does
// (go_node_engine/requests/NetManagerRequests.go): POST to
// http://localhost:0/<route> over the unix socket, every body with all its
// fields, a 10 s timeout, success only on status 200.
type nodeEngine struct{ c *http.Client }

func newNodeEngine(socket string) *nodeEngine {
	return &nodeEngine{c: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}}}}
}

func (ne *nodeEngine) post(t *testing.T, route string, body any) []byte {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := ne.c.Post("http://localhost:0"+route, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", route, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", route, b, resp.StatusCode, out)
	}
	return out
}

// The NodeEngine's request bodies, with its JSON names.
type (
	neRegister struct {
		ClientID       string `json:"client_id"`
		ClusterAddress string `json:"cluster_address"`
	}
	neDeploy struct {
		PID            int    `json:"pid"`
		ServiceName    string `json:"serviceName"`
		InstanceNumber int    `json:"instanceNumber"`
		PortMappings   string `json:"portMappings"`
	}
)

// A stock NodeEngine drives the NetManager over the unix socket at its
// default path, which the daemon serves without being told to: register,
// two container deploys, a retry over a dead container, a unikernel with
// tap0, and the undeploys, each answered 200.
func TestNodeEngineOverDefaultSocket(t *testing.T) {
	if c, err := net.Dial("unix", config.DefaultSocket); err == nil {
		c.Close()
		t.Fatalf("a NetManager already serves %s on this machine; this test needs that path", config.DefaultSocket)
	}
	n := newNode(t, "--socket", config.DefaultSocket)
	ne := newNodeEngine(config.DefaultSocket)
	ne.post(t, "/register", neRegister{ClientID: "node-1", ClusterAddress: ""})
	a, b := newContainer(t), newContainer(t)
	ne.post(t, "/container/deploy", neDeploy{PID: a.pid, ServiceName: "app.ns.front.ns", PortMappings: "8080:80"})
	var rb struct{ NsAddress string }
	_ = json.Unmarshal(ne.post(t, "/container/deploy", neDeploy{PID: b.pid, ServiceName: "app.ns.back.ns"}), &rb)
	assertPing(t, a.ns, rb.NsAddress)

	// The back end's container dies before it starts; the NodeEngine retries
	// with a new one, without undeploying.
	if err := syscall.Kill(b.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, b.pid)
	b2 := newContainer(t)
	var rb2 struct{ NsAddress string }
	_ = json.Unmarshal(ne.post(t, "/container/deploy", neDeploy{PID: b2.pid, ServiceName: "app.ns.back.ns"}), &rb2)
	assertPing(t, a.ns, rb2.NsAddress)
	if out := b.ns.MustExec(t, "ip", "-br", "link"); strings.Contains(out, "eth0") {
		t.Fatalf("the dead container's veth is left:\n%s", out)
	}
	first := ne.post(t, "/container/deploy", neDeploy{PID: b2.pid, ServiceName: "app.ns.back.ns"})
	if again := ne.post(t, "/container/deploy", neDeploy{PID: b2.pid, ServiceName: "app.ns.back.ns"}); !bytes.Equal(first, again) {
		t.Fatalf("the same deploy twice: %s, then %s", first, again)
	}

	svc := "app.ns." + nstest.UniqueName("uk") + ".ns"
	nsName := svc + ".instance.0"
	t.Cleanup(func() {
		if _, err := os.Stat("/run/netns/" + nsName); err == nil {
			nstest.DeleteNetns(t, nsName)
		}
	})
	ne.post(t, "/unikernel/deploy", neDeploy{PID: 0, ServiceName: svc})
	uk := &nstest.Netns{Name: nsName}
	if out := uk.MustExec(t, "ip", "-br", "link", "show", "tap0"); !strings.HasPrefix(out, "tap0") {
		t.Fatalf("no tap0 in %s: %s", nsName, out)
	}
	ne.post(t, "/unikernel/undeploy", neDeploy{PID: -1, ServiceName: svc})
	if _, err := os.Stat("/run/netns/" + nsName); err == nil {
		t.Fatalf("%s left after undeploy", nsName)
	}
	for _, s := range []string{"app.ns.front.ns", "app.ns.back.ns"} {
		ne.post(t, "/container/undeploy", neDeploy{PID: -1, ServiceName: s})
	}
	n.assertState(t, n.ready, "after the NodeEngine's undeploys")
	n.stop(t)
	if _, err := os.Stat(config.DefaultSocket); err == nil {
		t.Errorf("%s left after shutdown", config.DefaultSocket)
	}
}

// waitGone waits until pid has exited: gone, or a zombie its parent (the
// test) has not reaped yet.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 100; i++ {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("pid %d did not exit", pid)
}
