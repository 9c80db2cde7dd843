#!/bin/sh
# package.sh builds bin/masterd and the masterd .deb and .rpm into dist/.
# For another architecture than the build machine's (GOARCH=arm64) the binary
# is cross-compiled (CGO off) into bin/linux_$GOARCH/masterd, so bin/masterd
# stays runnable here.
#
#   deploy/package.sh            # from anywhere inside the repository
#   deploy/package.sh --version  # print the package version and exit
#
# Environment (all optional):
#   VERSION      package version; default: derived from `git describe --tags
#                --always --dirty` in a form dpkg and rpm both order correctly
#   REVISION     full commit id baked into the binary; default: git rev-parse HEAD
#   GOARCH       target architecture (Go name); default: go env GOARCH
#   DIST         output directory; default: <repo>/dist
#   MASTERD_BIN  package this prebuilt binary instead of building ./cmd/masterd
#   PACKAGERS    which packages to build; default: "deb rpm"
#
# Prints the path of every package it wrote, one per line, last.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

# pkg_version turns `git describe` output into a version dpkg and rpm both
# accept and order by history:
#   v1.2.0                    -> 1.2.0
#   v1.2.0-3-gabc1234         -> 1.2.0+git3.gabc1234
#   abc1234 (no tag yet)      -> 0.0.0~git<commits>.gabc1234
#   ...-dirty                 -> ... with .dirty appended
# '-' is not allowed in an rpm version and a deb version must start with a
# digit; '~' sorts before everything, so untagged builds precede 0.0.0.
pkg_version() {
	d=$(git describe --tags --always --dirty 2>/dev/null || echo unknown)
	dirty=
	case $d in *-dirty) dirty=.dirty; d=${d%-dirty} ;; esac
	if git describe --tags >/dev/null 2>&1; then
		d=${d#v}
		case $d in
		*-*-g*)
			base=${d%-*-g*}
			rest=${d#"$base"-}
			n=${rest%%-g*}
			sha=${rest#*-g}
			v="$base+git$n.g$sha"
			;;
		*) v=$d ;;
		esac
	else
		n=$(git rev-list --count HEAD 2>/dev/null || echo 0)
		v="0.0.0~git$n.g$d"
	fi
	# Anything else a tag may carry that the package managers reject.
	printf '%s%s\n' "$v" "$dirty" | tr -c 'A-Za-z0-9.+~\n' '.'
}

VERSION=${VERSION:-$(pkg_version)}
REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
GOARCH=${GOARCH:-$(go env GOARCH)}
DIST=${DIST:-$repo/dist}
PACKAGERS=${PACKAGERS:-deb rpm}
export VERSION REVISION GOARCH

case $VERSION in
[0-9]*) ;;
*) echo "package.sh: VERSION $VERSION must start with a digit" >&2; exit 1 ;;
esac
if [ "${1:-}" = --version ]; then
	echo "$VERSION"
	exit 0
fi

# The binary for the target; a cross build gets its own path.
hostarch=$(go env GOHOSTARCH)
bin=bin/masterd
[ "$GOARCH" = "$hostarch" ] || bin=bin/linux_$GOARCH/masterd
ldflags="-s -w -X main.version=$VERSION -X main.revision=$REVISION"
mkdir -p "$(dirname "$bin")" "$DIST"
if [ -n "${MASTERD_BIN:-}" ]; then
	if ! [ "$MASTERD_BIN" -ef "$bin" ]; then
		cp "$MASTERD_BIN" "$bin"
	fi
else
	CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "$ldflags" \
		-o "$bin" ./cmd/masterd
fi

# Staging area for generated package files (docs, man pages, completions,
# license).
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT INT TERM
export STAGE="$stage"

# The docs come from running the binary: a cross build runs a host build of
# the same source and flags instead (help text is the same on every arch).
runbin=$bin
if [ "$GOARCH" != "$hostarch" ] && [ -z "${MASTERD_BIN:-}" ]; then
	runbin=$stage/masterd-host
	CGO_ENABLED=0 GOOS=linux GOARCH=$hostarch go build -trimpath -ldflags "$ldflags" \
		-o "$runbin" ./cmd/masterd
fi

# The example configuration: the lead's deploy/masterd.yaml once it exists.
if [ -f deploy/masterd.yaml ]; then
	cp deploy/masterd.yaml "$stage/masterd.yaml"
