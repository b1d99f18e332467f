#!/usr/bin/env bash
# Writes, as Markdown on stdout, the verifier's processed instructions for
# every program the project ships, on this machine's kernel and on each
# kernel of the matrix (scripts/kernels/run.sh --budget-only, under qemu):
# the "Verifier" section of docs/benchmarks.md. Needs `make build` and root.
#
#   scripts/bench-verifier.sh [KERNEL...]   (default: host 6.1 6.12 sid)
set -euo pipefail
cd "$(dirname "$0")/.."
kernels=("$@")
[ ${#kernels[@]} -gt 0 ] || kernels=(host 6.1 6.12 sid)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if ! scripts/kernels/run.sh --budget-only --out "$dir" "${kernels[@]}" >"$dir/run.log" 2>&1; then
  # A program over the budget still has its count: the table shows it.
  echo "bench-verifier: the budget failed on some kernel (the table marks it); run.sh said:" >&2
  tail -20 "$dir/run.log" >&2
fi
shopt -s nullglob
files=("$dir"/*.jsonl)
[ ${#files[@]} -gt 0 ] || { cat "$dir/run.log" >&2; echo "bench-verifier: no counts from any kernel" >&2; exit 1; }
echo "## Verifier: processed instructions per program, per kernel"
echo
echo "Each program loaded on its own (\`TestVerifierBudget\`, ./test/verifier), the kernel's processed-instruction"
echo "count (\`bpf_prog_info.verified_insns\`): this machine's kernel and Debian's kernels booted under qemu"
echo "(\`scripts/kernels/run.sh --budget-only ${kernels[*]}\`). The budget is 100,000, 10 % of the kernel's limit;"
echo "\`make test\` fails above it on any of these kernels."
echo
go run ./test/verifier/vtable "${files[@]}"
