#!/usr/bin/env bash
# Counting for `make test` and the kernel matrix.
#
#   tally.sh count FILE...        "P F S": go test -v lines (--- PASS/FAIL/SKIP,
#                                 subtests included) in the outputs FILE...
#   tally.sh relabel FILE         copies stdin to stdout but for gotest.sh's
#                                 closing "tests: ..." line, which it saves to
#                                 FILE as "P F S" and prints with a label, so
#                                 that only the grand total closes `make test`
#   tally.sh total NAME=FILE...   prints each part and then the one closing
#                                 line "tests: P passed, F failed, S skipped";
#                                 a part whose FILE is missing counts as one
#                                 failure (it never reported)
set -uo pipefail

count() {
  local p f s
  p=$(cat "$@" 2>/dev/null | grep -cE '^\s*--- PASS')
  f=$(cat "$@" 2>/dev/null | grep -cE '^\s*--- FAIL')
  s=$(cat "$@" 2>/dev/null | grep -cE '^\s*--- SKIP')
  echo "$p $f $s"
}

relabel() {
  local file=$1 line re='^tests: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$'
  rm -f "$file"
  while IFS= read -r line; do
    if [[ $line =~ $re ]]; then
      echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]} ${BASH_REMATCH[3]}" >"$file"
      echo "== go test ./... on this machine's kernel ($(uname -r)): ${BASH_REMATCH[1]} passed, ${BASH_REMATCH[2]} failed, ${BASH_REMATCH[3]} skipped"
    else
      printf '%s\n' "$line"
    fi
  done
}

total() {
  local tp=0 tf=0 ts=0 arg name file p f s
  for arg in "$@"; do
    name=${arg%%=*} file=${arg#*=}
    if read -r p f s 2>/dev/null <"$file"; then
      echo "== $name: $p passed, $f failed, $s skipped"
    else
      p=0 f=1 s=0
      echo "== $name: did not report its counts; counted as 1 failed"
    fi
    tp=$((tp + p)) tf=$((tf + f)) ts=$((ts + s))
  done
  echo "tests: $tp passed, $tf failed, $ts skipped"
}

cmd=${1:-}
shift || true
case $cmd in
  count) count "$@" ;;
  relabel) relabel "$@" ;;
  total) total "$@" ;;
  *) echo "usage: tally.sh count FILE... | relabel FILE | total NAME=FILE..." >&2; exit 2 ;;
esac
