// Package cluster is the NetManager's side of an Oakestra cluster's MQTT
// protocol, as the reference NetManager speaks it with the cluster service
// manager: the node subnet, table queries for services, the instances this
// node deployed, and interest in a job's updates. Every message is JSON,
// published with QoS 1 under nodes/<client id>/net/.
package cluster
