package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/oakestra/netmanager/modules/sdwan/sdwanpb"
)

// The sdwan command is a client of the sdwan module's gRPC Gateway API. Its
// flags become information elements (IEs) exactly as the module's ies.go
// decodes them: u32 big-endian, u8 one byte, an address prefix as the
// address bytes and one prefix-length byte, a port range as u16 lo, u16 hi.

const (
	sdwanDefaultAddr = "127.0.0.1:50051"
	sdwanTimeout     = 5 * time.Second
	ifaceLAN         = 0          // INTERFACE: the LAN (NON-GRE)
	ifaceLBR         = 0xffffffff // INTERFACE: the LBR
)

var (
	sdwanOperands = map[string]pb.Operand{"create": pb.Operand_CREATE, "update": pb.Operand_UPDATE, "delete": pb.Operand_DELETE}
	protoNumbers  = map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}
	actionNumbers = map[string]uint8{"pass": 1, "drop": 2, "redirect": 3}
)

const actionRedirect = 3

// takeGRPCFlag takes "sdwan --grpc ADDR ..." (the address before the
// subcommand, as the gRPC commands have always taken it) into e.grpc.
func takeGRPCFlag(e *env, args []string) ([]string, error) {
	e.grpc = sdwanDefaultAddr
	if args[0] != "sdwan" || len(args) < 2 || !strings.HasPrefix(args[1], "-") {
		return args, nil
	}
	fs := flag.NewFlagSet("sdwan", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&e.grpc, "grpc", sdwanDefaultAddr, "the sdwan module's gRPC address")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if err := dispatch(e, []string{"help", "sdwan"}); err != nil {
				return nil, err
			}
			return nil, errHelp
		}
		return nil, usageError{msg: "sdwan: " + err.Error()}
	}
	if fs.NArg() == 0 {
		return []string{"sdwan"}, nil
	}
	return append([]string{"sdwan"}, fs.Args()...), nil
}

// grpcError is the gateway's answer to a gRPC call that failed.
type grpcError struct {
	op string
	st *status.Status
}

func (g grpcError) Error() string { return g.op + ": " + g.st.Message() }

// grpcRefused reports whether err is the gateway refusing a request (as a
// 4xx would), as opposed to failing or not being reached.
func grpcRefused(err error) bool {
	var g grpcError
	if !errors.As(err, &g) {
		return false
	}
	switch g.st.Code() {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition,
		codes.OutOfRange, codes.PermissionDenied, codes.Unauthenticated:
		return true
	}
	return false
}

// gateway dials the sdwan module's gRPC server.
func (e *env) gateway() (pb.GatewayClient, func(), error) {
	conn, err := grpc.NewClient(e.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("sdwan: gRPC client for %s: %w", e.grpc, err)
	}
	return pb.NewGatewayClient(conn), func() { _ = conn.Close() }, nil
}

func sdwanListCmd(e *env, _, args []string) error {
	fs := e.flags(true)
	fs.StringVar(&e.grpc, "grpc", e.grpc, "the sdwan module's gRPC address")
	if _, err := e.parse(fs, args, 0); err != nil {
		return err
	}
	gw, done, err := e.gateway()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(e.ctx, sdwanTimeout)
	defer cancel()
	list, err := gw.List(ctx, &pb.ListRequest{})
	if err != nil {
		return grpcError{"sdwan list", status.Convert(err)}
	}
	return printRules(e.stdout, list, e.format == "json")
}

func sdwanApplyCmd(op string) func(e *env, _, args []string) error {
	return func(e *env, _, args []string) error {
		if len(args) == 0 || isHelp(args[0]) {
			fs := e.flags(false)
			if _, err := e.parse(fs, args, 1); err != nil || len(args) == 0 {
				return err
			}
		}
		req, err := parseApplyArgs(op, args, e.stdout)
		if err != nil {
			if ue, ok := err.(usageError); ok && ue.usage == nil {
				return e.errUsage("%s", ue.msg)
			}
			return err
		}
		gw, done, err := e.gateway()
		if err != nil {
			return err
		}
		defer done()
		ctx, cancel := context.WithTimeout(e.ctx, sdwanTimeout)
		defer cancel()
		reply, err := gw.Apply(ctx, req)
		if err != nil {
			return grpcError{fmt.Sprintf("sdwan %s %s", op, args[0]), status.Convert(err)}
		}
		_, err = fmt.Fprintf(e.stdout, "%s %s: ok (the gateway has pdrs %d, lbrs %d)\n", op, args[0], reply.GetPdrs(), reply.GetLbrs())
		return err
	}
}

