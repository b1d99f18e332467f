package main

import (
	"fmt"
	"io"
	"strings"
)

// The routes of the proxy, packetcounter and sdwan modules: proxy ID ...,
// counter ID ..., sdwan ID ....

// routeCmd is a command that GETs a module instance's route and renders it.
func routeCmd(path string, r renderer) func(e *env, ids, args []string) error {
	return func(e *env, ids, args []string) error {
		if err := e.noArgs(args); err != nil {
			return err
		}
		return e.show(moduleRoute(ids[0], path), r)
	}
}

var (
	proxyTranslationsCmd = routeCmd("/translations", keyedTable("SERVICE IP", "no translations", col{head: "NAMESPACE IPS"}))
	proxySessionsCmd     = routeCmd("/sessions", renderSessions)
	proxyStatsCmd        = routeCmd("/stats", valueTable("COUNTER", "VALUE"))
	proxyPeersCmd        = routeCmd("/peers", keyedTable("PEER", "no peers", trafficCols...))
	counterCountsCmd     = routeCmd("/counts", keyedTable("INTERFACE", "no interfaces",
		col{head: "INGRESS PACKETS", key: "ingress.packets"}, col{head: "INGRESS BYTES", key: "ingress.bytes"},
		col{head: "EGRESS PACKETS", key: "egress.packets"}, col{head: "EGRESS BYTES", key: "egress.bytes"}))
	sdwanRulesCmd = routeCmd("/rules", listTable("no rules",
		col{head: "ID", key: "id"}, col{head: "PRECEDENCE", key: "precedence"}, col{head: "SRC", key: "src"},
		col{head: "DST", key: "dst"}, col{head: "PROTO", key: "proto"}, col{head: "TOS", key: "tos"},
		col{head: "SRC PORTS", key: "srcPorts"}, col{head: "DST PORTS", key: "dstPorts"},
		col{head: "ACTION", key: "action"}, col{head: "TARGET", key: "target"}, col{head: "FLOWS", key: "flows"}))
	sdwanLBRCmd = routeCmd("/lbr", listTable("no LBRs", col{head: "CLASS", fn: lbrClass}, col{head: "OVERLAYS (WAN:WEIGHT)", fn: lbrOverlays},
		col{head: "ACTIVE SLOTS", fn: lbrActive}, col{head: "SLA", key: "sla"}))
	sdwanWANsCmd  = routeCmd("/wans", renderWANs)
	sdwanStatsCmd = routeCmd("/stats", renderSDWANStats)
)

var trafficCols = []col{{head: "TX PACKETS", key: "txPackets"}, {head: "TX BYTES", key: "txBytes"},
	{head: "RX PACKETS", key: "rxPackets"}, {head: "RX BYTES", key: "rxBytes"}}

var wanCols = append([]col{{head: "NAME", key: "name"}, {head: "INTERFACE", key: "interface"}, {head: "LOCAL", key: "local"},
	{head: "PEER", key: "peer"}, {head: "MTU", key: "mtu"}, {head: "UP", key: "up"}, {head: "LATENCY MS", key: "latencyMs"},
	{head: "LOSS %", key: "lossPercent"}, {head: "JITTER MS", key: "jitterMs"}, {head: "PROBES", key: "probesSent"},
	{head: "ANSWERED", key: "probesAnswered"}}, trafficCols...)

var renderWANs = listTable("no WANs", wanCols...)

// renderSessions prints how many sessions there are and those listed.
func renderSessions(w io.Writer, data []byte) error {
	var s struct {
		Count, Listed int
		Sessions      []any
	}
	if err := decodeJSON(data, &s); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d sessions, %d listed\n", s.Count, s.Listed)
	if len(s.Sessions) == 0 {
		return nil
	}
	return writeRows(w, []col{{head: "PROTO", key: "proto"}, {head: "FROM", key: "from"}, {head: "TO", key: "to"},
		{head: "TRANSLATED TO", key: "translatedTo"}}, s.Sessions, nil, "")
}

func lbrClass(r any) string {
	if d, _ := lookup(r, "default").(bool); d {
		return "default"
	}
	return "tos " + cell(lookup(r, "tos"))
}

func lbrOverlays(r any) string {
	list, _ := lookup(r, "overlays").([]any)
	parts := make([]string, 0, len(list))
	for _, o := range list {
		parts = append(parts, cell(lookup(o, "wan"))+":"+cell(lookup(o, "weight")))
	}
	return cell(strings.Join(parts, ","))
}

func lbrActive(r any) string {
	m, _ := lookup(r, "active").(map[string]any)
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+":"+cell(m[k]))
	}
	return cell(strings.Join(parts, ","))
}

// renderSDWANStats prints the counters by reason, then the WANs.
func renderSDWANStats(w io.Writer, data []byte) error {
	var s struct {
		Counters map[string]any
		WANs     []any
	}
	if err := decodeJSON(data, &s); err != nil {
		return err
	}
	if err := printKeyed(w, s.Counters, "COUNTER", "no counters", []col{{head: "VALUE"}}); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return printList(w, s.WANs, "no WANs", wanCols)
}
