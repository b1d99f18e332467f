package main

// Go mirrors of the structs and constants in sdwan.h (TestStructsMatchC
// checks sizes and offsets against the object's BTF).

const (
	sdMaxWANs      = 8
	sdGens         = 4
	sdMaxRules     = 256
	sdWords        = sdMaxRules / 64
	sdLBRSlots     = 128
	sdClasses      = 64
	sdClassDefault = sdClasses
	sdPorts        = 65536

	sdRoleLAN = 1
	sdRoleWAN = 2

	sdPass     = 1
	sdDrop     = 2
	sdRedirect = 3

	sdTargetLAN = 0xfe
	sdTargetLBR = 0xff

	sdProbeProto   = 0x88b5
	sdProbeMagic   = 0x53445750
	sdProbeRequest = 1
	sdProbeReply   = 2

	sdTosInherit = 0x100
)

// statNames names the stats map's counters by index (enum sd_stat).
var statNames = []string{"noMatch", "farPass", "farDrop", "toLan", "noWan", "failover", "mtuDrop", "mssClamped",
	"encapError", "unknownPeer", "malformed", "decapError", "toStack", "probesReflected", "probeReplies", "flowsClassified",
	"nexthopLookups"}

type (
	sdBits  [sdWords]uint64
	sdState struct {
		Gen         uint32
		Epoch       uint32
		DefaultDrop uint32
		Pad         uint32
	}
	sdRole struct{ Role, WAN uint32 }
	sdWAN  struct {
		Ifindex  uint32
		Up       uint32
		Local    [4]byte
		Peer     [4]byte
		Nexthop  [4]byte
		MTU      uint32
		TOS      uint32
		CsumBase uint32
		TTL      uint32
		Pad      uint32
	}
	sdRule struct {
		Precedence uint32
		Action     uint8
		Target     uint8
		Pad        uint16
	}
	sdRuleset struct {
		Enabled                              sdBits
		AnySrc4, AnyDst4, AnySrc6, AnyDst6   sdBits
		AnyProto, AnyTOS, AnySport, AnyDport sdBits
		Rule                                 [sdMaxRules]sdRule
	}
	sdLPM4 struct {
		Prefixlen uint32
		Addr      [4]byte
	}
	sdLPM6 struct {
		Prefixlen uint32
		Addr      [16]byte
	}
	sdLBR struct {
		Nslots uint32
		WAN    [sdLBRSlots]uint8
	}
	sdFlowKey struct {
		Family, Proto, TOS, Pad uint8
		Sport, Dport            [2]byte
		Src, Dst                [16]byte
	}
	sdFlow struct {
		Epoch  uint32
		Rule   uint16
		Action uint8
		Target uint8
		WAN    uint8
		Pad    [3]uint8
		Hash   uint32
	}
	sdWANStat  struct{ TxPackets, TxBytes, RxPackets, RxBytes uint64 }
	sdCache    struct{ Gen, NHSlots uint32 }
	sdRoleSlot struct {
		Ifindex, Gen uint32
		Role         sdRole
	}
	sdNH struct {
		Gen, Ifindex, MTU uint32
		DMAC, SMAC        [6]byte
	}
	sdNHKey struct {
		Family, Proto, TOS, Pad uint8
		Ifindex                 uint32
		Src, Dst                [16]byte
	}
	sdNHSlot struct {
		Key sdNHKey
		NH  sdNH
	}
)