// parseApplyArgs turns "pdr|lbr FLAGS" into the request of operand op.
// A help request prints the kind's flags to help.
func parseApplyArgs(op string, args []string, help io.Writer) (*pb.Request, error) {
	if len(args) == 0 || (args[0] != "pdr" && args[0] != "lbr") {
		return nil, usageError{msg: fmt.Sprintf("sdwan %s needs a rule kind first: pdr or lbr", op)}
	}
	kind, del := args[0], op == "delete"
	fs := flag.NewFlagSet("sdwan "+op+" "+kind, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		pf pdrFlags
		lf lbrFlags
	)
	if kind == "pdr" {
		pf.register(fs, del)
	} else {
		lf.register(fs, del)
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(help, "usage: netmanagerctl sdwan [--grpc HOST:PORT] %s %s FLAGS\n\nflags:\n", op, kind)
			fs.SetOutput(help)
			fs.PrintDefaults()
			return nil, errHelp
		}
		return nil, usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usageError{msg: fmt.Sprintf("sdwan %s %s: unexpected argument %q", op, kind, fs.Arg(0))}
	}
	var (
		rule *pb.Rule
		err  error
	)
	if kind == "pdr" {
		rule, err = encodePDRFlags(pf, del)
	} else {
		rule, err = encodeLBRFlags(lf, del)
	}
	if err != nil {
		return nil, usageError{msg: fmt.Sprintf("sdwan %s %s: %v", op, kind, err)}
	}
	return &pb.Request{Operand: sdwanOperands[op], Rules: []*pb.Rule{rule}}, nil
}

// pdrFlags are a PDR's flags as given; "" is a flag not given.
type pdrFlags struct {
	id, precedence, src, dst, proto, tos, srcPorts, dstPorts, action, iface string
}

func (f *pdrFlags) register(fs *flag.FlagSet, del bool) {
	fs.StringVar(&f.id, "id", "", "the PDR's id (required)")
	if del {
		return
	}
	fs.StringVar(&f.precedence, "precedence", "", "precedence: lower wins (default 0)")
	fs.StringVar(&f.src, "src", "", "source CIDR prefix or address")
	fs.StringVar(&f.dst, "dst", "", "destination CIDR prefix or address")
	fs.StringVar(&f.proto, "proto", "", "IP protocol: tcp, udp, icmp, icmpv6 or 0-255")
	fs.StringVar(&f.tos, "tos", "", "ToS byte, ECN bits zero (decimal or 0x..)")
	fs.StringVar(&f.srcPorts, "src-ports", "", "source port or range lo-hi")
	fs.StringVar(&f.dstPorts, "dst-ports", "", "destination port or range lo-hi")
	fs.StringVar(&f.action, "action", "", "pass, drop or redirect (required)")
	fs.StringVar(&f.iface, "interface", "", "a redirect's target: lan, lbr or a WAN number (1-based)")
}

// lbrFlags are an LBR's flags as given.
type lbrFlags struct {
	tos      string
	def      bool
	overlays []string
}

func (f *lbrFlags) register(fs *flag.FlagSet, del bool) {
	fs.StringVar(&f.tos, "tos", "", "the ToS class, ECN bits zero (decimal or 0x..)")
	fs.BoolVar(&f.def, "default", false, "the default class (every ToS without an LBR)")
	if del {
		return
	}
	fs.Func("overlay", "N:W: GRE-WAN N (1-based) with weight W (repeatable)", func(s string) error {
		f.overlays = append(f.overlays, s)
		return nil
	})
}

