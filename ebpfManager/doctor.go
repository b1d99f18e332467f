package ebpfmanager

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Problem kinds of a doctor's Report. They are stable: tools match on them.
const (
	// ProblemForeign: a program that is not ours on one of our hooks.
	ProblemForeign = "foreign-program"
	// ProblemMissingAttachment: one of our programs is not on a hook it
	// should be on (or the hook's chain cannot be read).
	ProblemMissingAttachment = "missing-attachment"
	// ProblemOutOfOrder: our programs on a hook do not run in chain order.
	ProblemOutOfOrder = "out-of-order"
	// ProblemStrayPin: a pin under the pin directory no instance owns.
	ProblemStrayPin = "stray-pin"
	// ProblemMissingPin: a map or link pin an instance should have is gone.
	ProblemMissingPin = "missing-pin"
	// ProblemStaleState: the declared state lists an instance that does
	// not run.
	ProblemStaleState = "stale-state"
	// ProblemUndeclared: an instance runs that the declared state lacks.
	ProblemUndeclared = "undeclared-instance"
	// ProblemFailed: an instance whose control plane failed.
	ProblemFailed = "failed-instance"
	// ProblemKernelFeature: a module's data plane needs what the kernel
	// lacks (or its needs cannot be read or probed).
	ProblemKernelFeature = "kernel-feature"
)

// Severities of a Problem: an error makes the node unhealthy; a warning is
// worth knowing.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// Problem is one thing the doctor found wrong.
type Problem struct {
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	// Subject is what it is about: an instance ("instance 3"), an interface
	// hook ("veth0 ingress"), a pin path, a module.
	Subject string `json:"subject"`
	Message string `json:"message"`
	// Foreign is the program of a foreign-program problem.
	Foreign *ForeignInfo `json:"foreign,omitempty"`
}

// Summary counts what the doctor looked at and found.
type Summary struct {
	Mode      Mode `json:"mode"`
	Instances int  `json:"instances"`
	Failed    int  `json:"failed"`
	Hooks     int  `json:"hooks"` // interface hooks checked
	Programs  int  `json:"programs"`
	Foreign   int  `json:"foreign"`
	Pins      int  `json:"pins"` // pins checked
	Errors    int  `json:"errors"`
	Warnings  int  `json:"warnings"`
	Declared  int  `json:"declared"` // instances the declared state lists
}

// Report is the doctor's answer (GET /ebpf/doctor). Healthy: no problem of
// severity error.
type Report struct {
	Healthy  bool      `json:"healthy"`
	Problems []Problem `json:"problems"`
	Summary  Summary   `json:"summary"`
}

// ForeignInfo is a program on one of our hooks that is not ours, as the API
// shows it.
type ForeignInfo struct {
	Interface string `json:"interface"`
	Ifindex   int    `json:"ifindex"`
	Hook      string `json:"hook"`
	ID        uint32 `json:"id"`
	Name      string `json:"name"`
	Tag       string `json:"tag"`
	Type      string `json:"type,omitempty"`
	Position  int    `json:"position"` // 0-based, in run order
	// EndsChain: it runs before our first program there, so an accept or
	// drop from it ends the chain and our modules never see the packet.
	EndsChain bool `json:"endsChain"`
}

// Observed is what the gather step saw, as plain data for Diagnose.
type Observed struct {
	Mode   Mode
	PinDir string
	// Declared is the declared state (what a restart with persist takes
	// back); HasStore says one is kept.
	Declared  []Declared
	HasStore  bool
	Instances []ObservedInstance // in chain order
	// Pins are the names directly under PinDir; Dirs what each instance's
	// directory holds, by instance ID.
	Pins  []string
	Dirs  map[string]ObservedPinDir
	Hooks []ObservedHook
	// Features are the kernel's answers for each module's needs.
	Features []ObservedFeatures
}

// ObservedInstance is one instance as the manager holds it.
type ObservedInstance struct {
	ID, Name, State, Failure string
	SLA                      bool
	// Programs are its data plane's program IDs by hook (none without a
	// data plane); Maps the names its data plane pins under maps/.
	Programs map[module.Hook]uint32
	Maps     []string
	// Targets are the interfaces it applies to; Attached those it is
	// attached to (both by name).
	Targets, Attached []string
}

// ObservedPinDir is what an instance's pin directory holds.
type ObservedPinDir struct {
	Links, Maps, Other []string
	Err                string
}

