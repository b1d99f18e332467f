#!/usr/bin/env bash
# Runs the benchmarks side by side in one run and writes docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
cmd=(go test -run '^$' -count 1 -benchtime "${BENCHTIME:-2000000x}" -bench 'DataPlane' ./modules/...)
cmd2=(go test -run '^$' -count 1 -benchtime "${ATTACHTIME:-100x}" -bench 'ServiceCreated|AttachServiceVeth' ./ebpfManager/...)
"${cmd[@]}" | tee "$out"
"${cmd2[@]}" | tee -a "$out"
{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` ($(date -u +%Y-%m-%d), $(uname -r), $(nproc) CPUs, $(go version | cut -d' ' -f3))."
  echo "The machine is shared and noisy: compare rows of one run, as ratios, not across runs."
  echo
  echo "## Data plane (BPF_PROG_TEST_RUN, 60-byte frame)"
  echo
  echo "| program | ns/packet |"
  echo "|---|---|"
  grep -E '^BenchmarkDataPlane/' "$out" | awk '{for(i=1;i<=NF;i++) if($(i)=="ns/packet") v=$(i-1); sub(/^BenchmarkDataPlane\//,"",$1); sub(/-[0-9]+$/,"",$1); print "| " $1 " | " v " |"}'
  echo
  echo "## Attaching modules to a new service veth (both hooks, detach not timed)"
  echo
  echo "| benchmark | ms per veth |"
  echo "|---|---|"
  grep -E '^Benchmark(ServiceCreated|AttachServiceVeth)/' "$out" | awk '{sub(/-[0-9]+$/,"",$1); printf "| %s | %.2f |\n", $1, $3/1e6}'
  echo
  echo "\`AttachServiceVeth\` is one data plane attached by the kernel layer; \`ServiceCreated\` is the"
  echo "eBPF Manager handling a new service with 1 or 3 modules loaded (placement, attach, control plane)."
  echo "Each TCX attach waits for an RCU grace period, which legacy cls_bpf filters do not."
  echo
  echo "Reproduce: \`make bench\` (as root), i.e."
  echo
  echo '```'
  echo "${cmd[*]}"
  echo "${cmd2[*]}"
  echo '```'
  echo
  echo "Raw output:"
  echo
  echo '```'
  grep -E '^(Benchmark|goos|goarch|cpu)' "$out" | sort -u
  echo '```'
} > docs/benchmarks.md
rm -f "$out"
echo "wrote docs/benchmarks.md"
