// Command netmanagerctl is the operator's client of a NetManager's HTTP API.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/client"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
)

const usage = `usage: netmanagerctl [--addr HOST:PORT | --socket PATH] COMMAND [flags]

commands:
  health                        check that the NetManager answers
  version                       print the NetManager's version
  services [--json]             list deployed service instances
  proxy                         the user-space proxy's counters
  deploy --service S --instance N (--pid P | --unikernel) [--ports MAP]
                                deploy a service instance's networking
  undeploy --service S --instance N [--unikernel]
                                remove a service instance's networking
  modules list                  list eBPF module instances in chain order
  modules load NAME [--priority P] [--config JSON] [--services S,..] [--interfaces I,..]
                                load a module instance
  modules show ID               one instance with its attachments
  modules delete ID|--all       stop one instance, or all
  modules get ID PATH           GET a module's own route, e.g. modules get 1 /counts
  sdwan [--grpc HOST:PORT] SUBCOMMAND
                                the sdwan module's gRPC Gateway API (default 127.0.0.1:50051):
    list [--json]               the gateway's PDRs and LBRs
    create|update pdr --id N --action pass|drop|redirect [--precedence P]
          [--src CIDR] [--dst CIDR] [--proto tcp|udp|icmp|icmpv6|N] [--tos T]
          [--src-ports LO-HI|P] [--dst-ports LO-HI|P] [--interface lan|lbr|N]
                                create a PDR, or replace one whole; a redirect's interface
                                is the LAN, the LBR or GRE-WAN N (1-based)
    delete pdr --id N           delete a PDR
    create|update lbr (--tos T | --default) --overlay N:W [--overlay N:W ...]
                                a ToS class's (or the default class's) LBR: GRE-WAN N, weight W
    delete lbr (--tos T | --default)
                                delete a class's LBR
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("netmanagerctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	addr := fs.String("addr", "127.0.0.1:6000", "NetManager API address")
	socket := fs.String("socket", "", "NetManager API unix socket (overrides --addr)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	c := client.New(*addr, *socket)
	err := dispatch(context.Background(), c, fs.Arg(0), fs.Args()[1:], stdout, stderr)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "netmanagerctl: %v\n\n%s", err, usage)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "netmanagerctl:", err)
		return 1
	}
	return 0
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func dispatch(ctx context.Context, c *client.Client, cmd string, args []string, stdout, stderr io.Writer) error {
	switch cmd {
	case "health":
		if err := c.Health(ctx); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "ok")
	case "version":
		v, err := c.Version(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, v)
	case "services":
		return services(ctx, c, args, stdout, stderr)
	case "proxy":
		return printJSON(ctx, c, "GET", "/proxy", stdout)
	case "deploy":
		return deployCmd(ctx, c, args, stdout, stderr)
	case "undeploy":
		return undeployCmd(ctx, c, args, stdout, stderr)
	case "modules":
		return modulesCmd(ctx, c, args, stdout, stderr)
	case "sdwan":
		return sdwanCmd(ctx, args, stdout, stderr)
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	return nil
}

func services(ctx context.Context, c *client.Client, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("services", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	recs, err := c.Services(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(recs)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tINSTANCE\tKIND\tNS ADDRESS\tNS ADDRESS V6\tVETH\tSERVICE IPS\tPORTS")
	for _, r := range recs {
		var sips, ports []string
		for _, s := range r.ServiceIPs {
			sips = append(sips, fmt.Sprintf("%s=%s", s.Policy, s.Address))
		}
		for _, p := range r.PortMappings {
			ports = append(ports, p.String())
		}
		v6 := "-"
		if r.NsAddressV6.IsValid() {
			v6 = r.NsAddressV6.String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ServiceName, r.Instance, r.Kind, r.NsAddress, v6, r.HostVeth, strings.Join(sips, ","), strings.Join(ports, ","))
	}
	return tw.Flush()
}

type target struct {
	service   string
	instance  int
	unikernel bool
}

func (t *target) register(fs *flag.FlagSet) {
	fs.StringVar(&t.service, "service", "", "service name app.appns.svc.svcns")
	fs.IntVar(&t.instance, "instance", 0, "instance number")
	fs.BoolVar(&t.unikernel, "unikernel", false, "a unikernel (the NetManager makes the namespace)")
}

func (t target) kind() deploy.Kind {
	if t.unikernel {
		return deploy.KindUnikernel
	}
	return deploy.KindContainer
}

func deployCmd(ctx context.Context, c *client.Client, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var t target
	t.register(fs)
	pid := fs.Int("pid", 0, "PID of a process in the container's network namespace")
	ports := fs.String("ports", "", "port mappings, e.g. 8080:80/tcp;5353:53/udp")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	body := api.DeployBody{ServiceName: t.service, InstanceNumber: &t.instance, PID: pid, PortMappings: *ports}
	resp, err := c.Deploy(ctx, t.kind(), body)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s instance %d: %s %s\n", resp.ServiceName, t.instance, resp.NsAddress, resp.NsAddressV6)
	return nil
}

func undeployCmd(ctx context.Context, c *client.Client, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("undeploy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var t target
	t.register(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if err := c.Undeploy(ctx, t.kind(), t.service, t.instance); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s instance %d: undeployed\n", t.service, t.instance)
	return nil
}
