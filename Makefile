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
# The previous minor: the Kubernetes upgrade scenario starts from it.
KUBE_PREV_VERSION ?= v1.36.3
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION     ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS      := -X main.version=$(VERSION) -X main.revision=$(REVISION)
TEST_TIMEOUT ?= 60m

export MASTERD_CACHE := $(CACHE)
export KUBE_VERSION
export KUBE_BIN_DIR := $(CACHE)/kube/$(KUBE_VERSION)/bin
export KUBE_PREV_BIN_DIR := $(CACHE)/kube/$(KUBE_PREV_VERSION)/bin

# Debian packages the tests, the lab and the benchmarks use.
DEB_PACKAGES := iproute2 nftables iputils-ping arping tcpdump openssl \
	keepalived haproxy stress-ng prometheus lintian rpm dpkg-dev systemd dbus util-linux procps \
	runc containernetworking-plugins conntrack iptables bash-completion

.PHONY: all build test unit integration kube-control-plane kube-prev lint package package-host demo demo-down bench bench-vip \
	bench-etcd bench-lb deps kube kube-vip containerd s3 clean fuzz mutants

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

# kube-control-plane builds only what the labs' masters run (kube-apiserver,
# kube-scheduler, kube-controller-manager, kubectl): make test starts the
# tests that need no worker on them, then `make kube` adds the node binaries.
kube-control-plane:
	@KUBE_BINS="kube-apiserver kube-scheduler kube-controller-manager kubectl" integration/kube/build.sh $(KUBE_VERSION) >/dev/null

# kube-prev builds the previous minor's kube-apiserver, kube-scheduler and
# kube-controller-manager (the upgrade scenario's starting point), cached by
# version.
kube-prev:
	@KUBE_BINS="kube-apiserver kube-scheduler kube-controller-manager" integration/kube/build.sh $(KUBE_PREV_VERSION) >/dev/null

# containerd builds containerd v2, ctr and containerd-shim-runc-v2 (the lab's
# workers; Debian's containerd 1.6 is too old for kubelet v1.37) and the
# coredns binary from the Go module proxy, cached by version (first run: ~15 min).
containerd:
	@integration/containerd/build.sh >/dev/null && integration/images/coredns.sh >/dev/null

# s3 builds SeaweedFS's weed, the real S3-compatible server the backup tests
# upload to, from the Go module proxy, cached by version (first run: minutes).
s3:
	@integration/s3/build.sh >/dev/null

# test runs every package's tests (integration/test.sh: the Kubernetes,
# containerd and S3-server builds run in the background while the packages
# that need none of them are tested; each other package waits only for what
# it needs), then a short fuzz of every fuzz target.
test: deps
	GO=$(GO) TEST_TIMEOUT=$(TEST_TIMEOUT) integration/test.sh
	$(MAKE) --no-print-directory fuzz

# unit runs the tests that need neither root nor the kube binaries.
unit:
	$(GO) test -short -count=1 ./...

# integration runs the lab scenarios verbosely, with the full 20 trials of
# the wipe scenario (make test runs 4, one of each kind).
integration: deps kube containerd s3 package-host
	MASTERD_WIPE_TRIALS=20 $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -v ./integration/...

# Build tools (staticcheck, nfpm) are pinned in their own module,
# tools/go.mod, so the daemon's module graph holds only what it runs.
lint:
	$(GO) vet ./...
	$(GO) tool -modfile=tools/go.mod staticcheck ./...

# fuzz runs every fuzz target for FUZZTIME each (make test runs it after the
# tests) and prints each target's executions, the new inputs it found and
# its corpus, and the time in all. Each package's instrumented test binary
# is built once (go test -c -fuzz, under $(CACHE)/fuzz) and run in the
# package's directory (seeds from testdata/, a crasher written to
# testdata/fuzz/) with the corpus cache go test -fuzz itself keeps under
# GOCACHE, so what one run finds seeds the next. Go minimizes each new
# input for up to 60 s by default, reporting no executions meanwhile (a
# cluster secret of 4 KB took a worker for the whole 60 s): FUZZMINIMIZE
# bounds it by a number of executions, cheap for every target, so a short
# run goes to fuzzing. A target first runs its whole corpus (the baseline,
# within FUZZTIME): one that made fewer than FUZZMINEXECS executions past it
# in FUZZTIME (a busy machine) runs again for FUZZRETRYTIME, and fails if
# it still did not.
FUZZTIME      ?= 5s
FUZZRETRYTIME ?= 20s
FUZZMINEXECS  ?= 100
FUZZMINIMIZE  ?= 200x

