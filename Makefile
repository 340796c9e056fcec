# The front door: `make dev` runs the plugin in a real Vault against the Lark emulator,
# `make test` runs every test, `make bench` the benchmarks. `make help` lists the rest.

SHELL       := bash
VERSION     ?= v0.1.0
MODULE      := github.com/lark-vault/vault-plugin-secrets-lark
LDFLAGS     := -X $(MODULE).Version=$(VERSION)
BIN         := $(CURDIR)/bin
PLUGIN_BIN  := $(BIN)/vault-plugin-secrets-lark
EMU_BIN     := $(BIN)/lark-emulator
GO_SOURCES  := $(shell find . -name '*.go' -not -path './tools/*' -not -path './.cache/*') go.mod go.sum

.PHONY: help build vault dev test test-unit test-e2e bench bench-sweep bench-micro fmt fmtcheck vet clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t16

build: $(PLUGIN_BIN) $(EMU_BIN) ## Build the plugin and the Lark emulator into bin/

$(PLUGIN_BIN): $(GO_SOURCES)
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $@ ./cmd/vault-plugin-secrets-lark

$(EMU_BIN): $(GO_SOURCES)
	CGO_ENABLED=0 go build -trimpath -o $@ ./cmd/lark-emulator

vault: ## Build the pinned Vault server from the Go module proxy (cached after the first time)
	@scripts/build-vault.sh >/dev/null

dev: build ## Run Vault (dev mode) with the plugin mounted at lark/ and the emulator beside it
	@VERSION=$(VERSION) PLUGIN_BIN=$(PLUGIN_BIN) EMULATOR_BIN=$(EMU_BIN) scripts/dev.sh

test: fmtcheck vet test-unit test-e2e ## Everything CI runs: formatting, vet, unit and end-to-end tests

test-unit: ## Unit tests with the race detector (backend on in-memory storage, in-process emulator)
	go test -race -count=1 ./...

test-e2e: build ## End-to-end tests: real Vault server and CLI, emulator as a process
	@vault_bin=$$(scripts/build-vault.sh) && \
	VAULT_BIN=$$vault_bin PLUGIN_BIN=$(PLUGIN_BIN) EMULATOR_BIN=$(EMU_BIN) \
	go test -tags e2e -count=1 -timeout 30m -v ./e2e/

bench: build ## Reads through a real Vault (Raft and dev) and the in-process benchmarks, into BENCHMARKS.md (10-15 min)
	@VERSION=$(VERSION) PLUGIN_BIN=$(PLUGIN_BIN) EMULATOR_BIN=$(EMU_BIN) scripts/bench.sh reads

bench-sweep: build ## The sweep with 10,000 to 100,000 grants in Raft, into BENCHMARKS.md (~20 min)
	@VERSION=$(VERSION) PLUGIN_BIN=$(PLUGIN_BIN) EMULATOR_BIN=$(EMU_BIN) scripts/bench.sh sweep

bench-micro: ## Only the in-process benchmarks (no Vault; about a minute; prints, writes nothing)
	go test -run '^$$' -bench . -benchmem -count 5 .

fmt: ## Format the code
	gofmt -w $$(git ls-files '*.go' | grep -v '^tools/')

fmtcheck: ## Fail if any file needs gofmt
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^tools/')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: ## go vet, including the end-to-end tests
	go vet ./...
	go vet -tags e2e ./e2e/

clean: ## Remove build output (the cached Vault in .cache/ stays; delete it by hand)
	rm -rf $(BIN) bench-out
