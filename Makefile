# The front door: `make dev` runs the plugin in a real Vault against the Lark emulator,
# `make test` runs every test, `make bench` the benchmarks. `make help` lists the rest.

SHELL       := bash
VERSION     ?= v0.1.0
MODULE      := github.com/lark-vault/vault-plugin-secrets-lark
LDFLAGS      = -X $(MODULE).Version=$(VERSION)
BIN         := $(CURDIR)/bin
PLUGIN_BIN  := $(BIN)/vault-plugin-secrets-lark
EMU_BIN     := $(BIN)/lark-emulator
DIST        ?= $(CURDIR)/dist
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
NODE_BOT    := examples/node-bot
MCP_DIR     := examples/mcp
GO_SOURCES  := $(shell find . -name '*.go' -not -path './tools/*' -not -path './.cache/*') go.mod go.sum

.PHONY: help build vault node-bot mcp dev test test-unit test-e2e test-cluster bench bench-sweep bench-micro fuzz fmt fmtcheck vet lint release clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t16

build: $(PLUGIN_BIN) $(EMU_BIN) ## Build the plugin and the Lark emulator into bin/

$(PLUGIN_BIN): $(GO_SOURCES)
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $@ ./cmd/vault-plugin-secrets-lark

$(EMU_BIN): $(GO_SOURCES)
	CGO_ENABLED=0 go build -trimpath -o $@ ./cmd/lark-emulator

vault: ## Build the pinned Vault server from the Go module proxy (cached after the first time)
	@scripts/build-vault.sh >/dev/null

node-bot: $(NODE_BOT)/node_modules/.package-lock.json ## Install examples/node-bot's dependencies from the npm registry (npm ci; again only when the lock file changes)

# npm ci writes node_modules/.package-lock.json; its time stamp says when the tree was installed.
$(NODE_BOT)/node_modules/.package-lock.json: $(NODE_BOT)/package.json $(NODE_BOT)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || \
	  { echo "examples/node-bot and its e2e test need Node.js >= 18 and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	cd $(NODE_BOT) && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

mcp: $(MCP_DIR)/node_modules/.package-lock.json ## Install examples/mcp's dependencies (Lark's MCP server @larksuiteoapi/lark-mcp) from the npm registry (npm ci)

# No install scripts: keytar's builds lark-mcp's own login store (keychain), which the example
# does not use (lark-mcp says so on stderr and goes on); protobufjs's only checks versions.
$(MCP_DIR)/node_modules/.package-lock.json: $(MCP_DIR)/package.json $(MCP_DIR)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || \
	  { echo "examples/mcp and its e2e test need Node.js >= 20 and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	cd $(MCP_DIR) && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

dev: build ## Run Vault (dev mode) with the plugin mounted at lark/ and the emulator beside it
	@VERSION=$(VERSION) PLUGIN_BIN=$(PLUGIN_BIN) EMULATOR_BIN=$(EMU_BIN) scripts/dev.sh

test: fmtcheck vet lint test-unit test-e2e test-cluster ## Everything CI runs: formatting, vet, lint, unit, end-to-end and cluster tests

test-unit: ## Unit tests with the race detector (backend on in-memory storage, in-process emulator)
	go test -race -count=1 ./...

test-e2e: build node-bot mcp ## End-to-end tests: real Vault server and CLI, emulator as a process, the Node bot, Lark's MCP server
	@vault_bin=$$(scripts/build-vault.sh) && \
	VAULT_BIN=$$vault_bin PLUGIN_BIN=$(PLUGIN_BIN) EMULATOR_BIN=$(EMU_BIN) \
	go test -tags e2e -count=1 -timeout 45m -skip '^TestCluster' -v ./e2e/

# Examples no end-to-end test runs as they are: Prometheus (promtool) and Kubernetes (VSO's CRDs).
.PHONY: prometheus-tools test-examples
test: test-examples
test-e2e: prometheus-tools

prometheus-tools: ## Install promtool and prometheus (Debian's prometheus package, via apt-get) when missing; its service is not started
	@scripts/prometheus-tools.sh

test-examples: prometheus-tools ## promtool check config / test rules on examples/prometheus; examples/kubernetes against VSO's CRD schemas (tools/vso)
	@scripts/test-examples.sh

# The cluster tests run on their own, after the others, so that their failovers are not slowed by
# the hundreds of concurrent requests of the other end-to-end tests.
test-cluster: build ## Three-node Raft cluster: step-down, SIGKILL and restart, late Lark answers
	@vault_bin=$$(scripts/build-vault.sh) && \
	VAULT_BIN=$$vault_bin PLUGIN_BIN=$(PLUGIN_BIN) EMULATOR_BIN=$(EMU_BIN) \
	go test -tags e2e -count=1 -timeout 30m -run '^TestCluster' -v ./e2e/

bench: build ## Reads through a real Vault (Raft and dev) and the in-process benchmarks, into BENCHMARKS.md (10-15 min)
	@VERSION=$(VERSION) PLUGIN_BIN=$(PLUGIN_BIN) EMULATOR_BIN=$(EMU_BIN) scripts/bench.sh reads

bench-sweep: build ## The sweep with 10,000 to 100,000 grants in Raft, into BENCHMARKS.md (~10-20 min)
	@VERSION=$(VERSION) PLUGIN_BIN=$(PLUGIN_BIN) EMULATOR_BIN=$(EMU_BIN) scripts/bench.sh sweep

bench-micro: ## Only the in-process benchmarks (no Vault; about a minute; prints, writes nothing)
	go test -run '^$$' -bench . -benchmem -count 5 .

FUZZTIME  ?= 30s
FUZZFLAGS ?=

fuzz: ## Run every fuzz target of every package for FUZZTIME each (default 30s); a finding lands in the package's testdata/fuzz/
	@set -e; for pkg in $$(go list ./...); do \
		for target in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$target ($(FUZZTIME))"; \
			go test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $$pkg; \
		done; \
	done

fmt: ## Format the code
	gofmt -w $$(git ls-files '*.go' | grep -v '^tools/')

fmtcheck: ## Fail if any file needs gofmt
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^tools/')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: ## go vet, including the end-to-end tests
	go vet ./...
	go vet -tags e2e ./e2e/

lint: ## golangci-lint v2 (default linters), including the end-to-end tests; installed into the cache the first time
	@lint=$$(scripts/golangci-lint.sh) && status=0 && \
	{ $$lint run ./... || status=1; } && \
	{ $$lint run --build-tags e2e ./e2e/... || status=1; } && \
	exit $$status

# A release carries the version of the git tag it is built from (scripts/version.sh);
# `make release VERSION=vX.Y.Z` overrides it.
release: VERSION = $(shell scripts/version.sh)
release: ## Cross-compile the plugin for linux and darwin (amd64, arm64) into dist/ with SHA256SUMS; print the register commands
	@VERSION='$(VERSION)' LDFLAGS='$(LDFLAGS)' DIST='$(DIST)' RELEASE_PLATFORMS='$(RELEASE_PLATFORMS)' scripts/release.sh

clean: ## Remove build output (the cached Vault and linter in .cache/ stay; delete them by hand)
	rm -rf $(BIN) $(CURDIR)/dist bench-out $(NODE_BOT)/node_modules $(MCP_DIR)/node_modules
