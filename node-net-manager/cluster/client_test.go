package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/test/clusterstub"
)

func TestBrokerURL(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"192.0.2.7", "tcp://192.0.2.7:10003", ""},
		{"192.0.2.7:1883", "tcp://192.0.2.7:1883", ""},
		{"cluster.example", "tcp://cluster.example:10003", ""},
		{"fd00::7", "tcp://[fd00::7]:10003", ""},
		{"[fd00::7]:1883", "tcp://[fd00::7]:1883", ""},
		{"", "", "empty"},
		{"a b", "", "not a host"},
	} {
		got, err := cluster.BrokerURL(c.in)
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("BrokerURL(%q) = %q, %v; want %q, %q", c.in, got, err, c.want, c.err)
		}
	}
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// A broker nobody answers on is an error naming it, not a hang.
func TestConnectUnreachable(t *testing.T) {
	addr := freeAddr(t)
	start := time.Now()
	_, err := cluster.Connect(ctx(t), cluster.Options{ClientID: "n1", Broker: addr, ConnectTimeout: 2 * time.Second})
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("connect to nothing: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

// The node's side of every topic against a real broker and the stand-in
// cluster manager: the subnet, a deployed instance with its fields, table
// queries by name and by IP, a watched job's update, and interest removal.
func TestTopics(t *testing.T) {
	b := clusterstub.StartBroker(t, nil, freeAddr(t))
	m := clusterstub.NewManager(t, b.Addr, cluster.SubnetResult{Address: "10.18.1.0", AddressV6: "fd00:18:1::"})
	m.Service("app.ns.web.ns", "10.30.5.1", "fdff:2000::5:1")
	updates := make(chan string, 4)
	c, err := cluster.Connect(ctx(t), cluster.Options{ClientID: "n1", Broker: b.Addr, OnUpdate: func(j string) { updates <- j }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sn, err := c.Subnet(ctx(t))
	if err != nil || sn != (cluster.SubnetResult{Address: "10.18.1.0", AddressV6: "fd00:18:1::"}) {
		t.Fatalf("subnet: %+v %v", sn, err)
	}
	d := cluster.Deployed{AppName: "app.ns.web.ns", Status: "DEPLOYED", InstanceNumber: 0, NsIP: "10.18.1.2", NsIPv6: "fd00:18:1::2", HostIP: "192.0.2.10", HostPort: "50103"}
	if err := c.Deployed(d); err != nil {
		t.Fatal(err)
	}
	want := `{"appname":"app.ns.web.ns","status":"DEPLOYED","instance_number":0,"nsip":"10.18.1.2","nsipv6":"fd00:18:1::2","host_ip":"192.0.2.10","host_port":"50103"}`
	waitFor(t, "service/deployed", func() bool { return len(m.Messages("service/deployed")) == 1 })
	if got := string(m.Messages("service/deployed")[0].Payload); got != want {
		t.Fatalf("service/deployed payload:\n%s\nwant\n%s", got, want)
	}
	for _, q := range []cluster.TableQuery{{Sname: "app.ns.web.ns"}, {Sip: "10.30.5.1"}, {Sip: "10.30.5.2"}} {
		r, err := c.Query(ctx(t), q)
		if err != nil {
			t.Fatal(err)
		}
		if r.AppName != "app.ns.web.ns" || len(r.InstanceList) != 1 || r.InstanceList[0].HostPort != 50103 || r.InstanceList[0].NamespaceIP != "10.18.1.2" ||
			len(r.InstanceList[0].ServiceIP) != 2 || r.InstanceList[0].ServiceIP[0].IPType != "RR" {
			t.Fatalf("query %+v: %+v", q, r)
		}
	}
	if r, err := c.Query(ctx(t), cluster.TableQuery{Sip: "10.30.99.1"}); err != nil || len(r.InstanceList) != 0 {
		t.Fatalf("query for an unknown IP: %+v %v", r, err)
	}
	if err := c.Watch("app.ns.web.ns"); err != nil {
		t.Fatal(err)
	}
	m.Remove("app.ns.web.ns", 0)
	select {
	case j := <-updates:
		if j != "app.ns.web.ns" {
			t.Fatalf("update for %q", j)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no update for the watched job")
	}
	if err := c.Unwatch("app.ns.web.ns"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "interest/remove", func() bool { return len(m.Messages("interest/remove")) == 1 })
	var ir cluster.InterestRemove
	if json.Unmarshal(m.Messages("interest/remove")[0].Payload, &ir); ir.AppName != "app.ns.web.ns" {
		t.Fatalf("interest/remove: %s", m.Messages("interest/remove")[0].Payload)
	}
}

// A cluster that does not answer a query is a timeout, in time.
func TestQueryTimeout(t *testing.T) {
	b := clusterstub.StartBroker(t, nil, freeAddr(t))
	m := clusterstub.NewManager(t, b.Addr)
	m.Silent(true)
	c, err := cluster.Connect(ctx(t), cluster.Options{ClientID: "n1", Broker: b.Addr, QueryTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Query(ctx(t), cluster.TableQuery{Sname: "app.ns.web.ns"}); !errors.Is(err, cluster.ErrTimeout) {
		t.Fatalf("query to a silent cluster: %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Fatalf("timed out after %v", d)
	}
}

// A lost broker is reconnected to: the owner hears of it (to publish its
// state again) and queries work again.
func TestReconnect(t *testing.T) {
	addr := freeAddr(t)
	b := clusterstub.StartBroker(t, nil, addr)
	var reconnects atomic.Int32
	c, err := cluster.Connect(ctx(t), cluster.Options{ClientID: "n1", Broker: addr, OnReconnect: func() { reconnects.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b.Stop()
	waitFor(t, "the connection to drop", func() bool { return !c.Connected() })
	b = clusterstub.StartBroker(t, nil, addr)
	m := clusterstub.NewManager(t, addr)
	m.Service("app.ns.web.ns", "10.30.5.1", "fdff:2000::5:1")
	waitFor(t, "the reconnect", func() bool { return reconnects.Load() == 1 && c.Connected() })
	if r, err := c.Query(ctx(t), cluster.TableQuery{Sname: "app.ns.web.ns"}); err != nil || r.AppName != "app.ns.web.ns" {
		t.Fatalf("query after the reconnect: %+v %v", r, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 300; i++ {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
