# See README.md. Every target works on a fresh clone: tools come from the Go
# module proxy and are cached under ~/.cache/sakura-ccm (SAKURA_TOOLS_DIR).
SHELL := /usr/bin/env bash
BINARY := bin/sakura-cloud-controller-manager
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X k8s.io/component-base/version.gitVersion=$(VERSION)
SANDBOX_DIR ?= $(CURDIR)/.sandbox
export SANDBOX_DIR

.PHONY: build test unit e2e lint demo sandbox-up sandbox-down bench tools image image-test

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

# A non-root OCI image as a tarball, built without a Docker engine.
IMAGE_TAR := bin/sakura-cloud-controller-manager-$(VERSION).oci.tar
image: build
	cd e2e/tools/ocibuild && go run . --binary $(CURDIR)/$(BINARY) --version $(VERSION) --output $(CURDIR)/$(IMAGE_TAR)
	@echo "wrote $(IMAGE_TAR)"

image-test: build
	cd e2e/tools/ocibuild && CCM_BINARY=$(CURDIR)/$(BINARY) go test -count=1 .

lint:
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	go vet ./...
	cd e2e && go vet ./...

demo: build tools
	./hack/demo.sh

sandbox-up: build tools
	./hack/sandbox.sh up

sandbox-down:
	./hack/sandbox.sh down

bench:
	go test -run '^$$' -bench . -benchmem ./...
