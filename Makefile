# The NetManager with the eBPF Manager. Run as root: `make run`, `make test`.
SHELL := /bin/bash
FUZZTIME ?= 1000000x
GO ?= go
BUILD := build
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# Daemon and module plugins must share these flags exactly (Go plugin rule).
GOBUILDFLAGS := -trimpath
LDFLAGS := -X github.com/oakestra/netmanager/node-net-manager/version.Version=$(VERSION)
APT_PACKAGES := clang llvm libbpf-dev iproute2 iptables iperf3 iputils-ping util-linux procps curl mosquitto ethtool
RUN_ARGS ?= --listen 127.0.0.1:6000

export CGO_ENABLED := 1

.PHONY: all deps build run test unit-test integration-test bench fuzz generate clean

all: build

deps:
	@scripts/deps.sh $(APT_PACKAGES)

build: deps
	$(GO) build $(GOBUILDFLAGS) -ldflags '$(LDFLAGS)' -o $(BUILD)/bin/netmanager ./node-net-manager/cmd/netmanager
	$(GO) build $(GOBUILDFLAGS) -ldflags '$(LDFLAGS)' -o $(BUILD)/bin/netmanagerctl ./node-net-manager/cmd/netmanagerctl
	GO=$(GO) GOBUILDFLAGS='$(GOBUILDFLAGS)' scripts/build-modules.sh modules $(BUILD)/modules
	GO=$(GO) GOBUILDFLAGS='$(GOBUILDFLAGS)' scripts/build-modules.sh test/modules $(BUILD)/test-modules

run: build
	$(BUILD)/bin/netmanager $(RUN_ARGS)

test: build
	$(GO) build ./...
	$(GO) vet ./...
	NETMANAGER_BIN=$(abspath $(BUILD)/bin/netmanager) NETMANAGERCTL_BIN=$(abspath $(BUILD)/bin/netmanagerctl) \
		scripts/gotest.sh -count=1 -timeout 20m ./...
	GO=$(GO) scripts/fuzz.sh

# Every fuzz target for FUZZTIME (e.g. make fuzz FUZZTIME=1000000x).
fuzz: build
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

unit-test:
	$(GO) test -count=1 -race $$($(GO) list ./... | grep -v /test/)

integration-test: build
	NETMANAGER_BIN=$(abspath $(BUILD)/bin/netmanager) NETMANAGERCTL_BIN=$(abspath $(BUILD)/bin/netmanagerctl) \
		$(GO) test -count=1 -v -timeout 20m ./test/...

bench: build
	@scripts/deps.sh gnuplot-nox
	NETMANAGER_BIN=$(abspath $(BUILD)/bin/netmanager) scripts/bench.sh

# Regenerates committed generated code: the sdwan module's gRPC API.
generate:
	@scripts/deps.sh protobuf-compiler
	protoc --plugin=protoc-gen-go="$$($(GO) tool -n protoc-gen-go)" --plugin=protoc-gen-go-grpc="$$($(GO) tool -n protoc-gen-go-grpc)" \
		-I modules/sdwan/sdwanpb --go_out=paths=source_relative:modules/sdwan/sdwanpb \
		--go-grpc_out=paths=source_relative:modules/sdwan/sdwanpb modules/sdwan/sdwanpb/sdwan.proto

clean:
	rm -rf $(BUILD)
