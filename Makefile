# raas: run `make help` for the targets.
include hack/tools.mk

.DEFAULT_GOAL := help
GO ?= go
PKGS := ./...
# Tests run real API servers; on 2 busy cores a package takes longer than go test's 10m default.
TEST_TIMEOUT ?= 30m
# Stamped into bin/raas; `raas version` prints them.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: help build test run bench fuzz golden generate lint catalog clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_/-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-14s %s\n", $$1, $$2}'

build: ## Build bin/raas
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN_DIR)/raas ./cmd/raas

catalog: .catalog/.stamp ## Fill .catalog/ (vcluster chart, KubeRay bases, Volcano CRDs) from the Go module cache

.catalog/.stamp: hack/catalog.sh $(call tool_inputs,controller-gen)
	./hack/catalog.sh .catalog
	touch $@

test: controlplane twin catalog ## Run every test, against a real kube-apiserver and etcd built into bin/
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

run: controlplane twin catalog build bin/kubectl ## Start the twin (host, kwok nodes, real vcluster syncers and KubeRay) and run raas reconcile on the example tenants until Ctrl-C
	$(GO) run ./hack/local

# BenchmarkFleet starts two API servers and the daemon's replicas for each iteration; at
# 1,000 tenants one iteration takes minutes, so it runs once, after the others.
bench: controlplane catalog bin/helm bin/kubectl bin/kustomize ## Run the benchmarks (ratios are printed per benchmark; the shell-loop baseline needs helm, kubectl and kustomize)
	$(GO) test -run '^$$' -bench . -skip '^BenchmarkFleet$$' -benchtime 3x -timeout 120m $(PKGS)
	$(GO) test -run '^$$' -bench '^BenchmarkFleet$$' -benchtime 1x -timeout 120m ./cmd/raas

FUZZTIME ?= 30s

fuzz: ## Run every fuzz target for FUZZTIME each (default 30s), one after the other
	@set -e; for pkg in $$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.Dir}}{{end}}' $(PKGS)); do \
		for target in $$(grep -hoE '^func Fuzz[A-Za-z0-9_]+' $$pkg/*_test.go | sed 's/^func //'); do \
			echo "== $$target ($$pkg) for $(FUZZTIME)"; \
			start=$$(date +%s); \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
			echo "== $$target: no failure in $(FUZZTIME) of fuzzing ($$(( $$(date +%s) - start ))s with the build)"; \
		done; \
	done

# Every test that compares golden files is named TestGolden* (internal/golden fails it
# otherwise), and every package with one imports internal/golden, which defines -update.
# The packages go before -update: go test passes what follows an unknown flag to the tests.
golden: catalog ## Rewrite every golden file (the TestGolden* tests) after an intended change, and delete stale ones
	$(GO) test -timeout $(TEST_TIMEOUT) $$($(GO) list \
		-f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' $(PKGS) | \
		awk '{ for (i = 2; i <= NF; i++) if ($$i == "github.com/raas-dev/raas/internal/golden") { print $$1; break } }') \
		-run '^TestGolden' -update

generate: ## Regenerate the JSON Schemas, the Tenant status CRD and its deepcopy code from the Go types
	$(GO) test ./schema -run JSONSchemas -update
	cd $(TOOLS_DIR)/controller-gen && $(GO) tool controller-gen object crd \
		paths=$(CURDIR)/api/v1alpha1/... output:crd:dir=$(CURDIR)/deploy/crds

lint: ## go vet and gofmt
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

clean: ## Remove bin/, .catalog/ and .run/
	rm -rf bin .catalog .run
