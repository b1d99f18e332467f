# The NetManager with the eBPF Manager. Run as root: `make run`, `make test`.
SHELL := /bin/bash
FUZZTIME ?= 1000000x
GO ?= go
BUILD := build
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# Daemon and module plugins must share these flags exactly (Go plugin rule).
GOBUILDFLAGS := -trimpath
LDFLAGS := -X github.com/oakestra/netmanager/node-net-manager/version.Version=$(VERSION)
APT_PACKAGES := clang llvm libbpf-dev iproute2 iptables iperf3 iputils-ping util-linux procps curl mosquitto ethtool nftables
RUN_ARGS ?= --listen 127.0.0.1:6000
# The kernel matrix (docs/kernels.md): Debian kernels booted under qemu, by
# series ("6.1", "6.12", "7.2"), "sid" (the newest kernel Debian sid has) or
# "arm64" (Debian's arm64 6.12 under qemu-system-aarch64, with the daemon and
# the plugins of `make ARCH=arm64 build`: kernels-arm64).
KERNELS ?= 6.1 6.12 sid arm64
KERNEL_APT_PACKAGES := qemu-system-x86 qemu-system-arm busybox-static kmod cpio xz-utils zstd \
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross
KERNEL_BUILDS := $(if $(filter arm64,$(KERNELS)),kernels-arm64)
TALLY := $(BUILD)/tally
# ARCH: the GOARCH to build for, this machine's by default (into build/).
# Another one is a cross build into build/<arch>/, same layout, with cgo through
# Debian's cross compiler; the daemon and the plugins are built exactly the same
# way (a plugin built otherwise won't load). ARCH_BUILD moves the output.
HOSTARCH := $(shell $(GO) env GOHOSTARCH 2>/dev/null || echo amd64)
ARCH ?= $(HOSTARCH)
CROSS_CC_arm64 := aarch64-linux-gnu-gcc
CROSS_CC_amd64 := x86_64-linux-gnu-gcc
CROSS_APT_arm64 := gcc-aarch64-linux-gnu libc6-dev-arm64-cross
CROSS_APT_amd64 := gcc-x86-64-linux-gnu libc6-dev-amd64-cross
ifeq ($(ARCH),$(HOSTARCH))
ARCH_BUILD ?= $(BUILD)
ARCH_ENV :=
else
ifeq ($(CROSS_CC_$(ARCH)),)
$(error ARCH=$(ARCH): not a supported architecture (amd64, arm64))
endif
ARCH_BUILD ?= $(BUILD)/$(ARCH)
ARCH_ENV := GOARCH=$(ARCH) CC=$(CROSS_CC_$(ARCH))
APT_PACKAGES += $(CROSS_APT_$(ARCH))
endif

export CGO_ENABLED := 1

.PHONY: all deps deps-kernels kernels-arm64 build run test test-kernels unit-test integration-test bench fuzz generate install uninstall release docs clean

all: build

deps:
	@scripts/deps.sh $(APT_PACKAGES)

# qemu and the tools the matrix needs; the kernels of KERNELS, downloaded and
# unpacked into /var/cache/netmanager-kernels (nothing installed).
deps-kernels:
	@scripts/deps.sh $(KERNEL_APT_PACKAGES)
	@scripts/kernels/fetch.sh $(KERNELS) >/dev/null

# The arm64 daemon, plugins and test modules the matrix's arm64 kernel runs.
kernels-arm64:
	$(MAKE) ARCH=arm64 build

build: deps
	$(ARCH_ENV) $(GO) build $(GOBUILDFLAGS) -ldflags '$(LDFLAGS)' -o $(ARCH_BUILD)/bin/netmanager ./node-net-manager/cmd/netmanager
	$(ARCH_ENV) $(GO) build $(GOBUILDFLAGS) -ldflags '$(LDFLAGS)' -o $(ARCH_BUILD)/bin/netmanagerctl ./node-net-manager/cmd/netmanagerctl
	$(ARCH_ENV) GO=$(GO) GOBUILDFLAGS='$(GOBUILDFLAGS)' scripts/build-modules.sh modules $(ARCH_BUILD)/modules
	$(ARCH_ENV) GO=$(GO) GOBUILDFLAGS='$(GOBUILDFLAGS)' scripts/build-modules.sh test/modules $(ARCH_BUILD)/test-modules

