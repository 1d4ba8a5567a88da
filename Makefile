# Projector — build, test and lint targets. Every target works on a fresh machine with Go.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/projector-dev/projector/internal/version.Version=$(VERSION)
STATICCHECK_VERSION ?= v0.8.2
CLIENT_VERSION ?= v1.4.2
TEST_FLAGS ?= -race -count=1 -timeout 20m

.PHONY: all build test lint fmt vet staticcheck tidy fidelity fidelity-node bench bench-e2e demo clean deploy-check

all: build

build: ## Build every binary into ./bin
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

test: ## Run the whole test suite (PostgreSQL on 127.0.0.1:5432 or PROJECTOR_TEST_DATABASE_URL, else a throwaway one; Chromium; see docs/development.md)
	@command -v chromium >/dev/null 2>&1 || { echo "make test: the status page's browser test needs Chromium: install it (apt-get install -y chromium)" >&2; exit 1; }
	./scripts/with-postgres.sh $(GO) test $(TEST_FLAGS) ./...

lint: fmt vet staticcheck tidy ## gofmt, go vet, staticcheck and go mod tidy

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

tidy: ## go.mod and go.sum as go mod tidy leaves them (the main module and deploy/)
	@$(GO) mod tidy -diff || { echo 'go.mod/go.sum are not tidy: run go mod tidy'; exit 1; }
	@cd deploy && $(GO) mod tidy -diff || { echo 'deploy/go.mod/go.sum are not tidy: run (cd deploy && go mod tidy)'; exit 1; }

fidelity: ## Run the official KurrentDB Go client's integration suites, then the Node.js client suite, against the emulator
	GO=$(GO) CLIENT_VERSION=$(CLIENT_VERSION) ./scripts/fidelity.sh
	$(MAKE) fidelity-node

fidelity-node: ## Run the official KurrentDB Node.js client (fidelity/node, node --test) against the emulator
	GO=$(GO) CLIENT_VERSION=$(CLIENT_VERSION) bash ./scripts/fidelity-node.sh

demo: ## The training-school walkthrough: in-process KurrentDB emulator, projection, wait API (Ctrl-C stops; DEMO_FLAGS=--exit)
	$(GO) run ./cmd/projector demo $(DEMO_FLAGS)

deploy-check: ## Helm chart lint/template + strict validation, promtool rule tests, Prometheus end-to-end
	GO=$(GO) ./scripts/with-postgres.sh ./scripts/deploy-check.sh

bench: ## Benchmarks (throughput and memory)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2x ./...

bench-e2e: build ## End-to-end benchmark of bin/ on 1,000,000 events (PostgreSQL as for make test; BENCH_E2E_FLAGS='-events 50000 -json bench.json')
	./scripts/with-postgres.sh $(GO) run ./e2e/bench/cmd/projector-bench -bin bin $(BENCH_E2E_FLAGS)

clean:
	rm -rf bin
