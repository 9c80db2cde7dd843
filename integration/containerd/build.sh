#!/usr/bin/env bash
# Builds containerd v2 (containerd, ctr and the runc shim
# containerd-shim-runc-v2) from the Go module proxy and caches them by version:
#
#   integration/containerd/build.sh [VERSION]   -> prints the cache bin directory
#
# Debian 12 ships containerd 1.6, which kubelet v1.36 and later no longer
# accept (they need containerd 2.x); runc and the CNI plugins come from
# Debian (see DEB_PACKAGES in the Makefile). The binaries are static
# (CGO_ENABLED=0): the btrfs snapshotter, which needs cgo, is left out.
set -euo pipefail

version="${1:-${CONTAINERD_VERSION:-v2.4.2}}"
cache="${MASTERD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/masterd}/containerd/${version}"
bins=(containerd ctr containerd-shim-runc-v2)

missing=()
for b in "${bins[@]}"; do
	[[ -x "$cache/bin/$b" ]] || missing+=("$b")
done
if [[ ${#missing[@]} -eq 0 ]]; then
	echo "$cache/bin"
	exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

log() { echo "containerd-build: $*" >&2; }
log "building ${missing[*]} of containerd ${version} from the Go module proxy"

cat >go.mod <<MOD
module containerdbuild

go 1.26
MOD
cat >tools.go <<'GO'
//go:build tools

package containerdbuild

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
GO
GOFLAGS=-mod=mod go get "github.com/containerd/containerd/v2@${version}" >/dev/null 2>&1
GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
mkdir -p "$cache/bin"
mod=github.com/containerd/containerd/v2
ldflags="-s -w -X ${mod}/version.Version=${version} -X ${mod}/version.Package=${mod}"
for b in "${missing[@]}"; do
	log "go build $b"
	start=$SECONDS
	# A binary lands under a temporary name and is renamed when complete: an
	# interrupted build never leaves a truncated binary that looks cached.
	GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -tags "no_btrfs" -ldflags "$ldflags" \
		-o "$cache/bin/.$b.tmp" "${mod}/cmd/$b"
	mv "$cache/bin/.$b.tmp" "$cache/bin/$b"
	log "built $b in $((SECONDS - start)) s"
done
log "done: $cache/bin"
echo "$cache/bin"
