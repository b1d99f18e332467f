// Command netmanagerctl is the operator's client of a NetManager's HTTP API
// (and of the sdwan module's gRPC API). See docs/cli.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/oakestra/netmanager/node-net-manager/client"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // the daemon failed (5xx), cannot be reached, or answered nonsense
	exitUsage   = 2 // a bad command line
	exitRefused = 3 // the daemon refused the request (HTTP 4xx, a gRPC refusal)
)

// leaves is every command, in the order the usage lists them.
var leaves = []leaf{
	{path: "health", summary: "check that the NetManager answers", out: outTable, run: healthCmd},
	{path: "version", summary: "the NetManager's version", out: outTable, run: versionCmd},
	{path: "services", summary: "the deployed service instances", out: outTable, run: servicesCmd},
	{path: "proxy", summary: "the user-space proxy's state and counters (the eBPF proxy module: proxy ID ...)", out: outTable, run: proxyCmd},
	{path: "register", args: "--client-id ID [--cluster-address HOST[:PORT]]", summary: "register the node (with a cluster address: join that cluster)", out: outTable, run: registerCmd},
	{path: "deploy", args: "--service S --instance N (--pid P | --unikernel) [--ports MAP] [--ebpf-modules JSON]", summary: "deploy a service instance's networking", out: outTable, run: deployCmd},
	{path: "undeploy", args: "--service S --instance N [--unikernel]", summary: "remove a service instance's networking", out: outTable, run: undeployCmd},
	{path: "metrics", summary: "the daemon's metrics (GET /metrics), as they come", run: rawCmd("/metrics")},
	{path: "openapi", summary: "the API's OpenAPI document (GET /openapi.json), as it comes", run: rawCmd("/openapi.json")},
	{path: "doctor", summary: "check declared state, pins, chains and kernel features; name programs on our hooks that are not ours (exit 1: problems)", out: outTable, run: doctorCmd},
	{path: "trace", args: "[FLAGS]", summary: "follow packets through the chains: every module's verdict, a drop's reason (Ctrl-C ends)", out: outTable, run: traceCmd},
	{path: "monitor", args: "--drops [FLAGS]", summary: "follow every drop on the node, rate-limited (Ctrl-C ends)", out: outTable, run: monitorCmd},

	{path: "modules list", summary: "the eBPF module instances in chain order", out: outTable, run: modulesListCmd},
	{path: "modules load", args: "NAME [--priority P] [--config JSON] [--services S,..] [--interfaces I,..]", summary: "load a module instance", out: outTable, run: modulesLoadCmd},
	{path: "modules show", args: "ID", summary: "one instance with its config and attachments", out: outTable, run: modulesShowCmd},
	{path: "modules update", args: "ID [--priority P] [--config JSON]", summary: "swap an instance for a new version of itself in place (PUT /ebpf/ID)", out: outTable, run: modulesUpdateCmd},
	{path: "modules delete", args: "ID | --all", summary: "stop one instance, or all", out: outTable, run: modulesDeleteCmd},
	{path: "modules get", args: "ID PATH", summary: "GET a module's own route, e.g. modules get 1 /counts", out: outJSON, run: modulesGetCmd},

	{path: "firewall ID rules list", summary: "the firewall's rules in match order, with hits", out: outTable, run: fwListCmd},
	{path: "firewall ID rules add", args: "--action allow|deny [--id R] [--direction D] [--src CIDR] [--dst CIDR] [--proto P] [--src-ports N[-M]] [--dst-ports N[-M]] [--priority N] | --json RULE", summary: "add one rule (its flags are the rule's JSON fields)", out: outTable, run: fwAddCmd},
	{path: "firewall ID rules delete", args: "RULEID", summary: "remove one rule", out: outTable, run: fwDeleteCmd},
	{path: "firewall ID rules replace", args: "--file F|- | --json RULES", summary: "replace the whole rule set with a JSON array of rules, atomically", out: outTable, run: fwReplaceCmd},
	{path: "firewall ID stats", summary: "allowed and denied packets per interface and direction", out: outTable, run: fwStatsCmd},

	{path: "proxy ID translations", summary: "the eBPF proxy's service IPs and the namespace IPs they go to", out: outTable, run: proxyTranslationsCmd},
	{path: "proxy ID sessions", summary: "the eBPF proxy's sessions (at most 100 listed)", out: outTable, run: proxySessionsCmd},
	{path: "proxy ID stats", summary: "the eBPF proxy's counters", out: outTable, run: proxyStatsCmd},
	{path: "proxy ID peers", summary: "the eBPF proxy's kernel tunnel, per peer node", out: outTable, run: proxyPeersCmd},

	{path: "counter ID counts", summary: "the packet counter's packets and bytes per interface and direction", out: outTable, run: counterCountsCmd},

	{path: "sdwan ID rules", summary: "the sdwan gateway's PDRs with the flows each classified (HTTP)", out: outTable, run: sdwanRulesCmd},
	{path: "sdwan ID lbr", summary: "each class's LBR and the slots each WAN holds now (HTTP)", out: outTable, run: sdwanLBRCmd},
	{path: "sdwan ID wans", summary: "each WAN's health and traffic (HTTP)", out: outTable, run: sdwanWANsCmd},
	{path: "sdwan ID stats", summary: "the gateway's counters by reason, and the WANs (HTTP)", out: outTable, run: sdwanStatsCmd},
	{path: "sdwan list", summary: "the gateway's PDRs and LBRs over gRPC (sdwan [--grpc HOST:PORT] ..., default 127.0.0.1:50051)", out: outTable, run: sdwanListCmd},
	{path: "sdwan create", args: "pdr|lbr FLAGS", summary: "create a PDR or an LBR over gRPC (sdwan create pdr --help)", run: sdwanApplyCmd("create")},
	{path: "sdwan update", args: "pdr|lbr FLAGS", summary: "replace a PDR or an LBR whole over gRPC", run: sdwanApplyCmd("update")},
	{path: "sdwan delete", args: "pdr --id N | lbr (--tos T | --default)", summary: "delete a PDR or an LBR over gRPC", run: sdwanApplyCmd("delete")},
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	e := &env{ctx: context.Background(), stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("netmanagerctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", "127.0.0.1:6000", "NetManager API address")
	socket := fs.String("socket", "", "NetManager API unix socket (overrides --addr)")
	tokenFile := fs.String("token-file", "", "the API's bearer token file, sent over TCP (default $"+tokenEnv+", else "+defaultTokenFile+" when readable)")
	fs.Var(formatValue{&e.global}, "o", "output format")
	fs.BoolFunc("json", "-o json", func(string) error { e.global = "json"; return nil })
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout)
		return exitOK
	case err != nil:
		return report(e, usageError{msg: err.Error(), usage: helpHint})
	case fs.NArg() == 0:
		return report(e, usageError{msg: "no command given", usage: printUsage})
	}
	e.c, e.where = client.New(*addr, *socket), *addr
	if *socket != "" {
		e.where = "unix socket " + *socket
	} else if err := useToken(e.c, *tokenFile); err != nil {
		return report(e, err)
	}
	rest, err := takeGRPCFlag(e, fs.Args())
	if err == nil {
		err = dispatch(e, rest)
	}
	return report(e, err)
}

// report prints err and returns the exit status it stands for.
func report(e *env, err error) int {
	var ue usageError
	var ce *client.Error
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "netmanagerctl: %v\n", err)
		if ue.usage != nil {
			fmt.Fprintln(e.stderr)
			ue.usage(e.stderr)
		}
		return exitUsage
	}
	fmt.Fprintln(e.stderr, "netmanagerctl:", err)
	if errors.As(err, &ce) && ce.Refused() || grpcRefused(err) {
		return exitRefused
	}
	return exitFailure
}
