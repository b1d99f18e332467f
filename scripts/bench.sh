#!/usr/bin/env bash
# Runs the benchmarks side by side in one run and writes docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
cmd=(go test -run '^$' -count "${COUNT:-5}" -benchtime "${BENCHTIME:-1000000x}" -bench 'DataPlane|Rules' ./modules/...)
cmd2=(go test -run '^$' -count 1 -benchtime "${ATTACHTIME:-100x}" -bench 'ServiceCreated|AttachServiceVeth' ./ebpfManager/...)
sp=$(mktemp -d)
cmd3=(go test -run '^$' -count 1 -benchtime 1x -timeout 20m -bench ServicePaths ./test/bench/)
"${cmd[@]}" | tee "$out"
"${cmd2[@]}" | tee -a "$out"
BENCH_OUT="$sp/servicepath.json" "${cmd3[@]}" | grep -v 'level=' | tee -a "$out"
# nsmin NAME: the smallest ns/packet of the runs of one benchmark (the least disturbed).
nsmin() {
  grep -E "^$1(-[0-9]+)? " "$out" | awk '{for(i=1;i<=NF;i++) if($(i)=="ns/packet") print $(i-1)}' | sort -g | head -1
}
{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` ($(date -u +%Y-%m-%d), $(uname -r), $(nproc) CPUs, $(go version | cut -d' ' -f3))."
  echo "The machine is shared and noisy: compare rows of one run, as ratios, not across runs."
  echo
  echo "## Data plane (BPF_PROG_TEST_RUN, 60-byte frame)"
  echo
  echo "The smallest of ${COUNT:-5} runs of each, all in one run."
  echo
  echo "| program | ns/packet |"
  echo "|---|---|"
  for p in noop packetcounter; do echo "| $p | $(nsmin "BenchmarkDataPlane/$p") |"; done
  echo "| proxy, session hit | $(nsmin "BenchmarkDataPlane/hit") |"
  echo "| proxy, IPv6 session hit | $(nsmin "BenchmarkDataPlane/hit6") |"
  echo "| proxy, miss (passed to the user-space proxy) | $(nsmin "BenchmarkDataPlane/miss") |"
  echo
  echo "\`noop\` (a program that only returns \"next\") is the cost of BPF_PROG_TEST_RUN itself on this machine."
  echo
  echo "## Firewall: ns/packet by rule count"
  echo
  echo "A TCP packet matching the last rule, and one matching none (the default policy), stateless."
  echo
  echo "| rules | last rule | no rule |"
  echo "|---|---|---|"
  for n in 10 100 1000; do
    echo "| $n | $(nsmin "BenchmarkRules/rules=$n/last") | $(nsmin "BenchmarkRules/rules=$n/none") |"
  done
  l10=$(nsmin "BenchmarkRules/rules=10/last")
  l1000=$(nsmin "BenchmarkRules/rules=1000/last")
  echo
  echo "Ratio 1000:10 (last rule): $(awk -v a="$l1000" -v b="$l10" 'BEGIN{printf "%.2f", a/b}') (goal: at most 1.5)."
  echo
  echo "## The service path: direct, user-space proxy, eBPF proxy"
  echo
  echo "Two services on one node (namespaces on the node bridge), in one run: to the server's round-robin"
  echo "service IP through the user-space proxy (TUN); then, with the eBPF proxy module loaded, direct to"
  echo "the server's namespace IP and to the service IP through the eBPF proxy, their samples alternating"
  echo "so the machine's noise falls on both alike (the module passes non-service traffic on at once)."
  echo "CPU is the whole machine's busy time (kernel and user space) while iperf3 carries 100 Mbit/s,"
  echo "in percent of one core."
  echo
  cat "$sp/servicepath.md"
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
  echo "BENCH_OUT=... ${cmd3[*]}"
  echo '```'
  echo
  echo "Raw output:"
  echo
  echo '```'
  grep -E '^(Benchmark|goos|goarch|cpu)' "$out"
  echo '```'
} > docs/benchmarks.md
rm -rf "$out" "$sp"
echo "wrote docs/benchmarks.md"
