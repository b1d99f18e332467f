package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	pb "github.com/oakestra/netmanager/modules/sdwan/sdwanpb"
)

// wantIE builds an IE from hex, with its length counted here (not by the
// code under test).
func wantIE(t pb.IEType, h string) *pb.IE {
	v, err := hex.DecodeString(h)
	if err != nil {
		panic(err)
	}
	return &pb.IE{Type: t, Length: uint32(len(v)), Value: v}
}

type flagCase struct {
	name string
	op   string
	args []string
	want []*pb.IE // the rule's IEs, or nil when err is set
	err  string   // a substring of the usage error
}

// checkFlagCases runs "sdwan OP KIND ARGS" through the flag parser and
// encoder and compares the request with the expected IEs or error.
func checkFlagCases(t *testing.T, kind string, rt pb.RuleType, cases []flagCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := parseApplyArgs(tc.op, append([]string{kind}, tc.args...), io.Discard)
			if tc.err != "" {
				var ue usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want a usage error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			want := &pb.Request{Operand: sdwanOperands[tc.op], Rules: []*pb.Rule{{Type: rt, Ies: tc.want}}}
			if !proto.Equal(req, want) {
				t.Fatalf("request\n%s\nwant\n%s", prototext.Format(req), prototext.Format(want))
			}
		})
	}
}

