include hack/tools.mk

.DEFAULT_GOAL := help

.PHONY: help test

help: ## Show this help
	@grep -hE '^[a-zA-Z_/-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-14s %s\n", $$1, $$2}'

test: controlplane ## Run all tests against the real control plane in bin/
	$(GO) test -count=1 ./...
