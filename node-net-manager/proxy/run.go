package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sirupsen/logrus"
)

// Run moves packets between a TUN device and the translator until ctx ends
// or the device is closed: each packet read is translated and written back,
// or dropped. Idle sessions are expired every interval.
func Run(ctx context.Context, dev io.ReadWriter, t *Translator, interval time.Duration, log logrus.FieldLogger) error {
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				t.Expire()
			}
		}
	}()
	buf := make([]byte, 1<<16)
	for {
		n, err := dev.Read(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return err
		}
		if reason := t.Translate(buf[:n]); reason != "" {
			log.WithFields(logrus.Fields{"reason": reason, "head": fmt.Sprintf("%x", buf[:min(n, 48)])}).Debug("proxy dropped a packet")
			if reason == DropNoInstances {
				if ans := Unreachable(buf[:n]); ans != nil {
					_, _ = dev.Write(ans)
				}
			}
			continue
		}
		if _, err := dev.Write(buf[:n]); err != nil {
			log.WithError(err).Debug("proxy could not send a packet")
		}
	}
}
