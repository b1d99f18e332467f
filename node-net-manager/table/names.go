package table

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/oakestra/netmanager/node-net-manager/errdefs"
)

var namePartRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// ValidateServiceName checks Oakestra's app.appns.svc.svcns form.
func ValidateServiceName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: serviceName is required", errdefs.ErrInvalid)
	}
	parts := strings.Split(name, ".")
	if len(parts) != 4 {
		return fmt.Errorf("%w: serviceName %q must have four dot-separated parts (app.appns.service.servicens), it has %d", errdefs.ErrInvalid, name, len(parts))
	}
	for _, p := range parts {
		if !namePartRE.MatchString(p) {
			return fmt.Errorf("%w: serviceName %q: part %q must be 1-63 of [A-Za-z0-9_-], starting with a letter or digit", errdefs.ErrInvalid, name, p)
		}
	}
	return nil
}
