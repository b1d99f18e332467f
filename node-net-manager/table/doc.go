// Package table is the service table: which instances of which services exist, their
// namespace addresses, and the service IPs (round robin, instance) that resolve to them.
//
// Lookups go through the Querier interface so that a cluster-backed table (Oakestra's
// MQTT table queries) can stand in for the embedded Standalone table, which allocates
// service and instance IPs itself from the service range (10.30.0.0/16 by default).
package table
