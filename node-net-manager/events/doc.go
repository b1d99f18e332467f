// Package events is the NetManager's service lifecycle bus: ServiceCreated and
// ServiceRemoved, delivered synchronously to subscribers in subscription order.
//
// Delivery is synchronous so that a subscriber (the eBPF Manager) has finished its
// work — programs attached to the new veth — before the deploy request returns and
// the service's traffic matters. A subscriber that fails a ServiceCreated fails the
// deploy: the bus tells the subscribers that already accepted it that the service is
// gone again (ServiceRemoved, in reverse order) and the deploy is rolled back.
package events
