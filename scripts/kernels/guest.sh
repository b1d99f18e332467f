# Stage 2 of a matrix guest: sourced by the job.G.sh that run.sh (plan.sh)
# writes into the results share, as PID 1 on the host's root (read-only over
# 9p). The job sets NMK_KROOT (the unpacked kernel package, for modprobe
# -d), NMK_REPO and NMK_GUEST (G: the guests of one kernel share the results
# directory), sources this file, calls nmk_setup, one nmk_test per test
# binary, and nmk_finish. Each test's `-test.v` output goes to
# /run/results/<step>.<entry>.out and its exit code to .rc; run.sh reads them.
# With NMK_NATIVE=1 (the "host" kernel of run.sh) nothing is mounted or
# loaded and nothing powers off: only the tests run.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin
export HOME=/root TMPDIR=/tmp LC_ALL=C
: "${NMK_RESULTS:=/run/results}"
R=$NMK_RESULTS

nmk_mounts() {
  local d
  for d in /tmp /var/tmp /var/lib /var/log /root /etc/netmanager; do
    [ -d "$d" ] && mount -t tmpfs -o mode=0755 tmpfs "$d"
  done
  chmod 1777 /tmp /var/tmp
  mkdir -p /dev/pts /dev/shm
  mount -t devpts devpts /dev/pts
  mount -t tmpfs tmpfs /dev/shm
  ln -sf /proc/self/fd /dev/fd
  ln -sf /proc/self/fd/0 /dev/stdin
  ln -sf /proc/self/fd/1 /dev/stdout
  ln -sf /proc/self/fd/2 /dev/stderr
  mount -t bpf bpf /sys/fs/bpf
  mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null || true
  mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
}

# nmk_modules makes the kernel's module loader (and ours) use the unpacked
# package's modules, then loads what the tests and the daemon need, in one
# modprobe (each process costs ~0.2 s under emulation). Those marked "!" are
# required: the setup fails without them.
nmk_modules() {
  local m ok=0 all=(veth bridge tun sch_ingress cls_bpf br_netfilter sch_tbf sch_htb
    nf_tables nft_compat nft_chain_nat nf_nat nf_conntrack nft_ct nft_masq nft_nat
    xt_MASQUERADE xt_addrtype xt_comment xt_nat xt_conntrack xt_tcpudp
    iptable_nat iptable_filter ip6table_nat ip6table_filter)
  mkdir -p /run/nmk
  printf '#!/bin/sh\nexec /usr/sbin/modprobe -d %s "$@"\n' "$NMK_KROOT" >/run/nmk/modprobe
  chmod 0755 /run/nmk/modprobe
  echo /run/nmk/modprobe >/proc/sys/kernel/modprobe
  /run/nmk/modprobe -a "${all[@]}" || echo "nmk: modprobe -a: not every module loaded"
  for m in veth bridge tun sch_ingress cls_bpf nf_tables nft_compat; do
    [ -d "/sys/module/$m" ] && continue
    /run/nmk/modprobe "$m" || { echo "nmk: modprobe $m (required) failed"; ok=1; }
  done
  return $ok
}

# nmk_clang puts scripts/kernels/clang.sh first on PATH as "clang", with the
# cache run.sh filled (NMK_CLANG_SERVED=1: misses go to the host).
nmk_clang() {
  mkdir -p /run/nmk/bin
  ln -sf "$NMK_REPO/scripts/kernels/clang.sh" /run/nmk/bin/clang
  export PATH=/run/nmk/bin:$PATH NMK_CLANG_LOG=$R/clang.$NMK_GUEST.log NMK_CLANG_STORE=$R/clang-new
  # no clang of the guest's architecture: the host builds what the cache misses
  [ "${NMK_CLANG_SERVED:-0}" = 1 ] && export NMK_CLANG_REMOTE=$R/clang-req NMK_CLANG_STORE=
  return 0
}

