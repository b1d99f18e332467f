// Package version holds the NetManager's version, set at build time with
// -ldflags "-X github.com/oakestra/netmanager/node-net-manager/version.Version=...".
package version

// Version is the build's version; "dev" when built without the Makefile.
var Version = "dev"
