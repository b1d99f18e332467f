package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

// DefaultPort is the cluster broker's port in Oakestra.
const DefaultPort = "10003"

// ErrTimeout is a request the cluster did not answer in time.
var ErrTimeout = errors.New("the cluster did not answer in time")

// Options configures a Client. ClientID and Broker are required.
type Options struct {
	ClientID string // the node's id, as the NodeEngine registered it
	Broker   string // host or host:port (DefaultPort when none)

	// TLS, when not nil, is MQTT over TLS (ssl://): the CAs the broker's
	// certificate must chain to and the node's client certificate. Its
	// ServerName defaults to the broker's host, MinVersion to TLS 1.2.
	TLS *tls.Config
	// Username and Password are the MQTT credentials ("": none).
	Username, Password string

	ConnectTimeout time.Duration // default 10 s
	SubnetTimeout  time.Duration // default 10 s, as the reference
	QueryTimeout   time.Duration // default 5 s, as the reference

	// OnReconnect runs after the connection came back (not after the first
	// connect), to publish the node's state again.
	OnReconnect func()
	// OnUpdate runs when the cluster announces that a watched job changed.
	OnUpdate func(job string)
	Log      logrus.FieldLogger
}

// Client is a connection to the cluster's broker.
type Client struct {
	o    Options
	mq   mqtt.Client
	mu   sync.Mutex
	subs map[string]mqtt.MessageHandler // topic → handler, subscribed again on reconnect
	// waiting holds the callers of Query and Subnet by query key ("" for
	// the subnet).
	waiting   map[string][]chan []byte
	connected bool // the first connect is done
	// subscribed is closed once the first connect's subscriptions are
	// acknowledged: a request sent before could miss its answer.
	subscribed chan struct{}
}

// BrokerURL is the broker's tcp:// URL for a cluster address.
func BrokerURL(addr string) (string, error) {
	if addr == "" {
		return "", fmt.Errorf("%w: the cluster address is empty", errdefs.ErrInvalid)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil { // no port
		host, port = strings.Trim(addr, "[]"), DefaultPort
	}
	if host == "" || strings.ContainsAny(host, "/ ") {
		return "", fmt.Errorf("%w: cluster address %q is not a host or host:port", errdefs.ErrInvalid, addr)
	}
	return "tcp://" + net.JoinHostPort(host, port), nil
}

// Connect connects to the broker and subscribes to the node's result
// topics. An unreachable broker is an errdefs.ErrUnavailable naming it.
func Connect(ctx context.Context, o Options) (*Client, error) {
	if o.ClientID == "" {
		return nil, fmt.Errorf("%w: the client id is empty", errdefs.ErrInvalid)
	}
	url, err := brokerURL(o)
	if err != nil {
		return nil, err
	}
	defaults(&o)
	c := &Client{o: o, subs: map[string]mqtt.MessageHandler{}, waiting: map[string][]chan []byte{}, subscribed: make(chan struct{})}
	c.subs[nodeTopic(o.ClientID, topicSubnetResult)] = c.onAnswer(func([]byte) (string, error) { return "", nil })
	c.subs[nodeTopic(o.ClientID, topicQueryResult)] = c.onAnswer(func(b []byte) (string, error) {
		var r TableResult
		err := json.Unmarshal(b, &r)
		return r.QueryKey, err
	})
	mo := mqtt.NewClientOptions().AddBroker(url).SetClientID(o.ClientID).SetCleanSession(true).
		SetKeepAlive(5 * time.Second).SetConnectTimeout(o.ConnectTimeout).SetOrderMatters(false).
		SetAutoReconnect(true).SetConnectRetry(false).SetMaxReconnectInterval(10 * time.Second).
		SetProtocolVersion(4).SetTLSConfig(tlsFor(o.TLS, url)).SetUsername(o.Username).SetPassword(o.Password).
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			o.Log.WithError(err).WithField("broker", url).Warn("cluster broker lost; reconnecting")
		})
	c.mq = mqtt.NewClient(mo)
	tok := c.mq.Connect()
	if !tok.WaitTimeout(o.ConnectTimeout) {
		c.mq.Disconnect(0)
		return nil, fmt.Errorf("%w: cluster broker %s: no answer within %v", errdefs.ErrUnavailable, url, o.ConnectTimeout)
	}
	if err := tok.Error(); err != nil {
		c.mq.Disconnect(0)
		return nil, connectError(url, o.TLS != nil, err)
	}
	select {
	case <-c.subscribed:
	case <-time.After(o.ConnectTimeout):
		c.mq.Disconnect(0)
		return nil, fmt.Errorf("%w: cluster broker %s: subscriptions not acknowledged within %v", errdefs.ErrUnavailable, url, o.ConnectTimeout)
	}
	return c, nil
}

