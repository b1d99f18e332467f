// Package clustersite builds the underlay of the cluster tests and the
// cross-node benchmark: a namespace with a bridge and the cluster's broker
// (192.168.77.254:10003), and node namespaces joined to it (192.168.77.<i>)
// with a NetManager config giving each a node subnet of its own.
package clustersite
