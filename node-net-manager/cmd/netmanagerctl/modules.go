package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
	"github.com/oakestra/netmanager/node-net-manager/client"
)

func modulesCmd(ctx context.Context, c *client.Client, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"modules needs a subcommand: list, load, show, delete, get"}
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "list":
		var list []ebpfmanager.Info
		if err := c.Do(ctx, http.MethodGet, "/ebpf", nil, &list); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tPRIORITY\tSTATE\tMODE\tATTACHMENTS\tSCOPE")
		for _, in := range list {
			scope := strings.Join(append(append([]string{}, in.Services...), in.Interfaces...), ",")
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%s\n", in.ID, in.Name, in.Priority, in.State, in.Mode, len(in.Attachments), scope)
		}
		return tw.Flush()
	case "load":
		return loadCmd(ctx, c, rest, stdout, stderr)
	case "show":
		if len(rest) != 1 {
			return usageError{"modules show needs an instance ID"}
		}
		return printJSON(ctx, c, http.MethodGet, "/ebpf/"+rest[0], stdout)
	case "delete":
		if len(rest) != 1 {
			return usageError{"modules delete needs an instance ID or --all"}
		}
		if rest[0] == "--all" {
			return printJSON(ctx, c, http.MethodDelete, "/ebpf", stdout)
		}
		return printJSON(ctx, c, http.MethodDelete, "/ebpf/"+rest[0], stdout)
	case "get":
		if len(rest) != 2 {
			return usageError{"modules get needs an instance ID and a path"}
		}
		return printJSON(ctx, c, http.MethodGet, "/ebpf/"+rest[0]+"/"+strings.TrimPrefix(rest[1], "/"), stdout)
	default:
		return usageError{fmt.Sprintf("unknown modules subcommand %q", sub)}
	}
}

func loadCmd(ctx context.Context, c *client.Client, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError{"modules load needs a module name first"}
	}
	fs := flag.NewFlagSet("modules load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	prio := fs.Int("priority", 0, "chain position: lower runs first (default: after the existing ones)")
	cfg := fs.String("config", "", "module config as a JSON object")
	services := fs.String("services", "", "comma-separated service names (default: every service)")
	ifaces := fs.String("interfaces", "", "comma-separated host interfaces")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err.Error()}
	}
	req := ebpfmanager.LoadRequest{Name: args[0], Services: split(*services), Interfaces: split(*ifaces)}
	if *prio != 0 {
		req.Priority = prio
	}
	if *cfg != "" {
		if !json.Valid([]byte(*cfg)) {
			return usageError{"--config is not valid JSON"}
		}
		req.Config = json.RawMessage(*cfg)
	}
	var info ebpfmanager.Info
	if err := c.Do(ctx, http.MethodPost, "/ebpf", req, &info); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "loaded %s as instance %s (priority %d, %d attachments, %s)\n", info.Name, info.ID, info.Priority, len(info.Attachments), info.Mode)
	return nil
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func printJSON(ctx context.Context, c *client.Client, method, path string, stdout io.Writer) error {
	var out json.RawMessage
	if err := c.Do(ctx, method, path, nil, &out); err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	var v any
	_ = json.Unmarshal(out, &v)
	return enc.Encode(v)
}
