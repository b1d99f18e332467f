package main

import (
	"reflect"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/oakestra/netmanager/test/bpftest"
)

// Every Go mirror in maps.go has the size, field count and field offsets of
// its struct in sdwan.h, read from the object's BTF.
func TestStructsMatchC(t *testing.T) {
	spec, err := ebpf.LoadCollectionSpec(bpftest.ModuleObject(t, "modules", "sdwan"))
	if err != nil {
		t.Fatal(err)
	}
	for cName, v := range map[string]any{"sd_state": sdState{}, "sd_role": sdRole{}, "sd_wan": sdWAN{}, "sd_rule": sdRule{},
		"sd_ruleset": sdRuleset{}, "sd_lpm4": sdLPM4{}, "sd_lpm6": sdLPM6{}, "sd_lbr": sdLBR{}, "sd_flow_key": sdFlowKey{},
		"sd_flow": sdFlow{}, "sd_wan_stat": sdWANStat{}, "sd_cache": sdCache{}, "sd_role_slot": sdRoleSlot{}, "sd_nh": sdNH{},
		"sd_nh_key": sdNHKey{}, "sd_nh_slot": sdNHSlot{}} {
		var s *btf.Struct
		if err := spec.Types.TypeByName(cName, &s); err != nil {
			t.Fatalf("%s: %v", cName, err)
		}
		gt := reflect.TypeOf(v)
		if int(s.Size) != int(gt.Size()) || len(s.Members) != gt.NumField() {
			t.Fatalf("%s: C %d bytes/%d members, Go %d bytes/%d fields", cName, s.Size, len(s.Members), gt.Size(), gt.NumField())
		}
		for i, m := range s.Members {
			if uint32(gt.Field(i).Offset)*8 != uint32(m.Offset) {
				t.Errorf("%s.%s at bit %d, Go %s at byte %d", cName, m.Name, m.Offset, gt.Field(i).Name, gt.Field(i).Offset)
			}
		}
	}
	if n := spec.Maps["rulesets"].MaxEntries; n != sdGens {
		t.Errorf("rulesets has %d generations, sdGens is %d", n, sdGens)
	}
	var bits *btf.Struct
	if err := spec.Types.TypeByName("sd_bits", &bits); err != nil || int(bits.Size) != int(reflect.TypeOf(sdBits{}).Size()) {
		t.Fatalf("sd_bits: %v", err)
	}
}
