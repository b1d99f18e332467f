package trace

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// What the tracer (Session) and the drop monitor (DropSession) share, as
// bpf/common.bpf.h shares it between their programs.

// Filter flags both programs have (struct config.flags); bit 5 is each
// program's own (fDrops, dHook).
const (
	fIfindex = 1 << 0
	fProto   = 1 << 1
	fHost4   = 1 << 2
	fHost6   = 1 << 3
	fPort    = 1 << 4
)

// config is struct config of bpf/common.bpf.h.
type config struct {
	Flags uint32
	Proto uint8
	Hooks uint8 // the drop monitor's only
	Port  [2]byte
	Host  [16]byte
	Rate  uint64
	Burst uint64
}

// setPacket sets the filter's packet part: IP protocol (0: any), source or
// destination host (invalid: any) and port (0: any).
func (c *config) setPacket(proto uint8, host netip.Addr, port uint16) {
	if proto != 0 {
		c.Flags, c.Proto = c.Flags|fProto, proto
	}
	if host.IsValid() {
		h := host.Unmap()
		if h.Is4() {
			c.Flags |= fHost4
		} else {
			c.Flags |= fHost6
		}
		copy(c.Host[:], h.AsSlice())
	}
	if port != 0 {
		c.Flags |= fPort
		binary.BigEndian.PutUint16(c.Port[:], port)
	}
}

// rawFlow is struct flow of bpf/common.bpf.h.
type rawFlow struct {
	Family, Proto uint8
	Sport, Dport  [2]byte
	Saddr, Daddr  [16]byte
}

// addrs are the flow's addresses (invalid for a packet that is not IP) and
// ports.
func (f rawFlow) addrs() (src, dst netip.Addr, sport, dport uint16) {
	switch f.Family {
	case 4:
		src, dst = netip.AddrFrom4([4]byte(f.Saddr[:4])), netip.AddrFrom4([4]byte(f.Daddr[:4]))
	case 6:
		src, dst = netip.AddrFrom16(f.Saddr), netip.AddrFrom16(f.Daddr)
	}
	return src, dst, binary.BigEndian.Uint16(f.Sport[:]), binary.BigEndian.Uint16(f.Dport[:])
}

// events reads a ring buffer of fixed-size records stamped with
// bpf_ktime_get_ns.
type events struct {
	rd   *ringbuf.Reader
	boot time.Time // wall time of ktime 0
}

func newEvents(m *ebpf.Map) (*events, error) {
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		return nil, fmt.Errorf("ring buffer reader: %w", err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		_ = rd.Close()
		return nil, fmt.Errorf("monotonic clock: %w", err)
	}
	return &events{rd: rd, boot: time.Now().Add(-time.Duration(ts.Nano()))}, nil
}

// read decodes the next record (a what) into v (a pointer to its raw struct); after
// deadline (zero: none) it returns an error satisfying
// errors.Is(err, os.ErrDeadlineExceeded), after close ErrClosed.
func (e *events) read(deadline time.Time, what string, v any) error {
	e.rd.SetDeadline(deadline)
	rec, err := e.rd.Read()
	if errors.Is(err, ringbuf.ErrClosed) {
		return ErrClosed
	}
	if err != nil {
		return err
	}
	if err := binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}

// time is the wall time of a bpf_ktime_get_ns stamp.
func (e *events) time(ktime uint64) time.Time {
	return e.boot.Add(time.Duration(ktime))
}

// close is safe on a nil *events (a session that failed before its reader).
func (e *events) close() {
	if e != nil {
		_ = e.rd.Close()
	}
}

// sumLost is the total of a one-entry per-CPU array of counters.
func sumLost(m *ebpf.Map) (uint64, error) {
	var per []uint64
	if err := m.Lookup(uint32(0), &per); err != nil {
		return 0, err
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}
