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
# KERNEL: a series ("6.1", "6.12", "7.2"), "sid" (the newest sid kernel),
# "arm64" (Debian's arm64 kernel of ARM64_SERIES under qemu-system-aarch64,
# its root a directory of arm64 packages, the test binaries, the daemon and
# the plugins cross-built: NMK_ARM64_BUILD, default build/arm64 from
# `make ARCH=arm64 build`), or "host" (this machine's kernel, no qemu);
# default: 6.1 6.12 sid.
# --budget-only runs only the budget step. --out DIR leaves each kernel's
# VERIFIER_OUT lines in DIR/<KERNEL>.jsonl. --summary FILE writes the total
# "passed failed skipped". Exit status 0 only when every kernel booted and
# every test passed. Environment: NMK_GUESTS (guests per kernel, booted
# together, default 1), NMK_GUEST_CPUS (vCPUs each, 2), NMK_GUEST_MEM (MiB,
# 4096), NMK_GUEST_TIMEOUT (s, per guest, 1500), NMK_JOBS (test binaries at a
# time per guest, vCPUs + 1), NMK_WORK (build/kernels). See docs/kernels.md.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
repo=$(cd "$here/../.." && pwd)
W=${NMK_WORK:-$repo/build/kernels}
GUEST_TIMEOUT=${NMK_GUEST_TIMEOUT:-1500}
GUESTS=${NMK_GUESTS:-1} CPUS=${NMK_GUEST_CPUS:-2}
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

