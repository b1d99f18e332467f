# Sourced by run.sh: what the guests run and how it is spread over them.
#
# The work of a kernel is spread over lanes, one per vCPU (NMK_GUESTS
# guests of NMK_GUEST_CPUS vCPUs; default one guest of two): each top-level
# test goes, the longest first, to the lane with the least expected work so
# far, by its time in earlier runs (durations). A lane's share of a test
# binary is one entry (-test.run with its tests); a guest runs its lanes'
# entries, the longest first, NMK_JOBS (vCPUs + 1) at a time, so that one
# waiting on the network leaves its vCPU to another.

# Seconds each top-level test took, "BINARY TEST SECONDS", per architecture
# (arm64's emulation slows some tests far more than others): the seed shipped
# here, overridden by what the runs on this machine measured (run.sh
# updates it after each kernel). durations_use ARCH chooses them.
durations_use() {
  local sfx=""
  [ "$1" = amd64 ] || sfx=-$1
  DURATIONS_SEED=$here/durations$sfx.tsv
  DURATIONS=$KCACHE/durations$sfx.tsv
}
durations_use amd64

# tests prints "STEP BINARY PKGDIR TIMEOUT [ARG...]", one per test binary;
# one with ARGs runs whole, on one guest. NMK_STEPS ("e2e", "budget
# dataplane", ...), when set, keeps only the binaries of those steps.
tests() {
  tests_all | awk -v s=" ${NMK_STEPS:-} " 's == "  " || index(s, " " $1 " ")'
}