// encodePDRFlags turns a PDR's flags into its IEs, in the proto's IE order;
// a delete carries only RULE_ID.
func encodePDRFlags(f pdrFlags, del bool) (*pb.Rule, error) {
	if f.id == "" {
		return nil, errors.New("--id is required")
	}
	if !del && f.action == "" {
		return nil, errors.New("--action is required: pass, drop or redirect")
	}
	fields := []struct {
		flag, v string
		enc     func(string) (*pb.IE, error)
	}{
		{"--id", f.id, encodeU32(pb.IEType_RULE_ID)},
		{"--precedence", f.precedence, encodeU32(pb.IEType_PRECEDENCE)},
		{"--src", f.src, encodePrefix(pb.IEType_SRC_IP)},
		{"--dst", f.dst, encodePrefix(pb.IEType_DST_IP)},
		{"--proto", f.proto, encodeProto},
		{"--tos", f.tos, encodeTOS},
		{"--src-ports", f.srcPorts, encodePorts(pb.IEType_SRC_PORTS)},
		{"--dst-ports", f.dstPorts, encodePorts(pb.IEType_DST_PORTS)},
		{"--action", f.action, encodeAction},
		{"--interface", f.iface, encodeInterface},
	}
	var ies []*pb.IE
	for _, fl := range fields {
		if fl.v == "" {
			continue
		}
		ie, err := fl.enc(fl.v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fl.flag, err)
		}
		ies = append(ies, ie)
	}
	if !del {
		if err := checkPDRIEs(ies); err != nil {
			return nil, err
		}
	}
	return &pb.Rule{Type: pb.RuleType_PDR, Ies: ies}, nil
}

// checkPDRIEs checks what a PDR's flags say together.
func checkPDRIEs(ies []*pb.IE) error {
	src, dst := findIE(ies, pb.IEType_SRC_IP), findIE(ies, pb.IEType_DST_IP)
	if src != nil && dst != nil && len(src.Value) != len(dst.Value) {
		return errors.New("--src and --dst are of different address families")
	}
	if findIE(ies, pb.IEType_SRC_PORTS) != nil || findIE(ies, pb.IEType_DST_PORTS) != nil {
		p := findIE(ies, pb.IEType_PROTOCOL)
		if p == nil || (p.Value[0] != 6 && p.Value[0] != 17) {
			return errors.New("--src-ports/--dst-ports need --proto tcp or udp")
		}
	}
	redirect := findIE(ies, pb.IEType_ACTION).GetValue()[0] == actionRedirect
	iface := findIE(ies, pb.IEType_INTERFACE) != nil
	switch {
	case redirect && !iface:
		return errors.New("--action redirect needs --interface lan, lbr or a WAN number")
	case !redirect && iface:
		return errors.New("--interface is only for --action redirect")
	}
	return nil
}

func findIE(ies []*pb.IE, t pb.IEType) *pb.IE {
	for _, ie := range ies {
		if ie.GetType() == t {
			return ie
		}
	}
	return nil
}

// encodeLBRFlags turns an LBR's flags into its IEs: TOS or DEFAULT_CLASS,
// then INTERFACE, WEIGHT per overlay (a delete: the class alone).
func encodeLBRFlags(f lbrFlags, del bool) (*pb.Rule, error) {
	var ies []*pb.IE
	switch {
	case f.def && f.tos != "":
		return nil, errors.New("--tos and --default exclude each other")
	case f.def:
		ies = append(ies, newIE(pb.IEType_DEFAULT_CLASS, []byte{1}))
	case f.tos == "":
		return nil, errors.New("--tos T or --default is required")
	default:
		ie, err := encodeTOS(f.tos)
		if err != nil {
			return nil, fmt.Errorf("--tos: %w", err)
		}
		ies = append(ies, ie)
	}
	switch {
	case del && len(f.overlays) > 0:
		return nil, errors.New("a delete names only the class, not --overlay")
	case !del && len(f.overlays) == 0:
		return nil, errors.New("--overlay N:W is required (at least one)")
	}
	seen := map[uint32]bool{}
	for _, o := range f.overlays {
		wan, weight, err := parseOverlay(o)
		if err != nil {
			return nil, fmt.Errorf("--overlay: %w", err)
		}
		if seen[wan] {
			return nil, fmt.Errorf("--overlay: WAN %d is given twice", wan)
		}
		seen[wan] = true
		ies = append(ies, newIE(pb.IEType_INTERFACE, be32(wan)), newIE(pb.IEType_WEIGHT, be32(weight)))
	}
	return &pb.Rule{Type: pb.RuleType_LBR, Ies: ies}, nil
}

