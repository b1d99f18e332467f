package main

import (
	"fmt"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/oakestra/netmanager/ebpfManager/kernel"
	"github.com/oakestra/netmanager/node-net-manager/api"
)

// maskEnv names the features the daemon treats as missing, comma-separated
// (e.g. "bpf_loop,tcx"). It is for tests: it lets a test on a new kernel see
// how the daemon behaves on one that lacks a feature (a module needing it is
// refused; a masked tcx makes auto chaining legacy).
const maskEnv = "NETMANAGER_MASK_FEATURES"

// featureMask parses maskEnv's value; an unknown feature is an error.
func featureMask(v string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !kernel.KnownFeature(f) {
			return nil, fmt.Errorf("%s: %q is no feature (a helper like bpf_loop, a map type like map_lru_hash, tcx, btf, bpf_stats, adjust_room_decap, tracing)", maskEnv, f)
		}
		out = append(out, f)
	}
	return out, nil
}

// probeKernel probes the kernel's features once, logs them in one line and
// returns the prober (the eBPF Manager asks it about each module) and what
// GET /version reports; both nil when the kernel cannot be probed.
func probeKernel(mask []string, log logrus.FieldLogger) (*kernel.Prober, *api.KernelInfo) {
	p, err := kernel.NewProber(mask)
	if err != nil {
		log.WithError(err).Warn("kernel features not probed")
		return nil, nil
	}
	kf := p.Features()
	fields := logrus.Fields{"release": kf.Release}
	for name, have := range kf.Features {
		fields[name] = have
	}
	if len(kf.Masked) > 0 {
		fields["masked"] = strings.Join(kf.Masked, ",")
	}
	if len(kf.Inconclusive) > 0 {
		fields["inconclusive"] = kf.Inconclusive
	}
	log.WithFields(fields).Info("kernel features")
	info := &api.KernelInfo{Release: kf.Release, Features: kf.Features, Masked: kf.Masked}
	if len(kf.Inconclusive) > 0 {
		info.Inconclusive = kf.Inconclusive
	}
	return p, info
}