run: build
	$(BUILD)/bin/netmanager $(RUN_ARGS)

# go test ./..., the fuzz targets, then the kernel matrix, one after another
# (2 cores); the last line counts them all: "tests: N passed, N failed, N skipped".
test: build deps-kernels $(KERNEL_BUILDS)
	$(GO) build ./...
	$(GO) vet ./...
	@set -o pipefail; rm -rf $(TALLY) && mkdir -p $(TALLY); \
	NETMANAGER_BIN=$(abspath $(BUILD)/bin/netmanager) NETMANAGERCTL_BIN=$(abspath $(BUILD)/bin/netmanagerctl) \
		scripts/gotest.sh -count=1 -timeout 20m ./... | scripts/kernels/tally.sh relabel $(TALLY)/gotest; echo $$? >$(TALLY)/gotest.rc; \
	GO=$(GO) scripts/fuzz.sh | scripts/kernels/tally.sh fuzz $(TALLY)/fuzz; echo $$? >$(TALLY)/fuzz.rc; \
	GO=$(GO) scripts/kernels/run.sh --summary $(TALLY)/kernels $(KERNELS); echo $$? >$(TALLY)/kernels.rc; \
	scripts/kernels/tally.sh total "go test ./...=$(TALLY)/gotest" "fuzz targets=$(TALLY)/fuzz" "kernel matrix ($(KERNELS))=$(TALLY)/kernels"

# Only the kernel matrix: make test-kernels KERNELS="6.1 6.12 7.2".
test-kernels: build deps-kernels $(KERNEL_BUILDS)
	GO=$(GO) scripts/kernels/run.sh $(KERNELS)

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

# The daemon, the CLI, the shipped modules, the example config and the systemd
# unit, under DESTDIR (a staging root, e.g. for a package) and PREFIX. Modules go
# where an installed daemon looks for them, whatever PREFIX. scripts/install.sh
# does it, here and as install.sh in a release archive.
PREFIX ?= /usr
SHIPPED_MODULES := $(patsubst modules/%/,%,$(wildcard modules/*/))
INSTALL_ENV = DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" NM_BIN=$(ARCH_BUILD)/bin NM_MODULES=$(ARCH_BUILD)/modules \
	NM_MODULE_NAMES="$(SHIPPED_MODULES)" NM_UNIT=dist/netmanager.service NM_CONFIG=docs/netmanager.example.json

install: build
	@$(INSTALL_ENV) scripts/install.sh install

# Removes what install put there, nothing else: not netmanager.json, not the
# state in /var/lib/netmanager, not pins. Stop the service first.
uninstall:
	@$(INSTALL_ENV) scripts/install.sh uninstall

# dist/release/netmanager-$(VERSION)-linux-{amd64,arm64}.tar.gz and SHA256SUMS
# (docs/operator-guide.md): binaries, modules, unit, example config, install.sh
# and the module kit; each arch built into RELEASE_DIR/build, never build/.
RELEASE_DIR ?= dist/release
RELEASE_ARCHES ?= amd64 arm64
release:
	GO=$(GO) VERSION=$(VERSION) scripts/release.sh $(RELEASE_DIR) $(RELEASE_ARCHES)

# Regenerates docs/architecture.png from docs/architecture.dot (graphviz).
docs:
	@scripts/deps.sh graphviz
	dot -Tpng docs/architecture.dot -o docs/architecture.png

# Regenerates committed generated code: the sdwan module's gRPC API.
generate:
	@scripts/deps.sh protobuf-compiler
	protoc --plugin=protoc-gen-go="$$($(GO) tool -n protoc-gen-go)" --plugin=protoc-gen-go-grpc="$$($(GO) tool -n protoc-gen-go-grpc)" \
		-I modules/sdwan/sdwanpb --go_out=paths=source_relative:modules/sdwan/sdwanpb \
		--go-grpc_out=paths=source_relative:modules/sdwan/sdwanpb modules/sdwan/sdwanpb/sdwan.proto

clean:
	rm -rf $(BUILD)