func newIE(t pb.IEType, v []byte) *pb.IE { return &pb.IE{Type: t, Length: uint32(len(v)), Value: v} }

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func encodeU32(t pb.IEType) func(string) (*pb.IE, error) {
	return func(s string) (*pb.IE, error) {
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number within 0-4294967295", s)
		}
		return newIE(t, be32(uint32(v))), nil
	}
}

// encodePrefix encodes a CIDR prefix (or an address: a full-length prefix)
// as its masked address bytes and the prefix length.
func encodePrefix(t pb.IEType) func(string) (*pb.IE, error) {
	return func(s string) (*pb.IE, error) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is not an IPv4 or IPv6 CIDR prefix or address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		p = p.Masked()
		return newIE(t, append(p.Addr().AsSlice(), byte(p.Bits()))), nil
	}
}

func encodeProto(s string) (*pb.IE, error) {
	n, ok := protoNumbers[strings.ToLower(s)]
	if !ok {
		v, err := strconv.ParseUint(s, 10, 8)
		if err != nil {
			return nil, fmt.Errorf("%q is not tcp, udp, icmp, icmpv6 or 0-255", s)
		}
		n = uint8(v)
	}
	return newIE(pb.IEType_PROTOCOL, []byte{n}), nil
}

// encodeTOS reads a ToS byte, decimal or 0x-prefixed hex.
func encodeTOS(s string) (*pb.IE, error) {
	base, digits := 10, s
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		base, digits = 16, h
	}
	v, err := strconv.ParseUint(digits, base, 8)
	if err != nil {
		return nil, fmt.Errorf("%q is not a ToS byte (0-255 or 0x00-0xff)", s)
	}
	if v&3 != 0 {
		return nil, fmt.Errorf("%s has ECN bits (0x03) set; they must be zero", s)
	}
	return newIE(pb.IEType_TOS, []byte{byte(v)}), nil
}

// encodePorts reads "80" or "1000-2000".
func encodePorts(t pb.IEType) func(string) (*pb.IE, error) {
	return func(s string) (*pb.IE, error) {
		lo, hi, found := strings.Cut(s, "-")
		if !found {
			hi = lo
		}
		a, err1 := strconv.ParseUint(lo, 10, 16)
		b, err2 := strconv.ParseUint(hi, 10, 16)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%q is not a port or a range lo-hi (0-65535)", s)
		}
		if a > b {
			return nil, fmt.Errorf("%q: the low port is above the high one", s)
		}
		v := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, uint16(a)), uint16(b))
		return newIE(t, v), nil
	}
}

func encodeAction(s string) (*pb.IE, error) {
	n, ok := actionNumbers[strings.ToLower(s)]
	if !ok {
		return nil, fmt.Errorf("%q is not pass, drop or redirect", s)
	}
	return newIE(pb.IEType_ACTION, []byte{n}), nil
}

func encodeInterface(s string) (*pb.IE, error) {
	switch strings.ToLower(s) {
	case "lan":
		return newIE(pb.IEType_INTERFACE, be32(ifaceLAN)), nil
	case "lbr":
		return newIE(pb.IEType_INTERFACE, be32(ifaceLBR)), nil
	}
	n, err := parseWAN(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not lan, lbr or a WAN number (1-based)", s)
	}
	return newIE(pb.IEType_INTERFACE, be32(n)), nil
}

// parseWAN reads a GRE-WAN's number: 1-based, below the LBR's 0xFFFFFFFF.
func parseWAN(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == ifaceLAN || n == ifaceLBR {
		return 0, fmt.Errorf("%q is not a WAN number (1-based)", s)
	}
	return uint32(n), nil
}

// parseOverlay reads "N:W": GRE-WAN N with weight W.
func parseOverlay(s string) (wan, weight uint32, err error) {
	n, w, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not N:W (WAN number:weight)", s)
	}
	if wan, err = parseWAN(n); err != nil {
		return 0, 0, fmt.Errorf("%q: %w", s, err)
	}
	v, err := strconv.ParseUint(w, 10, 32)
	if err != nil || v == 0 {
		return 0, 0, fmt.Errorf("%q: weight %q is not a number of at least 1", s, w)
	}
	return wan, uint32(v), nil
}

