package main

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
)

// dumpTranslations is every translation map's contents, as sorted
// "key=value" byte strings by map name.
func dumpTranslations(t *testing.T, d *dp) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, name := range []string{"services", "backends", "senders", "rr", "services6", "backends6", "senders6", "rr6",
		"remotes", "remotes6", "locals", "locals6"} {
		var k, v []byte
		it := d.coll.Maps[name].Iterate()
		for it.Next(&k, &v) {
			out[name] = append(out[name], fmt.Sprintf("%x=%x", k, v))
		}
		if err := it.Err(); err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		slices.Sort(out[name])
	}
	return out
}

// TestSyncWritesTheDifference: after a whole sync, further syncs write only
// what changed, and leave the maps exactly as a whole sync of the same
// state does: an instance detached, one web instance gone from the table,
// then one back.
func TestSyncWritesTheDifference(t *testing.T) {
	d := newDP(t)
	px := d.px
	step := func(name string, change func()) {
		t.Helper()
		px.mu.Lock()
		defer px.mu.Unlock()
		if px.last == nil {
			t.Fatalf("%s: no last sync kept after a whole one", name)
		}
		change()
		if err := px.sync(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := dumpTranslations(t, d)
		px.last = nil
		if err := px.sync(); err != nil {
			t.Fatalf("%s: whole sync: %v", name, err)
		}
		if want := dumpTranslations(t, d); !maps.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("%s: the maps after a difference sync\n%v\nare not those of a whole sync\n%v", name, got, want)
		}
	}
	before := dumpTranslations(t, d)
	step("instance 10.18.0.5 detached", func() { delete(px.attached, netip.MustParseAddr("10.18.0.5")) })
	all := d.table.entries
	step("web instance 1 gone from the table", func() { d.table.entries = slices.Delete(slices.Clone(all), 2, 3) })
	step("both back", func() { d.table.entries = all; px.attached = attachedAll() })
	if after := dumpTranslations(t, d); !maps.EqualFunc(before, after, slices.Equal) {
		t.Fatalf("back where it started, the maps differ:\n%v\n%v", before, after)
	}
}
