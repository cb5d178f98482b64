# Firebreak: `make test` is what CI runs (.ci/run); `make bench` prints the performance figures.
SHELL := /bin/bash
GO ?= go

.PHONY: test unit bench vet fmt build demo

# All tests, race detector on. Integration tests need mosquitto on PATH (or /usr/sbin); with
# CI=true a missing one fails the run instead of skipping. The HIL lead times are printed.
test: vet
	@scripts/test.sh

# Only the tests with no servers and no sockets.
unit:
	$(GO) test -count=1 ./alarms/ ./cutover/ ./collectors/ ./internal/config/ ./internal/clock/

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

build:
	$(GO) build -o bin/ ./cmd/...

demo:
	$(GO) run ./cmd/firebreak demo