// ObservedHook is one interface hook we chain on: the kernel's chain there.
type ObservedHook struct {
	Interface string
	Ifindex   int
	Hook      module.Hook
	Chain     []uint32               // program IDs in run order
	Programs  map[uint32]ProgramInfo // what the kernel says of the foreign ones
	Err       string                 // the chain could not be read
}

// ObservedFeatures are the kernel's answers for one module's needs.
type ObservedFeatures struct {
	Module            string
	Missing, Degraded []Need
	Inconclusive      []string
	Err               string
}

func (o ObservedInstance) label() string { return fmt.Sprintf("instance %s (%s)", o.ID, o.Name) }

// Diagnose compares the declared state, the pins and the kernel's chains
// with the manager's instances. It is pure.
func Diagnose(o Observed) Report {
	var ps []Problem
	ps = append(ps, diagnoseInstances(o)...)
	ps = append(ps, diagnosePins(o)...)
	hookPs, foreignN := diagnoseHooks(o)
	ps = append(ps, hookPs...)
	ps = append(ps, diagnoseFeatures(o)...)
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Severity != ps[j].Severity {
			return ps[i].Severity == SeverityError
		}
		if ps[i].Kind != ps[j].Kind {
			return ps[i].Kind < ps[j].Kind
		}
		return ps[i].Subject < ps[j].Subject
	})
	r := Report{Problems: append([]Problem{}, ps...)}
	r.Summary = summarize(o, foreignN)
	for _, p := range ps {
		if p.Severity == SeverityError {
			r.Summary.Errors++
		} else {
			r.Summary.Warnings++
		}
	}
	r.Healthy = r.Summary.Errors == 0
	return r
}

func summarize(o Observed, foreignN int) Summary {
	s := Summary{Mode: o.Mode, Instances: len(o.Instances), Hooks: len(o.Hooks), Foreign: foreignN,
		Declared: len(o.Declared)}
	for _, in := range o.Instances {
		if in.State == StateFailed {
			s.Failed++
		}
	}
	for _, h := range o.Hooks {
		s.Programs += len(h.Chain) - len(h.Programs)
	}
	for _, d := range o.Dirs {
		s.Pins += len(d.Links) + len(d.Maps) + len(d.Other)
	}
	return s
}

// diagnoseInstances finds failed instances, declared ones that do not run,
// and running ones the declared state lacks.
func diagnoseInstances(o Observed) []Problem {
	var ps []Problem
	running := map[string]bool{}
	for _, in := range o.Instances {
		running[in.ID] = true
		if in.State == StateFailed {
			ps = append(ps, Problem{Kind: ProblemFailed, Severity: SeverityError, Subject: "instance " + in.ID,
				Message: fmt.Sprintf("%s has failed: %s; its data plane stays attached until the instance is deleted (netmanagerctl modules delete %s, then load it again)", in.label(), in.Failure, in.ID)})
		}
	}
	if !o.HasStore {
		return ps
	}
	declared := map[string]bool{}
	for _, d := range o.Declared {
		declared[d.ID] = true
		if !running[d.ID] {
			ps = append(ps, Problem{Kind: ProblemStaleState, Severity: SeverityError, Subject: "instance " + d.ID,
				Message: fmt.Sprintf("the declared state lists instance %s (%s), which does not run: a restart with persist would load it again; delete it (netmanagerctl modules delete %s) or load it again", d.ID, d.Name, d.ID)})
		}
	}
	for _, in := range o.Instances {
		if !in.SLA && !declared[in.ID] {
			ps = append(ps, Problem{Kind: ProblemUndeclared, Severity: SeverityError, Subject: "instance " + in.ID,
				Message: fmt.Sprintf("%s runs but the declared state lacks it: a restart with persist would not take it back; load it again to declare it", in.label())})
		}
	}
	return ps
}

// expectedLinkPins are the link pins an instance's attachments have (TCX:
// one per attached interface and hook; legacy filters have none).
func expectedLinkPins(mode Mode, in ObservedInstance) []string {
	if mode != ModeTCX {
		return nil
	}
	var out []string
	for _, iface := range in.Attached {
		for _, h := range module.Hooks {
			if _, ok := in.Programs[h]; ok {
				out = append(out, linkPinName(iface, h))
			}
		}
	}
	return out
}

