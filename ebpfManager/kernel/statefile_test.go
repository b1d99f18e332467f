package kernel

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	ebpfmanager "github.com/oakestra/netmanager/ebpfManager"
)

// The state file round-trips, is replaced whole (no temporary file left),
// and an empty state removes it.
func TestStateFile(t *testing.T) {
	dir := t.TempDir()
	s := StateFile{Path: filepath.Join(dir, "ebpf.json")}
	if got, err := s.Load(); err != nil || got != nil {
		t.Fatalf("no file: %v %v", got, err)
	}
	want := []ebpfmanager.Declared{{ID: "1", Name: "firewall", Priority: 10, Config: json.RawMessage(`{"defaultPolicy":"deny"}`), State: json.RawMessage(`{"rules":[]}`)}}
	for i := 0; i < 2; i++ {
		if err := s.Save(want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Load()
	if err != nil || len(got) != 1 || got[0].Name != "firewall" || string(got[0].State) != `{"rules":[]}` {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Fatalf("files left: %v", es)
	}
	if err := s.Save(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path); !os.IsNotExist(err) {
		t.Fatalf("empty state kept the file: %v", err)
	}
	if err := os.WriteFile(s.Path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(); err == nil {
		t.Fatal("a broken file loaded")
	}
}
