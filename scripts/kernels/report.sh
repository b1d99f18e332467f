# Sourced by run.sh: what each kernel's guests left in its results directory,
# as the lines `make test` prints, and the verifier counts side by side.

# details prints a failed test binary's failures: FAIL lines, file:line
# messages and panics (its full output stays in the .out file).
details() {
  grep -E '^(FAIL|panic:)|^\s*--- FAIL|\.go:[0-9]+:|^\s+Error' "$1" | grep -vE '^\s*--- PASS' | head -60 | sed 's/^/      /'
  echo "      (full output: $1)"
}

# step_report STEP RES prints one step's counts and failures and echoes
# "P F S" to fd 3.
step_report() {
  local step=$1 res=$2 s name g p=0 f=0 k=0 rc secs notes=() tp tf ts
  while read -r s name g _; do
    [ "$s" = "$step" ] || continue
    if [ ! -f "$res/$step.$name.rc" ]; then
      f=$((f + 1))
      notes+=("    $name: FAILED: did not run to the end (guest $g; see its console above)")
      continue
    fi
    read -r rc secs <"$res/$step.$name.rc"
    read -r tp tf ts < <("$here/tally.sh" count "$res/$step.$name.out")
    p=$((p + tp)) f=$((f + tf)) k=$((k + ts))
    if [ "$rc" != 0 ] && [ "$tf" = 0 ]; then
      f=$((f + 1))
      notes+=("    $name: FAILED: exit $rc without a failed test (timeout or crash) after ${secs}s")
    fi
    if [ "$rc" != 0 ]; then
      notes+=("    $name (${secs}s):" "$(details "$res/$step.$name.out")")
    else
      notes+=("    $name: ok, $tp passed (${secs}s)")
    fi
  done < <(sort "$W/$kernel/entries" 2>/dev/null)
  echo "  $step: $p passed, $f failed, $k skipped"
  printf '%s\n' "${notes[@]}"
  echo "$p $f $k" >&3
}

# guest_checks counts, in report's f, each guest of kernel $k that did not
# finish its job (printing the end of its console) or failed its setup.
guest_checks() {
  local g console
  for g in $(awk '{print $3}' "$W/$k/entries" 2>/dev/null | sort -u); do
    console=$W/$k/console.$g.log
    if [ ! -f "$res/done.$g" ]; then
      f=$((f + 1))
      echo "  FAILED: kernel $k, guest $g did not finish its job; the end of its console ($console):"
      tail -n 60 "$console" 2>/dev/null | sed 's/^/    | /'
    fi
    if [ -f "$res/setup.$g.rc" ] && [ "$(cat "$res/setup.$g.rc")" != 0 ]; then
      f=$((f + 1))
      echo "  FAILED: kernel $k, guest $g setup (a required kernel module did not load):"
      grep 'nmk: modprobe' "$console" | sed 's/^/    /'
    fi
  done
}

# report KERNEL ABI VERSION RES SECONDS prints a kernel's results and writes
# its counts "P F S" to $W/KERNEL/counts.
report() {
  local k=$1 abi=$2 version=$3 res=$4 secs=$5 p=0 f=0 s=0 sp sf ss step
  local counts=$W/$k/counts
  echo "== kernel $k: $abi (Debian $version), ${secs}s"
  if [ -f "$W/$k/fetch-failed" ]; then
    echo "  FAILED: kernel $k could not be fetched or unpacked"
    echo "0 1 0" >"$counts"
    return
  fi
  guest_checks
  [ -f "$W/$k/excluded" ] && sort -u "$W/$k/excluded"
  grep -h -m1 'nmk: machine' "$W/$k"/console.1.log 2>/dev/null | sed 's/^nmk: /    /'
  grep -h 'nmk: clang cache' "$W/$k"/console.*.log 2>/dev/null | sed 's/^nmk: /    /'
  for step in budget dataplane e2e; do
    [ $budget_only = 1 ] && [ $step != budget ] && continue
    kernel=$k step_report "$step" "$res" 3>"$W/$k/step"
    read -r sp sf ss <"$W/$k/step"
    p=$((p + sp)) f=$((f + sf)) s=$((s + ss))
  done
  echo "  kernel $k: $p passed, $f failed, $s skipped"
  echo "$p $f $s" >"$counts"
}

# budget_table prints every program's processed instructions per kernel,
# and copies each kernel's VERIFIER_OUT lines to --out DIR.
budget_table() {
  local k files=()
  for k in "${kernels[@]}"; do
    [ -f "$W/$k/results/verifier.jsonl" ] || continue
    files+=("$W/$k/results/verifier.jsonl")
    if [ -n "$out" ]; then
      mkdir -p "$out"
      cp "$W/$k/results/verifier.jsonl" "$out/$k.jsonl"
    fi
  done
  [ ${#files[@]} -gt 0 ] || return 0
  echo "== verifier: processed instructions per program (budget 100000)"
  awk '
    function field(s, name,   m) {
      if (match(s, "\"" name "\":\"[^\"]*\"")) { m = substr(s, RSTART, RLENGTH); sub("^\"" name "\":\"", "", m); sub("\"$", "", m); return m }
      if (match(s, "\"" name "\":[0-9]+")) { m = substr(s, RSTART, RLENGTH); sub("^\"" name "\":", "", m); return m }
      return ""
    }
    {
      k = field($0, "kernel"); key = field($0, "object") " " field($0, "program")
      v = field($0, "insns"); if (field($0, "error") != "") v = v "(refused)"
      if (!(k in seen)) { seen[k] = 1; ks[++nk] = k }
      if (!(key in known)) { known[key] = 1; keys[++nkey] = key }
      cell[key, k] = v
    }
    END {
      line = sprintf("  %-44s", "object program"); for (i = 1; i <= nk; i++) line = line sprintf(" %20s", ks[i]); print line
      for (j = 1; j <= nkey; j++) {
        line = sprintf("  %-44s", keys[j]); for (i = 1; i <= nk; i++) line = line sprintf(" %20s", ((keys[j], ks[i]) in cell) ? cell[keys[j], ks[i]] : "-"); print line
      }
    }' "${files[@]}"
}
