#!/bin/sh
# Builds kube-vip from the Go module proxy (no other network needed) into
# $MASTERD_CACHE/kube-vip/<version>/kube-vip (MASTERD_CACHE defaults to
# ~/.cache/masterd) and prints that path. Used by `make bench` for the
# optional kube-vip system of bench/vip (issue 11); bench/vip.FindKubeVIP
# looks there.
#
# proxy.golang.org serves kube-vip v0.9.2 but the checksum database has no
# entry for it (404), and newer tags are refused (403); GONOSUMDB skips the
# checksum database for this one module only. Its dependencies are still
# verified against kube-vip's own go.sum.
#
#   integration/kubevip/build.sh [VERSION]   (default v0.9.2)
set -eu
version=${1:-${KUBE_VIP_VERSION:-v0.9.2}}
mod=github.com/kube-vip/kube-vip
cache=${MASTERD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/masterd}/kube-vip/$version
bin=$cache/kube-vip
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GONOSUMDB="$mod" GOFLAGS=-mod=mod GOTOOLCHAIN=local
dir=$(cd "$work" && go mod download -json "$mod@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
	echo "kubevip/build.sh: go mod download $mod@$version gave no module directory" >&2
	exit 1
fi
# A writable copy: the module cache is read-only, and building inside the
# module makes its go.mod (replace directives included) apply.
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
(cd "$work/src" && CGO_ENABLED=0 go build -trimpath \
	-ldflags "-s -w -X main.Version=$version -X main.Build=proxy" -o "$bin.tmp" .) >&2
mv "$bin.tmp" "$bin"
echo "$bin"
