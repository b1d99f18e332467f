package kernel

import (
	"fmt"
	"io/fs"
	"os"
	"plugin"

	"github.com/oakestra/netmanager/ebpfManager/module"
)

// Plugins opens Go-plugin control planes; it implements ebpfmanager.Plugins.
type Plugins struct{}

// Stat describes a module's file or directory.
func (Plugins) Stat(path string) (fs.FileInfo, error) { return os.Stat(path) }

// Open loads a plugin and checks its exports against the SDK. A plugin built
// with another toolchain, other flags or other dependency versions fails here
// with the Go runtime's message naming the package.
func (Plugins) Open(path string) (module.NewFunc, module.MapSizesFunc, error) {
	p, err := plugin.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open control plane: %w", err)
	}
	sym, err := p.Lookup("New")
	if err != nil {
		return nil, nil, fmt.Errorf("control plane does not export New: %w", err)
	}
	newFn, ok := sym.(module.NewFunc)
	if !ok {
		return nil, nil, fmt.Errorf("control plane's New is a %T, want func(module.Base) (module.Module, error)", sym)
	}
	var sizes module.MapSizesFunc
	if sym, err := p.Lookup("MapSizes"); err == nil {
		if sizes, ok = sym.(module.MapSizesFunc); !ok {
			return nil, nil, fmt.Errorf("control plane's MapSizes is a %T, want func(json.RawMessage) (map[string]uint32, error)", sym)
		}
	}
	return newFn, sizes, nil
}
