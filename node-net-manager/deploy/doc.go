// Package deploy is the NetManager's service lifecycle: it validates deploy and
// undeploy requests, decides names and addresses, drives the network environment
// through a narrow interface, keeps the service table and publishes events.
//
// Requests are serialised by one lock; each step that fails undoes the ones before
// it, so a failed deploy leaves the node as it was.
package deploy
