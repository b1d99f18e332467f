package main

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// The data plane caches per CPU what it would otherwise look up for every
// packet: an interface's role (rolecache), a WAN's next hop (wannh) and a
// decapsulated packet's next hop (nhcache), the latter two as
// bpf_fib_lookup gave them (nexthop.bpf.h). Every entry carries the cache
// generation it was filled in, and an entry of another generation is looked
// up again. So the cache is correct as long as the generation changes after
// every change that could alter an answer:
//
//   - roles and WAN entries: Attach and Detach bump it after writing them;
//   - routes, rules, nexthop objects, addresses, links and neighbours: the
//     kernel reports each change on rtnetlink, and fibWatch bumps the
//     generation after every batch of messages (it does not parse them:
//     any message may matter), and after an overflow of its socket (events
//     were lost);
//   - what netlink does not report (a path MTU learned from ICMP, a
//     redirect): fibWatch bumps it every nexthopRefresh as well, which
//     bounds how long such an answer outlives its change.
//
// A generation read before a lookup stamps the answer, so a change between
// the lookup and the bump leaves an entry that the bump makes stale. What
// remains is the time from a change to its event's bump (microseconds to
// a millisecond), as for any asynchronous control plane. A TTL checked per
// packet would cost a clock read in every packet instead.

// fibGroups are the rtnetlink multicast groups whose messages can change
// what bpf_fib_lookup answers.
var fibGroups = []int{unix.RTNLGRP_LINK, unix.RTNLGRP_NEIGH, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV4_ROUTE,
	unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_IFADDR, unix.RTNLGRP_IPV6_ROUTE, unix.RTNLGRP_IPV6_RULE, unix.RTNLGRP_NEXTHOP}

// cacheGen owns the cache map: the generation and nhcache's size.
type cacheGen struct {
	mu sync.Mutex
	m  *ebpf.Map
	v  sdCache
}

// newCacheGen continues from the generation the map holds (a restart with
// persist keeps the map, and with it entries of earlier generations) and
// bumps it once, which also writes nhcache's size.
func newCacheGen(cache, nhcache *ebpf.Map) (*cacheGen, error) {
	c := &cacheGen{m: cache}
	if err := cache.Lookup(uint32(0), &c.v); err != nil {
		return nil, fmt.Errorf("read the cache generation: %w", err)
	}
	c.v.NHSlots = nhcache.MaxEntries()
	return c, c.bump()
}

// bump starts a new generation: every cached entry is stale.
func (c *cacheGen) bump() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.v.Gen++
	if err := c.m.Put(uint32(0), c.v); err != nil {
		return fmt.Errorf("bump the cache generation: %w", err)
	}
	return nil
}

// fibWatch bumps the cache generation on rtnetlink events of one network
// namespace, and every refresh.
type fibWatch struct {
	fd, wake int // the netlink socket; a pipe's write end that stops run
	gen      *cacheGen
	refresh  time.Duration
	log      logrus.FieldLogger
	done     chan struct{}
}

// watchFIB subscribes to fibGroups in the calling thread's namespace (the
// interfaces') and starts bumping gen.
func watchFIB(gen *cacheGen, refresh time.Duration, log logrus.FieldLogger) (*fibWatch, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	err = unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	for _, g := range fibGroups {
		if err == nil {
			err = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, g)
		}
	}
	if err == nil {
		// A larger buffer overflows less often; an overflow costs a bump.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<20)
	}
	var p [2]int
	if err == nil {
		err = unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch routes and neighbours: %w", err)
	}
	w := &fibWatch{fd: fd, wake: p[1], gen: gen, refresh: refresh, log: log, done: make(chan struct{})}
	go w.run(p[0])
	return w, nil
}

// run waits for messages (or the refresh) and bumps the generation once
// per batch, until close writes to the pipe.
func (w *fibWatch) run(stop int) {
	defer close(w.done)
	defer unix.Close(stop)
	defer unix.Close(w.fd)
	timeout := -1
	if w.refresh > 0 {
		timeout = int(max(w.refresh.Milliseconds(), 1))
	}
	buf := make([]byte, 1<<16)
	for {
		fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}, {Fd: int32(stop), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, timeout); err != nil && !errors.Is(err, unix.EINTR) {
			w.log.WithError(err).Warn("sdwan: poll the netlink socket")
		}
		if fds[1].Revents != 0 {
			return
		}
		w.drain(buf)
		if err := w.gen.bump(); err != nil {
			w.log.WithError(err).Warn("sdwan: next-hop cache")
		}
	}
}

// drain reads every message waiting; an overflow (ENOBUFS) lost some, which
// the bump after it covers as well.
// A storm of messages is read in batches of at most 1024, each bumped.
func (w *fibWatch) drain(buf []byte) {
	for range 1024 {
		_, _, err := unix.Recvfrom(w.fd, buf, unix.MSG_DONTWAIT)
		if err != nil && !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// close stops the watcher and waits for it.
func (w *fibWatch) close() {
	if w == nil {
		return
	}
	_, _ = unix.Write(w.wake, []byte{0})
	<-w.done
	unix.Close(w.wake)
}