// pdrView is a listed PDR; "" and nil are fields the rule leaves open.
type pdrView struct {
	ID         uint32 `json:"id"`
	Precedence uint32 `json:"precedence"`
	Src        string `json:"src,omitempty"`
	Dst        string `json:"dst,omitempty"`
	Proto      string `json:"proto,omitempty"`
	TOS        *int   `json:"tos,omitempty"`
	SrcPorts   string `json:"srcPorts,omitempty"`
	DstPorts   string `json:"dstPorts,omitempty"`
	Action     string `json:"action"`
	Interface  string `json:"interface,omitempty"` // lan, lbr or the WAN number
}

// lbrView is a listed LBR: a ToS class or the default, and its overlays.
type lbrView struct {
	TOS      *int          `json:"tos,omitempty"`
	Default  bool          `json:"default,omitempty"`
	Overlays []overlayView `json:"overlays"`
}

type overlayView struct {
	WAN    uint32 `json:"wan"`
	Weight uint32 `json:"weight"`
}

type rulesView struct {
	PDRs []pdrView `json:"pdrs"`
	LBRs []lbrView `json:"lbrs"`
}

// ieLengths is each IE type's value length (0: 5 or 17, an address prefix).
var ieLengths = map[pb.IEType]int{
	pb.IEType_RULE_ID: 4, pb.IEType_PRECEDENCE: 4, pb.IEType_SRC_IP: 0, pb.IEType_DST_IP: 0,
	pb.IEType_PROTOCOL: 1, pb.IEType_TOS: 1, pb.IEType_SRC_PORTS: 4, pb.IEType_DST_PORTS: 4,
	pb.IEType_ACTION: 1, pb.IEType_INTERFACE: 4, pb.IEType_WEIGHT: 4, pb.IEType_DEFAULT_CLASS: 1,
}

func checkIELength(ie *pb.IE) error {
	want, ok := ieLengths[ie.GetType()]
	n := len(ie.GetValue())
	switch {
	case !ok:
		return fmt.Errorf("unknown IE type %d", ie.GetType())
	case want == 0 && n != 5 && n != 17, want != 0 && n != want:
		return fmt.Errorf("%s has a %d-byte value", ie.GetType(), n)
	}
	return nil
}

// viewRules decodes the listed rules' IEs.
func viewRules(list *pb.RuleList) (rulesView, error) {
	out := rulesView{PDRs: []pdrView{}, LBRs: []lbrView{}}
	for i, r := range list.GetRules() {
		switch r.GetType() {
		case pb.RuleType_PDR:
			v, err := viewPDR(r)
			if err != nil {
				return out, fmt.Errorf("rules[%d] (PDR): %w", i, err)
			}
			out.PDRs = append(out.PDRs, v)
		case pb.RuleType_LBR:
			v, err := viewLBR(r)
			if err != nil {
				return out, fmt.Errorf("rules[%d] (LBR): %w", i, err)
			}
			out.LBRs = append(out.LBRs, v)
		default:
			return out, fmt.Errorf("rules[%d]: type %d is not PDR or LBR", i, r.GetType())
		}
	}
	return out, nil
}

func viewPDR(r *pb.Rule) (pdrView, error) {
	var v pdrView
	for i, ie := range r.GetIes() {
		if err := checkIELength(ie); err != nil {
			return v, fmt.Errorf("ies[%d]: %w", i, err)
		}
		b := ie.GetValue()
		switch ie.GetType() {
		case pb.IEType_RULE_ID:
			v.ID = binary.BigEndian.Uint32(b)
		case pb.IEType_PRECEDENCE:
			v.Precedence = binary.BigEndian.Uint32(b)
		case pb.IEType_SRC_IP:
			v.Src = prefixString(b)
		case pb.IEType_DST_IP:
			v.Dst = prefixString(b)
		case pb.IEType_PROTOCOL:
			v.Proto = protoString(b[0])
		case pb.IEType_TOS:
			t := int(b[0])
			v.TOS = &t
		case pb.IEType_SRC_PORTS:
			v.SrcPorts = portsString(b)
		case pb.IEType_DST_PORTS:
			v.DstPorts = portsString(b)
		case pb.IEType_ACTION:
			v.Action = actionString(b[0])
		case pb.IEType_INTERFACE:
			v.Interface = interfaceString(binary.BigEndian.Uint32(b))
		default:
			return v, fmt.Errorf("ies[%d]: %s is not an IE of a PDR", i, ie.GetType())
		}
	}
	return v, nil
}

