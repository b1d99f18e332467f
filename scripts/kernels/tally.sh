#!/usr/bin/env bash
# Counting for `make test` and the kernel matrix.
#
#   tally.sh count FILE...        "P F S": go test -v lines (--- PASS/FAIL/SKIP,
#                                 subtests included) in the outputs FILE...
#   tally.sh relabel FILE         copies stdin to stdout but for gotest.sh's
#                                 closing "tests: ..." line, which it saves to
#                                 FILE as "P F S" and prints with a label, so
#                                 that only the grand total closes `make test`
#   tally.sh fuzz FILE            copies stdin (scripts/fuzz.sh) to stdout and
#                                 saves "P F 0" to FILE: targets that passed
#                                 ("ok" lines) and failed ("--- FAIL" lines)
#   tally.sh total NAME=FILE...   prints each part and then the one closing
#                                 line "tests: P passed, F failed, S skipped";
#                                 a part whose FILE is missing, or whose
#                                 FILE.rc holds a non-zero exit status while
#                                 it counted no failure, counts one failure.
#                                 Exits 1 when anything failed.
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

fuzz() {
  local file=$1 line p=0 f=0
  while IFS= read -r line; do
    printf '%s\n' "$line"
    [[ $line =~ ^ok[[:space:]] ]] && p=$((p + 1))
    [[ $line =~ ^[[:space:]]*---\ FAIL ]] && f=$((f + 1))
  done
  echo "$p $f 0" >"$file"
}

total() {
  local tp=0 tf=0 ts=0 arg name file p f s rc bad=0
  for arg in "$@"; do
    name=${arg%%=*} file=${arg#*=}
    rc=0
    [ -f "$file.rc" ] && read -r rc <"$file.rc"
    if read -r p f s 2>/dev/null <"$file"; then
      echo "== $name: $p passed, $f failed, $s skipped"
      if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        f=1
        echo "== $name: exited $rc without a failed test; counted as 1 failed"
      fi
    else
      p=0 f=1 s=0
      echo "== $name: did not report its counts; counted as 1 failed"
    fi
    [ "$rc" != 0 ] && bad=1
    tp=$((tp + p)) tf=$((tf + f)) ts=$((ts + s))
  done
  echo "tests: $tp passed, $tf failed, $ts skipped"
  [ "$tf" = 0 ] && [ $bad = 0 ]
}

cmd=${1:-}
shift || true
case $cmd in
  count) count "$@" ;;
  relabel) relabel "$@" ;;
  fuzz) fuzz "$@" ;;
  total) total "$@" ;;
  *) echo "usage: tally.sh count FILE... | relabel FILE | fuzz FILE | total NAME=FILE..." >&2; exit 2 ;;
esac
