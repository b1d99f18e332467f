package ebpfmanager

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// fakeSamples are what fake modules report as their metrics, by module name.
var fakeSamples = map[string]func() ([]module.Metric, error){}

// Metrics makes every fake module a module.MetricsReporter.
func (f *fakeModule) Metrics() ([]module.Metric, error) {
	if fn := fakeSamples[f.base.Name]; fn != nil {
		return fn()
	}
	return nil, nil
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, ModeTCX)
	h.m.opts.RunStats = true
	good := []module.Metric{{Name: "packets_total", Labels: map[string]string{"interface": "oak1"}, Value: 7}}
	fakeSamples["counter"] = func() ([]module.Metric, error) { return good, nil }
	fakeSamples["dropper"] = func() ([]module.Metric, error) { return nil, errors.New("map gone") }
	fakeSamples["other"] = func() ([]module.Metric, error) {
		return []module.Metric{{Name: "hits", Value: 1}}, nil // a counter without _total
	}
	t.Cleanup(func() { clear(fakeSamples) })

	for i := 1; i <= 2; i++ {
		if err := h.deploy(t, svc("a.b.c.d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c := h.load(t, "counter", 10)
	h.load(t, "dropper", 20)
	h.load(t, "other", 30)
	if _, err := h.m.Load(LoadRequest{Name: "missing"}); err == nil {
		t.Fatal("loading a missing module succeeded")
	}
	if err := h.m.Delete("99"); err == nil {
		t.Fatal("deleting a missing instance succeeded")
	}
	id, _ := h.m.insts[c.ID].dp.ProgramID(module.HookEgress)
	h.k.runs[id] = RunStats{Runs: 5, RunTime: 250 * time.Nanosecond}

	got := h.m.Metrics()
	wantOps := []OperationCount{
		{Operation: OpDelete, Error: "not_found", Count: 1},
		{Operation: OpLoad, Count: 3},
		{Operation: OpLoad, Error: "not_found", Count: 1},
		{Operation: OpServiceCreated, Count: 2},
	}
	if !reflect.DeepEqual(got.Operations, wantOps) {
		t.Errorf("operations = %+v, want %+v", got.Operations, wantOps)
	}
	if len(got.Instances) != 3 {
		t.Fatalf("instances = %+v", got.Instances)
	}
	ci := got.Instances[0]
	if ci.ID != c.ID || ci.Module != "counter" || ci.State != StateRunning || ci.Attachments != 2 {
		t.Errorf("counter instance = %+v", ci)
	}
	wantProgs := []ProgramMetrics{{Hook: module.HookIngress}, {Hook: module.HookEgress, RunStats: RunStats{Runs: 5, RunTime: 250}}}
	if !reflect.DeepEqual(ci.Programs, wantProgs) || !reflect.DeepEqual(ci.Samples, good) || ci.Error != nil {
		t.Errorf("counter: programs %+v samples %+v error %v", ci.Programs, ci.Samples, ci.Error)
	}
	if e := got.Instances[1].Error; e == nil || !strings.Contains(e.Error(), "map gone") || got.Instances[1].Samples != nil {
		t.Errorf("dropper: error %v samples %+v", e, got.Instances[1].Samples)
	}
	if e := got.Instances[2].Error; e == nil || !strings.Contains(e.Error(), "_total") {
		t.Errorf("other: error %v, want the CheckMetrics refusal", e)
	}

	h.m.opts.RunStats = false
	if p := h.m.Metrics().Instances[0].Programs; p != nil {
		t.Errorf("without RunStats the programs are read: %+v", p)
	}
}
