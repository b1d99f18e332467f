package bench

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// blastUDP sends payload on the connected UDP socket conn for d, 64
// datagrams per sendmmsg(2) (so the sender's system calls, not the path,
// cost least), and returns how many it sent.
func blastUDP(conn *net.UDPConn, payload []byte, d time.Duration) (int, error) {
	const batch = 64
	iov := make([]unix.Iovec, batch)
	msgs := make([]unix.Mmsghdr, batch)
	for i := range msgs {
		iov[i].Base = &payload[0]
		iov[i].SetLen(len(payload))
		msgs[i].Hdr.Iov = &iov[i]
		msgs[i].Hdr.SetIovlen(1)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	sent := 0
	var serr error
	start := time.Now()
	for time.Since(start) < d && serr == nil {
		err := rc.Write(func(fd uintptr) bool {
			n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), batch, 0, 0, 0)
			switch e {
			case 0:
				sent += int(n)
			case unix.EAGAIN:
				return false // wait until writable
			case unix.ENOBUFS, unix.ECONNREFUSED:
			default:
				serr = fmt.Errorf("sendmmsg: %w", e)
			}
			return true
		})
		if err != nil {
			return sent, err
		}
	}
	return sent, serr
}

// udpPassed is how many datagrams the UDP layer of the namespace of
// process pid took in: delivered to a socket (InDatagrams) or refused for
// a full receive buffer or another error (InErrors), i.e. every datagram
// that came through the path, however fast its reader is.
func udpPassed(pid int) (uint64, error) { return udpCounters(pid, "InDatagrams", "InErrors") }

// udpCounters is the sum of the named Udp counters of /proc/<pid>/net/snmp.
func udpCounters(pid int, names ...string) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/snmp", pid))
	if err != nil {
		return 0, err
	}
	var head []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		var sum uint64
		for i, n := range head {
			if slices.Contains(names, n) && i < len(f) {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					return 0, err
				}
				sum += v
			}
		}
		return sum, nil
	}
	return 0, fmt.Errorf("no Udp counters in /proc/%d/net/snmp", pid)
}
