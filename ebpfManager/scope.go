package ebpfmanager

import (
	"fmt"
	"regexp"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/table"
)

// AllServices in a request's services list selects every service.
const AllServices = "*"

var (
	moduleNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	ifnameRE     = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
)

// ValidateModuleName accepts [a-z0-9][a-z0-9_-]* up to 64 bytes: a name that
// can only ever name a directory inside the modules directory.
func ValidateModuleName(name string) error {
	if !moduleNameRE.MatchString(name) {
		return fmt.Errorf("%w: module name %q must match [a-z0-9][a-z0-9_-]* (at most 64 bytes)", errdefs.ErrInvalid, name)
	}
	return nil
}

// scope is the set of interfaces an instance applies to: service veths (all
// of them, or those of named services) and named host interfaces.
type scope struct {
	allServices bool
	services    map[string]bool
	interfaces  []string
}

// newScope validates a request's selectors. Without any, an instance applies
// to every service; with only interfaces, to those interfaces alone.
func newScope(services, interfaces []string) (scope, error) {
	s := scope{services: map[string]bool{}}
	for _, name := range services {
		if name == AllServices {
			s.allServices = true
			continue
		}
		if err := table.ValidateServiceName(name); err != nil {
			return s, fmt.Errorf("services: %w", err)
		}
		s.services[name] = true
	}
	seen := map[string]bool{}
	for _, ifn := range interfaces {
		if !ifnameRE.MatchString(ifn) {
			return s, fmt.Errorf("%w: interfaces: %q is not an interface name", errdefs.ErrInvalid, ifn)
		}
		if seen[ifn] {
			return s, fmt.Errorf("%w: interfaces: %q is listed twice", errdefs.ErrInvalid, ifn)
		}
		seen[ifn] = true
		s.interfaces = append(s.interfaces, ifn)
	}
	if len(services) == 0 && len(interfaces) == 0 {
		s.allServices = true
	}
	return s, nil
}

// wantsService reports whether the instance applies to a service's veth.
func (s scope) wantsService(name string) bool {
	return s.allServices || s.services[name]
}

// list returns the service selector as the API shows it.
func (s scope) list() []string {
	var out []string
	if s.allServices {
		out = append(out, AllServices)
	}
	for name := range s.services {
		out = append(out, name)
	}
	return out
}
