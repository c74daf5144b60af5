# runner-manager: `make help` lists the targets.
SHELL := bash
.DEFAULT_GOAL := help

MODULES  := $(shell scripts/modules.sh)
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/runner-manager/runner-manager/libs/service.Version=$(VERSION)
GOBUILD  := CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)'
GOBIN    := $(shell go env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)

# binary name = package path; each is built in its module's directory, so
# that `make build` works with GOWORK=off too
BINARIES := \
	ingress=./services/ingress/cmd/ingress \
	scheduler=./services/scheduler/cmd/scheduler \
	provisioner-docker=./services/provisioner/cmd/provisioner-docker \
	provisioner-aws=./services/provisioner/cmd/provisioner-aws \
	provisioner-gcp=./services/provisioner/cmd/provisioner-gcp \
	fakegithub=./e2e/cmd/fakegithub \
	fake-runner=./e2e/cmd/fake-runner \
	loadgen=./e2e/cmd/loadgen \
	localrun=./e2e/cmd/localrun \
	rmctl=./services/scheduler/cmd/rmctl

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## install what the build and the tests need (redis-server, protoc, shellcheck, staticcheck)
	@scripts/install-deps.sh

.PHONY: build
build: ## build every binary (static) into bin/
	@mkdir -p bin
	@set -e; for b in $(BINARIES); do \
		name=$${b%%=*}; pkg=$${b#*=}; \
		if [ -d "$$pkg" ]; then (cd $${pkg%/cmd/*} && $(GOBUILD) -o $(CURDIR)/bin/$$name ./cmd/$${pkg##*/cmd/}); fi; \
	done
	@ls bin

.PHONY: test
test: deps ## run everything CI runs: proto check, lint, unit, Redis and Docker integration, e2e
	@scripts/test.sh

.PHONY: test-unit
test-unit: ## run the Go tests of every module (no e2e scenarios)
	@scripts/test.sh unit

.PHONY: lint
lint: ## gofmt check, go vet and staticcheck on every module
	@scripts/lint.sh

.PHONY: proto
proto: ## regenerate the Go code of proto/ into libs/gen
	@scripts/gen-proto.sh

.PHONY: proto-check
proto-check: ## fail when the committed generated code is stale
	@scripts/proto-check.sh

.PHONY: images
images: build ## build the local images of every service and tool (FROM scratch)
	@scripts/build-images.sh

.PHONY: run
run: deps ## run the whole system locally on embedded defaults (Redis, fake GitHub, ingress, scheduler, Docker provisioner)
	@scripts/run-local.sh

.PHONY: up
up: images ## start the docker-compose integration environment
	@scripts/compose.sh up

.PHONY: down
down: ## stop the integration environment and remove what it made
	@scripts/compose.sh down

.PHONY: bench
bench: deps build ## run the benchmarks and write docs/benchmarks.md
	@scripts/bench.sh

.PHONY: tidy
tidy: ## go mod tidy in every module (each on its own: GOWORK=off)
	@set -e; for m in $(MODULES); do (cd $$m && GOWORK=off go mod tidy); done

.PHONY: tidy-check
tidy-check: ## fail when a module is not tidy, or when a dependency points the wrong way (only e2e imports services)
	@scripts/tidy-check.sh

.PHONY: clean
clean: ## remove bin/
	rm -rf bin