fuzz:
	@start=$$(date +%s); corpus=$$($(GO) env GOCACHE)/fuzz/$$($(GO) list -m); report=""; \
	mkdir -p $(CACHE)/fuzz; \
	for pkg in $$(grep -rlE '^func Fuzz[A-Za-z0-9_]+\(' --include='*_test.go' . | xargs -n1 dirname | sort -u); do \
		pkg=$${pkg#./}; bin=$(CACHE)/fuzz/$${pkg//\//_}.test; \
		$(GO) test -c -fuzz=. -o $$bin ./$$pkg || exit 1; \
		for t in $$(cat $$pkg/*_test.go | grep -oE '^func Fuzz[A-Za-z0-9_]+' | sed 's/^func //' | sort); do \
			for ft in $(FUZZTIME) $(FUZZRETRYTIME); do \
				echo "fuzz $$pkg $$t ($$ft)"; \
				out=$$(cd $$pkg && $$bin -test.run='^$$' -test.fuzz="^$$t$$" -test.fuzztime=$$ft \
					-test.fuzzminimizetime=$(FUZZMINIMIZE) -test.fuzzcachedir=$$corpus/$$pkg 2>&1) || \
					{ echo "$$out"; echo "fuzz $$pkg $$t: FAIL"; exit 1; }; \
				read execs new total < <(grep -oE 'execs: [0-9]+ .*total: [0-9]+' <<<"$$out" | tail -1 | \
					sed -E 's/execs: ([0-9]+) .*new interesting: ([0-9]+) \(total: ([0-9]+)/\1 \2 \3/'); \
				base=$$(( $${total:-0} - $${new:-0} )); fuzzed=$$(( $${execs:-0} - base )); \
				[ $$fuzzed -ge $(FUZZMINEXECS) ] && break; \
			done; \
			[ $$fuzzed -ge $(FUZZMINEXECS) ] || { echo "$$out"; echo "fuzz $$pkg $$t: FAIL: $$fuzzed executions past" \
				"the baseline (its corpus of $$base) in $(FUZZRETRYTIME), fewer than $(FUZZMINEXECS)"; exit 1; }; \
			report+=$$(printf '\n  %-16s %-20s %4s  %7d execs past a corpus of %d, %d new' $$pkg $$t $$ft $$fuzzed $$base $$new); \
		done; \
	done; \
	echo "fuzz: $$(( $$(date +%s) - start )) s in all, builds included:$$report"

# mutants applies each protocol mutation of election/testdata/mutants.txt
# (through go test -overlay: the tree is not touched) and fails unless the
# election tests kill every one (about 40 s a mutant on two cores).
mutants:
	$(GO) run ./internal/mutants -list election/testdata/mutants.txt

# package builds the .deb and .rpm for this machine into dist/ and the arm64
# ones into dist/arm64/ (deploy/package-arm64.sh cross-compiles and checks
# them). package-host builds this machine's only: what make test installs in
# its labs (the arm64 cross-build costs about 8 minutes cold).
package: package-host
	deploy/package-arm64.sh

package-host: build
	deploy/package.sh

demo: deps kube containerd s3 package-host
	$(GO) run ./integration/cmd/lab up

demo-down:
	$(GO) run ./integration/cmd/lab down

# kube-vip (an optional system of the VIP benchmark) built from the Go module
# proxy, cached by version (first build: about 20 minutes on 2 busy cores).
kube-vip:
	@integration/kubevip/build.sh >/dev/null

bench: deps kube kube-vip package-host
	$(GO) run ./bench/cmd/bench

bench-vip: deps kube kube-vip package-host
	$(GO) run ./bench/cmd/bench -only vip

bench-etcd:
	$(GO) run ./bench/etcd

bench-lb: deps
	$(GO) run ./bench/lb

clean:
	rm -rf bin dist
