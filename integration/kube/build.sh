#!/usr/bin/env bash
# Builds kube-apiserver, kube-scheduler, kube-controller-manager, kubectl,
# kubelet, kube-proxy and kubeadm from the Go module proxy and caches them by
# version:
#
#   integration/kube/build.sh [VERSION]   -> prints the cache bin directory
#
# KUBE_BINS (space-separated) limits the binaries: the previous minor, used
# only by the upgrade scenario, needs the control plane's three.
#
# Only the binaries missing from the cache are built, so a cache made before a
# binary joined the list is completed rather than rebuilt.
#
# Kubernetes is not published as an ordinary Go module: its go.mod replaces
# every k8s.io/<staging repo> with ./staging/src/... . A throwaway module that
# requires k8s.io/kubernetes vX.Y.Z and replaces each staging repo with its
# published k8s.io/<repo> v0.Y.Z builds the real binaries.
set -euo pipefail

version="${1:-${KUBE_VERSION:-v1.37.2}}"
cache="${MASTERD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/masterd}/kube/${version}"
bins=(kube-apiserver kube-scheduler kube-controller-manager kubectl kubelet kube-proxy kubeadm)
if [[ -n "${KUBE_BINS:-}" ]]; then
	read -ra bins <<<"$KUBE_BINS"
fi

missing=()
for b in "${bins[@]}"; do
	[[ -x "$cache/bin/$b" ]] || missing+=("$b")
done
if [[ ${#missing[@]} -eq 0 ]]; then
	echo "$cache/bin"
	exit 0
fi

minor="${version#v1.}"         # 37.2
staging_version="v0.${minor}"  # v0.37.2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

log() { echo "kube-build: $*" >&2; }
log "building ${missing[*]} of Kubernetes ${version} from the Go module proxy (cold: several minutes)"

cat >go.mod <<MOD
module kubebuild

go 1.26
MOD
# Fetch kubernetes' go.mod to learn the staging repos.
modfile="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/${version}.mod"
if [[ ! -f "$modfile" ]]; then
	go mod download -json "k8s.io/kubernetes@${version}" >/dev/null
fi
mapfile -t staging < <(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$modfile" | sort -u)
if [[ ${#staging[@]} -eq 0 ]]; then
	log "no staging replacements found in $modfile"
	exit 1
fi
log "${#staging[@]} staging repos pinned at ${staging_version}"
{
	echo "require k8s.io/kubernetes ${version}"
	for r in "${staging[@]}"; do echo "replace $r => $r ${staging_version}"; done
} >>go.mod
cat >tools.go <<'GO'
//go:build tools

package kubebuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "k8s.io/kubectl/pkg/cmd"
)
GO
log "resolving modules"
GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
GOFLAGS=-mod=mod go get "k8s.io/kubernetes@${version}" >/dev/null
mkdir -p "$cache/bin"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${version} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor%%.*}"
for b in "${missing[@]}"; do
	pkg="k8s.io/kubernetes/cmd/$b"
	log "go build $b"
	start=$SECONDS
	# Each binary lands under a temporary name and is renamed when complete:
	# an interrupted build never leaves a truncated binary that looks cached.
	GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$cache/bin/.$b.tmp" "$pkg"
	mv "$cache/bin/.$b.tmp" "$cache/bin/$b"
	log "built $b in $((SECONDS - start)) s"
done
log "done: $cache/bin"
echo "$cache/bin"
