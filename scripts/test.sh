#!/usr/bin/env bash
# Runs every test with the race detector and shows progress as it goes (internal/testfold folds
# `go test -json`): one line per package the moment it finishes, every skip with its reason, the
# HIL and E2E figures; at the end every failure with its output and the totals. The suite takes
# about 12-15 minutes on two cores (the HIL scenarios and the demo are most of it); `make
# test-quick` runs the pure cores in seconds.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/testfold" ./internal/testfold || exit 2
# The Sparkplug test host's npm packages (Eclipse Tahu's decoder, MQTT.js), when npm is here and
# they are not installed yet; without them that test skips (with CI=true it fails).
if command -v npm >/dev/null 2>&1 && [ ! -d internal/sparkplug/testhost/node_modules/sparkplug-payload ]; then
  npm ci --prefix internal/sparkplug/testhost --no-audit --no-fund --loglevel=error || echo "note: npm ci for the Sparkplug test host failed"
fi
echo "go test -race ./... (about 12-15 minutes on two cores; a line per package as it finishes)"
go test -race -count=1 -parallel 8 -timeout 30m -json ./... 2>&1 | "$bin/testfold"
status=("${PIPESTATUS[@]}")
if [ "${status[0]}" -ne 0 ] || [ "${status[1]}" -ne 0 ]; then
  exit 1
fi
