package netenv

import (
	"os"
	"testing"
)

func TestProcessRunning(t *testing.T) {
	for _, c := range []struct {
		stat string
		want bool
	}{
		{"123 (sleep) S 1 123 123 0", true},
		{"123 (sleep) R 1", true},
		{"123 (sleep) D 1", true},
		{"123 (sleep) Z 1 123", false},
		{"123 (sleep) X 1", false},
		{"123 (a) Z (b)) S 1", true}, // a command name holding ") Z ("
		{"123 (truncated", false},
		{"", false},
	} {
		if got := processRunning(c.stat); got != c.want {
			t.Errorf("%q: %v, want %v", c.stat, got, c.want)
		}
	}
	var e Env
	if !e.ProcessExists(os.Getpid()) || e.ProcessExists(0) || e.ProcessExists(1<<30) {
		t.Fatal("ProcessExists: this process, pid 0, a pid that cannot exist")
	}
}
