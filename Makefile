# Custodian: compliance recording and transcription gateway.
# `make run` and `make test` install what they need (Debian packages, Go
# modules, tools, npm packages) and are safe to run repeatedly.

GO        ?= go
BIN       := bin/custodian
PKGS      := ./...
TESTFLAGS ?= -race -shuffle=on -timeout 60m
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

.PHONY: run test build deps deps-run bench fuzz lint tidy-check perf clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/custodian

deps-run:
	@scripts/deps.sh run

deps:
	@scripts/deps.sh all

## run: start the gateway on embedded defaults (SQLite, ./data, in-process NATS, local keyring, offline transcriber)
run: deps-run build
	./$(BIN) serve

## test: every test, against the real services (see .ci/run for CI's environment);
## the browser end-to-end tests run last and alone, so their timing checks
## (start offsets of different browsers on one session clock) see a machine
## that is not also running other packages' tests
test: deps build
	$(GO) vet $(PKGS)
	CGO_ENABLED=0 $(GO) build -o /dev/null ./...
	$(GO) test $(TESTFLAGS) $$($(GO) list $(PKGS) | grep -v '/e2etest$$')
	$(GO) test $(TESTFLAGS) ./e2etest/

## bench: benchmarks, benchstat-ready (`make bench > new.txt; benchstat old.txt new.txt`)
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -count 6 -timeout 3h $(PKGS)

## fuzz: each fuzz target for a short time
FUZZTIME ?= 20s
fuzz: deps
	@scripts/fuzz.sh $(FUZZTIME)

lint: deps
	$(GO) vet $(PKGS)
	@command -v staticcheck >/dev/null 2>&1 || GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	staticcheck $(PKGS)

tidy-check:
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

## perf: capacity report (docs/performance.md)
perf: deps build
	scripts/perf.sh

clean:
	rm -rf bin
