package clusterstub

import (
	"fmt"
	"time"
)

// Answer publishes raw, as is, as the cluster's answer to node's table
// queries (nodes/<node>/net/tablequery/result): a crafted or hostile
// answer. With Silent on, it is the only answer the node gets.
func (m *Manager) Answer(node string, raw []byte) error {
	topic := "nodes/" + node + "/net/tablequery/result"
	tok := m.mq.Publish(topic, 1, false, raw)
	if !tok.WaitTimeout(5 * time.Second) {
		return fmt.Errorf("publish %s: timeout", topic)
	}
	return tok.Error()
}

// Announce tells the nodes that follow a job that it changed (typ:
// "DEPLOYMENT" or "UNDEPLOYMENT"), without changing it.
func (m *Manager) Announce(job, typ string) { m.announce(job, typ) }
