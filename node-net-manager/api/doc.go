// Package api is the NetManager's HTTP API: the routes Oakestra's NodeEngine calls
// (register, container and unikernel deploy/undeploy), read routes for operators,
// and the JSON helpers every route (the eBPF Manager's too) uses for bodies and errors.
package api
