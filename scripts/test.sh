#!/usr/bin/env bash
# Runs every test with the race detector and shows progress as it goes: one line per package as it
# finishes (go test's own ok/FAIL line), every skip with its reason, the HIL and E2E figures; at the
# end every failure with its output and the totals. The suite takes about 12-15 minutes on two cores
# (the HIL scenarios and the demo are most of it); `make test-quick` runs the pure cores in seconds.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "go test -race ./... (about 12-15 minutes on two cores; one line per package as it finishes)"
# -v so that skips and their reasons are seen; the filter prints as lines arrive.
SECONDS=0
go test -race -count=1 -parallel 8 -timeout 20m -v ./... 2>&1 | tee "$log" | {
  reason=""
  while IFS= read -r line; do
    case "$line" in
      ok* | FAIL* | panic:*) printf '[%4ds] %s\n' "$SECONDS" "$line" ;;
      "--- FAIL"*) echo "$line" ;;
      *"--- SKIP"*) echo "$line"; [ -n "$reason" ] && echo "      reason: $reason" ;;
      *"HIL "* | *"E2E "* | *"could not keep up"*) echo "$line" ;;
    esac
    case "$line" in
      *_test.go:[0-9]*:*) reason="${line#"${line%%[! ]*}"}" ;;
    esac
  done
}
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo "---- failures (full output of failing tests) ----"
  awk '/^=== RUN/{buf=""} {buf=buf $0 "\n"} /^--- FAIL/{printf "%s", buf}' "$log" | tail -300
fi
passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
echo "tests: $passed passed, $failed failed, $skipped skipped in ${SECONDS}s"
if [ "$skipped" -gt 0 ]; then
  echo "skipped tests need a server that is not installed (each skip above says which); on Debian:"
  echo "  apt-get install -y mosquitto prometheus; go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10"
  echo "  (CI=true turns a missing server into a failure; .ci/run installs them all)"
fi
exit "$status"
