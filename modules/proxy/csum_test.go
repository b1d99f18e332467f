package main

import (
	"encoding/binary"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/oakestra/netmanager/test/bpftest"
)

// sum16 is bpftest.Sum16.
func sum16(sum uint32, b []byte) uint32 { return bpftest.Sum16(sum, b) }

// pseudo is the pseudo-header sum of an L4 segment.
func pseudo(src, dst []byte, proto uint8, length int) uint32 {
	s := sum16(sum16(0, src), dst)
	if len(src) == 4 {
		return sum16(s, []byte{0, proto, byte(length >> 8), byte(length)})
	}
	return sum16(s, []byte{0, 0, byte(length >> 8), byte(length), 0, 0, 0, proto})
}

func equiv(a, b uint16) bool { return a == b || a|b == 0xffff && (a == 0 || b == 0) }

// csum_update (common.bpf.h), run in the kernel on inputs from Go: the new
// checksum field must be right for the rewritten addresses, for a complete
// checksum (CHECKSUM_NONE, UNNECESSARY) and for the pseudo-header sum a
// CHECKSUM_PARTIAL skb carries — which test runs of the whole data plane
// cannot produce — with UDP's "0 is no checksum" rule.
func TestChecksumUpdate(t *testing.T) {
	bpftest.RequireRoot(t)
	src := "#include <linux/bpf.h>\n#include \"" + filepath.Join(bpftest.RepoRoot(t), "modules", "proxy", "common.bpf.h") + "\"\n" + `
struct csum_case {
	__u8 eth[14];
	__u16 old; /* 14 */
	__u32 diff; /* 16 */
	__u16 partial; /* 20 */
	__u16 mmzero; /* 22 */
	__u16 out; /* 24 */
};

SEC("tc") int csum_case(struct __sk_buff *skb)
{
	struct csum_case *c = (void *)(long)skb->data;
	if ((void *)(c + 1) > (void *)(long)skb->data_end)
		return 0;
	c->out = csum_update(c->old, c->diff, c->partial, c->mmzero);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
`
	file := filepath.Join(t.TempDir(), "csum_case.c")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	prog := bpftest.Load(t, bpftest.Compile(t, file)).Programs["csum_case"]
	update := func(field []byte, diff uint32, partial, mmzero bool) []byte {
		in := make([]byte, 28) // sizeof(struct csum_case)
		copy(in[14:], field)
		binary.NativeEndian.PutUint32(in[16:], diff)
		if partial {
			in[20] = 1
		}
		if mmzero {
			in[22] = 1
		}
		v, out := bpftest.Run(t, prog, in)
		if v != 1 {
			t.Fatalf("csum_case did not run: %d", v)
		}
		return out[24:26]
	}
	rng := rand.New(rand.NewSource(1))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b)
		return b
	}
	for i := 0; i < 3000; i++ {
		alen, proto, ckOff := 4, uint8(6), 16
		if i%2 == 1 {
			alen = 16
		}
		if i%3 == 0 {
			proto, ckOff = 17, 6
		}
		oldSrc, oldDst, newSrc, newDst := randBytes(alen), randBytes(alen), randBytes(alen), randBytes(alen)
		seg := randBytes(20 + rng.Intn(40))
		seg[ckOff], seg[ckOff+1] = 0, 0
		diff := rewriteDiff([][]byte{oldSrc, oldDst}, [][]byte{newSrc, newDst})
		mmzero := proto == 17
		// A complete checksum.
		full := ^uint16(sum16(pseudo(oldSrc, oldDst, proto, len(seg)), seg))
		if mmzero && full == 0 {
			full = 0xffff
		}
		binary.BigEndian.PutUint16(seg[ckOff:], full)
		copy(seg[ckOff:], update(seg[ckOff:ckOff+2], diff, false, mmzero))
		if got := sum16(pseudo(newSrc, newDst, proto, len(seg)), seg); got != 0xffff {
			t.Fatalf("case %d: complete checksum after the update does not verify (sum %#04x)", i, got)
		}
		if mmzero && seg[ckOff] == 0 && seg[ckOff+1] == 0 {
			t.Fatalf("case %d: UDP checksum updated to 0", i)
		}
		// A CHECKSUM_PARTIAL field: the pseudo-header sum, not complemented.
		var field [2]byte
		binary.BigEndian.PutUint16(field[:], uint16(pseudo(oldSrc, oldDst, proto, len(seg))))
		got := binary.BigEndian.Uint16(update(field[:], diff, true, mmzero))
		if want := uint16(pseudo(newSrc, newDst, proto, len(seg))); !equiv(got, want) {
			t.Fatalf("case %d: partial field %#04x, want %#04x", i, got, want)
		}
	}
	// UDP without a checksum keeps none.
	if out := update([]byte{0, 0}, 0x12345678, false, true); out[0] != 0 || out[1] != 0 {
		t.Fatalf("UDP without checksum: %x", out)
	}
	// An update to 0 (the field 12 34 loads as 0x3412; ~0x3412 + 0x3412 is a
	// sum of zero): UDP sends 0xffff, TCP 0.
	if out := update([]byte{0x12, 0x34}, 0x3412, false, true); out[0] != 0xff || out[1] != 0xff {
		t.Fatalf("UDP checksum updated to %x, want ffff", out)
	}
	if out := update([]byte{0x12, 0x34}, 0x3412, false, false); out[0] != 0 || out[1] != 0 {
		t.Fatalf("TCP checksum updated to %x, want 0000", out)
	}
}

