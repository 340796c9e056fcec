# The front door: `make dev` runs the plugin in a real Vault against the Lark emulator,
# `make test` runs every test, `make bench` the benchmarks. `make help` lists the rest.

SHELL       := bash
# One version for every build: `make build`, `make dev`, `make release` and so what Vault shows for
# the plugin. scripts/version.sh derives it from the nearest v-tag, or CHANGELOG.md's newest release
# and the commits since (v0.1.1-dev.N.g<commit> after v0.1.0); VERSION=vX.Y.Z overrides it.
ifeq ($(origin VERSION),undefined)
VERSION     := $(shell scripts/version.sh)
endif
MODULE      := github.com/lark-vault/vault-plugin-secrets-lark
LDFLAGS      = -X $(MODULE).Version=$(VERSION)
BIN         := $(CURDIR)/bin
PLUGIN_BIN  := $(BIN)/vault-plugin-secrets-lark
EMU_BIN     := $(BIN)/lark-emulator
DIST        ?= $(CURDIR)/dist
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
NODE_BOT    := examples/node-bot
MCP_DIR     := examples/mcp
GO_SERVICE  := examples/go-service
GO_SERVICE_BIN := $(BIN)/go-service
GO_SOURCES  := $(shell find . -name '*.go' -not -path './tools/*' -not -path './.cache/*' -not -path './$(GO_SERVICE)/*') go.mod go.sum
# examples/go-service is a Go module of its own (Lark's Go SDK is not a dependency of the plugin).
GO_SERVICE_SOURCES := $(wildcard $(GO_SERVICE)/*.go) $(GO_SERVICE)/go.mod $(GO_SERVICE)/go.sum

.PHONY: help version FORCE build vault node-bot go-service mcp dev test test-unit test-e2e test-cluster soak bench bench-sweep bench-micro fuzz fmt fmtcheck vet lint release clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t16

version: ## Print the version the builds are stamped with
	@echo $(VERSION)

build: $(PLUGIN_BIN) $(EMU_BIN) ## Build the plugin (stamped with `make version`) and the Lark emulator into bin/

# bin/.version changes only when the version does, and the plugin is rebuilt when it changes (a new
# commit that touches no Go file still gets its own version).
$(BIN)/.version: FORCE
	@[ -n '$(VERSION)' ] || { echo "no version: scripts/version.sh failed (see above), or set VERSION=vX.Y.Z" >&2; exit 1; }
	@mkdir -p $(BIN) && if [ "$$(cat $@ 2>/dev/null)" != '$(VERSION)' ]; then echo '$(VERSION)' >$@; fi

$(PLUGIN_BIN): $(GO_SOURCES) $(BIN)/.version
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $@ ./cmd/vault-plugin-secrets-lark

$(EMU_BIN): $(GO_SOURCES)
	CGO_ENABLED=0 go build -trimpath -o $@ ./cmd/lark-emulator

vault: ## Find the pinned Vault server (VAULT_BIN, a vault on PATH, the cache) or build it from the Go module proxy; print its path
	@scripts/build-vault.sh

node-bot: $(NODE_BOT)/node_modules/.package-lock.json ## Install examples/node-bot's dependencies from the npm registry (npm ci; again only when the lock file changes)

# npm ci writes node_modules/.package-lock.json; its time stamp says when the tree was installed.
$(NODE_BOT)/node_modules/.package-lock.json: $(NODE_BOT)/package.json $(NODE_BOT)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || \
	  { echo "examples/node-bot and its e2e test need Node.js >= 18 and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	cd $(NODE_BOT) && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

go-service: $(GO_SERVICE_BIN) ## Build examples/go-service (its own module, on Lark's Go SDK from the module proxy) into bin/

$(GO_SERVICE_BIN): $(GO_SERVICE_SOURCES)
	cd $(GO_SERVICE) && CGO_ENABLED=0 go build -trimpath -o $@ .

mcp: $(MCP_DIR)/node_modules/.package-lock.json ## Install examples/mcp's dependencies (Lark's MCP server @larksuiteoapi/lark-mcp) from the npm registry (npm ci)

# No install scripts: keytar's builds lark-mcp's own login store (keychain), which the example
# does not use (lark-mcp says so on stderr and goes on); protobufjs's only checks versions.
$(MCP_DIR)/node_modules/.package-lock.json: $(MCP_DIR)/package.json $(MCP_DIR)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || \
	  { echo "examples/mcp and its e2e test need Node.js >= 20 and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	cd $(MCP_DIR) && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

dev: build ## Run Vault (dev mode) with the plugin mounted at lark/ and the emulator beside it (DEV_VAULT_ADDR, DEV_EMULATOR_ADDR, VAULT_BIN)
	@VERSION='$(VERSION)' PLUGIN_BIN=$(PLUGIN_BIN) EMULATOR_BIN=$(EMU_BIN) scripts/dev.sh

test: fmtcheck vet lint test-unit test-e2e test-cluster ## Everything CI runs: formatting, vet, lint, unit, end-to-end and cluster tests

test-unit: ## Unit tests with the race detector (backend on in-memory storage, in-process emulator; and examples/go-service)
	go test -race -count=1 ./...
	cd $(GO_SERVICE) && go test -race -count=1 ./...

test-e2e: build node-bot go-service mcp ## End-to-end tests: real Vault server and CLI, emulator as a process, the Node bot, the Go service, Lark's MCP server, the README's tour
	@command -v jq >/dev/null || scripts/debian-packages.sh jq # the README's tour (e2e/readme_tour_test.go) uses jq
	@vault_bin=$$(scripts/build-vault.sh) && \
	VAULT_BIN=$$vault_bin PLUGIN_BIN=$(PLUGIN_BIN) EMULATOR_BIN=$(EMU_BIN) GO_SERVICE_BIN=$(GO_SERVICE_BIN) \
	go test -tags e2e -count=1 -timeout 45m -skip '^TestCluster' -v ./e2e/

# Examples no end-to-end test runs as they are: Prometheus (promtool) and Kubernetes (VSO's CRDs).
.PHONY: prometheus-tools test-examples
test: test-examples
test-e2e: prometheus-tools

prometheus-tools: ## Install promtool and prometheus (Debian's prometheus package, via apt-get) when missing; its service is not started
	@scripts/prometheus-tools.sh

test-examples: prometheus-tools ## promtool check config / test rules on examples/prometheus; examples/kubernetes against VSO's CRD schemas (tools/vso)
	@scripts/test-examples.sh

# The browser tests (e2e/browser_test.go) drive headless Chromium with chromedp; nothing is
# downloaded by the tests themselves.
.PHONY: chromium
test-e2e: chromium

chromium: ## Install Chromium for the browser tests (Debian's chromium package, via apt-get) when none is found
	@scripts/chromium.sh

# The cluster tests run on their own, after the others, so that their failovers are not slowed by
# the hundreds of concurrent requests of the other end-to-end tests.
test-cluster: build ## Three-node Raft cluster: step-down, SIGKILL and restart, late Lark answers
	@vault_bin=$$(scripts/build-vault.sh) && \
	VAULT_BIN=$$vault_bin PLUGIN_BIN=$(PLUGIN_BIN) EMULATOR_BIN=$(EMU_BIN) \
	go test -tags e2e -count=1 -timeout 30m -run '^TestCluster' -v ./e2e/

# The deterministic simulation of the grant lifecycle (sim_test.go) runs its default seeds in
# test-unit; soak runs seeds 1..SEEDS. A failing seed prints its step log and the command that
# replays it. SIM_FAULTS and SIM_STEPS pass through (docs/RELIABILITY.md, "Simulation").
SEEDS     ?= 200
SOAKFLAGS ?= -race

soak: ## The grant-lifecycle simulation over seeds 1..SEEDS (default 200; about 1.2 s a seed with -race on 2 cores)
	set -o pipefail; SIM_SEEDS=$(SEEDS) go test $(SOAKFLAGS) -count=1 -timeout 0 -run '^TestSimulation$$' -v . | grep -v -e '^=== RUN' -e '^    --- PASS'

bench: build ## Reads through a real Vault (Raft and dev) and the in-process benchmarks, into BENCHMARKS.md (10-15 min)
	@VERSION='$(VERSION)' PLUGIN_BIN=$(PLUGIN_BIN) EMULATOR_BIN=$(EMU_BIN) scripts/bench.sh reads

# Grant counts `make bench-sweep` measures at, ascending: `make bench-sweep SIZES=10000,100000,1000000`.
SIZES ?= 10000,100000,200000

bench-sweep: build ## The sweep at SIZES grants in Raft (default 10,000 to 200,000, ~10-20 min), into BENCHMARKS.md
	@VERSION='$(VERSION)' PLUGIN_BIN=$(PLUGIN_BIN) EMULATOR_BIN=$(EMU_BIN) SWEEP_SIZES='$(SIZES)' scripts/bench.sh sweep

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

vet: ## go vet, including the end-to-end tests and examples/go-service
	go vet ./...
	go vet -tags e2e ./e2e/
	cd $(GO_SERVICE) && go vet ./...

lint: ## golangci-lint v2 (default linters), including the end-to-end tests; installed into the cache the first time
	@lint=$$(scripts/golangci-lint.sh) && status=0 && \
	{ $$lint run ./... || status=1; } && \
	{ $$lint run --build-tags e2e ./e2e/... || status=1; } && \
	{ (cd $(GO_SERVICE) && $$lint run ./...) || status=1; } && \
	exit $$status

# A release carries the same version as every other build (scripts/version.sh: the tag, or
# CHANGELOG.md's newest release); `make release VERSION=vX.Y.Z` overrides it.
release: ## Cross-compile the plugin for linux and darwin (amd64, arm64) into dist/ with SHA256SUMS; print the register commands
	@VERSION='$(VERSION)' LDFLAGS='$(LDFLAGS)' DIST='$(DIST)' RELEASE_PLATFORMS='$(RELEASE_PLATFORMS)' scripts/release.sh

clean: ## Remove build output (the cached Vault and linter in .cache/ stay; delete them by hand)
	rm -rf $(BIN) $(CURDIR)/dist bench-out $(NODE_BOT)/node_modules $(MCP_DIR)/node_modules
