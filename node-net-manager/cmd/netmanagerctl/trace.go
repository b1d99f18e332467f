package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
)

// trace: GET /ebpf/trace, one line per packet with its hops (or -o json:
// the daemon's JSON lines as they come). Ctrl-C ends it cleanly.

// traceFlags are the filters trace and monitor share, as query parameters.
type traceFlags struct {
	strs map[string]*string
	nums map[string]*uint64
}

func addTraceFlags(fs *flag.FlagSet, strs, nums []string) *traceFlags {
	help := map[string]string{
		"service": "only this service's veths", "iface": "only this interface",
		"direction": "in (into the service; a host interface's ingress) or out", "proto": "tcp, udp, icmp, icmpv6, sctp or a number",
		"host": "source or destination address", "verdict": "only packets whose path ends so: drop, redirect, accept, next",
		"duration": "stop after this long (e.g. 10s)", "port": "source or destination port", "count": "stop after N packets",
		"rate": "events per second the daemon shows at most (the rest are counted)",
	}
	tf := &traceFlags{strs: map[string]*string{}, nums: map[string]*uint64{}}
	for _, n := range strs {
		tf.strs[n] = fs.String(n, "", help[n])
	}
	for _, n := range nums {
		tf.nums[n] = fs.Uint64(n, 0, help[n])
	}
	return tf
}

func (tf *traceFlags) query() string {
	q := url.Values{}
	for n, v := range tf.strs {
		if *v != "" {
			q.Set(n, *v)
		}
	}
	for n, v := range tf.nums {
		if *v != 0 {
			q.Set(n, strconv.FormatUint(*v, 10))
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func traceCmd(e *env, _, args []string) error {
	fs := e.flags(true)
	tf := addTraceFlags(fs, []string{"service", "iface", "direction", "proto", "host", "verdict", "duration"}, []string{"port", "count", "rate"})
	if _, err := e.parse(fs, args, 0); err != nil {
		return err
	}
	return e.stream("/ebpf/trace"+tf.query(), "events")
}

// stream prints a trace's lines until it ends or Ctrl-C.
func (e *env) stream(path, what string) error {
	ctx, stop := signal.NotifyContext(e.ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := e.c.Stream(ctx, path, func(line []byte) error {
		if e.format == "json" {
			_, err := fmt.Fprintf(e.stdout, "%s\n", line)
			return err
		}
		var p ebpfmanager.PacketPath
		if err := json.Unmarshal(line, &p); err != nil {
			return fmt.Errorf("bad answer from the NetManager: %w", err)
		}
		return renderPath(e.stdout, p, what)
	})
	if ctx.Err() != nil && e.ctx.Err() == nil {
		return nil // Ctrl-C
	}
	return e.call(err)
}

// renderPath prints a packet's path on one line:
//
//	12:31:11.123456 oak5 a/0 out tcp 10.18.0.5:1000 > 10.30.0.1:80 len 60: 1 counter next, 2 firewall drop (rule denyin)
//
// A drop's detail is shown by the name the module gives it (detailName),
// else as its number. The drop monitor's drop by a TC program that did not
// use nm_drop is "unattributed drop (unspecified)"; its direction may be
// "unknown".
func renderPath(w io.Writer, p ebpfmanager.PacketPath, what string) error {
	if len(p.Hops) == 0 {
		_, err := fmt.Fprintf(w, "%s %d %s not shown (rate limit)\n", p.Time.Format("15:04:05.000000"), p.Suppressed, what)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", p.Time.Format("15:04:05.000000"), p.Interface)
	if p.Service != "" {
		fmt.Fprintf(&b, " %s", p.Service)
	}
	fmt.Fprintf(&b, " %s", p.Direction)
	switch {
	case p.Src == "":
		b.WriteString(" non-IP")
	case p.Sport != 0 || p.Dport != 0:
		fmt.Fprintf(&b, " %s %s > %s", p.Proto, hostPort(p.Src, p.Sport), hostPort(p.Dst, p.Dport))
	default:
		fmt.Fprintf(&b, " %s %s > %s", p.Proto, p.Src, p.Dst)
	}
	fmt.Fprintf(&b, " len %d:", p.Len)
	for i, h := range p.Hops {
		if i > 0 {
			b.WriteString(",")
		}
		if h.Instance == "" { // the drop monitor's drop by a TC program without nm_drop
			fmt.Fprintf(&b, " unattributed %s", h.Verdict)
		} else {
			fmt.Fprintf(&b, " %s %s %s", h.Instance, h.Module, h.Verdict)
		}
		if h.Reason != "" {
			fmt.Fprintf(&b, " (%s", h.Reason)
			switch {
			case h.DetailName != "":
				fmt.Fprintf(&b, " %s", h.DetailName)
			case h.Detail != 0:
				fmt.Fprintf(&b, " %d", h.Detail)
			}
			b.WriteString(")")
		}
	}
	_, err := fmt.Fprintln(w, b.String())
	return err
}

func hostPort(a string, p uint16) string {
	if strings.Contains(a, ":") {
		return fmt.Sprintf("[%s]:%d", a, p)
	}
	return fmt.Sprintf("%s:%d", a, p)
}
