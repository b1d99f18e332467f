package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
)

// modules: the eBPF Manager's /ebpf routes.

func modulesListCmd(e *env, _, args []string) error {
	if err := e.noArgs(args); err != nil {
		return err
	}
	return e.show("/ebpf", func(w io.Writer, data []byte) error {
		var list []ebpfmanager.Info
		if err := json.Unmarshal(data, &list); err != nil {
			return err
		}
		if len(list) == 0 {
			_, err := fmt.Fprintln(w, "no module instances")
			return err
		}
		tw := newTable(w)
		fmt.Fprintln(tw, "ID\tNAME\tPRIORITY\tSTATE\tMODE\tATTACHMENTS\tSCOPE")
		for _, in := range list {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%s\n", in.ID, in.Name, in.Priority, state(in), in.Mode, len(in.Attachments), scope(in))
		}
		return tw.Flush()
	})
}

func state(in ebpfmanager.Info) string {
	if in.SLA {
		return fmt.Sprintf("%s (SLA, %d refs)", in.State, in.References)
	}
	return in.State
}

func scope(in ebpfmanager.Info) string {
	return cell(strings.Join(append(append([]string{}, in.Services...), in.Interfaces...), ","))
}

// configFlags are the flags of what a load or an update sets.
type configFlags struct {
	priority int
	config   string
}

func (c *configFlags) register(fs *flag.FlagSet, prioHelp string) {
	fs.IntVar(&c.priority, "priority", 0, prioHelp)
	fs.StringVar(&c.config, "config", "", "the module's config as a JSON object")
}

// raw is --config checked to be JSON (nil when not given).
func (c *configFlags) raw(e *env) (json.RawMessage, error) {
	if c.config == "" {
		return nil, nil
	}
	if !json.Valid([]byte(c.config)) {
		return nil, e.errUsage("--config is not valid JSON")
	}
	return json.RawMessage(c.config), nil
}

func modulesLoadCmd(e *env, _, args []string) error {
	fs := e.flags(true)
	var cf configFlags
	cf.register(fs, "chain position 1-1000: lower runs first (default: after the existing ones)")
	services := fs.String("services", "", `comma-separated service names, "*" for all (default: every service)`)
	ifaces := fs.String("interfaces", "", "comma-separated host interfaces")
	pos, err := e.parse(fs, args, 1)
	if err != nil {
		return err
	}
	req := ebpfmanager.LoadRequest{Name: pos[0], Services: split(*services), Interfaces: split(*ifaces)}
	if cf.priority != 0 {
		req.Priority = &cf.priority
	}
	if req.Config, err = cf.raw(e); err != nil {
		return err
	}
	body, _ := json.Marshal(req)
	return e.send(http.MethodPost, "/ebpf", body, instanceLine("loaded %s as instance %s"))
}

// instanceLine prints an instance answer in one line.
func instanceLine(format string) renderer {
	return func(w io.Writer, data []byte) error {
		var in ebpfmanager.Info
		if err := json.Unmarshal(data, &in); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, format+" (priority %d, %d attachments, %s)\n", in.Name, in.ID, in.Priority, len(in.Attachments), in.Mode)
		return err
	}
}

func modulesShowCmd(e *env, _, args []string) error {
	pos, err := e.parse(e.flags(true), args, 1)
	if err != nil {
		return err
	}
	return e.show("/ebpf/"+pos[0], renderInstance)
}

// renderInstance prints an instance's fields, config and attachments.
func renderInstance(w io.Writer, data []byte) error {
	var in ebpfmanager.Info
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "id\t%s\nname\t%s\npriority\t%d\nstate\t%s\nmode\t%s\nscope\t%s\ncreated\t%s\n",
		in.ID, in.Name, in.Priority, state(in), in.Mode, scope(in), in.Created.Format("2006-01-02 15:04:05Z07:00"))
	if in.Error != "" {
		fmt.Fprintf(tw, "error\t%s\n", in.Error)
	}
	cfg := "-"
	if len(in.Config) > 0 && string(in.Config) != "null" {
		cfg = string(in.Config)
	}
	fmt.Fprintf(tw, "config\t%s\n", cfg)
	for _, d := range in.Drift {
		fmt.Fprintf(tw, "drift\t%s\n", d)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(in.Attachments) == 0 {
		_, err := fmt.Fprintln(w, "\nno attachments")
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "INTERFACE\tIFINDEX\tSERVICE\tHOOK\tDIRECTION\tPROGRAM")
	for _, a := range in.Attachments {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\n", a.Interface, a.Ifindex, cell(a.Service), a.Hook, a.Direction, a.ProgramID)
	}
	return tw.Flush()
}

func modulesUpdateCmd(e *env, _, args []string) error {
	fs := e.flags(true)
	var cf configFlags
	cf.register(fs, "a new chain position 1-1000 (default: the same)")
	pos, err := e.parse(fs, args, 1)
	if err != nil {
		return err
	}
	// Only the keys given: an absent key keeps its value (a "config": null
	// would clear the config). Neither: the module's files are read again.
	req := map[string]any{}
	if cf.priority != 0 {
		req["priority"] = cf.priority
	}
	cfg, err := cf.raw(e)
	if err != nil {
		return err
	}
	if cfg != nil {
		req["config"] = cfg
	}
	body, _ := json.Marshal(req)
	return e.send(http.MethodPut, "/ebpf/"+pos[0], body, instanceLine("updated %s instance %s"))
}

func modulesDeleteCmd(e *env, _, args []string) error {
	fs := e.flags(true)
	all := fs.Bool("all", false, "stop every instance")
	pos, err := e.parse(fs, args, -1)
	switch {
	case err != nil:
		return err
	case *all && len(pos) == 0:
		return e.send(http.MethodDelete, "/ebpf", nil, func(w io.Writer, _ []byte) error {
			_, err := fmt.Fprintln(w, "every module instance deleted")
			return err
		})
	case *all || len(pos) != 1:
		return e.errUsage("modules delete needs an instance ID or --all")
	}
	return e.send(http.MethodDelete, "/ebpf/"+pos[0], nil, func(w io.Writer, _ []byte) error {
		_, err := fmt.Fprintf(w, "instance %s deleted\n", pos[0])
		return err
	})
}

func modulesGetCmd(e *env, _, args []string) error {
	pos, err := e.parse(e.flags(true), args, 2)
	if err != nil {
		return err
	}
	return e.show(moduleRoute(pos[0], pos[1]), autoTable)
}

// moduleRoute is the path of a module instance's own route.
func moduleRoute(id, path string) string {
	return "/ebpf/" + id + "/" + strings.TrimPrefix(path, "/")
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