// diagnosePins finds pins no instance owns (strayPins, as a restart's
// reconcile decides it) and pins an instance should have but lacks.
func diagnosePins(o Observed) []Problem {
	var ps []Problem
	stray := func(path, what string) {
		ps = append(ps, Problem{Kind: ProblemStrayPin, Severity: SeverityError, Subject: path,
			Message: fmt.Sprintf("%s is pinned but %s: it holds kernel memory (a pinned link keeps its program attached); remove it (rm -r %s) if nothing else of yours uses it", path, what, path)})
	}
	missing := func(in ObservedInstance, path, what string) {
		ps = append(ps, Problem{Kind: ProblemMissingPin, Severity: SeverityError, Subject: path,
			Message: fmt.Sprintf("%s: its %s pin %s is missing: a restart with persist cannot take it back (%s); load the instance again (netmanagerctl modules delete %s, then load) to pin it anew", in.label(), what, path,
				map[string]string{"map": "the map would start empty", "link": "its program would be attached anew, with a gap"}[what], in.ID)})
	}
	var ids []string
	byID := map[string]ObservedInstance{}
	for _, in := range o.Instances {
		ids = append(ids, in.ID)
		byID[in.ID] = in
	}
	for _, name := range strayPins(o.Pins, ids) {
		stray(filepath.Join(o.PinDir, name), "no module instance owns it")
	}
	for _, in := range o.Instances {
		d, ok := o.Dirs[in.ID]
		if !ok || d.Err != "" || in.Programs == nil { // no data plane: nothing of it is expected
			continue
		}
		dir := filepath.Join(o.PinDir, in.ID)
		for _, n := range d.Other {
			stray(filepath.Join(dir, n), in.label()+" does not pin it")
		}
		links := expectedLinkPins(o.Mode, in)
		for _, n := range strayPins(d.Links, links) {
			stray(filepath.Join(dir, "links", n), in.label()+" has no such attachment")
		}
		for _, n := range strayPins(d.Maps, in.Maps) {
			stray(filepath.Join(dir, "maps", n), in.label()+"'s data plane has no such map")
		}
		for _, n := range strayPins(links, d.Links) {
			missing(in, filepath.Join(dir, "links", n), "link")
		}
		for _, n := range strayPins(in.Maps, d.Maps) {
			missing(in, filepath.Join(dir, "maps", n), "map")
		}
	}
	return ps
}

// ourProgram is one of our programs on a hook.
type ourProgram struct {
	id   uint32
	inst ObservedInstance
}

// expectedOn lists, in chain order, our programs that should be on a hook
// (the instances attached to its interface with a program for it), and the
// IDs of every program of ours.
func expectedOn(o Observed, iface string, h module.Hook) []ourProgram {
	var out []ourProgram
	for _, in := range o.Instances {
		if id, ok := in.Programs[h]; ok && slices.Contains(in.Attached, iface) {
			out = append(out, ourProgram{id: id, inst: in})
		}
	}
	return out
}

// diagnoseHooks compares each hook's chain with what should be there: our
// programs present, in chain order, and nothing foreign. It returns the
// problems and how many foreign programs it found.
func diagnoseHooks(o Observed) ([]Problem, int) {
	owned := map[uint32]bool{}
	for _, in := range o.Instances {
		for _, id := range in.Programs {
			owned[id] = true
		}
	}
	var ps []Problem
	nForeign := 0
	for _, h := range o.Hooks {
		subject := fmt.Sprintf("%s %s", h.Interface, h.Hook)
		if h.Err != "" {
			ps = append(ps, Problem{Kind: ProblemMissingAttachment, Severity: SeverityError, Subject: subject,
				Message: fmt.Sprintf("cannot read the chain on %s: %s", subject, h.Err)})
			continue
		}
		want := expectedOn(o, h.Interface, h.Hook)
		ps = append(ps, diagnoseChain(h, subject, want)...)
		for _, f := range ForeignOn(h, owned) {
			nForeign++
			ps = append(ps, foreignProblem(f, subject))
		}
	}
	for _, in := range o.Instances {
		if in.State != StateRunning {
			continue
		}
		for _, t := range in.Targets {
			if !slices.Contains(in.Attached, t) {
				ps = append(ps, Problem{Kind: ProblemMissingAttachment, Severity: SeverityError, Subject: t,
					Message: fmt.Sprintf("%s applies to %s but is not attached to it: that interface's traffic passes without it; load the instance again (or redeploy the service) to attach it", in.label(), t)})
			}
		}
	}
	return ps, nForeign
}