func viewLBR(r *pb.Rule) (lbrView, error) {
	v := lbrView{Overlays: []overlayView{}}
	for i, ie := range r.GetIes() {
		if err := checkIELength(ie); err != nil {
			return v, fmt.Errorf("ies[%d]: %w", i, err)
		}
		b := ie.GetValue()
		switch ie.GetType() {
		case pb.IEType_TOS:
			t := int(b[0])
			v.TOS = &t
		case pb.IEType_DEFAULT_CLASS:
			v.Default = b[0] == 1
		case pb.IEType_INTERFACE:
			v.Overlays = append(v.Overlays, overlayView{WAN: binary.BigEndian.Uint32(b), Weight: 1})
		case pb.IEType_WEIGHT:
			if len(v.Overlays) == 0 {
				return v, fmt.Errorf("ies[%d]: a WEIGHT before any INTERFACE", i)
			}
			v.Overlays[len(v.Overlays)-1].Weight = binary.BigEndian.Uint32(b)
		default:
			return v, fmt.Errorf("ies[%d]: %s is not an IE of an LBR", i, ie.GetType())
		}
	}
	return v, nil
}

func prefixString(b []byte) string {
	a, _ := netip.AddrFromSlice(b[:len(b)-1])
	return netip.PrefixFrom(a, int(b[len(b)-1])).String()
}

func protoString(n uint8) string {
	for name, v := range protoNumbers {
		if v == n {
			return name
		}
	}
	return strconv.Itoa(int(n))
}

func portsString(b []byte) string {
	lo, hi := binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])
	if lo == hi {
		return strconv.Itoa(int(lo))
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

func actionString(n uint8) string {
	for name, v := range actionNumbers {
		if v == n {
			return name
		}
	}
	return "action " + strconv.Itoa(int(n))
}

func interfaceString(n uint32) string {
	switch n {
	case ifaceLAN:
		return "lan"
	case ifaceLBR:
		return "lbr"
	}
	return strconv.FormatUint(uint64(n), 10)
}

// printRules prints the listed rules as JSON or as a PDR and an LBR table.
func printRules(w io.Writer, list *pb.RuleList, asJSON bool) error {
	v, err := viewRules(list)
	if err != nil {
		return fmt.Errorf("sdwan list: %w", err)
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	if len(v.PDRs) == 0 && len(v.LBRs) == 0 {
		fmt.Fprintln(w, "no rules")
		return nil
	}
	open := func(s string) string {
		if s == "" {
			return "*"
		}
		return s
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(v.PDRs) > 0 {
		fmt.Fprintln(tw, "PDR\tPRECEDENCE\tSRC\tDST\tPROTO\tTOS\tSRC PORTS\tDST PORTS\tACTION\tINTERFACE")
		for _, p := range v.PDRs {
			tos := "*"
			if p.TOS != nil {
				tos = strconv.Itoa(*p.TOS)
			}
			iface := p.Interface
			if iface == "" {
				iface = "-"
			}
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Precedence, open(p.Src), open(p.Dst),
				open(p.Proto), tos, open(p.SrcPorts), open(p.DstPorts), p.Action, iface)
		}
	}
	if len(v.PDRs) > 0 && len(v.LBRs) > 0 {
		fmt.Fprintln(tw)
	}
	if len(v.LBRs) > 0 {
		fmt.Fprintln(tw, "LBR CLASS\tOVERLAYS (WAN:WEIGHT)")
		for _, l := range v.LBRs {
			class := "default"
			if !l.Default && l.TOS != nil {
				class = "tos " + strconv.Itoa(*l.TOS)
			}
			var pairs []string
			for _, o := range l.Overlays {
				pairs = append(pairs, fmt.Sprintf("%d:%d", o.WAN, o.Weight))
			}
			fmt.Fprintf(tw, "%s\t%s\n", class, strings.Join(pairs, ","))
		}
	}
	return tw.Flush()
}
