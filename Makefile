# masterd — build, test and run a highly available Kubernetes control plane.
#
#   make demo       three masters in network namespaces with real systemd, etcd,
#                   kube-apiserver/scheduler/controller-manager and the VIP
#   make test       every test (unit, simulation, real netlink/etcd/systemd)
#   make lint       go vet + staticcheck
#   make package    .deb and .rpm into dist/
#   make bench      benchmarks; results under bench/results/
#
# Everything the targets need is installed by them (Debian packages once, Go
# tools pinned in tools/go.mod); the Kubernetes binaries are built from the Go module
# proxy once and cached under $(CACHE).

SHELL        := /bin/bash
GO           ?= go
CACHE        ?= $(HOME)/.cache/masterd
KUBE_VERSION ?= v1.37.2
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION     ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS      := -X main.version=$(VERSION) -X main.revision=$(REVISION)
TEST_TIMEOUT ?= 60m

export MASTERD_CACHE := $(CACHE)
export KUBE_VERSION
export KUBE_BIN_DIR := $(CACHE)/kube/$(KUBE_VERSION)/bin

# Debian packages the tests, the lab and the benchmarks use.
DEB_PACKAGES := iproute2 nftables iputils-ping arping tcpdump openssl \
	keepalived haproxy stress-ng prometheus lintian rpm dpkg-dev systemd dbus util-linux procps

.PHONY: all build test unit integration lint package demo demo-down bench bench-vip \
	bench-etcd bench-lb deps kube kube-vip clean fuzz mutants

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/masterd ./cmd/masterd

# deps installs the Debian packages that are missing (apt-get update only when
# something is).
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@# keepalived and haproxy are only run by the benchmarks, inside lab namespaces.
	@for s in keepalived haproxy prometheus prometheus-node-exporter; do \
		systemctl disable --now $$s >/dev/null 2>&1 || true; done

# kube builds kube-apiserver, kube-scheduler, kube-controller-manager and
# kubectl from the Go module proxy, cached by version (first run: minutes).
kube:
	@integration/kube/build.sh $(KUBE_VERSION) >/dev/null

# Packages run one at a time (-p 1): several of them boot labs of real
# systemd hosts with etcd and kube-apiserver, and two such labs at once on a
# 2-core machine turn timing assertions of the scenarios into load tests.
test: deps kube package
	$(GO) vet ./...
	$(GO) test -p 1 -count=1 -timeout $(TEST_TIMEOUT) ./...

# unit runs the tests that need neither root nor the kube binaries.
unit:
	$(GO) test -short -count=1 ./...

integration: deps kube package
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -v ./integration/...

# Build tools (staticcheck, nfpm) are pinned in their own module,
# tools/go.mod, so the daemon's module graph holds only what it runs.
lint:
	$(GO) vet ./...
	$(GO) tool -modfile=tools/go.mod staticcheck ./...

# fuzz runs every fuzz target of every package for FUZZTIME each. Go
# minimizes each new input for up to 60 s by default (quadratic in its
# length, no executions reported meanwhile): FUZZMINIMIZE bounds that, so
# the time goes to fuzzing.
FUZZTIME     ?= 10s
FUZZMINIMIZE ?= 1s

fuzz:
	@for f in $$(grep -rlE '^func Fuzz[A-Za-z0-9_]+\(' --include='*_test.go' . | sort); do \
		pkg=$$(dirname $$f); \
		for t in $$(grep -oE '^func Fuzz[A-Za-z0-9_]+' $$f | sed 's/^func //'); do \
			echo "fuzz $$pkg $$t"; \
			$(GO) test $$pkg -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) || exit 1; \
		done; \
	done

# mutants applies each protocol mutation of election/testdata/mutants.txt
# (through go test -overlay: the tree is not touched) and fails unless the
# election tests kill every one (about 40 s a mutant on two cores).
mutants:
	$(GO) run ./internal/mutants -list election/testdata/mutants.txt

# package builds the .deb and .rpm for this machine into dist/ and, cross-
# compiled (CGO off), for arm64 into dist/arm64/, then checks the arm64 ones:
# package architecture arm64/aarch64, and the /usr/bin/masterd inside both is
# bin/linux_arm64/masterd, an aarch64 ELF. arm64 has its own directory so
# what globs dist/masterd_*.deb (integration/lab FindDeb, newest wins) never
# installs a package this machine cannot run.
package: build
	deploy/package.sh
	@set -e; dist=$${DIST:-$(CURDIR)/dist}/arm64; bin=bin/linux_arm64/masterd; \
	pkgs=$$(GOARCH=arm64 DIST=$$dist deploy/package.sh); echo "$$pkgs"; \
	fail() { echo "package: arm64: $$*" >&2; exit 1; }; \
	[ "$$(od -An -tx1 -j4 -N1 $$bin | tr -d ' ')" = 02 ] || fail "$$bin is not a 64-bit ELF"; \
	[ "$$(od -An -tx1 -j18 -N2 $$bin | tr -d ' ')" = b700 ] || fail "$$bin is not an aarch64 ELF (e_machine)"; \
	sum=$$(sha256sum <$$bin | cut -d' ' -f1); \
	for p in $$pkgs; do case $$p in \
	*.deb) a=$$(dpkg-deb -f $$p Architecture); [ "$$a" = arm64 ] || fail "$$p: Architecture $$a"; \
		s=$$(dpkg-deb --fsys-tarfile $$p | tar -xO ./usr/bin/masterd | sha256sum | cut -d' ' -f1) ;; \
	*.rpm) a=$$(rpm -qp --qf '%{ARCH}' $$p); [ "$$a" = aarch64 ] || fail "$$p: ARCH $$a"; \
		s=$$(rpm -qp --qf '[%{FILENAMES} %{FILEDIGESTS}\n]' $$p | awk '$$1 == "/usr/bin/masterd" { print $$2 }') ;; \
	esac; [ "$$s" = "$$sum" ] || fail "$$p: /usr/bin/masterd is not $$bin"; done; \
	echo "package: arm64 packages checked: aarch64 ELF inside, deb arm64, rpm aarch64"

demo: deps kube package
	$(GO) run ./integration/cmd/lab up

demo-down:
	$(GO) run ./integration/cmd/lab down

# kube-vip (an optional system of the VIP benchmark) built from the Go module
# proxy, cached by version (first build: about 20 minutes on 2 busy cores).
kube-vip:
	@integration/kubevip/build.sh >/dev/null

bench: deps kube kube-vip package
	$(GO) run ./bench/cmd/bench

bench-vip: deps kube kube-vip package
	$(GO) run ./bench/cmd/bench -only vip

bench-etcd:
	$(GO) run ./bench/etcd

bench-lb: deps
	$(GO) run ./bench/lb

clean:
	rm -rf bin dist
