// Package ipam allocates addresses from a prefix: next-fit, so a released address
// is not handed out again until the rest of the pool has been used.
//
// It is pure bookkeeping with no side effects; the NetManager uses one pool for the
// node subnet (namespace addresses, IPv6 derived at the same offset) and one for the
// service range 10.30.0.0/16 (service and instance IPs).
package ipam
