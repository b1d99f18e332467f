package ebpfmanager

import (
	"errors"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

func TestScope(t *testing.T) {
	cases := []struct {
		name                 string
		services, interfaces []string
		svc                  string
		wants                bool
	}{
		{"default is every service", nil, nil, "a.b.c.d", true},
		{"named service", []string{"a.b.c.d"}, nil, "a.b.c.d", true},
		{"other service", []string{"a.b.c.d"}, nil, "a.b.c.e", false},
		{"interfaces only", nil, []string{"eth0"}, "a.b.c.d", false},
		{"interfaces and every service", []string{"*"}, []string{"eth0"}, "a.b.c.d", true},
	}
	for _, c := range cases {
		s, err := newScope(c.services, c.interfaces)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := s.wantsService(c.svc); got != c.wants {
			t.Errorf("%s: wantsService(%s) = %v", c.name, c.svc, got)
		}
	}
}

func TestScopeRejects(t *testing.T) {
	for _, c := range []struct{ services, interfaces []string }{
		{[]string{"web"}, nil},
		{nil, []string{"../x"}},
		{nil, []string{"a-name-much-too-long"}},
		{nil, []string{"eth0", "eth0"}},
	} {
		if _, err := newScope(c.services, c.interfaces); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("newScope(%v, %v) = %v, want ErrInvalid", c.services, c.interfaces, err)
		}
	}
}

func TestValidateModuleName(t *testing.T) {
	for _, ok := range []string{"packetcounter", "fw2", "my_mod-1", "0"} {
		if err := ValidateModuleName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "A", "../x", "x/y", ".", "-x", "_x", "a b", "x.so"} {
		if err := ValidateModuleName(bad); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%q accepted", bad)
		}
	}
}
