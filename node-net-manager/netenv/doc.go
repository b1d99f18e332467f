// Package netenv is the node's network environment: the bridge, each service's veth
// pair and addresses, namespaces, forwarding sysctls and iptables rules.
//
// It is the only NetManager package with network side effects (netlink, netns,
// iptables). Callers decide what to build; netenv builds exactly that, undoes a
// half-made step when a later one fails, and removes exactly what it made.
package netenv