# build compiles every test binary the guests run, into $W/bin (and, with
# an arm64 kernel in the list, cross-compiled into $W/bin-arm64).
build() {
  local step name dir rest tags
  mkdir -p "$W/bin"
  for f in "$repo/build/bin/netmanager" "$repo"/build/modules/*/*.so; do
    [ -e "$f" ] || kdie "$f is missing: run \`make build\` first"
  done
  if [[ " ${kernels[*]} " == *" arm64 "* ]]; then
    for f in "$ARM64_BUILD/bin/netmanager" "$ARM64_BUILD"/modules/*/*.so; do
      [ -e "$f" ] || kdie "$f is missing: run \`make ARCH=arm64 build\` first (or set NMK_ARM64_BUILD)"
    done
    mkdir -p "$W/bin-arm64"
  fi
  while read -r step name dir rest; do
    tags=()
    [ "$step" = e2e ] && tags=(-tags kernelmatrix)
    (cd "$repo" && CGO_ENABLED=1 "$GO" test -c "${tags[@]}" -o "$W/bin/$name.test" "./$dir") ||
      kdie "go test -c ./$dir failed: no kernel can run"
    [ -d "$W/bin-arm64" ] || continue
    (cd "$repo" && CGO_ENABLED=1 GOARCH=arm64 CC=${NMK_ARM64_CC:-aarch64-linux-gnu-gcc} \
      "$GO" test -c "${tags[@]}" -o "$W/bin-arm64/$name.test" "./$dir") ||
      kdie "GOARCH=arm64 go test -c ./$dir failed: the arm64 kernel cannot run (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross)"
  done < <(tests)
  clang_fill
  if [ $budget_only = 0 ]; then
    (cd "$repo" && "$GO" vet -tags kernelmatrix ./test/kernels) || kdie "go vet -tags kernelmatrix ./test/kernels failed"
  fi
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

# boot runs guest $3 of kernel directory $1 (from fetch.sh) on the results
# directory $2, its serial console to $W/$k/console.$3.log. Its root is the
# host's, or for arm64 the userland directory $groot with the repository,
# $KCACHE, and $W and the arm64 build when outside the repository, shared
# read-only at their host paths.
boot() {
  local kdir=$1 res=$2 g=$3 rc qemu console=ttyS0 root=/ shares=() append="" d tag
  qemu=(qemu-system-x86_64 -accel tcg,thread=multi -cpu max)
  # arm64: a Raspberry Pi 4's core. `-cpu max` makes qemu emulate pointer
  # authentication, which Debian's kernel uses in every function: the arm64
  # kernel took 355 s there, 115 s on cortex-a72 (NMK_ARM64_CPU).
  if [ "$arch" = arm64 ]; then
    qemu=(qemu-system-aarch64 -M virt -accel tcg,thread=multi -cpu "${NMK_ARM64_CPU:-cortex-a72}")
    console=ttyAMA0 root=$groot
    for d in "$repo" "$KCACHE" "$W" "$nmbuild"; do
      [ "$d" != "$repo" ] && [[ $d == "$repo"/* ]] && continue
      tag=share${#shares[@]}
      mkdir -p "$groot$d"
      shares+=(-virtfs "local,path=$d,mount_tag=$tag,security_model=none,readonly=on,multidevs=remap")
      append+=" nmk.share=$tag:$d"
    done
  fi
  timeout -k 10 "$GUEST_TIMEOUT" "${qemu[@]}" \
    -smp "$CPUS" -m "${NMK_GUEST_MEM:-4096}" \
    -display none -monitor none -serial "file:$W/$k/console.$g.log" -no-reboot -nic none \
    -kernel "$kdir/vmlinuz" -initrd "$W/$k/initrd.gz" \
    -append "console=$console panic=-1 quiet nmk.job=job.$g.sh$append" \
    -virtfs "local,path=$root,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$res,mount_tag=results,security_model=none,multidevs=remap" "${shares[@]}" </dev/null
  rc=$?
  [ $rc = 124 ] && echo "  guest $g did not power off within ${GUEST_TIMEOUT}s (NMK_GUEST_TIMEOUT): killed"
  [ $rc != 0 ] && [ $rc != 124 ] && echo "  guest $g: qemu exited $rc"
  return 0
}

# clang_serve DIR builds, natively, what a guest without clang asks for in
# DIR (clang.sh, NMK_CLANG_REMOTE), storing it in the cache, until DIR/.stop.
clang_serve() {
  local dir=$1 req args a
  while [ ! -f "$dir/.stop" ]; do
    for req in "$dir"/*.req; do
      [ -f "$req/args" ] || continue
      args=()
      while IFS= read -r a; do
        case $a in
          @OUT) args+=("$req/out.o") ;;
          @IN:*) args+=("$req/${a#@IN:}") ;;
          *) args+=("$a") ;;
        esac
      done <"$req/args"
      NMK_CLANG_STORE=$clang_cache "$here/clang.sh" "${args[@]}" >"$req/log" 2>&1
      echo $? >"$req/rc"
      mv "$req" "${req%.req}.done"
    done
    sleep 0.2
  done
}

# guests boots kernel $k's NMK_GUESTS guests together and waits for them.
guests() {
  local kdir=$1 abi=$2 res=$3 n=$4 g pids=() server=""
  local bb=()
  [ "$arch" = arm64 ] && bb=("$groot/bin/busybox")
  "$here/initrd.sh" "$kdir/root" "$abi" "$W/$k/initrd.gz" "${bb[@]}" || { echo "  initrd for $k failed"; return; }
  if [ "$arch" = arm64 ]; then
    mkdir -p "$res/clang-req"
    clang_serve "$res/clang-req" &
    server=$!
  fi
  for ((g = 1; g <= n; g++)); do
    boot "$kdir" "$res" "$g" &
    pids+=($!)
  done
  wait "${pids[@]}"
  if [ -n "$server" ]; then
    touch "$res/clang-req/.stop"
    wait "$server"
  fi
  [ -d "$res/clang-new" ] && cp -n "$res"/clang-new/*.o "$clang_cache/" 2>/dev/null
  return 0
}

# run_kernel writes the jobs of kernel $k and boots its guests.
run_kernel() {
  local kdir=$1 abi=$2 res=$3
  jobs "$GUESTS" "$CPUS" "$abi" "$kdir/root" "$res"
  guests "$kdir" "$abi" "$res" "$GUESTS"
}

# emulator_race says whether a guest of kernel $k died of the emulator race
# (an int3 the kernel had patched away), not of anything the tests did.
emulator_race() {
  local g
  for ((g = 1; g <= GUESTS; g++)); do
    [ -f "$W/$k/results/done.$g" ] && continue
    grep -q 'Oops: int3' "$W/$k/console.$g.log" 2>/dev/null && return 0
  done
  return 1
}

. "$here/plan.sh"
. "$here/report.sh"

# ARM64_BUILD: the arm64 daemon and plugins (`make ARCH=arm64 build`).
ARM64_BUILD=${NMK_ARM64_BUILD:-$repo/build/arm64}

# kernel_arch sets, for kernel label $1, arch, tbin (its test binaries),
# nmbuild (the daemon and plugins it runs) and the durations of its tests.
kernel_arch() {
  arch=amd64 tbin=$W/bin nmbuild=$repo/build
  [ "$1" = arm64 ] && arch=arm64 tbin=$W/bin-arm64 nmbuild=$ARM64_BUILD
  durations_use "$arch"
}

main() {
  local k line label abi version kdir res start secs tp=0 tf=0 ts=0 p f s t0
  t0=$(date +%s)
  build
  echo "== test binaries built in $(($(date +%s) - t0))s"
  for k in "${kernels[@]}"; do
    start=$(date +%s)
    res=$W/$k/results
    rm -rf "$W/$k"
    mkdir -p "$res"
    kernel_arch "$k"
    groot=""
    if [ "$k" = host ]; then
      label="host" abi=$(uname -r) version="none: this machine's kernel, no qemu"
      jobs 1 2 "$abi" "" "$res"
      bash "$res/job.1.sh" >"$W/$k/console.1.log" 2>&1
    elif line=$("$here/fetch.sh" "$k"); then
      read -r label abi version kdir groot <<<"$line"
      echo "== kernel $k: $abi (Debian $version), booting under qemu ($arch, $GUESTS guest(s) of $CPUS vCPUs)"
      run_kernel "$kdir" "$abi" "$res"
      if emulator_race; then
        echo "  kernel $k: a guest died with \"Oops: int3\" (qemu's multi-threaded emulation ran kernel code that had just been patched; see docs/kernels.md): booting it again, once"
        for f in "$W/$k"/console.*.log; do mv "$f" "${f%.log}.race"; done
        rm -rf "$res" "$W/$k/entries" "$W/$k/excluded" && mkdir -p "$res"
        run_kernel "$kdir" "$abi" "$res"
      fi
      durations_update
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
