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

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

build:
	$(GO) build -o bin/ ./cmd/...

demo:
	$(GO) run ./cmd/firebreak demo
