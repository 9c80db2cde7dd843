#!/usr/bin/env bash
# Builds a static coredns binary from the Go module proxy and caches it by
# version:
#
#   integration/images/coredns.sh [VERSION]   -> prints the cached binary's path
#
# The binary is CoreDNS's own coremain with the plugins a cluster's Corefile
# uses (kubeadm's default Corefile plus log, hosts, whoami): the cloud DNS
# plugins of the full build (route53, azure, clouddns, ...) pull in hundreds
# of modules the lab never needs. The version defaults to the one kubeadm of
# the lab's Kubernetes deploys (constants.CoreDNSVersion).
set -euo pipefail

version="${1:-${COREDNS_VERSION:-v1.14.6}}"
cache="${MASTERD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/masterd}/coredns/${version}"
if [[ -x "$cache/coredns" ]]; then
	echo "$cache/coredns"
	exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
log() { echo "coredns-build: $*" >&2; }
log "building coredns ${version} from the Go module proxy"

cat >go.mod <<MOD
module corednsbuild

go 1.26
MOD
cat >main.go <<'GO'
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/whoami"
)

func main() { coremain.Run() }
GO
GOFLAGS=-mod=mod go get "github.com/coredns/coredns@${version}" >/dev/null 2>&1
GOFLAGS=-mod=mod go mod tidy >/dev/null
mkdir -p "$cache"
start=$SECONDS
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=${version}" -o "$cache/.coredns.tmp" .
mv "$cache/.coredns.tmp" "$cache/coredns"
log "built coredns in $((SECONDS - start)) s: $cache/coredns"
echo "$cache/coredns"
