# See README.md. Every target works on a fresh clone: tools come from the Go
# module proxy and are cached under ~/.cache/sakura-ccm (SAKURA_TOOLS_DIR).
SHELL := /usr/bin/env bash
BINARY := bin/sakura-cloud-controller-manager
# The release version, in one place: the image tag (make image, make push),
# the chart's appVersion (a test checks Chart.yaml against it) and the
# CHANGELOG.md entry that make release requires.
RELEASE := $(shell tr -d '[:space:]' < VERSION)
IMAGE_NAME := sakura-cloud-controller-manager
# component-base refuses to start with a version that is not semver
# (vX.Y.Z...), so untagged builds are <VERSION file>-dev.g<commit>;
# make release builds with VERSION=$(RELEASE).
VERSION ?= $(shell git describe --tags --match 'v[0-9]*.[0-9]*.[0-9]*' --dirty 2>/dev/null || echo $(RELEASE)-dev.g$$(git rev-parse --short HEAD 2>/dev/null || echo unknown))
LDFLAGS := -s -w -X k8s.io/component-base/version.gitVersion=$(VERSION)
SANDBOX_DIR ?= $(CURDIR)/.sandbox
export SANDBOX_DIR

.PHONY: build test unit e2e lint demo sandbox-up sandbox-down bench tools image image-test torture push push-args release

build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(BINARY) ./cmd/sakura-cloud-controller-manager

tools:
	./hack/build-tools.sh >/dev/null

# The README's test command: static checks, unit tests, then the end-to-end
# suite against a real kube-apiserver and the SAKURA API simulator.
test: lint unit image-test e2e

unit:
	go test -count=1 ./...

e2e: build tools
	cd e2e && CCM_BINARY=$(CURDIR)/$(BINARY) SAKURA_TOOLS_BIN=$$(../hack/build-tools.sh) go test -count=1 -timeout 40m ./...

# Seeded, randomized torture test of the load balancer controller against
# the simulator (e2e/torture): SEEDS seeds, several at once; each failure
# prints its seed, a one-line replay command and a trace. More flags:
# TORTURE_FLAGS='-torture.first=5000 -torture.minimize'.
SEEDS ?= 5000
torture:
	cd e2e && go test -count=1 -timeout 6h -v ./torture -run TestTorture -torture.seeds=$(SEEDS) -torture.klog=-2 $(TORTURE_FLAGS)

# A non-root OCI image as a tarball, built without a Docker engine, tagged
# $(RELEASE) as the chart references it.
IMAGE_TAR := bin/$(IMAGE_NAME)-$(RELEASE).oci.tar
image: build
	cd e2e/tools/ocibuild && go run . --binary $(CURDIR)/$(BINARY) --version $(RELEASE) --output $(CURDIR)/$(IMAGE_TAR)
	@echo "wrote $(IMAGE_TAR)"

# Pushes the release's image (the one SHA256SUMS covers, whose binary
# reports $(RELEASE)) to $(REGISTRY)/$(IMAGE_NAME):$(RELEASE) with
# go-containerregistry (credentials from ~/.docker/config.json or
# $$DOCKER_CONFIG; no Docker engine). PUSH_FLAGS=--insecure for plain HTTP.
push: push-args release
	cd e2e/tools/ocibuild && go run ./push --image $(CURDIR)/dist/$(RELEASE)/$(IMAGE_NAME)-$(RELEASE).oci.tar --ref $(REGISTRY)/$(IMAGE_NAME):$(RELEASE) $(PUSH_FLAGS)
push-args:
	@test -n "$(REGISTRY)" || { echo "usage: make push REGISTRY=registry.example.com/team" >&2; exit 2; }

# dist/$(RELEASE)/: image tarball, packaged chart, rendered manifest and
# SHA256SUMS (hack/release.sh). The binary reports $(RELEASE) as its version.
release:
	$(MAKE) build VERSION=$(RELEASE)
	./hack/release.sh

image-test: build
	cd e2e/tools/ocibuild && CCM_BINARY=$(CURDIR)/$(BINARY) go test -count=1 ./...

lint:
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	go vet ./...
	cd e2e && go vet ./...

demo: build
	./hack/demo.sh

sandbox-up: build tools
	./hack/sandbox.sh up

sandbox-down:
	./hack/sandbox.sh down

# Benchmarks (~8 min on 2 cores): the unit benchmarks (API calls over the
# iaas-api-go fake), then e2e/bench runs the real binary against the
# simulator and a real kube-apiserver and writes docs/benchmarks.md.
bench: build tools
	set -o pipefail; go test -run '^$$' -bench . -benchmem ./instances ./loadbalancer ./loadbalancer/engine | tee bin/unit-bench.txt
	cd e2e && CCM_BINARY=$(CURDIR)/$(BINARY) SAKURA_TOOLS_BIN=$$(../hack/build-tools.sh) go run ./bench -out $(CURDIR)/docs/benchmarks.md -unit-bench $(CURDIR)/bin/unit-bench.txt
