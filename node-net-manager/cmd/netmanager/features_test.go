package main

import (
	"slices"
	"strings"
	"testing"
)

func TestFeatureMask(t *testing.T) {
	for v, want := range map[string][]string{
		"":                               nil,
		"bpf_loop":                       {"bpf_loop"},
		" bpf_loop , tcx,,map_lru_hash ": {"bpf_loop", "tcx", "map_lru_hash"},
	} {
		got, err := featureMask(v)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("featureMask(%q) = %v, %v; want %v", v, got, err, want)
		}
	}
	for _, v := range []string{"bpf_nosuch", "bpf_loop,loop", "lru_hash"} {
		if _, err := featureMask(v); err == nil || !strings.Contains(err.Error(), maskEnv) {
			t.Errorf("featureMask(%q): %v, want an error naming %s", v, err, maskEnv)
		}
	}
}
