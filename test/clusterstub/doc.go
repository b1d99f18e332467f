// Package clusterstub stands in for an Oakestra cluster in tests: a real
// MQTT broker (mosquitto, on loopback or inside a test's namespace) and a
// stand-in for the cluster service manager that speaks the cluster's side
// of the NetManager's topics: it hands out node subnets, records the
// instances nodes report deployed, answers table queries from them, and
// announces a job's changes to the nodes that asked about it.
package clusterstub
