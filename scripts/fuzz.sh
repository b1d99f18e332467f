#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME each (default 20000x: the short pass
# `make test` runs; `make fuzz FUZZTIME=1000000x` is the long one). Each
# target's seed corpus and testdata/fuzz inputs also run as plain tests in
# `go test`.
#
# The default is a count of inputs, not a time: Go's fuzzing deadline also
# covers starting the workers (each loads its eBPF programs) and running the
# corpus, and on a loaded CI machine a 3s deadline once ran out before
# FuzzFirewallFrames' workers had begun ("context deadline exceeded").
set -euo pipefail
: "${GO:=go}" "${FUZZTIME:=20000x}"
targets=(
  FuzzNodeAPI:./node-net-manager/api
  FuzzConfig:./node-net-manager/config
  FuzzEBPFAPI:./ebpfManager
  FuzzRuleSet:./modules/firewall
  FuzzFirewallFrames:./modules/firewall
  FuzzSDWANConfig:./modules/sdwan
  FuzzProxyIngress:./modules/proxy
  FuzzClusterMessages:./node-net-manager/cluster
)
for t in "${targets[@]}"; do
  name=${t%%:*} pkg=${t#*:}
  echo "fuzz $name ($pkg) for $FUZZTIME"
  "$GO" test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | grep -v '^fuzz: elapsed' || exit 1
done