// diagnoseChain finds our programs missing from a hook and ours out of
// order there.
func diagnoseChain(h ObservedHook, subject string, want []ourProgram) []Problem {
	var ps []Problem
	pos := map[uint32]int{}
	for i, id := range h.Chain {
		pos[id] = i
	}
	var wantOrder, present []uint32
	for _, p := range want {
		if _, ok := pos[p.id]; !ok {
			ps = append(ps, Problem{Kind: ProblemMissingAttachment, Severity: SeverityError, Subject: subject,
				Message: fmt.Sprintf("%s should run on %s but the kernel has not its program %d there (detached behind the daemon's back?): traffic passes without it; load the instance again to attach it", p.inst.label(), subject, p.id)})
			continue
		}
		wantOrder = append(wantOrder, p.id)
	}
	for _, id := range h.Chain {
		if slices.Contains(wantOrder, id) {
			present = append(present, id)
		}
	}
	if !slices.Equal(present, wantOrder) {
		names := func(ids []uint32) string {
			var s []string
			for _, id := range ids {
				for _, p := range want {
					if p.id == id {
						s = append(s, fmt.Sprintf("%s/%s (program %d)", p.inst.ID, p.inst.Name, id))
					}
				}
			}
			return strings.Join(s, ", ")
		}
		ps = append(ps, Problem{Kind: ProblemOutOfOrder, Severity: SeverityError, Subject: subject,
			Message: fmt.Sprintf("our programs on %s run in the order %s but the chain order is %s: reload the instances out of place (netmanagerctl modules update ID --priority P re-places one)", subject, names(present), names(wantOrder))})
	}
	return ps
}

// ForeignOn lists the programs of a hook's chain that are not owned (the
// restart's foreign, with the kernel's description and position). One
// ends the chain when no program of ours runs before it. It is pure.
func ForeignOn(h ObservedHook, owned map[uint32]bool) []ForeignInfo {
	ids := foreign(h.Chain, owned)
	if len(ids) == 0 {
		return nil
	}
	var out []ForeignInfo
	oursBefore := false
	for i, id := range h.Chain {
		if owned[id] {
			oursBefore = true
			continue
		}
		pi := h.Programs[id]
		out = append(out, ForeignInfo{Interface: h.Interface, Ifindex: h.Ifindex, Hook: h.Hook.String(), ID: id,
			Name: pi.Name, Tag: pi.Tag, Type: pi.Type, Position: i, EndsChain: !oursBefore})
	}
	return out
}

// describe is a foreign program as a message names it.
func (f ForeignInfo) describe() string {
	name := f.Name
	if name == "" {
		name = "(gone, or nameless)"
	}
	return fmt.Sprintf("program %d %q (tag %s) at position %d", f.ID, name, f.Tag, f.Position)
}

func foreignProblem(f ForeignInfo, subject string) Problem {
	p := Problem{Kind: ProblemForeign, Subject: subject, Foreign: &f}
	if f.EndsChain {
		p.Severity = SeverityError
		p.Message = fmt.Sprintf("%s on %s is not ours and runs before our first program: an accept or drop from it ends the chain, so our modules never see that traffic; remove it with the tool that attached it, or have it return next", f.describe(), subject)
	} else {
		p.Severity = SeverityWarning
		p.Message = fmt.Sprintf("%s on %s is not ours; it runs after our programs and sees only what our modules pass on", f.describe(), subject)
	}
	return p
}

// diagnoseFeatures reports what each module's data plane needs that the
// kernel lacks.
func diagnoseFeatures(o Observed) []Problem {
	var ps []Problem
	for _, f := range o.Features {
		subject := "module " + f.Module
		if f.Err != "" {
			ps = append(ps, Problem{Kind: ProblemKernelFeature, Severity: SeverityWarning, Subject: subject,
				Message: fmt.Sprintf("cannot read what module %s needs of the kernel: %s", f.Module, f.Err)})
			continue
		}
		if len(f.Missing) > 0 {
			ps = append(ps, Problem{Kind: ProblemKernelFeature, Severity: SeverityError, Subject: subject,
				Message: fmt.Sprintf("module %s needs what this kernel lacks: %s; it cannot load here (a newer kernel has it)", f.Module, strings.Join(features(f.Missing), ", "))})
		}
		if len(f.Degraded) > 0 {
			ps = append(ps, Problem{Kind: ProblemKernelFeature, Severity: SeverityWarning, Subject: subject,
				Message: fmt.Sprintf("module %s uses what this kernel lacks: %s; the calls that use it fail at run time unless the data plane falls back", f.Module, strings.Join(features(f.Degraded), ", "))})
		}
		if len(f.Inconclusive) > 0 {
			ps = append(ps, Problem{Kind: ProblemKernelFeature, Severity: SeverityWarning, Subject: subject,
				Message: fmt.Sprintf("the kernel's probes could not tell whether it has %s, which module %s needs", strings.Join(f.Inconclusive, ", "), f.Module)})
		}
	}
	return ps
}
