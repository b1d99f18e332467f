package main

import (
	"encoding/json"
	"fmt"
	"io"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
)

// doctor: GET /ebpf/doctor. It exits 0 when the report is healthy (no
// problem of severity error; warnings are printed all the same) and 1 when
// it is not, after printing the report either way.

// errUnhealthy is an unhealthy report: exit 1, the report already printed.
type errUnhealthy struct{ errors, warnings int }

func (e errUnhealthy) Error() string {
	return fmt.Sprintf("doctor: the node is unhealthy: %s", problemCount(e.errors, e.warnings))
}

func doctorCmd(e *env, _, args []string) error {
	if err := e.noArgs(args); err != nil {
		return err
	}
	data, err := e.c.Get(e.ctx, "/ebpf/doctor")
	if err != nil {
		return e.call(err)
	}
	var r ebpfmanager.Report
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("bad answer from the NetManager: %w", err)
	}
	if err := e.print(data, renderDoctor); err != nil {
		return err
	}
	if !r.Healthy {
		return errUnhealthy{r.Summary.Errors, r.Summary.Warnings}
	}
	return nil
}

// renderDoctor prints one line per problem, then a summary line that
// starts with "healthy" or "unhealthy".
func renderDoctor(w io.Writer, data []byte) error {
	var r ebpfmanager.Report
	if err := json.Unmarshal(data, &r); err != nil {
		return err
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "%-7s %-19s %s\n", p.Severity, p.Kind, p.Message)
	}
	s := r.Summary
	state := "healthy"
	if !r.Healthy {
		state = "unhealthy"
	}
	_, err := fmt.Fprintf(w, "%s: %d module instances (%d failed), %d interface hooks checked (%s), %d foreign programs, %d pins; %s\n",
		state, s.Instances, s.Failed, s.Hooks, s.Mode, s.Foreign, s.Pins, problemCount(s.Errors, s.Warnings))
	return err
}

func problemCount(errors, warnings int) string {
	if errors+warnings == 0 {
		return "no problems"
	}
	return fmt.Sprintf("%d errors, %d warnings", errors, warnings)
}
