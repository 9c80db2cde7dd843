#!/usr/bin/env bash
# Builds SeaweedFS's weed (the S3-compatible server the backup tests upload
# to) from the Go module proxy and caches it by version:
#
#   integration/s3/build.sh [VERSION]   -> prints the cached binary's path
#
# Built only when missing from the cache. SeaweedFS's go.mod has a replace
# directive, so `go install ...@version` refuses it: a throwaway module
# requires github.com/seaweedfs/seaweedfs at VERSION, copies its replace
# directives and builds github.com/seaweedfs/seaweedfs/weed.
set -euo pipefail

version="${1:-${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}}"
module=github.com/seaweedfs/seaweedfs
cache="${MASTERD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/masterd}/seaweedfs/${version}"
bin="$cache/weed"

if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

log() { echo "s3-build: $*" >&2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
log "building weed of ${module} ${version} from the Go module proxy (cold: several minutes)"

cat >go.mod <<MOD
module weedbuild

go 1.26
MOD
modfile="$(go env GOMODCACHE)/cache/download/${module}/@v/${version}.mod"
if [[ ! -f "$modfile" ]]; then
	go mod download -json "${module}@${version}" >/dev/null
fi
{
	echo "require ${module} ${version}"
	# Single-line replace directives of seaweedfs' go.mod (comments skipped).
	grep -E '^replace ' "$modfile" || true
} >>go.mod
cat >tools.go <<'GO'
//go:build tools

package weedbuild

import _ "github.com/seaweedfs/seaweedfs/weed"
GO
log "resolving modules"
if ! GOFLAGS=-mod=mod go get "${module}@${version}" >get.log 2>&1; then
	cat get.log >&2
	exit 1
fi
GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
mkdir -p "$cache"
start=$SECONDS
# The binary lands under a temporary name and is renamed when complete: an
# interrupted build never leaves a truncated binary that looks cached.
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$cache/.weed.tmp" "${module}/weed"
mv "$cache/.weed.tmp" "$bin"
log "built weed in $((SECONDS - start)) s: $bin"
echo "$bin"
