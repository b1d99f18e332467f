package main

// Go mirrors of the structs in proxy.h (TestStructsMatchC checks them).
// Addresses and ports are kept in network byte order, as the data plane has them.
type (
	pxConfig struct {
		RangeAddr  [4]byte
		RangeMask  [4]byte
		GwMAC      [6]byte
		Pad        uint16
		Range6Addr [16]byte
		Range6Mask [16]byte
		NodeIP     [4]byte // the inter-node tunnel: this node's end (zero: no kernel tunnel)
		TunnelPort [2]byte
		Pad2       uint16
		UlIfindex  uint32 // the underlay interface
	}
	pxService struct {
		Kind  uint32 // 0 round robin, 1 instance
		Count uint32
	}
	pxBackendKey struct {
		ServiceIP [4]byte
		Index     uint32
	}
	pxBackend struct {
		NsIP     [4]byte
		Ifindex  uint32 // 0 on another node
		MAC      [6]byte
		NodePort [2]byte // another node's tunnel
		NodeIP   [4]byte
	}
	pxFlow struct {
		Src, Dst     [4]byte
		Sport, Dport [2]byte
		Proto        uint8
		Pad          [3]uint8
	}
	pxSession struct {
		NewSrc, NewDst [4]byte
		Ifindex        uint32
		MAC            [6]byte
		Pad            uint16
		CsumDiff       uint32 // checksum change of the rewrite, precomputed
		LastSeen       uint64
		NodeIP         [4]byte // tunnel to this node (zero: deliver here)
		NodePort       [2]byte
		Pad2           uint16
		FromNode       [4]byte // the node the flow's packets come from (zero: a service here)
		Pad3           uint32
	}
	pxBackendKey6 struct {
		ServiceIP [16]byte
		Index     uint32
	}
	pxBackend6 struct {
		NsIP     [16]byte
		Ifindex  uint32
		MAC      [6]byte
		NodePort [2]byte
		NodeIP   [4]byte
	}
	pxFlow6 struct {
		Src, Dst     [16]byte
		Sport, Dport [2]byte
		Proto        uint8
		Pad          [3]uint8
	}
	pxSession6 struct {
		NewSrc, NewDst [16]byte
		Ifindex        uint32
		MAC            [6]byte
		Pad            uint16
		CsumDiff       uint32
		NodeIP         [4]byte
		NodePort       [2]byte
		Pad2           uint16
		FromNode       [4]byte
	}
	pxNexthop struct {
		Ifindex    uint32
		MTU        uint32
		DMAC, SMAC [6]byte
	}
	pxPeer struct {
		TxPackets, TxBytes uint64 // encapsulated to the node
		RxPackets, RxBytes uint64 // decapsulated from it
	}
	pxMiss struct {
		Family    uint8 // 4 or 6
		Proto     uint8
		Pad       uint16
		ServiceIP [16]byte // IPv4: the first 4 bytes
		Sender    [16]byte
	}
)

// stats indexes (proxy.h) and their names in GET /stats
const (
	statHit = iota
	statNew
	statPass
	statMalformed
	statError
	statV6Ext
	statMissDropped
	statICMPError
	statICMPErrorNoFlow
	statTunTooBig
	statTunNoRoute
	statDecapUnknownPeer
	statDecapNotPeerInstance
	statDecapNotLocal
	statDecapUnsupported
	statDecapWrongPeer
)

var statNames = []string{"hits", "newSessions", "passedToUserspace", "malformed", "errors", "v6ExtensionHeaders", "missEventsDropped",
	"icmpErrors", "icmpErrorsNoFlow", "tunnelTooBig", "tunnelNoRoute",
	"decapUnknownPeer", "decapNotPeerInstance", "decapNotLocal", "decapUnsupported", "decapWrongPeer"}