func TestSdwanPDRFlags(t *testing.T) {
	id := wantIE(pb.IEType_RULE_ID, "00000007")
	drop := wantIE(pb.IEType_ACTION, "02")
	redirect := wantIE(pb.IEType_ACTION, "03")
	tcp := wantIE(pb.IEType_PROTOCOL, "06")
	with := func(extra ...string) []string { return append([]string{"--id", "7", "--action", "drop"}, extra...) }
	redir := func(iface string) []string {
		return []string{"--id", "7", "--action", "redirect", "--interface", iface}
	}
	checkFlagCases(t, "pdr", pb.RuleType_PDR, []flagCase{
		{name: "id and action", op: "create", args: with(), want: []*pb.IE{id, drop}},
		{name: "id max", op: "create", args: []string{"--id", "4294967295", "--action", "pass"},
			want: []*pb.IE{wantIE(pb.IEType_RULE_ID, "ffffffff"), wantIE(pb.IEType_ACTION, "01")}},
		{name: "precedence", op: "update", args: with("--precedence", "300"), want: []*pb.IE{id, wantIE(pb.IEType_PRECEDENCE, "0000012c"), drop}},
		{name: "src IPv4 prefix", op: "create", args: with("--src", "10.1.0.0/16"), want: []*pb.IE{id, wantIE(pb.IEType_SRC_IP, "0a010000"+"10"), drop}},
		{name: "src masked", op: "create", args: with("--src", "10.1.2.3/16"), want: []*pb.IE{id, wantIE(pb.IEType_SRC_IP, "0a010000"+"10"), drop}},
		{name: "dst IPv4 address", op: "create", args: with("--dst", "192.168.1.5"), want: []*pb.IE{id, wantIE(pb.IEType_DST_IP, "c0a80105"+"20"), drop}},
		{name: "dst IPv6 prefix", op: "create", args: with("--dst", "2001:db8::/32"),
			want: []*pb.IE{id, wantIE(pb.IEType_DST_IP, "20010db8000000000000000000000000"+"20"), drop}},
		{name: "src IPv6 address", op: "create", args: with("--src", "fd00::1"),
			want: []*pb.IE{id, wantIE(pb.IEType_SRC_IP, "fd000000000000000000000000000001"+"80"), drop}},
		{name: "proto tcp", op: "create", args: with("--proto", "tcp"), want: []*pb.IE{id, tcp, drop}},
		{name: "proto UDP", op: "create", args: with("--proto", "UDP"), want: []*pb.IE{id, wantIE(pb.IEType_PROTOCOL, "11"), drop}},
		{name: "proto icmp", op: "create", args: with("--proto", "icmp"), want: []*pb.IE{id, wantIE(pb.IEType_PROTOCOL, "01"), drop}},
		{name: "proto icmpv6", op: "create", args: with("--proto", "icmpv6"), want: []*pb.IE{id, wantIE(pb.IEType_PROTOCOL, "3a"), drop}},
		{name: "proto number", op: "create", args: with("--proto", "47"), want: []*pb.IE{id, wantIE(pb.IEType_PROTOCOL, "2f"), drop}},
		{name: "tos decimal", op: "create", args: with("--tos", "184"), want: []*pb.IE{id, wantIE(pb.IEType_TOS, "b8"), drop}},
		{name: "tos hex", op: "create", args: with("--tos", "0x28"), want: []*pb.IE{id, wantIE(pb.IEType_TOS, "28"), drop}},
		{name: "src ports range", op: "create", args: with("--proto", "tcp", "--src-ports", "1000-2000"),
			want: []*pb.IE{id, tcp, wantIE(pb.IEType_SRC_PORTS, "03e8"+"07d0"), drop}},
		{name: "dst port", op: "create", args: with("--proto", "tcp", "--dst-ports", "443"),
			want: []*pb.IE{id, tcp, wantIE(pb.IEType_DST_PORTS, "01bb"+"01bb"), drop}},
		{name: "redirect lan", op: "create", args: redir("lan"), want: []*pb.IE{id, redirect, wantIE(pb.IEType_INTERFACE, "00000000")}},
		{name: "redirect lbr", op: "create", args: redir("lbr"), want: []*pb.IE{id, redirect, wantIE(pb.IEType_INTERFACE, "ffffffff")}},
		{name: "redirect WAN 2", op: "create", args: redir("2"), want: []*pb.IE{id, redirect, wantIE(pb.IEType_INTERFACE, "00000002")}},
		{name: "IE order is the proto's, not the flags'", op: "create",
			args: []string{"--action", "drop", "--tos", "4", "--id", "7", "--precedence", "1"},
			want: []*pb.IE{id, wantIE(pb.IEType_PRECEDENCE, "00000001"), wantIE(pb.IEType_TOS, "04"), drop}},
		{name: "delete", op: "delete", args: []string{"--id", "7"}, want: []*pb.IE{id}},

		{name: "no id", op: "create", args: []string{"--action", "drop"}, err: "--id is required"},
		{name: "delete without id", op: "delete", args: nil, err: "--id is required"},
		{name: "no action", op: "create", args: []string{"--id", "7"}, err: "--action is required"},
		{name: "id not a number", op: "create", args: []string{"--id", "x", "--action", "drop"}, err: `--id: "x" is not a number`},
		{name: "id too big", op: "create", args: []string{"--id", "4294967296", "--action", "drop"}, err: "--id:"},
		{name: "precedence negative", op: "create", args: with("--precedence", "-1"), err: "--precedence:"},
		{name: "src prefix too long", op: "create", args: with("--src", "10.0.0.0/33"), err: `--src: "10.0.0.0/33" is not`},
		{name: "dst not an address", op: "create", args: with("--dst", "host"), err: "--dst:"},
		{name: "mixed families", op: "create", args: with("--src", "10.0.0.0/8", "--dst", "fd00::/8"), err: "different address families"},
		{name: "proto unknown", op: "create", args: with("--proto", "sctp"), err: `--proto: "sctp" is not tcp`},
		{name: "proto too big", op: "create", args: with("--proto", "256"), err: "--proto:"},
		{name: "tos ECN bits", op: "create", args: with("--tos", "1"), err: "--tos: 1 has ECN bits"},
		{name: "tos too big", op: "create", args: with("--tos", "256"), err: "--tos:"},
		{name: "ports reversed", op: "create", args: with("--proto", "udp", "--src-ports", "2000-1000"), err: "--src-ports:"},
		{name: "ports not numbers", op: "create", args: with("--proto", "udp", "--dst-ports", "http"), err: "--dst-ports:"},
		{name: "port too big", op: "create", args: with("--proto", "udp", "--dst-ports", "65536"), err: "--dst-ports:"},
		{name: "ports without tcp or udp", op: "create", args: with("--dst-ports", "80"), err: "need --proto tcp or udp"},
		{name: "action unknown", op: "create", args: []string{"--id", "7", "--action", "forward"}, err: `--action: "forward" is not`},
		{name: "redirect without interface", op: "create", args: []string{"--id", "7", "--action", "redirect"}, err: "needs --interface"},
		{name: "interface without redirect", op: "create", args: with("--interface", "lan"), err: "only for --action redirect"},
		{name: "interface 0", op: "create", args: redir("0"), err: `--interface: "0" is not lan, lbr or a WAN number`},
		{name: "interface name", op: "create", args: redir("wan-a"), err: "--interface:"},
		{name: "delete with a match field", op: "delete", args: []string{"--id", "7", "--action", "drop"}, err: "-action"},
		{name: "unknown flag", op: "create", args: with("--color", "red"), err: "-color"},
		{name: "stray argument", op: "create", args: with("extra"), err: `unexpected argument "extra"`},
	})
	for _, args := range [][]string{nil, {"--id", "7"}, {"far"}} {
		if _, err := parseApplyArgs("create", args, io.Discard); err == nil || !strings.Contains(err.Error(), "needs a rule kind first: pdr or lbr") {
			t.Errorf("create %q: error %v, want the rule kind's", args, err)
		}
	}
}