// Where the kernel lacks bpf_cast_to_kern_ctx the loader zeroes the weak
// kfunc and every checksum goes through bpf_l4_csum_replace: the object
// built against a kfunc no kernel has loads and translates as well.
func TestWithoutKernCtx(t *testing.T) {
	bpftest.RequireRoot(t)
	src := "#define PX_KERN_CTX bpf_px_no_such_kfunc\n#include \"" + filepath.Join(bpftest.RepoRoot(t), "modules", "proxy", "proxy.bpf.c") + "\"\n"
	file := filepath.Join(t.TempDir(), "nokfunc.c")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	d := setupDP(t, bpftest.Compile(t, file), false)
	cases := []struct {
		frame    []byte
		src, dst string
		dmac     byte
		v6       bool
	}{
		{tcpFrame(t, "10.18.0.2", "10.30.0.1", 1, 80), "10.30.0.2", "10.18.0.3", 3, false},
		{bpftest.Serialize(t, eth(), bpftest.IPv4("10.18.0.2", "10.30.0.12", layers.IPProtocolUDP), bpftest.UDP(5000, 7000), bpftest.Payload([]byte("x"))), "10.30.0.2", "10.18.0.5", 5, false},
		{tcp6(t, "fd00:18::2", "fdff:2000::1", 1, 80), "fdff:2000::2", "fd00:18::3", 3, true},
		{udp6(t, "fd00:18::2", "fdff:2000::b", 1, 53), "fdff:2000::2", "fd00:18::4", 4, true},
		{echo6(t, "fd00:18::2", "fdff:2000::c", 128, 9), "fdff:2000::2", "fd00:18::5", 5, true},
	}
	for _, c := range cases {
		v, out := d.run(t, c.frame)
		if v != redirect {
			t.Fatalf("%s: %s", c.dst, bpftest.Verdict(v))
		}
		if c.v6 {
			check6(t, out, c.src, c.dst, c.dmac)
		} else {
			check(t, out, c.src, c.dst, c.dmac)
		}
	}
	// ICMP errors never needed the kfunc: they are translated as well.
	sent := tcp6(t, "fd00:18::2", "fdff:2000::1", 2, 80)
	checkErr(t, d, icmp6Err(t, "fd00:18::4", "fdff:2000::2", 2, 0, 1280, send(t, d, sent)), "fdff:2000::1", "fd00:18::2", bpftest.MACA[5], l3(sent))
	sent = tcpFrame(t, "10.18.0.2", "10.30.0.1", 2, 80)
	checkErr(t, d, icmp4Err(t, "10.18.0.4", "10.30.0.2", 3, 4, 1400, send(t, d, sent)[:28]), "10.30.0.1", "10.18.0.2", bpftest.MACA[5], l3(sent)[:28])
}