tests_all() {
  echo "budget verifier test/verifier 600 -test.run ^TestVerifierBudget\$"
  [ "$budget_only" = 1 ] && return
  echo "dataplane bpf bpf 600"
  local m
  for m in "$repo"/modules/*/; do
    m=$(basename "$m")
    echo "dataplane $m modules/$m 600"
  done
  echo "dataplane trace ebpfManager/trace 600 -test.run . -test.bench Hop -test.benchtime 200000x"
  echo "e2e daemon test/kernels 600 -test.run ."
}

# Tests a kernel cannot run for want of a feature: "FEATURE SINCE BINARY
# REGEX" — not run on kernels older than SINCE (the report says so). None
# now: the proxy's live tests attach with legacy clsact where TCX is missing
# (bpftest.AttachIngress).
exclusions() {
  :
}

# Tests of scale that the host runs (go test ./...) and the emulated guests
# do not: "BINARY REGEX REASON". Nothing in them depends on the kernel's
# version; under emulation they would take tens of minutes.
hostonly() {
  echo 'proxy ^TestMillionFlows$ a million flows through the data plane (3 million test runs, 620 MB of maps): host only'
}

# skips RELEASE BINARY prints the -test.skip regex for BINARY on a kernel of
# RELEASE, and records why in $W/$k/excluded.
skips() {
  local rel=${1%%-*} name=$2 feat since n re why out=""
  rel=$(echo "$rel" | cut -d. -f1,2)
  while read -r feat since n re; do
    [ "$n" = "$name" ] || continue
    dpkg --compare-versions "$rel" lt "$since" || continue
    out=${out:+$out|}${re}
    echo "    $name $re: not run (needs $feat, Linux $since)" >>"$W/$k/excluded"
  done < <(exclusions)
  while read -r n re why; do
    [ "$n" = "$name" ] || continue
    out=${out:+$out|}${re}
    echo "    $name $re: not run ($why)" >>"$W/$k/excluded"
  done < <(hostonly)
  echo "$out"
}

# items RELEASE prints "STEP|BINARY|PKGDIR|TIMEOUT|ARGS|TEST" for every
# top-level test of every binary that a kernel of RELEASE can run (TEST "-":
# the binary runs whole with its ARGS).
items() {
  local rel=$1 step bin dir t args name skip
  while read -r step bin dir t args; do
    skip=$(skips "$rel" "$bin")
    if [ -n "$args" ]; then
      [ -n "$skip" ] && args="$args -test.skip '$skip'"
      echo "$step|$bin|$dir|$t|$args|-"
      continue
    fi
    "$W/bin/$bin.test" -test.list '.*' </dev/null | grep -E '^(Test|Fuzz|Example)' | grep -Ev "${skip:-^\$}" |
      while read -r name; do echo "$step|$bin|$dir|$t||$name"; done
  done < <(tests)
}

# assign spreads the items over N lanes (longest first, each to the lane
# with the least work; a test never measured counts 5 s, and each binary a
# lane starts 3 s) and prints one entry per lane and binary:
# "LANE|SECONDS|STEP|ENTRY|BINARY|PKGDIR|TIMEOUT|ARGS", heaviest first.
assign() {
  awk -F'|' -v n="$1" '
    FILENAME != "-" { d[$1 "|" $2] = $3; next }
    {
      key = $2 "|" $6; w = ($6 == "-") ? 0 : ((key in d) ? d[key] : 5)
      if ($6 == "-") for (k in d) if (index(k, $2 "|") == 1) w += d[k]
      if (w == 0) w = 5
      printf "%09.2f|%s\n", w, $0
    }' <(cat "$DURATIONS_SEED" "$DURATIONS" 2>/dev/null | awk '{print $1 "|" $2 "|" $3}') - |
    sort -r | awk -F'|' -v n="$1" '
    {
      best = 1; for (g = 2; g <= n; g++) if (load[g] < load[best]) best = g
      k = best "|" $3
      if (!(k in runs)) { order[++m] = k; load[best] += 3; info[k] = $2 "|" $3 "|" $4 "|" $5 "|" $6 }
      load[best] += $1; sec[k] += $1
      if ($7 != "-") runs[k] = runs[k] (runs[k] == "" ? "" : "|") $7; else runs[k] = runs[k]
      if (!(k in shares)) shares[$3] += 1; shares[k] = 1
    }
    END {
      for (i = 1; i <= m; i++) {
        k = order[i]; split(info[k], f, "|"); g = substr(k, 1, index(k, "|") - 1)
        entry = (shares[f[2]] > 1) ? f[2] "." g : f[2]
        args = f[5]; if (runs[k] != "") args = args " -test.run '\''^(" runs[k] ")$'\''"
        printf "%s|%d|%s|%s|%s|%s|%s|%s\n", g, sec[k], f[1], entry, f[2], f[3], f[4], args
      }
    }' | sort -t'|' -k2,2nr
}

# job_head prints the start of guest G's job.sh (kernel unpacked at $2,
# empty for the host; $4 test binaries at a time).
job_head() {
  local g=$1 kroot=$2 res=$3 jobs=$4 native=0
  [ -z "$kroot" ] && native=1
  echo '#!/bin/bash'
  echo "export NMK_KROOT='$kroot' NMK_REPO='$repo' NMK_NATIVE=$native NMK_JOBS=$jobs NMK_GUEST=$g"
  [ $native = 1 ] && echo "export NMK_RESULTS='$res'"
  [ $native = 0 ] && echo "export NMK_CLANG_CACHE='$clang_cache'"
  [ "$arch" = arm64 ] && echo "export NMK_CLANG_SERVED=1"
  echo "export NETMANAGER_BIN='$nmbuild/bin/netmanager' NETMANAGER_MODULES='$nmbuild/modules'"
  echo ". '$here/guest.sh'"
  [ $native = 0 ] && echo nmk_setup
  echo 'export VERIFIER_OUT=$R/verifier.jsonl'
}

# jobs writes job.G.sh for each of N guests of C vCPUs of kernel $k
# (release $3, unpacked at $4; empty: the host, one "guest", no qemu) and
# lists "STEP ENTRY GUEST SECONDS" in $W/$k/entries for the report.
jobs() {
  local n=$1 c=$2 rel=$3 kroot=$4 res=$5 g lane secs step entry bin dir t args
  for ((g = 1; g <= n; g++)); do
    job_head "$g" "$kroot" "$res" "${NMK_JOBS:-$((c + 1))}" >"$res/job.$g.sh"
  done
  while IFS='|' read -r lane secs step entry bin dir t args; do
    g=$(((lane - 1) / c + 1))
    echo "nmk_test $step $entry $dir '$tbin/$bin.test' $t $args" >>"$res/job.$g.sh"
    echo "$step $entry $g $secs" >>"$W/$k/entries"
  done < <(items "$rel" | assign $((n * c)))
  for ((g = 1; g <= n; g++)); do
    echo nmk_finish >>"$res/job.$g.sh"
    chmod 0755 "$res/job.$g.sh"
  done
}

# durations_update merges the top-level test times kernel $k's guests
# measured into $DURATIONS: the latest measurement of a test wins (within one
# run the tests share the machine's conditions; their ratios are what the
# plan needs).
durations_update() {
  local f b
  {
    for f in "$W/$k"/results/*.out; do
      [ -f "$f" ] || continue
      b=$(basename "$f" .out)
      b=${b#*.}
      b=${b%.[0-9]}
      sed -nE "s/^--- (PASS|FAIL|SKIP): (\S+) \(([0-9.]+)s\)$/$b \2 \3/p" "$f"
    done
    [ ! -f "$DURATIONS" ] || cat "$DURATIONS"
  } | awk '{k = $1 " " $2; if (!(k in m)) m[k] = $3} END {for (k in m) print k, m[k]}' |
    sort >"$DURATIONS.$$" && mv "$DURATIONS.$$" "$DURATIONS"
  rm -f "$DURATIONS.$$"
}
