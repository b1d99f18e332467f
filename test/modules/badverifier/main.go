// Command badverifier is a test-only module whose data plane the verifier
// rejects: the eBPF Manager must answer 422 quoting the verifier log.
package main

import (
	"errors"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// New is never reached: the data plane fails to load first.
func New(module.Base) (module.Module, error) { return nil, errors.New("unreachable") }

var _ module.NewFunc = New

func main() {}
