package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// RunOptions are what Run moves packets between.
type RunOptions struct {
	Dev        io.ReadWriter // the TUN device (IP packets, no header)
	Translator *Translator
	// Tunnel is the UDP socket of the inter-node tunnel: each datagram
	// carries one IP packet. Nil: no tunnel (packets for other nodes are
	// dropped).
	Tunnel      net.PacketConn
	ExpireEvery time.Duration // how often idle sessions are expired
	// ProbeEvery is how often the tunnel RTT to each node that closest
	// service IPs choose among is measured (0: every 2 s).
	ProbeEvery time.Duration
	Log        logrus.FieldLogger
}

// Run moves packets until ctx ends or the device is closed: each packet read
// from the TUN is translated and written back or sent through the tunnel;
// each packet from the tunnel is received and written to the TUN. Idle
// sessions are expired every ExpireEvery. The caller closes Dev and Tunnel
// after cancelling ctx to stop it.
func Run(ctx context.Context, o RunOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		tick := time.NewTicker(o.ExpireEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				o.Translator.Expire()
			}
		}
	}()
	h := newHolder(ctx, o)
	defer h.stop()
	var wg sync.WaitGroup
	var tunnelErr error
	if o.Tunnel != nil {
		pr := &prober{o: o, start: time.Now()}
		wg.Add(2)
		go func() {
			defer wg.Done()
			tunnelErr = fromTunnel(ctx, o, h, pr)
		}()
		go func() {
			defer wg.Done()
			pr.run(ctx)
		}()
	}
	err := fromTUN(ctx, o, h)
	if o.Tunnel != nil && err != nil {
		_ = o.Tunnel.Close() // a failed TUN stops the tunnel too
	}
	cancel()
	wg.Wait()
	return errors.Join(err, tunnelErr)
}

func fromTUN(ctx context.Context, o RunOptions, h *holder) error {
	buf := make([]byte, 1<<16)
	for {
		n, err := o.Dev.Read(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read the TUN: %w", err)
		}
		if v := o.Translator.Translate(buf[:n]); v.Ask.IsValid() {
			h.hold(buf[:n], netip.AddrPort{}, v.Ask)
		} else {
			fromTUNVerdict(o, buf[:n], v)
		}
	}
}

// fromTUNVerdict carries out the verdict on a packet from the TUN.
func fromTUNVerdict(o RunOptions, b []byte, v Verdict) {
	switch {
	case v.Drop != "":
		o.Log.WithFields(logrus.Fields{"reason": v.Drop, "head": hexHead(b[:min(len(b), 40)])}).Debug("proxy dropped a packet")
		if v.Drop == DropNoInstances || v.Drop == DropNoAnswer {
			if ans := Unreachable(b); ans != nil {
				_, _ = o.Dev.Write(ans)
			}
		}
	case v.Via.IsValid():
		send(o, b, v.Via)
	default:
		if _, err := o.Dev.Write(b); err != nil {
			o.Log.WithError(err).Debug("proxy could not send a packet")
		}
	}
}

// hexHead shows the start of a dropped packet in a debug log; it is
// formatted only if the entry is written.
type hexHead []byte

func (h hexHead) String() string { return fmt.Sprintf("%x", []byte(h)) }

func send(o RunOptions, b []byte, to netip.AddrPort) {
	if o.Tunnel == nil {
		o.Log.WithField("node", to).Debug("proxy dropped a packet for another node: no tunnel")
		return
	}
	if _, err := o.Tunnel.WriteTo(b, net.UDPAddrFromAddrPort(to)); err != nil {
		o.Log.WithError(err).WithField("node", to).Debug("tunnel could not send a packet")
	}
}

func fromTunnel(ctx context.Context, o RunOptions, h *holder, pr *prober) error {
	buf := make([]byte, 1<<16)
	for {
		n, from, err := o.Tunnel.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read the tunnel: %w", err)
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		peer := ua.AddrPort()
		peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
		if isProbe(buf[:n]) {
			pr.handle(buf[:n], peer)
			continue
		}
		if v := o.Translator.Receive(buf[:n], peer); v.Ask.IsValid() {
			h.hold(buf[:n], peer, v.Ask)
		} else {
			fromTunnelVerdict(o, buf[:n], peer, v)
		}
	}
}

// fromTunnelVerdict carries out the verdict on a packet from the tunnel.
func fromTunnelVerdict(o RunOptions, b []byte, peer netip.AddrPort, v Verdict) {
	if v.Drop != "" {
		o.Log.WithFields(logrus.Fields{"reason": v.Drop, "from": peer}).Debug("proxy dropped a packet from the tunnel")
		return
	}
	if _, err := o.Dev.Write(b); err != nil {
		o.Log.WithError(err).Debug("proxy could not deliver a packet from the tunnel")
	}
}
