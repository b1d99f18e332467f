package clusterstub

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/oakestra/netmanager/node-net-manager/cluster"
	"github.com/oakestra/netmanager/test/nstest"
)

// Manager stands in for the cluster service manager.
type Manager struct {
	tb      testing.TB
	mq      mqtt.Client
	mu      sync.Mutex
	subnets []cluster.SubnetResult // handed out in order
	given   map[string]cluster.SubnetResult
	jobs    map[string]*job
	pools   pools
	log     []Message
	silent  bool // answer no table query (a cluster that does not answer)
	inbox   chan mqtt.Message
}

// job is one service: its round-robin IPs and its instances by number.
type job struct {
	rr, rr6   string
	instances map[int]instance
	interest  map[string]bool   // nodes that queried it
	gave      map[int][2]string // the instance IPs each instance number got, kept for good
}

// instance is one instance as the cluster records it; ip and ip6 are its
// instance IPs, given once (at its first report) and kept.
type instance struct {
	cluster.Instance
	node    string
	ip, ip6 string
}

// Message is one message a node sent.
type Message struct {
	Node, Topic string // Topic without nodes/<node>/net/
	Payload     json.RawMessage
}

var nodeTopicRE = regexp.MustCompile(`^nodes/([^/]+)/net/(.+)$`)

// NewManager connects to the broker at addr and serves the cluster's side
// of the topics. Subnets are handed to registering nodes in order.
func NewManager(tb testing.TB, addr string, subnets ...cluster.SubnetResult) *Manager {
	tb.Helper()
	return NewManagerIn(tb, nil, addr, subnets...)
}

// NewManagerIn is NewManager for a broker reachable inside ns (nil: here).
func NewManagerIn(tb testing.TB, ns *nstest.Netns, addr string, subnets ...cluster.SubnetResult) *Manager {
	tb.Helper()
	return start(tb, ns, addr, nil, newManager(tb, subnets))
}

// NewManagerTLS is NewManagerIn for a broker that speaks MQTT over TLS
// (StartTLSBroker): the manager connects with tc (Certs.ClientTLS).
func NewManagerTLS(tb testing.TB, ns *nstest.Netns, addr string, tc *tls.Config, subnets ...cluster.SubnetResult) *Manager {
	tb.Helper()
	return start(tb, ns, addr, tc, newManager(tb, subnets))
}

// RestartIn is old's cluster manager started again on its database (at
// addr, inside ns): it knows the jobs and the addresses it gave them and
// their instances, as a real one's database does, but no instance runs
// anywhere until a node reports it. Node subnets are handed out anew.
func RestartIn(tb testing.TB, ns *nstest.Netns, addr string, old *Manager, subnets ...cluster.SubnetResult) *Manager {
	tb.Helper()
	m := newManager(tb, subnets)
	old.mu.Lock()
	m.pools = old.pools
	for name, j := range old.jobs {
		nj := &job{rr: j.rr, rr6: j.rr6, instances: map[int]instance{}, interest: map[string]bool{}, gave: map[int][2]string{}}
		for n, g := range j.gave {
			nj.gave[n] = g
		}
		m.jobs[name] = nj
	}
	old.mu.Unlock()
	return start(tb, ns, addr, nil, m)
}

func newManager(tb testing.TB, subnets []cluster.SubnetResult) *Manager {
	return &Manager{tb: tb, subnets: subnets, given: map[string]cluster.SubnetResult{}, jobs: map[string]*job{}, inbox: make(chan mqtt.Message, 1024)}
}

