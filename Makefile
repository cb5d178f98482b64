# Firebreak: `make test` is what CI runs (.ci/run); `make bench` prints the performance figures.
SHELL := /bin/bash
GO ?= go

.PHONY: test test-quick unit bench vet fmt build install install-systemd demo

# All tests, race detector on. Integration tests need mosquitto on PATH (or /usr/sbin); with
# CI=true a missing one fails the run instead of skipping. The HIL lead times are printed.
test: vet
	@scripts/test.sh

# The pure cores and the plumbing that needs no server: detection, cutover, collectors' decoding,
# config, wire, outbox, trace, KPIs, the vocabulary lint. Well under a minute; no Mosquitto,
# InfluxDB or Prometheus needed.
QUICK := ./alarms/ ./cutover/ ./collectors/ ./internal/config/ ./internal/clock/ ./internal/wire/ ./internal/outbox/ \
	./internal/trace/ ./internal/kpi/ ./internal/lint/ ./internal/secrets/ ./internal/relpath/ ./internal/scripttest/
test-quick:
	$(GO) test -count=1 $(QUICK)
unit: test-quick

# gofmt, go vet and staticcheck (all default checks). .ci/run installs staticcheck; elsewhere a
# missing one is skipped with a note, and with CI=true it is a failure.
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $$($(GO) env GOPATH)/bin/staticcheck)
vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	@if [ -x "$(STATICCHECK)" ]; then echo "staticcheck ./..."; "$(STATICCHECK)" ./...; \
	  elif [ "$$CI" = true ]; then echo "staticcheck is not installed (go install honnef.co/go/tools/cmd/staticcheck@v0.8.2)"; exit 1; \
	  else echo "note: staticcheck not installed; skipped (go install honnef.co/go/tools/cmd/staticcheck@v0.8.2)"; fi

# The headline figures first (docs/PERFORMANCE.md): the daemon at 500 and 1,000 devices of 200
# points (CPU % of a core, of it kernel, RSS, live heap, samples/s, poll-start jitter p50/p99,
# late-poller lines), with -record, the same load on `firebreak run` as its own process (CPU,
# RSS and its peak), and `firebreak replay` through the CLI on one core (rows/s); then every
# other benchmark. Each daemon run measures FIREBREAK_BENCH_SECONDS (default 20).
HEADLINE := 'Daemon500x200$$|Daemon500x200Record$$|Daemon1000x200$$|Run500x200$$|Run1000x200$$'
bench:
	$(GO) test -run '^$$' -bench $(HEADLINE) -benchtime 1x ./cmd/firebreak-sim/
	$(GO) test -run '^$$' -bench 'ReplayCLI$$' -benchtime 3x ./cmd/firebreak/
	$(GO) test -run '^$$' -bench . -skip 'Daemon|ReplayCLI' -benchmem ./...

# The version the binaries report: the git description of the checkout (or "devel").
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X main.version=$(VERSION)
PREFIX ?= /usr/local

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

# firebreak, firebreak-agent and firebreak-sim into $(PREFIX)/bin, the docs into
# $(PREFIX)/share/doc/firebreak (the units' Documentation=) (sudo make install).
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/firebreak
	install -m 0755 bin/firebreak bin/firebreak-agent bin/firebreak-sim $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/firebreak/

# The systemd units (firebreak@<room>, firebreak-agent) and the example configs, on a host that
# runs them (sudo make install install-systemd).
install-systemd:
	install -d $(DESTDIR)/etc/systemd/system $(DESTDIR)/etc/firebreak $(DESTDIR)/etc/firebreak-agent
	install -m 0644 packaging/systemd/firebreak@.service packaging/systemd/firebreak-agent.service $(DESTDIR)/etc/systemd/system/
	install -m 0640 -b packaging/etc/firebreak/b3.yaml $(DESTDIR)/etc/firebreak/b3.yaml.example
	install -m 0640 -b configs/agent/agent.yaml $(DESTDIR)/etc/firebreak-agent/agent.yaml.example

demo:
	$(GO) run ./cmd/firebreak demo
