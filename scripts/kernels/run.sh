#!/usr/bin/env bash
# The kernel matrix: boots each Debian kernel under qemu (software emulation)
# with the host's root read-only over 9p as the guest's root, and runs there
#   budget     test/verifier TestVerifierBudget (VERIFIER_OUT JSON lines)
#   dataplane  the tests of ./bpf and of every module under modules/
#   e2e        test/kernels (build tag kernelmatrix): the real daemon
# built here on the host with `go test -c`. Needs `make build` first.
#
#   scripts/kernels/run.sh [--budget-only] [--out DIR] [--summary FILE] [KERNEL...]
#
# KERNEL: a series ("6.1", "6.12", "7.2"), "sid" (the newest sid kernel), or
# "host" (this machine's kernel, no qemu); default: 6.1 6.12 sid.
# --budget-only runs only the budget step. --out DIR leaves each kernel's
# VERIFIER_OUT lines in DIR/<KERNEL>.jsonl. --summary FILE writes the total
# "passed failed skipped". Exit status 0 only when every kernel booted and
# every test passed. Environment: NMK_GUEST_TIMEOUT (s, per guest, default
# 1500), NMK_GUEST_MEM (MiB, 4096), NMK_GUEST_CPUS (2), NMK_WORK (build/kernels).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
repo=$(cd "$here/../.." && pwd)
W=${NMK_WORK:-$repo/build/kernels}
GUEST_TIMEOUT=${NMK_GUEST_TIMEOUT:-1500}
GO=${GO:-go}
budget_only=0 out="" summary=""
while [ $# -gt 0 ]; do
  case $1 in
    --budget-only) budget_only=1 ;;
    --out) out=$2; shift ;;
    --summary) summary=$2; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) kdie "unknown option $1" ;;
    *) break ;;
  esac
  shift
