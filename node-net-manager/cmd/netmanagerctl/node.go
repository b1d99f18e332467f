package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/oakestra/netmanager/node-net-manager/api"
	"github.com/oakestra/netmanager/node-net-manager/deploy"
)

// The node's own routes: health, version, services, the user-space proxy,
// register, deploy and undeploy, metrics and the OpenAPI document.

// noArgs parses a command that takes no arguments.
func (e *env) noArgs(args []string) error {
	_, err := e.parse(e.flags(true), args, 0)
	return err
}

func healthCmd(e *env, _, args []string) error {
	if err := e.noArgs(args); err != nil {
		return err
	}
	return e.show("/healthz", func(w io.Writer, _ []byte) error {
		_, err := fmt.Fprintln(w, "ok")
		return err
	})
}

func versionCmd(e *env, _, args []string) error {
	if err := e.noArgs(args); err != nil {
		return err
	}
	return e.show("/version", func(w io.Writer, data []byte) error {
		var v struct{ Version, Go string }
		if err := json.Unmarshal(data, &v); err != nil {
			return err
		}
		_, err := fmt.Fprintln(w, v.Version)
		return err
	})
}

func servicesCmd(e *env, _, args []string) error {
	if err := e.noArgs(args); err != nil {
		return err
	}
	return e.show("/services", renderServices)
}

func renderServices(w io.Writer, data []byte) error {
	var recs []deploy.Record
	if err := json.Unmarshal(data, &recs); err != nil {
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "SERVICE\tINSTANCE\tKIND\tNS ADDRESS\tNS ADDRESS V6\tVETH\tSERVICE IPS\tPORTS")
	for _, r := range recs {
		var sips, ports []string
		for _, s := range r.ServiceIPs {
			sips = append(sips, fmt.Sprintf("%s=%s", s.Policy, s.Address))
		}
		if r.ServiceIPsFrom == deploy.IPsPending { // cluster mode: the cluster's table has not the instance yet
			sips = []string{"(pending)"}
		}
		for _, p := range r.PortMappings {
			ports = append(ports, p.String())
		}
		v6 := "-"
		if r.NsAddressV6.IsValid() {
			v6 = r.NsAddressV6.String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ServiceName, r.Instance, r.Kind, r.NsAddress, v6, r.HostVeth,
			cell(strings.Join(sips, ",")), cell(strings.Join(ports, ",")))
	}
	return tw.Flush()
}

func proxyCmd(e *env, _, args []string) error {
	if err := e.noArgs(args); err != nil {
		return err
	}
	return e.show("/proxy", renderProxy)
}

// renderProxy prints the user-space proxy's state, its counters and its
// drops by reason.
func renderProxy(w io.Writer, data []byte) error {
	var p map[string]any
	if err := decodeJSON(data, &p); err != nil {
		return err
	}
	tw := newTable(w)
	for _, k := range []string{"enabled", "tun", "tunnel"} {
		if v, ok := p[k]; ok {
			fmt.Fprintf(tw, "%s\t%s\n", k, cell(v))
		}
	}
	stats, _ := p["stats"].(map[string]any)
	var nested []string
	for _, k := range sortedKeys(stats) {
		if _, ok := stats[k].(map[string]any); ok {
			nested = append(nested, k)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\n", k, cell(stats[k]))
	}
	for _, k := range nested {
		inner := stats[k].(map[string]any)
		for _, ik := range sortedKeys(inner) {
			fmt.Fprintf(tw, "%s: %s\t%s\n", k, ik, cell(inner[ik]))
		}
	}
	return tw.Flush()
}

func registerCmd(e *env, _, args []string) error {
	fs := e.flags(true)
	id := fs.String("client-id", "", "the node's id in its cluster (required)")
	addr := fs.String("cluster-address", "", "the cluster's MQTT broker, host or host:port (none: stay standalone)")
	if _, err := e.parse(fs, args, 0); err != nil {
		return err
	}
	if *id == "" {
		return e.errUsage("register needs --client-id")
	}
	body, _ := json.Marshal(map[string]string{"client_id": *id, "cluster_address": *addr})
	return e.send(http.MethodPost, "/register", body, valueTable("FIELD", "VALUE"))
}

// target names a service instance.
type target struct {
	service   string
	instance  int
	unikernel bool
}

func (t *target) register(fs *flag.FlagSet) {
	fs.StringVar(&t.service, "service", "", "service name app.appns.svc.svcns (required)")
	fs.IntVar(&t.instance, "instance", 0, "instance number")
	fs.BoolVar(&t.unikernel, "unikernel", false, "a unikernel (the NetManager makes the namespace)")
}

func (t target) kind() deploy.Kind {
	if t.unikernel {
		return deploy.KindUnikernel
	}
	return deploy.KindContainer
}

func deployCmd(e *env, _, args []string) error {
	fs := e.flags(true)
	var t target
	t.register(fs)
	pid := fs.Int("pid", 0, "PID of a process in the container's network namespace")
	ports := fs.String("ports", "", "port mappings, e.g. 8080:80/tcp;5353:53/udp")
	mods := fs.String("ebpf-modules", "", `the SLA's eBPF modules as JSON, e.g. '[{"name": "firewall", "config": {}}]'`)
	if _, err := e.parse(fs, args, 0); err != nil {
		return err
	}
	if t.service == "" {
		return e.errUsage("deploy needs --service")
	}
	if !t.unikernel && *pid <= 0 {
		return e.errUsage("deploy needs --pid P (a process in the container's namespace) or --unikernel")
	}
	body := api.DeployBody{ServiceName: t.service, InstanceNumber: &t.instance, PID: pid, PortMappings: *ports}
	if *mods != "" {
		if err := json.Unmarshal([]byte(*mods), &body.EbpfModules); err != nil {
			return e.errUsage("--ebpf-modules is not a JSON array of {name, config}: %v", err)
		}
	}
	data, _ := json.Marshal(body)
	return e.send(http.MethodPost, "/"+string(t.kind())+"/deploy", data, func(w io.Writer, data []byte) error {
		var r api.DeployResponse
		if err := json.Unmarshal(data, &r); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "%s instance %d: %s %s\n", r.ServiceName, t.instance, r.NsAddress, r.NsAddressV6)
		return err
	})
}

func undeployCmd(e *env, _, args []string) error {
	fs := e.flags(true)
	var t target
	t.register(fs)
	if _, err := e.parse(fs, args, 0); err != nil {
		return err
	}
	if t.service == "" {
		return e.errUsage("undeploy needs --service")
	}
	body, _ := json.Marshal(api.UndeployBody{ServiceName: t.service, InstanceNumber: &t.instance})
	return e.send(http.MethodPost, "/"+string(t.kind())+"/undeploy", body, func(w io.Writer, _ []byte) error {
		_, err := fmt.Fprintf(w, "%s instance %d: undeployed\n", t.service, t.instance)
		return err
	})
}

// rawCmd GETs path and prints the answer exactly as it came.
func rawCmd(path string) func(e *env, _, args []string) error {
	return func(e *env, _, args []string) error {
		if err := e.noArgs(args); err != nil {
			return err
		}
		data, err := e.c.Get(e.ctx, path)
		if err != nil {
			return e.call(err)
		}
		_, err = e.stdout.Write(data)
		return err
	}
}
