package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// firewall ID ...: the firewall module's /rules and /stats routes.

// fwRuleCols are a rule's columns, in the order of its JSON.
var fwRuleCols = []col{
	{head: "ID", key: "id"}, {head: "PRIORITY", fn: fwPriority}, {head: "ACTION", key: "action"},
	{head: "DIRECTION", fn: func(r any) string { return orDefault(lookup(r, "direction"), "both") }},
	{head: "SRC", key: "src"}, {head: "DST", key: "dst"},
	{head: "PROTO", fn: func(r any) string { return orDefault(lookup(r, "proto"), "any") }},
	{head: "SRC PORTS", key: "srcPorts"}, {head: "DST PORTS", key: "dstPorts"}, {head: "HITS", key: "hits"},
}

// fwDefaultPriority is a rule's priority when it names none (the module's
// DefaultRulePriority).
const fwDefaultPriority = "100"

func fwPriority(r any) string { return orDefault(lookup(r, "priority"), fwDefaultPriority) }

func orDefault(v any, def string) string {
	if s := cell(v); s != "-" {
		return s
	}
	return def
}

var renderRules = listTable("no rules", fwRuleCols...)

func fwListCmd(e *env, ids, args []string) error {
	if err := e.noArgs(args); err != nil {
		return err
	}
	return e.show(moduleRoute(ids[0], "/rules"), renderRules)
}

// fwRule is a rule's flags; its JSON is the module's rule, fields not given
// left out (they match everything).
type fwRule struct {
	ID        string `json:"id,omitempty"`
	Action    string `json:"action"`
	Direction string `json:"direction,omitempty"`
	Src       string `json:"src,omitempty"`
	Dst       string `json:"dst,omitempty"`
	Proto     string `json:"proto,omitempty"`
	SrcPorts  string `json:"srcPorts,omitempty"`
	DstPorts  string `json:"dstPorts,omitempty"`
	Priority  *int   `json:"priority,omitempty"`
}

func (r *fwRule) register(fs *flag.FlagSet) {
	fs.StringVar(&r.ID, "id", "", "the rule's id, 1-64 of [A-Za-z0-9_.-] (default: assigned, r1, r2, ...)")
	fs.StringVar(&r.Action, "action", "", "allow or deny (required)")
	fs.StringVar(&r.Direction, "direction", "", "ingress (to the service), egress (from it) or both (default)")
	fs.StringVar(&r.Src, "src", "", "source CIDR or address, IPv4 or IPv6 (default: any)")
	fs.StringVar(&r.Dst, "dst", "", "destination CIDR or address (default: any)")
	fs.StringVar(&r.Proto, "proto", "", "tcp, udp, icmp, icmpv6 or any (default)")
	fs.StringVar(&r.SrcPorts, "src-ports", "", `source port "N" or range "N-M" (TCP, UDP)`)
	fs.StringVar(&r.DstPorts, "dst-ports", "", `destination port "N" or range "N-M" (TCP, UDP)`)
	fs.Func("priority", "lower is matched first (default 100)", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		r.Priority = &n
		return nil
	})
}

func fwAddCmd(e *env, ids, args []string) error {
	fs := e.flags(false)
	var r fwRule
	r.register(fs)
	raw := fs.String("json", "", `the rule as JSON, e.g. '{"action": "deny", "proto": "icmp"}' (instead of the flags)`)
	if _, err := e.parse(fs, args, 0); err != nil {
		return err
	}
	var body []byte
	switch given := countSet(fs, "json"); {
	case *raw != "" && given > 0:
		return e.errUsage("--json and the rule's flags exclude each other")
	case *raw != "":
		if !json.Valid([]byte(*raw)) {
			return e.errUsage("--json is not valid JSON")
		}
		body = []byte(*raw)
	case r.Action == "":
		return e.errUsage("firewall rules add needs --action allow|deny (or --json RULE)")
	default:
		body, _ = json.Marshal(r)
	}
	return e.send(http.MethodPost, moduleRoute(ids[0], "/rules"), body, func(w io.Writer, data []byte) error {
		return renderRules(w, append(append([]byte("["), data...), ']'))
	})
}

// countSet counts the flags set on the command line, except those named.
func countSet(fs *flag.FlagSet, except ...string) int {
	n := 0
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "o", "output":
			return
		}
		for _, x := range except {
			if f.Name == x {
				return
			}
		}
		n++
	})
	return n
}

func fwDeleteCmd(e *env, ids, args []string) error {
	pos, err := e.parse(e.flags(true), args, 1)
	if err != nil {
		return err
	}
	path := moduleRoute(ids[0], "/rules/"+url.PathEscape(pos[0]))
	return e.send(http.MethodDelete, path, nil, func(w io.Writer, _ []byte) error {
		_, err := fmt.Fprintf(w, "rule %s deleted\n", pos[0])
		return err
	})
}

func fwReplaceCmd(e *env, ids, args []string) error {
	fs := e.flags(false)
	file := fs.String("file", "", "a file holding the JSON array of rules; - reads standard input")
	raw := fs.String("json", "", "the JSON array of rules")
	if _, err := e.parse(fs, args, 0); err != nil {
		return err
	}
	var body []byte
	switch {
	case (*file == "") == (*raw == ""):
		return e.errUsage("firewall rules replace needs one of --file F|- and --json RULES")
	case *file != "":
		data, err := readInput(*file)
		if err != nil {
			return e.errUsage("--file: %v", err)
		}
		body = data
	default:
		body = []byte(*raw)
	}
	var rules []json.RawMessage
	if err := json.Unmarshal(body, &rules); err != nil {
		return e.errUsage("the rules are not a JSON array: %v", err)
	}
	return e.send(http.MethodPut, moduleRoute(ids[0], "/rules"), body, renderRules)
}

func fwStatsCmd(e *env, ids, args []string) error {
	if err := e.noArgs(args); err != nil {
		return err
	}
	return e.show(moduleRoute(ids[0], "/stats"), keyedTable("INTERFACE", "no interfaces",
		col{head: "INGRESS ALLOWED", key: "ingress.allowed"}, col{head: "INGRESS DENIED", key: "ingress.denied"},
		col{head: "EGRESS ALLOWED", key: "egress.allowed"}, col{head: "EGRESS DENIED", key: "egress.denied"}))
}