func defaults(o *Options) {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&o.ConnectTimeout, 10 * time.Second}, {&o.SubnetTimeout, 10 * time.Second}, {&o.QueryTimeout, 5 * time.Second}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if o.Log == nil {
		o.Log = logrus.StandardLogger()
	}
}

// onConnect subscribes to every topic (a clean session forgets them) and,
// after a reconnect, lets the owner publish its state again.
func (c *Client) onConnect(mq mqtt.Client) {
	c.mu.Lock()
	filters := map[string]byte{}
	for t := range c.subs {
		filters[t] = 1
	}
	again := c.connected
	c.connected = true
	c.mu.Unlock()
	tok := mq.SubscribeMultiple(filters, c.dispatch)
	if !tok.WaitTimeout(c.o.ConnectTimeout) || tok.Error() != nil {
		c.o.Log.WithError(tok.Error()).Warn("cluster: subscribe")
		return // Connect times out; after a reconnect, the next one subscribes again
	}
	if !again {
		close(c.subscribed)
	}
	if again && c.o.OnReconnect != nil {
		go c.o.OnReconnect()
	}
}

// dispatch hands a message to its topic's handler.
func (c *Client) dispatch(mq mqtt.Client, m mqtt.Message) {
	c.mu.Lock()
	h := c.subs[m.Topic()]
	c.mu.Unlock()
	if h != nil {
		h(mq, m)
	}
}

// onAnswer wakes the callers waiting for a result's key.
func (c *Client) onAnswer(key func([]byte) (string, error)) mqtt.MessageHandler {
	return func(_ mqtt.Client, m mqtt.Message) {
		k, err := key(m.Payload())
		if err != nil {
			c.o.Log.WithError(err).WithField("topic", m.Topic()).Warn("cluster: a malformed answer")
			return
		}
		c.mu.Lock()
		ws := c.waiting[k]
		delete(c.waiting, k)
		c.mu.Unlock()
		for _, w := range ws {
			w <- m.Payload()
		}
	}
}

