package netenv

import (
	"fmt"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Inside a unikernel's namespace the NodeEngine expects what Oakestra's
// reference NetManager makes there: the bridge virbr0 with 192.168.1.1/30
// and the tap tap0 on it (the NodeEngine reads tap0's MAC and hands tap0
// to crosvm or qemu; the guest is 192.168.1.2/30, gateway 192.168.1.1).
// Traffic between the guest and the namespace's veth is NATed: what
// arrives on the veth goes to the guest, what the guest sends leaves with
// the namespace's address.
const (
	UnikernelBridge = "virbr0"
	UnikernelTap    = "tap0"
)

var (
	unikernelBridgeAddr = netip.MustParsePrefix("192.168.1.1/30")
	UnikernelGuest      = netip.MustParseAddr("192.168.1.2")
)

// unikernelNATRules are the namespace's two NAT rules (table nat).
func unikernelNATRules(peer string, ip netip.Addr) [][]string {
	return [][]string{
		{"POSTROUTING", "-o", peer, "-j", "SNAT", "--to-source", ip.String()},
		{"PREROUTING", "-i", peer, "-j", "DNAT", "--to-destination", UnikernelGuest.String()},
	}
}

// setupUnikernel makes virbr0, tap0 and the NAT rules in the namespace at
// path; peer is the veth there, ip its IPv4 address. Deleting the namespace
// deletes all of it.
func setupUnikernel(path, peer string, ip netip.Addr) error {
	if err := inNetns(path, func() error {
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: UnikernelBridge}}); err != nil {
			return fmt.Errorf("create %s: %w", UnikernelBridge, err)
		}
		br, err := netlink.LinkByName(UnikernelBridge)
		if err != nil {
			return fmt.Errorf("find %s: %w", UnikernelBridge, err)
		}
		if err := netlink.AddrAdd(br, addr(unikernelBridgeAddr.Addr(), unikernelBridgeAddr.Bits())); err != nil {
			return fmt.Errorf("address %s on %s: %w", unikernelBridgeAddr, UnikernelBridge, err)
		}
		tap := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: UnikernelTap, MasterIndex: br.Attrs().Index}, Mode: netlink.TUNTAP_MODE_TAP}
		if err := netlink.LinkAdd(tap); err != nil {
			return fmt.Errorf("create %s: %w", UnikernelTap, err)
		}
		for _, l := range []netlink.Link{br, tap} {
			if err := netlink.LinkSetUp(l); err != nil {
				return fmt.Errorf("bring up %s: %w", l.Attrs().Name, err)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for _, r := range unikernelNATRules(peer, ip) {
		args := append([]string{"--net=" + path, "iptables", "-w", "10", "-t", "nat", "-A"}, r...)
		if out, err := exec.Command("nsenter", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("NAT in the unikernel namespace (%s): %w: %s", strings.Join(r, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// inNetns runs fn on a thread switched into the namespace at path (a tap is
// created in the caller's namespace, not a netlink handle's).
func inNetns(path string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("current namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", path, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return fmt.Errorf("enter namespace %s: %w", path, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		runtime.LockOSThread() // keep the stranded thread from running other work
		return fmt.Errorf("return from namespace %s: %w", path, err)
	}
	return ferr
}