func TestSdwanLBRFlags(t *testing.T) {
	tos := wantIE(pb.IEType_TOS, "28")
	def := wantIE(pb.IEType_DEFAULT_CLASS, "01")
	wan := func(n, w string) []*pb.IE {
		return []*pb.IE{wantIE(pb.IEType_INTERFACE, n), wantIE(pb.IEType_WEIGHT, w)}
	}
	ies := func(lists ...[]*pb.IE) []*pb.IE {
		var out []*pb.IE
		for _, l := range lists {
			out = append(out, l...)
		}
		return out
	}
	checkFlagCases(t, "lbr", pb.RuleType_LBR, []flagCase{
		{name: "tos class, two overlays", op: "create", args: []string{"--tos", "40", "--overlay", "1:3", "--overlay", "2:1"},
			want: ies([]*pb.IE{tos}, wan("00000001", "00000003"), wan("00000002", "00000001"))},
		{name: "default class", op: "update", args: []string{"--default", "--overlay", "3:1000"},
			want: ies([]*pb.IE{def}, wan("00000003", "000003e8"))},
		{name: "tos hex", op: "create", args: []string{"--tos", "0x28", "--overlay", "1:1"}, want: ies([]*pb.IE{tos}, wan("00000001", "00000001"))},
		{name: "delete tos", op: "delete", args: []string{"--tos", "40"}, want: []*pb.IE{tos}},
		{name: "delete default", op: "delete", args: []string{"--default"}, want: []*pb.IE{def}},

		{name: "no class", op: "create", args: []string{"--overlay", "1:1"}, err: "--tos T or --default is required"},
		{name: "both classes", op: "create", args: []string{"--tos", "40", "--default", "--overlay", "1:1"}, err: "exclude each other"},
		{name: "tos ECN bits", op: "create", args: []string{"--tos", "3", "--overlay", "1:1"}, err: "--tos: 3 has ECN bits"},
		{name: "no overlay", op: "create", args: []string{"--tos", "40"}, err: "--overlay N:W is required"},
		{name: "overlay without weight", op: "create", args: []string{"--tos", "40", "--overlay", "1"}, err: `--overlay: "1" is not N:W`},
		{name: "overlay WAN 0", op: "create", args: []string{"--tos", "40", "--overlay", "0:1"}, err: "is not a WAN number"},
		{name: "overlay lan", op: "create", args: []string{"--tos", "40", "--overlay", "lan:1"}, err: "is not a WAN number"},
		{name: "overlay weight 0", op: "create", args: []string{"--tos", "40", "--overlay", "1:0"}, err: `weight "0"`},
		{name: "overlay weight not a number", op: "create", args: []string{"--tos", "40", "--overlay", "1:x"}, err: `weight "x"`},
		{name: "overlay twice", op: "create", args: []string{"--tos", "40", "--overlay", "1:1", "--overlay", "1:2"}, err: "WAN 1 is given twice"},
		{name: "delete with overlay", op: "delete", args: []string{"--tos", "40", "--overlay", "1:1"}, err: "-overlay"},
	})
}

