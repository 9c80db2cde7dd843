#!/usr/bin/env bash
# package-arm64.sh builds the arm64 .deb and .rpm (cross-compiled, CGO off)
# into $DIST/arm64 (default dist/arm64) and checks them: package
# architecture arm64 / aarch64, and the /usr/bin/masterd inside both is
# bin/linux_arm64/masterd, an aarch64 ELF. arm64 has its own directory so
# what globs dist/masterd_*.deb (integration/lab FindDeb, newest wins) never
# installs a package this machine cannot run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
dist=${DIST:-$repo/dist}/arm64
bin=bin/linux_arm64/masterd
pkgs=$(GOARCH=arm64 DIST=$dist deploy/package.sh)
echo "$pkgs"
fail() { echo "package: arm64: $*" >&2; exit 1; }
[ "$(od -An -tx1 -j4 -N1 $bin | tr -d ' ')" = 02 ] || fail "$bin is not a 64-bit ELF"
[ "$(od -An -tx1 -j18 -N2 $bin | tr -d ' ')" = b700 ] || fail "$bin is not an aarch64 ELF (e_machine)"
sum=$(sha256sum <$bin | cut -d' ' -f1)
for p in $pkgs; do
	case $p in
	*.deb)
		a=$(dpkg-deb -f "$p" Architecture)
		[ "$a" = arm64 ] || fail "$p: Architecture $a"
		s=$(dpkg-deb --fsys-tarfile "$p" | tar -xO ./usr/bin/masterd | sha256sum | cut -d' ' -f1)
		;;
	*.rpm)
		a=$(rpm -qp --qf '%{ARCH}' "$p")
		[ "$a" = aarch64 ] || fail "$p: ARCH $a"
		s=$(rpm -qp --qf '[%{FILENAMES} %{FILEDIGESTS}\n]' "$p" | awk '$1 == "/usr/bin/masterd" { print $2 }')
		;;
	esac
	[ "$s" = "$sum" ] || fail "$p: /usr/bin/masterd is not $bin"
done
echo "package: arm64 packages checked: aarch64 ELF inside, deb arm64, rpm aarch64"