// start serves m's side of the topics on the broker at addr, over TLS
// with tc when not nil.
func start(tb testing.TB, ns *nstest.Netns, addr string, tc *tls.Config, m *Manager) *Manager {
	tb.Helper()
	// One message at a time, in arrival order, as the cluster service
	// manager's MQTT loop handles them: a node's report is recorded before
	// its next query is answered.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case msg := <-m.inbox:
				m.handle(msg)
			case <-stop:
				return
			}
		}
	}()
	tb.Cleanup(func() { close(stop); <-done })
	subscribed := make(chan struct{}, 1)
	scheme := "tcp://"
	if tc != nil {
		scheme = "ssl://"
	}
	o := mqtt.NewClientOptions().AddBroker(scheme + addr).SetTLSConfig(tc).SetClientID(fmt.Sprintf("cluster-manager-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetOrderMatters(true).SetAutoReconnect(true).SetKeepAlive(5 * time.Second).
		SetOnConnectHandler(func(c mqtt.Client) {
			if tok := c.Subscribe("nodes/+/net/#", 1, m.onMessage); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
				select {
				case subscribed <- struct{}{}:
				default:
				}
			}
		})
	if ns != nil {
		o.SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (c net.Conn, err error) {
			err = ns.Do(func() error {
				c, err = net.DialTimeout("tcp", u.Host, 5*time.Second)
				return err
			})
			if err != nil || tc == nil {
				return c, err
			}
			tc := tc.Clone()
			tc.ServerName = u.Hostname()
			tl := tls.Client(c, tc)
			if err := tl.Handshake(); err != nil {
				c.Close()
				return nil, err
			}
			return tl, nil
		})
	}
	m.mq = mqtt.NewClient(o)
	if tok := m.mq.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		tb.Fatalf("stand-in cluster manager: connect to %s: %v", addr, tok.Error())
	}
	select { // a node registering before the subscription would go unanswered
	case <-subscribed:
	case <-time.After(5 * time.Second):
		tb.Fatalf("stand-in cluster manager: subscribe at %s: not acknowledged", addr)
	}
	tb.Cleanup(func() { m.mq.Disconnect(100) })
	return m
}

// Service creates a job, as the root does when a service is deployed: it
// takes the job's round-robin IPs from the pools, before any instance
// exists, and returns them. A job that exists keeps its IPs.
func (m *Manager) Service(name string) (rr, rr6 string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j := m.job(name)
	return j.rr, j.rr6
}

// RR returns a job's round-robin IPs ("" for a job the cluster lacks).
func (m *Manager) RR(name string) (rr, rr6 string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if j := m.jobs[name]; j != nil {
		return j.rr, j.rr6
	}
	return "", ""
}

// InstanceIP returns an instance's instance IPs ("" for one the cluster
// has not recorded).
func (m *Manager) InstanceIP(name string, n int) (ip, ip6 string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if j := m.jobs[name]; j != nil {
		return j.instances[n].ip, j.instances[n].ip6
	}
	return "", ""
}

// job returns a job, creating it with its round-robin IPs; the caller
// holds mu.
func (m *Manager) job(name string) *job {
	j := m.jobs[name]
	if j == nil {
		j = &job{instances: map[int]instance{}, interest: map[string]bool{}, gave: map[int][2]string{}, rr: m.pools.ipv4(), rr6: m.pools.rrV6()}
		m.jobs[name] = j
	}
	return j
}

// Silent makes the manager stop answering table queries (or answer again).
func (m *Manager) Silent(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.silent = on
}

// Messages returns what nodes sent on a topic (e.g. "service/deployed").
func (m *Manager) Messages(topic string) []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Message
	for _, msg := range m.log {
		if msg.Topic == topic {
			out = append(out, msg)
		}
	}
	return out
}

// Instances returns a job's instances as the cluster knows them.
func (m *Manager) Instances(name string) []cluster.Instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.instanceList(name)
}

// Remove forgets an instance (as when the cluster undeploys it) and tells
// the interested nodes.
func (m *Manager) Remove(name string, n int) {
	m.mu.Lock()
	if j := m.jobs[name]; j != nil {
		delete(j.instances, n)
	}
	m.mu.Unlock()
	m.announce(name, "UNDEPLOYMENT")
}

func (m *Manager) onMessage(_ mqtt.Client, msg mqtt.Message) { m.inbox <- msg }

func (m *Manager) handle(msg mqtt.Message) {
	sub := nodeTopicRE.FindStringSubmatch(msg.Topic())
	if sub == nil {
		return
	}
	node, topic := sub[1], sub[2]
	m.mu.Lock()
	m.log = append(m.log, Message{Node: node, Topic: topic, Payload: append(json.RawMessage(nil), msg.Payload()...)})
	m.mu.Unlock()
	var err error
	switch topic {
	case "subnet":
		err = m.onSubnet(node, msg.Payload())
	case "service/deployed":
		err = m.onDeployed(node, msg.Payload())
	case "service/address-changed":
		err = m.onAddressChanged(node, msg.Payload())
	case "tablequery/request":
		err = m.onQuery(node, msg.Payload())
	case "interest/remove":
		var r cluster.InterestRemove
		if err = json.Unmarshal(msg.Payload(), &r); err == nil {
			m.mu.Lock()
			if j := m.jobs[r.AppName]; j != nil {
				delete(j.interest, node)
			}
			m.mu.Unlock()
		}
	}
	if err != nil {
		m.tb.Logf("stand-in cluster manager: %s from %s: %v", topic, node, err)
	}
}

