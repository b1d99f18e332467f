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
	m.Service("app.ns.web.ns")
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
	// By name, then by the round-robin and instance IPs the answer gives.
	qs := []cluster.TableQuery{{Sname: "app.ns.web.ns"}}
	for i := 0; i < len(qs); i++ {
		r, err := c.Query(ctx(t), qs[i])
		if err != nil {
			t.Fatal(err)
		}
		if r.AppName != "app.ns.web.ns" || len(r.InstanceList) != 1 || r.InstanceList[0].HostPort != 50103 || r.InstanceList[0].NamespaceIP != "10.18.1.2" ||
			len(r.InstanceList[0].ServiceIP) != 2 || r.InstanceList[0].ServiceIP[0].IPType != "RR" || r.QueryKey != qs[i].Sname+qs[i].Sip {
			t.Fatalf("query %+v: %+v", qs[i], r)
		}
		if i == 0 {
			for _, s := range r.InstanceList[0].ServiceIP {
				qs = append(qs, cluster.TableQuery{Sip: s.Address}, cluster.TableQuery{Sip: s.AddressV6})
			}
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
	m.Service("app.ns.web.ns")
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

// A job unwatched stays unwatched after a reconnect (the clean session's
// subscriptions are made again for the jobs still watched only), and
// Watching lists the jobs watched.
func TestUnwatchSurvivesReconnect(t *testing.T) {
	addr := freeAddr(t)
	b := clusterstub.StartBroker(t, nil, addr)
	updates := make(chan string, 16)
	var reconnects atomic.Int32
	c, err := cluster.Connect(ctx(t), cluster.Options{ClientID: "n1", Broker: addr,
		OnUpdate: func(j string) { updates <- j }, OnReconnect: func() { reconnects.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, j := range []string{"app.ns.b.ns", "app.ns.a.ns"} {
		if err := c.Watch(j); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(c.Watching(), " "); got != "app.ns.a.ns app.ns.b.ns" {
		t.Fatalf("watching %q", got)
	}
	if err := c.Unwatch("app.ns.a.ns"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Watching(), " "); got != "app.ns.b.ns" {
		t.Fatalf("watching %q after Unwatch", got)
	}
	b.Stop()
	waitFor(t, "the connection to drop", func() bool { return !c.Connected() })
	clusterstub.StartBroker(t, nil, addr)
	m := clusterstub.NewManager(t, addr)
	waitFor(t, "the reconnect", func() bool { return reconnects.Load() == 1 && c.Connected() })
	m.Remove("app.ns.a.ns", 0) // announces an update for each job
	m.Remove("app.ns.b.ns", 0)
	select {
	case j := <-updates:
		if j != "app.ns.b.ns" {
			t.Fatalf("an update for %s after the reconnect", j)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no update for the watched job after the reconnect")
	}
	select {
	case j := <-updates:
		t.Fatalf("an update for %s after the reconnect", j)
	case <-time.After(300 * time.Millisecond):
	}
}
