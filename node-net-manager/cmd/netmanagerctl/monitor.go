package main

// monitor --drops: GET /ebpf/drops, every drop of the chains on the node, at
// most --rate a second (the daemon counts the rest and says so).

func monitorCmd(e *env, _, args []string) error {
	fs := e.flags(true)
	drops := fs.Bool("drops", false, "follow the drops (the only monitor so far; required)")
	tf := addTraceFlags(fs, []string{"service", "iface", "direction", "proto", "host", "duration"}, []string{"port", "count", "rate"})
	if _, err := e.parse(fs, args, 0); err != nil {
		return err
	}
	if !*drops {
		return e.errUsage("monitor: say what to monitor: --drops")
	}
	return e.stream("/ebpf/drops"+tf.query(), "drops")
}