func (m *Manager) onSubnet(node string, b []byte) error {
	var r cluster.SubnetRequest
	if err := json.Unmarshal(b, &r); err != nil || r.Method != "GET" {
		return fmt.Errorf("not a GET: %s", b)
	}
	m.mu.Lock()
	s, ok := m.given[node]
	if !ok && len(m.subnets) > 0 {
		s, m.subnets = m.subnets[0], m.subnets[1:]
		m.given[node] = s
		ok = true
	}
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("no subnet left for %s", node)
	}
	return m.publish("nodes/"+node+"/net/subnetwork/result", s)
}

func (m *Manager) onDeployed(node string, b []byte) error {
	var d cluster.Deployed
	if err := json.Unmarshal(b, &d); err != nil {
		return err
	}
	var port int
	if _, err := fmt.Sscan(d.HostPort, &port); err != nil || d.Status != "DEPLOYED" {
		return fmt.Errorf("host_port %q or status %q", d.HostPort, d.Status)
	}
	m.mu.Lock()
	j := m.job(d.AppName)
	in := j.instances[d.InstanceNumber]
	g, had := j.gave[d.InstanceNumber]
	if !had { // the root gives an instance its IPs once
		g = [2]string{m.pools.ipv4(), m.pools.instanceV6()}
		j.gave[d.InstanceNumber] = g
	}
	in.ip, in.ip6 = g[0], g[1]
	in.node, in.Instance = node, cluster.Instance{InstanceNumber: d.InstanceNumber,
		NamespaceIP: d.NsIP, NamespaceIPv6: d.NsIPv6, HostIP: d.HostIP, HostPort: port}
	j.instances[d.InstanceNumber] = in
	m.mu.Unlock()
	m.announce(d.AppName, "DEPLOYMENT")
	return nil
}

func (m *Manager) onQuery(node string, b []byte) error {
	var q cluster.TableQuery
	if err := json.Unmarshal(b, &q); err != nil {
		return err
	}
	m.mu.Lock()
	if m.silent {
		m.mu.Unlock()
		return nil
	}
	name, key := q.Sname, q.Sname
	if q.Sip != "" {
		name, key = m.byIP(q.Sip), q.Sip
	}
	var list []cluster.Instance
	if j := m.jobs[name]; j != nil { // a job the cluster lacks: an empty list
		j.interest[node] = true
		list = m.instanceList(name)
	}
	m.mu.Unlock()
	return m.publish("nodes/"+node+"/net/tablequery/result", cluster.TableResult{AppName: name, InstanceList: list, QueryKey: key})
}

// byIP finds the job with a round-robin or instance IP; the caller holds mu.
func (m *Manager) byIP(ip string) string {
	for name, j := range m.jobs {
		if j.rr == ip || j.rr6 == ip {
			return name
		}
		for _, in := range j.instances {
			if in.ip == ip || in.ip6 == ip {
				return name
			}
		}
	}
	return ""
}

// instanceList is a job's instances with their service IPs, as the cluster
// formats them; the caller holds mu.
func (m *Manager) instanceList(name string) []cluster.Instance {
	j := m.jobs[name]
	if j == nil {
		return []cluster.Instance{}
	}
	nums := make([]int, 0, len(j.instances))
	for n := range j.instances {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	out := make([]cluster.Instance, 0, len(nums))
	for _, n := range nums {
		rec := j.instances[n]
		in := rec.Instance
		in.ServiceIP = []cluster.ServiceIP{{IPType: "RR", Address: j.rr, AddressV6: j.rr6}, {IPType: "instance_ip", Address: rec.ip, AddressV6: rec.ip6}}
		out = append(out, in)
	}
	return out
}

// announce publishes a job's change for the nodes that follow it.
func (m *Manager) announce(name, typ string) {
	if err := m.publish("jobs/"+name+"/updates_available", map[string]string{"type": typ}); err != nil {
		m.tb.Logf("stand-in cluster manager: announce %s: %v", name, err)
	}
}

func (m *Manager) publish(topic string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tok := m.mq.Publish(topic, 1, false, b)
	if !tok.WaitTimeout(5 * time.Second) {
		return fmt.Errorf("publish %s: timeout", topic)
	}
	return tok.Error()
}