func TestSdwanViewRoundTrip(t *testing.T) {
	req, err := parseApplyArgs("create", []string{"pdr", "--id", "9", "--precedence", "5", "--src", "10.0.0.0/8", "--dst", "10.2.0.1",
		"--proto", "udp", "--tos", "0xb8", "--src-ports", "1000-2000", "--dst-ports", "53", "--action", "redirect", "--interface", "lbr"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	v, err := viewPDR(req.Rules[0])
	if err != nil {
		t.Fatal(err)
	}
	tos := 0xb8
	want := pdrView{ID: 9, Precedence: 5, Src: "10.0.0.0/8", Dst: "10.2.0.1/32", Proto: "udp", TOS: &tos,
		SrcPorts: "1000-2000", DstPorts: "53", Action: "redirect", Interface: "lbr"}
	got, _ := json.Marshal(v)
	exp, _ := json.Marshal(want)
	if !bytes.Equal(got, exp) {
		t.Fatalf("view %s, want %s", got, exp)
	}
	bad := &pb.Rule{Type: pb.RuleType_PDR, Ies: []*pb.IE{{Type: pb.IEType_RULE_ID, Length: 2, Value: []byte{0, 1}}}}
	if _, err := viewRules(&pb.RuleList{Rules: []*pb.Rule{bad}}); err == nil || !strings.Contains(err.Error(), "RULE_ID has a 2-byte value") {
		t.Fatalf("malformed IE: error %v", err)
	}
}

// fakeGateway records the requests it gets and answers with its reply,
// rules or error.
type fakeGateway struct {
	pb.UnimplementedGatewayServer
	mu    sync.Mutex
	reqs  []*pb.Request
	rules *pb.RuleList
	err   error
}

func (f *fakeGateway) Apply(_ context.Context, r *pb.Request) (*pb.Reply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r)
	if f.err != nil {
		return nil, f.err
	}
	return &pb.Reply{Pdrs: 3, Lbrs: 1}, nil
}

func (f *fakeGateway) List(context.Context, *pb.ListRequest) (*pb.RuleList, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rules, nil
}

func (f *fakeGateway) take() []*pb.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reqs
	f.reqs = nil
	return r
}

func startFakeGateway(t *testing.T, f *fakeGateway) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterGatewayServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func runCtl(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	rc := run(args, &out, &errb)
	return rc, out.String(), errb.String()
}

func TestSdwanAgainstFakeGateway(t *testing.T) {
	f := &fakeGateway{}
	addr := startFakeGateway(t, f)

	rc, out, errs := runCtl("sdwan", "--grpc", addr, "create", "pdr", "--id", "7", "--precedence", "10", "--src", "10.0.0.0/8",
		"--proto", "tcp", "--dst-ports", "443", "--action", "redirect", "--interface", "2")
	if rc != 0 || out != "create pdr: ok (the gateway has pdrs 3, lbrs 1)\n" {
		t.Fatalf("create: rc %d, stdout %q, stderr %q", rc, out, errs)
	}
	want := &pb.Request{Operand: pb.Operand_CREATE, Rules: []*pb.Rule{{Type: pb.RuleType_PDR, Ies: []*pb.IE{
		wantIE(pb.IEType_RULE_ID, "00000007"), wantIE(pb.IEType_PRECEDENCE, "0000000a"), wantIE(pb.IEType_SRC_IP, "0a000000"+"08"),
		wantIE(pb.IEType_PROTOCOL, "06"), wantIE(pb.IEType_DST_PORTS, "01bb01bb"), wantIE(pb.IEType_ACTION, "03"),
		wantIE(pb.IEType_INTERFACE, "00000002"),
	}}}}
	if got := f.take(); len(got) != 1 || !proto.Equal(got[0], want) {
		t.Fatalf("server got %v, want\n%s", got, prototext.Format(want))
	}

	rc, _, errs = runCtl("sdwan", "--grpc", addr, "delete", "lbr", "--default")
	want = &pb.Request{Operand: pb.Operand_DELETE, Rules: []*pb.Rule{{Type: pb.RuleType_LBR, Ies: []*pb.IE{wantIE(pb.IEType_DEFAULT_CLASS, "01")}}}}
	if got := f.take(); rc != 0 || len(got) != 1 || !proto.Equal(got[0], want) {
		t.Fatalf("delete lbr: rc %d, stderr %q, server got %v", rc, errs, got)
	}

	// The server's refusal: its message, exit 3.
	f.mu.Lock()
	f.err = status.Error(codes.AlreadyExists, "rule 7 exists (use update)")
	f.mu.Unlock()
	rc, out, errs = runCtl("sdwan", "--grpc", addr, "create", "pdr", "--id", "7", "--action", "drop")
	if rc != 3 || out != "" || errs != "netmanagerctl: sdwan create pdr: rule 7 exists (use update)\n" {
		t.Fatalf("server error: rc %d, stdout %q, stderr %q", rc, out, errs)
	}
	f.take()

	// A bad flag: a usage error, exit 2, nothing sent.
	if rc, _, errs = runCtl("sdwan", "--grpc", addr, "create", "pdr", "--id", "7", "--action", "drop", "--tos", "3"); rc != 2 || !strings.Contains(errs, "--tos: 3 has ECN bits") {
		t.Fatalf("bad flag: rc %d, stderr %q", rc, errs)
	}
	if got := f.take(); len(got) != 0 {
		t.Fatalf("a bad flag sent %v", got)
	}

	testSdwanList(t, f, addr)
}

