package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/gopacket/gopacket/layers"
	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/ebpfManager/module"
	"github.com/oakestra/netmanager/test/bpftest"
)

func load(t testing.TB) *ebpf.Collection {
	t.Helper()
	bpftest.RequireRoot(t)
	return bpftest.Load(t, bpftest.ModuleObject(t, "modules", "packetcounter"))
}

func frame(t testing.TB, payload int) []byte {
	return bpftest.Serialize(t, bpftest.Eth(layers.EthernetTypeIPv4),
		bpftest.IPv4("10.18.0.2", "10.18.0.3", layers.IPProtocolUDP), bpftest.UDP(1000, 2000), bpftest.Payload(make([]byte, payload)))
}

func sum(t *testing.T, m *ebpf.Map, k pcKey) pcValue {
	t.Helper()
	var perCPU []pcValue
	if err := m.Lookup(k, &perCPU); err != nil {
		t.Fatalf("lookup %+v: %v", k, err)
	}
	var s pcValue
	for _, v := range perCPU {
		s.Packets += v.Packets
		s.Bytes += v.Bytes
	}
	return s
}

// The data plane counts per hook and always says "next".
func TestDataPlaneCountsAndPassesOn(t *testing.T) {
	coll := load(t)
	lens := []int{0, 100, 1000}
	var want uint64
	for _, n := range lens {
		f := frame(t, n)
		want += uint64(len(f))
		verdict, out := bpftest.Run(t, coll.Programs[module.ProgramIngress], f)
		if verdict != -1 {
			t.Fatalf("verdict %s, want NEXT", bpftest.Verdict(verdict))
		}
		if string(out) != string(f) {
			t.Fatal("the counter changed the packet")
		}
	}
	// BPF_PROG_TEST_RUN runs on the loopback device (ifindex 1).
	got := sum(t, coll.Maps["counts"], pcKey{Ifindex: 1, Hook: 0})
	if got.Packets != uint64(len(lens)) || got.Bytes != want {
		t.Fatalf("ingress counts %+v, want %d packets %d bytes", got, len(lens), want)
	}
	if verdict, _ := bpftest.Run(t, coll.Programs[module.ProgramEgress], frame(t, 10)); verdict != -1 {
		t.Fatalf("egress verdict %s", bpftest.Verdict(verdict))
	}
	if got := sum(t, coll.Maps["counts"], pcKey{Ifindex: 1, Hook: 1}); got.Packets != 1 {
		t.Fatalf("egress counts %+v", got)
	}
}

// pcKey and pcValue mirror the C structs: same size, same member offsets.
func TestStructsMatchC(t *testing.T) {
	spec, err := ebpf.LoadCollectionSpec(bpftest.ModuleObject(t, "modules", "packetcounter"))
	if err != nil {
		t.Fatal(err)
	}
	for cName, goType := range map[string]reflect.Type{"pc_key": reflect.TypeOf(pcKey{}), "pc_value": reflect.TypeOf(pcValue{})} {
		var s *btf.Struct
		if err := spec.Types.TypeByName(cName, &s); err != nil {
			t.Fatalf("%s: %v", cName, err)
		}
		if int(s.Size) != int(goType.Size()) || len(s.Members) != goType.NumField() {
			t.Fatalf("%s: C size %d with %d members, Go size %d with %d fields", cName, s.Size, len(s.Members), goType.Size(), goType.NumField())
		}
		for i, m := range s.Members {
			if off := goType.Field(i).Offset; uint32(off)*8 != uint32(m.Offset) {
				t.Fatalf("%s.%s at bit %d, Go %s at byte %d", cName, m.Name, m.Offset, goType.Field(i).Name, off)
			}
		}
	}
}

// The control plane reports attached interfaces by name, directions named
// from the service's point of view, and forgets an interface on Detach.
func TestControlPlaneCounts(t *testing.T) {
	coll := load(t)
	router := mux.NewRouter()
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	mod, err := New(module.Base{ID: "1", Name: "packetcounter", Config: json.RawMessage(`{"maxInterfaces": 8}`), Router: router, Log: log,
		DataPlane: &module.DataPlane{Maps: coll.Maps, Programs: coll.Programs}})
	if err != nil {
		t.Fatal(err)
	}
	att := module.Attachment{Interface: module.Interface{Name: "oakveth", Ifindex: 1, Service: &module.Service{Name: "a.b.c.d"}}, Hooks: module.Hooks}
	if err := mod.Attach(att); err != nil {
		t.Fatal(err)
	}
	f := frame(t, 50)
	bpftest.Run(t, coll.Programs[module.ProgramEgress], f) // host veth egress = to the service
	bpftest.Run(t, coll.Programs[module.ProgramEgress], f)
	bpftest.Run(t, coll.Programs[module.ProgramIngress], f)

	rec := httptest.NewRecorder()
	router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/counts", nil))
	var got map[string]map[string]Totals
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 {
		t.Fatalf("GET /counts: %d %s", rec.Code, rec.Body)
	}
	want := map[string]map[string]Totals{"oakveth": {
		"ingress": {Packets: 2, Bytes: 2 * uint64(len(f))},
		"egress":  {Packets: 1, Bytes: uint64(len(f))},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("counts %+v, want %+v", got, want)
	}
	if err := mod.Detach(att); err != nil {
		t.Fatal(err)
	}
	if counts, _ := mod.(*Counter).Counts(); len(counts) != 0 {
		t.Fatalf("counts after detach: %+v", counts)
	}
	var perCPU []pcValue
	if err := coll.Maps["counts"].Lookup(pcKey{Ifindex: 1, Hook: 1}, &perCPU); err == nil {
		t.Fatal("detach left the interface's counters in the map")
	}
}

func TestConfig(t *testing.T) {
	sizes, err := MapSizes(json.RawMessage(`{"maxInterfaces": 100}`))
	if err != nil || sizes["counts"] != 200 {
		t.Fatalf("MapSizes: %v %v", sizes, err)
	}
	if sizes, _ := MapSizes(nil); sizes["counts"] != 2*defaultMaxInterfaces {
		t.Fatalf("default size %v", sizes)
	}
	for _, bad := range []string{`{"maxInterfaces": 0}`, `{"maxInterfaces": "x"}`, `[1]`} {
		if _, err := MapSizes(json.RawMessage(bad)); err == nil {
			t.Errorf("config %s accepted", bad)
		}
	}
}

// BenchmarkDataPlane measures ns/packet of the counter (an existing entry)
// next to a program that only returns "next", run the same way, so the two can
// be compared as a ratio.
func BenchmarkDataPlane(b *testing.B) {
	coll := load(b)
	noop := bpftest.Noop(b)
	f := frame(b, 18) // 60-byte frame
	for _, c := range []struct {
		name string
		prog *ebpf.Program
	}{{"noop", noop}, {"packetcounter", coll.Programs[module.ProgramIngress]}} {
		b.Run(c.name, func(b *testing.B) {
			if _, _, err := c.prog.Benchmark(f, 1, nil); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			_, per, err := c.prog.Benchmark(f, b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(per.Nanoseconds()), "ns/packet")
		})
	}
}
