#!/usr/bin/env bash
# Runs every test with the race detector and prints a short summary: go test's own package lines,
# every failure with its output, and the HIL lead-time lines.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
go test -race -count=1 -parallel 8 -timeout 14m -v ./... >"$log" 2>&1
status=$?
grep -E '^(ok|FAIL|panic:|--- FAIL|--- SKIP)|HIL |E2E |^# |^[^ ]+\.go:[0-9]+:[0-9]+: ' "$log"
if [ $status -ne 0 ]; then
  echo "---- failures (full output of failing tests) ----"
  awk '/^=== RUN/{buf=""} {buf=buf $0 "\n"} /^--- FAIL/{printf "%s", buf}' "$log" | tail -200
fi
passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
