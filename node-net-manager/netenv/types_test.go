package netenv

import (
	"errors"
	"fmt"
	"testing"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

func TestParsePortMappings(t *testing.T) {
	cases := []struct {
		in   string
		want string // fmt of the slice, or "error"
	}{
		{"", "[]"},
		{"80", "[80:80/tcp]"},
		{"8080:80", "[8080:80/tcp]"},
		{"8080:80/udp; 9000/tcp", "[8080:80/udp 9000:9000/tcp]"},
		{"53:53/udp,53:53/tcp", "[53:53/udp 53:53/tcp]"},
		{"80:80/TCP", "[80:80/tcp]"},
		{"80:80/sctp", "error"},
		{"0:80", "error"},
		{"80:70000", "error"},
		{"a:b", "error"},
		{"80;80", "error"},
		{"1:2:3", "error"},
	}
	for _, c := range cases {
		pms, err := ParsePortMappings(c.in)
		got := fmt.Sprint(pms)
		if pms == nil {
			got = "[]"
		}
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("%q: error %v does not wrap ErrInvalid", c.in, err)
			}
			got = "error"
		}
		if got != c.want {
			t.Errorf("ParsePortMappings(%q) = %s (%v), want %s", c.in, got, err, c.want)
		}
	}
}