// request publishes v on a node topic and waits for the answer with key.
func (c *Client) request(ctx context.Context, topic, key string, v any, timeout time.Duration) ([]byte, error) {
	ch := make(chan []byte, 1)
	c.mu.Lock()
	c.waiting[key] = append(c.waiting[key], ch)
	c.mu.Unlock()
	defer c.forget(key, ch)
	if err := c.publish(topic, v); err != nil {
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case b := <-ch:
		return b, nil
	case <-t.C:
		return nil, fmt.Errorf("%w: %s after %v", ErrTimeout, topic, timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Client) forget(key string, ch chan []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := c.waiting[key]
	for i, w := range ws {
		if w == ch {
			c.waiting[key] = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(c.waiting[key]) == 0 {
		delete(c.waiting, key)
	}
}

// publish sends v as JSON on one of the node's topics, QoS 1.
func (c *Client) publish(topic string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	full := nodeTopic(c.o.ClientID, topic)
	tok := c.mq.Publish(full, 1, false, b)
	if !tok.WaitTimeout(c.o.ConnectTimeout) {
		return fmt.Errorf("%w: publish %s: no acknowledgement within %v", errdefs.ErrUnavailable, full, c.o.ConnectTimeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("%w: publish %s: %v", errdefs.ErrUnavailable, full, err)
	}
	return nil
}

// Subnet asks the cluster for the node's subnet.
func (c *Client) Subnet(ctx context.Context) (SubnetResult, error) {
	b, err := c.request(ctx, topicSubnet, "", SubnetRequest{Method: "GET"}, c.o.SubnetTimeout)
	if err != nil {
		return SubnetResult{}, fmt.Errorf("node subnet: %w", err)
	}
	var r SubnetResult
	if err := json.Unmarshal(b, &r); err != nil || (r.Address == "" && r.AddressV6 == "") {
		return SubnetResult{}, fmt.Errorf("node subnet: the cluster answered %q", b)
	}
	return r, nil
}

// Query asks the cluster for a service's instances, by name or IP.
func (c *Client) Query(ctx context.Context, q TableQuery) (TableResult, error) {
	b, err := c.request(ctx, topicQuery, q.key(), q, c.o.QueryTimeout)
	if err != nil {
		return TableResult{}, fmt.Errorf("table query %q: %w", q.key(), err)
	}
	var r TableResult
	if err := json.Unmarshal(b, &r); err != nil {
		return TableResult{}, fmt.Errorf("table query %q: %w", q.key(), err)
	}
	return r, nil
}

// Deployed tells the cluster an instance runs on this node.
func (c *Client) Deployed(d Deployed) error { return c.publish(topicDeployed, d) }

// Watch follows a job's updates (Options.OnUpdate).
func (c *Client) Watch(job string) error {
	t := jobTopic(job)
	h := func(mqtt.Client, mqtt.Message) {
		if c.o.OnUpdate != nil {
			c.o.OnUpdate(job)
		}
	}
	c.mu.Lock()
	_, had := c.subs[t]
	c.subs[t] = h
	c.mu.Unlock()
	if had {
		return nil
	}
	tok := c.mq.Subscribe(t, 1, c.dispatch)
	if !tok.WaitTimeout(c.o.ConnectTimeout) || tok.Error() != nil {
		return fmt.Errorf("%w: subscribe %s: %v", errdefs.ErrUnavailable, t, tok.Error())
	}
	return nil
}

// Unwatch stops following a job and tells the cluster so (interest/remove):
// the subscription is dropped, and not made again after a reconnect. The
// cluster is told even when the unsubscribe fails (a lost connection
// forgets it anyway).
func (c *Client) Unwatch(job string) error {
	t := jobTopic(job)
	c.mu.Lock()
	delete(c.subs, t)
	c.mu.Unlock()
	var errs []error
	if tok := c.mq.Unsubscribe(t); !tok.WaitTimeout(c.o.ConnectTimeout) {
		errs = append(errs, fmt.Errorf("%w: unsubscribe %s: no acknowledgement within %v", errdefs.ErrUnavailable, t, c.o.ConnectTimeout))
	} else if err := tok.Error(); err != nil {
		errs = append(errs, fmt.Errorf("%w: unsubscribe %s: %v", errdefs.ErrUnavailable, t, err))
	}
	if err := c.publish(topicInterestRemove, InterestRemove{AppName: job}); err != nil {
		errs = append(errs, fmt.Errorf("interest/remove %s: %w", job, err))
	}
	return errors.Join(errs...)
}

// Connected says whether the broker is reachable now.
func (c *Client) Connected() bool { return c.mq.IsConnectionOpen() }

// Close disconnects.
func (c *Client) Close() { c.mq.Disconnect(250) }

// Watching returns the jobs whose updates the client follows, sorted.
func (c *Client) Watching() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var jobs []string
	for t := range c.subs {
		if job, ok := strings.CutPrefix(t, "jobs/"); ok {
			if job, ok = strings.CutSuffix(job, "/updates_available"); ok {
				jobs = append(jobs, job)
			}
		}
	}
	sort.Strings(jobs)
	return jobs
}