else
	cp deploy/masterd.placeholder.yaml "$stage/masterd.yaml"
fi

# License: the repository's LICENSE, else the Apache-2.0 text Debian ships
# (the project's planned license) so the packages stay complete.
if [ -f LICENSE ]; then
	cp LICENSE "$stage/LICENSE"
elif [ -f /usr/share/common-licenses/Apache-2.0 ]; then
	echo "package.sh: no LICENSE at the repository root, using Apache-2.0" >&2
	cp /usr/share/common-licenses/Apache-2.0 "$stage/LICENSE"
else
	echo "package.sh: no LICENSE at the repository root" >&2
	exit 1
fi

if [ -f README.md ]; then
	cp README.md "$stage/README.md"
else
	printf '# masterd\n\nSee https://github.com/masterd/masterd\n' >"$stage/README.md"
fi

# `masterd --help` and every command's own go into the docs. A prebuilt
# foreign binary (MASTERD_BIN) cannot run here: a placeholder then.
help=
if [ "$runbin" != "$bin" ] || [ "$GOARCH" = "$hostarch" ]; then
	help=$("$runbin" --help 2>&1 || true)
fi
[ -n "$help" ] || help="masterd $VERSION: run \`masterd --help\` for usage."
printf '%s\n' "$help" >"$stage/masterd-help.txt"
# Then every subcommand's own --help (the commands listed under "Commands:").
for c in $(printf '%s\n' "$help" | awk '/^Commands:/ { f = 1; next } f && /^  [a-z]/ { print $1 } f && /^$/ { f = 0 }'); do
	printf '\n$ masterd %s --help\n' "$c"
	"$runbin" "$c" --help 2>&1 || true
done >>"$stage/masterd-help.txt"

# The manual pages (one per command, section 8) and the bash, zsh and fish
# completions come from the command tree (internal/cli) through a generator
# of their own, so the daemon does not link the man page renderer. It runs on
# this machine (GOARCH=host) whatever the target.
date=$(git log -1 --format=%cd --date=format:%Y-%m-%d 2>/dev/null || date -u +%Y-%m-%d)
GOARCH=$hostarch CGO_ENABLED=0 go run ./internal/cmd/gendocs -out "$stage" -version "$VERSION" -date "$date"
[ -f "$stage/man8/masterd.8.gz" ] && [ -f "$stage/completions/masterd" ] || {
	echo "package.sh: gendocs wrote no man pages or completions in $stage" >&2
	exit 1
}

# Debian changelog (lintian wants one; the version must match the package's).
{
	printf 'masterd (%s-1) unstable; urgency=medium\n\n' "$VERSION"
	printf '  * Built from commit %s.\n\n' "$REVISION"
	printf ' -- masterd developers <masterd@lists.masterd.dev>  %s\n' \
		"$(git log -1 --format=%cD 2>/dev/null || date -uR)"
} | gzip -9n >"$stage/changelog.Debian.gz"

# nfpm expands environment variables in its scalar fields but not in content
# paths: resolve ${STAGE} ourselves, and point bin/masterd at the target's.
# ${GOARCH} too: nfpm itself runs with the host's GOARCH (go tool builds it).
sed -e "s|\${STAGE}|$stage|g" -e "s|\${GOARCH}|$GOARCH|g" -e "s|\(src: \)bin/masterd\$|\1$bin|" \
	deploy/nfpm.yaml >"$stage/nfpm.yaml"
grep -q "src: $bin\$" "$stage/nfpm.yaml" || {
	echo "package.sh: deploy/nfpm.yaml has no 'src: bin/masterd' line to point at $bin" >&2
	exit 1
}

case $GOARCH in
amd64) deb_arch=amd64 rpm_arch=x86_64 ;;
arm64) deb_arch=arm64 rpm_arch=aarch64 ;;
*) deb_arch=$GOARCH rpm_arch=$GOARCH ;;
esac

for p in $PACKAGERS; do
	case $p in
	deb) out="$DIST/masterd_${VERSION}-1_$deb_arch.deb" ;;
	rpm) out="$DIST/masterd-${VERSION}-1.$rpm_arch.rpm" ;;
	*) echo "package.sh: unknown packager $p" >&2; exit 1 ;;
	esac
	GOARCH=$hostarch go tool -modfile="$repo/tools/go.mod" nfpm package --config "$stage/nfpm.yaml" --packager "$p" --target "$out" >&2
	echo "$out"
done
