#!/usr/bin/env bash
# Runs go test verbosely into a log, prints package results and failures, and
# ends with one summary line: "N passed, N failed, N skipped".
set -uo pipefail
log=$(mktemp)
go test -v "$@" >"$log" 2>&1
rc=$?
grep -E '^(ok|FAIL|---|panic:|\?)|^\s+--- FAIL|\.go:[0-9]+:' "$log" | grep -vE '^\s*--- PASS|^\?' || true
passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
if [ "$rc" -ne 0 ]; then
  echo "== go test exited $rc; full log (daemon debug lines left out):"
  grep -v 'level=debug' "$log"
fi
rm -f "$log"
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$rc"
