package ebpfmanager

import (
	"testing"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

type reasonerMod struct {
	module.Module
	reasons map[uint32]string
}

func (r reasonerMod) DropReasons() map[uint32]string { return r.reasons }

func TestDropReasonName(t *testing.T) {
	named := reasonerMod{reasons: map[uint32]string{1: "rule", 2: "default deny", 3: ""}}
	for _, c := range []struct {
		mod  module.Module
		code uint32
		want string
	}{
		{named, 0, "unspecified"},
		{named, 1, "rule"},
		{named, 2, "default deny"},
		{named, 3, "reason 3"},   // an empty name is no name
		{named, 63, "reason 63"}, // not named
		{nil, 0, "unspecified"},
		{nil, 5, "reason 5"}, // a module without DropReasons
	} {
		if got := dropReasonName(c.mod, c.code); got != c.want {
			t.Errorf("dropReasonName(%T, %d) = %q, want %q", c.mod, c.code, got, c.want)
		}
	}
}