done
kernels=("$@")
[ ${#kernels[@]} -gt 0 ] || kernels=(6.1 6.12 sid)
[ "$(id -u)" -eq 0 ] || kdie "run.sh needs root (qemu's 9p export of /, the guests' BPF)"

# The tests: "STEP NAME PKGDIR TIMEOUT [ARG...]". A guest runs NMK_JOBS (3) at a
# time, the longest first (job).
tests() {
  echo "budget verifier test/verifier 600 -test.run ^TestVerifierBudget\$"
  [ $budget_only = 1 ] && return
  echo "dataplane bpf bpf 600"
  local m
  for m in "$repo"/modules/*/; do
    m=$(basename "$m")
    echo "dataplane $m modules/$m 600"
  done
  echo "e2e daemon test/kernels 600"
}

# weight orders a guest's tests, the longest first (measured: sdwan ~120 s,
# proxy ~100 s, firewall ~60 s under qemu).
weight() {
  case $1 in
    sdwan) echo 6 ;; proxy) echo 5 ;; firewall) echo 4 ;; daemon) echo 3 ;;
    bpf | verifier) echo 2 ;; *) echo 1 ;;
  esac
}

# Tests a kernel cannot run for want of a feature: "FEATURE SINCE NAME
# REGEX" — not run on kernels older than SINCE (the report says so).
exclusions() {
  echo "tcx 6.6 proxy ^(TestLivePartialChecksums|TestLiveICMPErrors)\$"
}

# skips RELEASE NAME prints the -test.skip regex for test binary NAME on a
# kernel of RELEASE, and records why in $W/$k/excluded.
skips() {
  local rel=${1%%-*} name=$2 feat since n re out=""
  rel=$(echo "$rel" | cut -d. -f1,2)
  while read -r feat since n re; do
    [ "$n" = "$name" ] || continue
    dpkg --compare-versions "$rel" lt "$since" || continue
    out=${out:+$out|}${re}
    echo "    $name $re: not run (needs $feat, Linux $since)" >>"$W/$k/excluded"
  done < <(exclusions)
  echo "$out"
}

# build compiles every test binary the guests run, into $W/bin.
build() {
  local step name dir rest tags
  mkdir -p "$W/bin"
  for f in "$repo/build/bin/netmanager" "$repo"/build/modules/*/*.so; do
    [ -e "$f" ] || kdie "$f is missing: run \`make build\` first"
  done
  while read -r step name dir rest; do
    tags=()
    [ "$step" = e2e ] && tags=(-tags kernelmatrix)
    (cd "$repo" && CGO_ENABLED=1 "$GO" test -c "${tags[@]}" -o "$W/bin/$name.test" "./$dir") ||
      kdie "go test -c ./$dir failed: no kernel can run"
  done < <(tests)
  clang_fill
  if [ $budget_only = 0 ]; then
    (cd "$repo" && "$GO" vet -tags kernelmatrix ./test/kernels) || kdie "go vet -tags kernelmatrix ./test/kernels failed"
  fi
}

# job writes the guest's job.sh for kernel $k (release $1) unpacked at $2
# (empty: the host, no qemu).
job() {
  local rel=$1 kroot=$2 res=$3 native=0 step name dir t args skip
  [ -z "$kroot" ] && native=1
  {
    echo '#!/bin/bash'
    echo "export NMK_KROOT='$kroot' NMK_REPO='$repo' NMK_NATIVE=$native NMK_JOBS=${NMK_JOBS:-3}"
    [ $native = 1 ] && echo "export NMK_RESULTS='$res'"
    [ $native = 0 ] && echo "export NMK_CLANG_CACHE='$clang_cache'"
    echo "export NETMANAGER_BIN='$repo/build/bin/netmanager' NETMANAGER_MODULES='$repo/build/modules'"
    echo ". '$here/guest.sh'"
    [ $native = 0 ] && echo nmk_setup
    echo 'export VERIFIER_OUT=$R/verifier.jsonl'
    while read -r _ step name dir t args; do
      skip=$(skips "$rel" "$name")
      [ -n "$skip" ] && args="$args -test.skip '$skip'"
      echo "nmk_test $step $name $dir '$W/bin/$name.test' $t $args"
    done < <(tests | while read -r step name rest; do echo "$(weight "$name") $step $name $rest"; done | sort -rn -k1,1 -s)
    echo nmk_finish
  } >"$res/job.sh"
  chmod 0755 "$res/job.sh"
}

# clang_fill keeps one clang cache per state of the BPF sources and fills
# it with the bpf/ test programs, built as bpftest.Compile builds them.
clang_fill() {
  local tree src
  tree=$(cd "$repo" && { clang --version; find bpf modules test/modules \( -name '*.c' -o -name '*.h' \) -print0 |
    sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16)
  clang_cache=$W/clang-cache/$tree
  find "$W/clang-cache" -mindepth 1 -maxdepth 1 ! -name "$tree" -exec rm -rf {} + 2>/dev/null
  mkdir -p "$clang_cache"
  for src in "$repo"/bpf/testdata/*.bpf.c; do
    NMK_CLANG_CACHE=$clang_cache NMK_CLANG_STORE=$clang_cache "$here/clang.sh" -O2 -g -Wall -Werror -target bpf \
      "-I$repo/bpf" -I/usr/include/x86_64-linux-gnu -c "$src" -o "$W/clang-fill.o" || kdie "clang $src failed"
  done
  rm -f "$W/clang-fill.o"
}

# boot runs the guest for kernel directory $1 (from fetch.sh); the serial
# console goes to $2/../console.log.
boot() {
  local kdir=$1 res=$2 abi log rc
  abi=$(cat "$kdir/abi")
  log=$(dirname "$res")/console.log
  "$here/initrd.sh" "$kdir/root" "$abi" "$(dirname "$res")/initrd.gz" || return 1
  timeout -k 10 "$GUEST_TIMEOUT" qemu-system-x86_64 -accel tcg,thread=multi -cpu max \
    -smp "${NMK_GUEST_CPUS:-2}" -m "${NMK_GUEST_MEM:-4096}" \
    -display none -monitor none -serial "file:$log" -no-reboot -nic none \
    -kernel "$kdir/vmlinuz" -initrd "$(dirname "$res")/initrd.gz" \
    -append "console=ttyS0 panic=-1 quiet" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$res,mount_tag=results,security_model=none,multidevs=remap" </dev/null
  rc=$?
  [ $rc = 124 ] && echo "  the guest did not power off within ${GUEST_TIMEOUT}s (NMK_GUEST_TIMEOUT): killed"
  [ $rc != 0 ] && [ $rc != 124 ] && echo "  qemu exited $rc"
  return 0
}

. "$here/report.sh"

main() {
  local k line label abi version kdir res start secs tp=0 tf=0 ts=0 p f s t0=$(date +%s)
  build
  echo "== test binaries built in $(($(date +%s) - t0))s"
  for k in "${kernels[@]}"; do
    start=$(date +%s)
    res=$W/$k/results
    rm -rf "$W/$k"
    mkdir -p "$res"
    if [ "$k" = host ]; then
      label="host" abi=$(uname -r) version="none: this machine's kernel, no qemu"
      job "$abi" "" "$res"
      bash "$res/job.sh" >"$W/$k/console.log" 2>&1
    elif line=$("$here/fetch.sh" "$k"); then
      read -r label abi version kdir <<<"$line"
      echo "== kernel $k: $abi (Debian $version), booting under qemu"
      job "$abi" "$kdir/root" "$res"
      boot "$kdir" "$res"
      [ -d "$res/clang-new" ] && cp -n "$res"/clang-new/*.o "$clang_cache/" 2>/dev/null
    else
      abi="?" version="?"
      echo "kernel $k: FAILED: could not be fetched (see above)" >"$W/$k/fetch-failed"
    fi
    secs=$(($(date +%s) - start))
    report "$k" "$abi" "$version" "$res" "$secs"
    read -r p f s <"$W/$k/counts"
    tp=$((tp + p)) tf=$((tf + f)) ts=$((ts + s))
  done
  budget_table
  echo "kernel matrix (${kernels[*]}): $tp passed, $tf failed, $ts skipped in $(($(date +%s) - t0))s"
  [ -n "$summary" ] && echo "$tp $tf $ts" >"$summary"
  [ "$tf" = 0 ]
}
main
