// Package nstest holds helpers for privileged integration tests: uniquely named
// network namespaces deleted by exact name, processes inside them, a NetManager
// daemon running in a "node" namespace of its own, and snapshots of a namespace's
// links, addresses, routes and firewall rules to prove nothing was left behind.
//
// These helpers never skip: without root they fail the test.
package nstest
