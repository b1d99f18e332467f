package deploy

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"

	"github.com/oakestra/netmanager/node-net-manager/config"
	"github.com/oakestra/netmanager/node-net-manager/errdefs"
	"github.com/oakestra/netmanager/node-net-manager/netenv"
)

// fakeNet models the invariants of the real environment that the manager relies
// on: interface names are unique, a namespace must exist to attach to, a named
// namespace cannot be made twice, and Detach removes what Attach made.
type fakeNet struct {
	mu         sync.Mutex
	pids       map[int]string // pid -> netns path
	ownPID     int
	namedNetns map[string]bool
	links      map[string]netenv.Attachment // host veth -> attachment
	failAttach bool
	// subnet is what Renumber moved the node to; failRenumber makes it fail.
	subnet       netip.Prefix
	failRenumber bool
	ops          []string
	ifindex      int
}

func newFakeNet() *fakeNet {
	return &fakeNet{pids: map[int]string{}, namedNetns: map[string]bool{}, links: map[string]netenv.Attachment{}, ownPID: 1}
}

func (f *fakeNet) addPID(pid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pids[pid] = fmt.Sprintf("/proc/%d/ns/net", pid)
}

func (f *fakeNet) ProcessExists(pid int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.pids[pid]
	return ok || pid == f.ownPID
}

// kill ends a fake process: its namespace, and the veth end in it, go too.
func (f *fakeNet) kill(pid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := f.pids[pid]
	delete(f.pids, pid)
	for veth, a := range f.links {
		if a.Netns == path {
			delete(f.links, veth)
		}
	}
}

func (f *fakeNet) ContainerNetns(pid int) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pid == f.ownPID {
		return "", fmt.Errorf("%w: pid %d shares the NetManager's namespace", errdefs.ErrInvalid, pid)
	}
	p, ok := f.pids[pid]
	if !ok {
		return "", fmt.Errorf("%w: pid %d does not exist", errdefs.ErrInvalid, pid)
	}
	return p, nil
}

func (f *fakeNet) CreateNetns(name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.namedNetns[name] {
		return "", fmt.Errorf("%w: namespace %s exists", errdefs.ErrConflict, name)
	}
	f.namedNetns[name] = true
	f.ops = append(f.ops, "createns "+name)
	return "/run/netns/" + name, nil
}

func (f *fakeNet) DeleteNetns(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.namedNetns[name] {
		return fmt.Errorf("namespace %s does not exist", name)
	}
	delete(f.namedNetns, name)
	f.ops = append(f.ops, "deletens "+name)
	return nil
}

func (f *fakeNet) netnsExists(path string) bool {
	for _, p := range f.pids {
		if p == path {
			return true
		}
	}
	return strings.HasPrefix(path, "/run/netns/") && f.namedNetns[strings.TrimPrefix(path, "/run/netns/")]
}

func (f *fakeNet) Attach(a netenv.Attachment) (netenv.Attached, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAttach {
		return netenv.Attached{}, fmt.Errorf("injected attach failure")
	}
	if _, ok := f.links[a.HostVeth]; ok {
		return netenv.Attached{}, fmt.Errorf("link %s exists", a.HostVeth)
	}
	if !f.netnsExists(a.Netns) {
		return netenv.Attached{}, fmt.Errorf("namespace %s does not exist", a.Netns)
	}
	f.links[a.HostVeth] = a
	f.ifindex++
	f.ops = append(f.ops, "attach "+a.HostVeth)
	return netenv.Attached{HostIfindex: f.ifindex + 100, Peer: a.Peer}, nil
}

func (f *fakeNet) Detach(a netenv.Attachment) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.links, a.HostVeth)
	f.ops = append(f.ops, "detach "+a.HostVeth)
	return nil
}

// leftovers lists everything the fake still holds.
func (f *fakeNet) leftovers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for l := range f.links {
		out = append(out, "link "+l)
	}
	for n := range f.namedNetns {
		out = append(out, "netns "+n)
	}
	sort.Strings(out)
	return out
}

func (f *fakeNet) Readopt(a netenv.Attachment) (netenv.Attached, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.links[a.HostVeth]
	if !ok || old.ServiceName != a.ServiceName || old.Instance != a.Instance {
		return netenv.Attached{}, fmt.Errorf("veth %s is gone", a.HostVeth)
	}
	f.ops = append(f.ops, "readopt "+a.HostVeth)
	f.ifindex++
	return netenv.Attached{HostIfindex: f.ifindex + 100, Peer: a.Peer}, nil
}

// Renumber models the one invariant the manager relies on: nothing is
// attached while the node changes subnet.
func (f *fakeNet) Renumber(n config.Network) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.links) > 0 {
		return fmt.Errorf("renumber with %d veths attached", len(f.links))
	}
	if f.failRenumber {
		return errors.New("renumber: injected failure")
	}
	f.subnet = n.NodeSubnet
	return nil
}