# nmk_hold switches on, for the guest's life, the static keys the tests
# would otherwise flip on and off all the time: each flip patches kernel
# code, and qemu's multi-threaded emulation once let the other vCPU run the
# int3 of such a patch after it was gone ("Oops: int3", docs/kernels.md).
# Holding them changes no test's outcome: the run-time statistics of BPF
# programs, a clsact qdisc (the tc/TCX hooks), a bridge (br_netfilter's
# hooks), netfilter base chains whose one rule matches nothing, a socket with
# receive timestamps (ping), the kfree_skb tracepoint (the drop monitor's
# tp_btf program attaches there: an ftrace event on it, recording nothing, as
# tracing is off; a 6.12 guest died with "Oops: int3" in
# sk_skb_reason_drop while the monitor attached); TCP and UDP over loopback
# draw the kernel's once-only random secrets here rather than mid-test.
nmk_hold() {
  local ipt c t=/sys/kernel/tracing
  sysctl -qw kernel.bpf_stats_enabled=1
  [ -d $t/events ] || mount -t tracefs tracefs $t 2>/dev/null
  if [ -w $t/events/skb/kfree_skb/enable ]; then
    echo 0 >$t/tracing_on && echo 1 >$t/events/skb/kfree_skb/enable &&
      echo "nmk: kfree_skb tracepoint held ($(cat $t/events/skb/kfree_skb/enable))"
  else
    echo "nmk: cannot hold the kfree_skb tracepoint ($t/events/skb/kfree_skb/enable)"
  fi
  /run/nmk/modprobe dummy
  ip link add nmk-hold type dummy && tc qdisc add dev nmk-hold clsact
  ip link add nmk-holdbr type bridge
  for ipt in iptables ip6tables; do
    for c in INPUT FORWARD; do $ipt -w -A "$c" -i nmk-hold -j RETURN; done
    $ipt -w -A OUTPUT -o nmk-hold -j RETURN
    for c in PREROUTING INPUT; do $ipt -w -t nat -A "$c" -i nmk-hold -j RETURN; done
    for c in OUTPUT POSTROUTING; do $ipt -w -t nat -A "$c" -o nmk-hold -j RETURN; done
  done
  ping -q -i 86400 127.0.0.1 >/dev/null 2>&1 & disown
  for a in 127.0.0.1 ::1; do
    (exec 3<>"/dev/tcp/$a/9") 2>/dev/null
    (echo x >"/dev/udp/$a/9") 2>/dev/null
  done
  return 0
}

# nmk_machine prints what differs between architectures and matters to the
# data planes: the machine, the page size (the proxy's ring buffer must be a
# multiple of it), whether programs are JIT-compiled, the byte order.
nmk_machine() {
  local page jit order
  page=$(grep -m1 KernelPageSize /proc/self/smaps | tr -s ' ' | cut -d' ' -f2-3)
  jit=$(cat /proc/sys/net/core/bpf_jit_enable 2>/dev/null || echo '?')
  order=little
  [ "$(printf '\1\0' | od -An -tu2 | tr -d ' ')" = 1 ] || order=big
  echo "nmk: machine $(uname -m), page size ${page:-?}, bpf_jit_enable $jit, $order endian"
}

nmk_setup() {
  echo "nmk: [$(cut -d' ' -f1 /proc/uptime)] guest $(uname -r) up"
  nmk_machine
  [ -n "${NMK_CLANG_CACHE:-}" ] && nmk_clang
  hostname "nmk-guest$NMK_GUEST"
  nmk_mounts
  ip link set lo up
  ulimit -l unlimited
  nmk_modules
  echo $? >"$R/setup.$NMK_GUEST.rc"
  nmk_hold
  echo "nmk: [$(cut -d' ' -f1 /proc/uptime)] setup done (rc $(cat "$R/setup.$NMK_GUEST.rc"))"
}

# nmk_test STEP NAME PKGDIR BINARY TIMEOUT [ARG...] starts a test binary in
# its package's directory with a Go test timeout of TIMEOUT seconds (and a
# kill 30 s later), in the background once NMK_JOBS (run.sh: 3 on 2 vCPUs,
# which keeps both busy while a test waits) are running.
nmk_test() {
  while [ "$(jobs -rp | wc -l)" -ge "${NMK_JOBS:-2}" ]; do wait -n; done
  nmk_run_test "$@" &
}

nmk_run_test() {
  local step=$1 name=$2 dir=$3 bin=$4 t=$5 rc start
  shift 5
  echo "nmk: [$(cut -d' ' -f1 /proc/uptime)] $step $name"
  start=$(date +%s)
  (cd "$NMK_REPO/$dir" && exec timeout -k 10 $((t + 30)) "$bin" -test.v -test.count=1 -test.timeout "${t}s" "$@") \
    >"$R/$step.$name.out" 2>&1 </dev/null
  rc=$?
  echo "$rc $(($(date +%s) - start))" >"$R/$step.$name.rc"
  echo "nmk: [$(cut -d' ' -f1 /proc/uptime)] $step $name exit $rc after $(($(date +%s) - start)) s"
}

nmk_finish() {
  wait
  local log=$R/clang.$NMK_GUEST.log
  [ -f "$log" ] && echo "nmk: clang cache: $(grep -c '^hit' "$log") hits, $(grep -c '^miss' "$log") misses"
  touch "$R/done.$NMK_GUEST"
  sync
  [ "${NMK_NATIVE:-0}" = 1 ] && return 0
  echo "nmk: powering off"
  /usr/bin/busybox poweroff -f 2>/dev/null
  echo o >/proc/sysrq-trigger
  sleep 30
}