// testSdwanList lists rules the encoder made, as a table and as JSON.
func testSdwanList(t *testing.T, f *fakeGateway, addr string) {
	t.Helper()
	pdr, _ := parseApplyArgs("create", []string{"pdr", "--id", "7", "--precedence", "10", "--src", "10.0.0.0/8", "--proto", "tcp",
		"--dst-ports", "443", "--action", "redirect", "--interface", "2"}, io.Discard)
	lbr, _ := parseApplyArgs("create", []string{"lbr", "--tos", "40", "--overlay", "1:3", "--overlay", "2:1"}, io.Discard)
	def, _ := parseApplyArgs("create", []string{"lbr", "--default", "--overlay", "1:1"}, io.Discard)
	f.mu.Lock()
	f.rules = &pb.RuleList{Rules: []*pb.Rule{pdr.Rules[0], lbr.Rules[0], def.Rules[0]}}
	f.mu.Unlock()

	rc, out, errs := runCtl("sdwan", "--grpc", addr, "list")
	wantOut := `PDR  PRECEDENCE  SRC         DST  PROTO  TOS  SRC PORTS  DST PORTS  ACTION    INTERFACE
7    10          10.0.0.0/8  *    tcp    *    *          443        redirect  2

LBR CLASS  OVERLAYS (WAN:WEIGHT)
tos 40     1:3,2:1
default    1:1
`
	if rc != 0 || out != wantOut {
		t.Fatalf("list: rc %d, stderr %q, stdout\n%s\nwant\n%s", rc, errs, out, wantOut)
	}

	rc, out, errs = runCtl("sdwan", "--grpc", addr, "list", "--json")
	var got rulesView
	if err := json.Unmarshal([]byte(out), &got); rc != 0 || err != nil {
		t.Fatalf("list --json: rc %d, stderr %q, %v: %s", rc, errs, err, out)
	}
	if len(got.PDRs) != 1 || got.PDRs[0].DstPorts != "443" || got.PDRs[0].Interface != "2" ||
		len(got.LBRs) != 2 || *got.LBRs[0].TOS != 40 || got.LBRs[0].Overlays[0] != (overlayView{WAN: 1, Weight: 3}) || !got.LBRs[1].Default {
		t.Fatalf("list --json: %s", out)
	}

	f.mu.Lock()
	f.rules = &pb.RuleList{}
	f.mu.Unlock()
	if rc, out, _ = runCtl("sdwan", "--grpc", addr, "list"); rc != 0 || out != "no rules\n" {
		t.Fatalf("empty list: rc %d, stdout %q", rc, out)
	}
}

func TestSdwanUnreachable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	rc, _, errs := runCtl("sdwan", "--grpc", addr, "list")
	if rc != 1 || !strings.HasPrefix(errs, "netmanagerctl: sdwan list: ") || !strings.Contains(errs, "connection refused") {
		t.Fatalf("unreachable: rc %d, stderr %q", rc, errs)
	}
}
