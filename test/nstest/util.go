package nstest

import (
	"fmt"
	"syscall"
	"time"
)

func sleepShort() { time.Sleep(10 * time.Millisecond) }

// sameNetns reports whether the /proc ns link (e.g. "net:[4026532]") names the
// namespace bind-mounted at path.
func sameNetns(link, path string) bool {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return false
	}
	return link == fmt.Sprintf("net:[%d]", st.Ino)
}
