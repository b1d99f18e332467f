package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// DefaultRCUExpedited is the kernel's switch that makes every RCU grace
// period an expedited one.
const DefaultRCUExpedited = "/sys/kernel/rcu_expedited"

// An Expediter makes TCX attaches and detaches cheap. Each one waits, under
// the rtnl lock, for an RCU grace period (tcx_entry_sync): ~9 ms on this
// project's CI machines, so that loading a module onto 500 services took
// 1,000 such waits (~10 s) and a deploy with three modules six (~50 ms). An
// expedited grace period ends in tens of microseconds: it interrupts every
// CPU once instead of waiting for each to pass a quiescent state.
//
// The Expediter opens a window around each such call: it writes 1 to
// /sys/kernel/rcu_expedited when the switch is 0 and writes 0 again when
// the last window closes; a switch already 1 (an operator's choice) is
// left alone. While a window is open every grace period on the node is
// expedited, not only ours; windows last as long as the attach or detach.
// A marker file says a window is open, so that a daemon killed inside one
// can put the switch back at its next start (Repair).
//
// A node without the switch, or where it cannot be written (a read-only
// sysfs), gets no window: attaches work, at their usual cost; Err says why.
// The zero Expediter and a nil one do nothing.
type Expediter struct {
	path    string // the switch
	marker  string // exists while we hold the switch at 1
	onError func(error)
	mu      sync.Mutex
	depth   int  // open windows
	ours    bool // we wrote the 1 the switch holds
	taken   int  // how often we took the switch (tests read it)
	err     error
}

// ExpediterOptions name the Expediter's files.
type ExpediterOptions struct {
	Path   string // the switch: DefaultRCUExpedited when ""
	Marker string // a file of the daemon's state; required
	// OnError is told, once, why a window could not be opened or closed
	// (the Expediter then opens no more); nil: only Err says so.
	OnError func(error)
}

// NewExpediter returns an Expediter over the switch; it checks that the
// switch can be read (Err reports that it cannot, and the Expediter then
// does nothing).
func NewExpediter(o ExpediterOptions) (*Expediter, error) {
	if o.Marker == "" {
		return nil, errors.New("expediter: a marker file is required")
	}
	if o.Path == "" {
		o.Path = DefaultRCUExpedited
	}
	e := &Expediter{path: o.Path, marker: o.Marker, onError: o.OnError}
	if _, err := e.read(); err != nil {
		e.err = err
	}
	return e, nil
}

// Err says why the Expediter opens no windows, or nil.
func (e *Expediter) Err() error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

func (e *Expediter) read() (bool, error) {
	b, err := os.ReadFile(e.path)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", e.path, err)
	}
	switch string(bytes.TrimSpace(b)) {
	case "0":
		return false, nil
	case "":
		return false, fmt.Errorf("read %s: empty", e.path)
	}
	return true, nil // the kernel reads any non-zero number as on
}

func (e *Expediter) write(on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	if err := os.WriteFile(e.path, []byte(v), 0); err != nil {
		return fmt.Errorf("write %s to %s: %w", v, e.path, err)
	}
	return nil
}

// Repair puts the switch back to 0 when the marker says an earlier run left
// it at 1 (it was killed inside a window), and removes the marker. It
// reports whether it did so.
func (e *Expediter) Repair() (bool, error) {
	if e == nil {
		return false, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := os.Stat(e.marker); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if e.err == nil {
		if err := e.write(false); err != nil {
			return false, fmt.Errorf("put back the RCU switch an earlier run left on: %w", err)
		}
	}
	if err := os.Remove(e.marker); err != nil {
		return false, fmt.Errorf("remove %s: %w", e.marker, err)
	}
	return e.err == nil, nil
}

// Begin opens a window and returns the function that closes it. Windows
// nest and may overlap across goroutines: the switch goes back when the
// last one closes. A window that cannot be opened is no window; the error
// is kept for Err and the call it surrounds goes on at its usual cost.
func (e *Expediter) Begin() (end func()) {
	if e == nil || e.path == "" {
		return func() {}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return func() {}
	}
	if e.depth == 0 {
		if err := e.open(); err != nil {
			e.fail(err)
			return func() {}
		}
	}
	e.depth++
	var once sync.Once
	return func() { once.Do(e.end) }
}

// open takes the switch when it is off; the marker goes first, so that a
// switch left on always has one.
func (e *Expediter) open() error {
	on, err := e.read()
	if err != nil || on {
		return err // on: the operator's, or another's; we leave it be
	}
	if err := os.MkdirAll(filepath.Dir(e.marker), 0o700); err != nil {
		return fmt.Errorf("expediter marker: %w", err)
	}
	if err := os.WriteFile(e.marker, []byte(e.path+"\n"), 0o600); err != nil {
		return fmt.Errorf("expediter marker: %w", err)
	}
	if err := e.write(true); err != nil {
		os.Remove(e.marker)
		return err
	}
	e.ours = true
	e.taken++
	return nil
}

func (e *Expediter) end() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.depth--; e.depth > 0 || !e.ours {
		return
	}
	e.ours = false
	if err := e.write(false); err != nil {
		e.fail(err) // the marker stays: the next start repairs it
		return
	}
	os.Remove(e.marker)
}

// fail keeps why the Expediter stops and tells OnError; the caller holds mu.
func (e *Expediter) fail(err error) {
	e.err = err
	if e.onError != nil {
		e.onError(err)
	}
}
