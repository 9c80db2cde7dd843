#!/usr/bin/env bash
# The body of `make test`: every package's tests, staged around the expensive
# builds so that on a cold machine the tests do not wait for all of them.
#
#   integration/test.sh        (from `make test`, which installs the Debian
#                               packages first and exports the cache and kube
#                               variables)
#
# The builds (Kubernetes' control plane, then its node binaries, containerd
# and CoreDNS, the S3 server and the previous Kubernetes minor's control
# plane; nothing once cached) run one after the other in the background at
# the lowest CPU priority, while
#
#   1. the packages that need none of them are tested (early: the election,
#      etcd, VIP, fence and firewall code, mostly waiting on timers);
#   2. once the control plane's binaries are there (kube-apiserver,
#      kube-scheduler, kube-controller-manager, kubectl: all a lab's masters
#      run), everything that needs only them (every package not listed in
#      stage 1, without the late tests): the lab scenarios run while
#      kubelet, kube-proxy, kubeadm, containerd and the S3 server build at
#      nice 19 in the CPU the labs leave idle;
#   3. once the node binaries, containerd and the S3 server are built, what
#      needs them (the late packages and the late tests, by name), while
#      the previous Kubernetes minor builds;
#   4. once that is built, the Kubernetes upgrade scenario.
#
# A test must not look for a binary before its stage: it would skip instead
# of running. A new test that needs kubelet, kube-proxy, kubeadm, containerd
# or the S3 server goes into late_tests (or its package into late), one
# that needs the previous Kubernetes minor into prev_tests. Packages run one
# at a time (-p 1): several boot labs of real systemd hosts with etcd and
# kube-apiserver, and two such labs at once on a 2-core machine turn the
# scenarios into load tests.
set -uo pipefail
cd "$(dirname "$0")/.."

GO="${GO:-go}"
CACHE="${CACHE:-${MASTERD_CACHE:-$HOME/.cache/masterd}}"
TEST_TIMEOUT="${TEST_TIMEOUT:-60m}"

early=(./election/... ./etcdembed/... ./fence/... ./firewall/... ./vip/...
	./internal/... ./integration/labhost/... ./integration/containerd/...
	./integration/images/echo ./integration/images/pause
	./bench/etcd/... ./bench/lb/... ./bench/report/...)
late=(./backup/... ./integration/images)
# Tests of stage-2 packages that need containerd (the worker scenarios) or
# the S3 server (the daemon's off-host backups), and those that need the
# previous Kubernetes minor (the upgrade scenario).
late_tests='^(TestWorkerJoinsAndSurvivesVIPHolderCrash|TestMasterKubeletRegistersTaintedNode|TestBackupToS3ThroughTheDaemonAndTheCLI)$'
prev_tests='^(TestRollingKubeUpgradeFromThePreviousMinor)$'
late_test_pkgs=(./integration/scenarios/... ./cmd/masterd/...)
# Scenarios only `make integration` runs: what they check, make test checks
# in other scenarios (TestMembershipReplaceOnRealHosts: removing a master,
# wiping it and adding it back under its name is what the recover scenario
# does to two masters, and its refusals are the grow scenario's), and a cold
# make test is over its hour.
integration_only='^(TestMembershipReplaceOnRealHosts)$'

# Every lab host has a /tmp and /run of its own: binaries cached there are
# not found inside the labs (each lab test would fail after the builds).
case "$(realpath -m "$CACHE")/" in
/tmp/* | /run/*)
	echo "test: CACHE=$CACHE is under /tmp or /run, which every lab host has of its own: keep the cache elsewhere" >&2
	exit 2
	;;
esac

mkdir -p "$CACHE"
log="$CACHE/build.log"
state="$(mktemp -d)"
trap 'rm -rf "$state"' EXIT

# One build after the other; each leaves a file named after it when done,
# "failed" when one fails (the rest are not tried).
(
	for b in kube-control-plane kube containerd s3 kube-prev; do
		if ! nice -n 19 make --no-print-directory "$b" >>"$log" 2>&1; then
			echo "$b" >"$state/failed"
			exit 1
		fi
		touch "$state/$b"
	done
) &
builder=$!
: >"$log"
echo "test: building kube-control-plane, kube, containerd, s3 and kube-prev in the background (log: $log)"

# await waits until build $1 is done; it fails when a build failed.
await() {
	while [[ ! -e "$state/$1" ]]; do
		if [[ -e "$state/failed" ]]; then
			echo "test: build of $(cat "$state/failed") failed:"
			cat "$log"
			return 1
		fi
		sleep 2
	done
}

run() {
	echo "test: $1"
	shift
	"$GO" test -p 1 -count=1 -timeout "$TEST_TIMEOUT" "$@"
}

# The package the labs install, and vet, while the builds start.
make --no-print-directory package-host || exit 1
"$GO" vet ./... || exit 1

# A renamed late test would silently run in stage 2, before its binaries.
for list in late_tests prev_tests integration_only; do
	names=$(tr '|' '\n' <<<"${!list}" | wc -l)
	n=$("$GO" test -list "${!list}" "${late_test_pkgs[@]}" | grep -c '^Test')
	if [[ $n -ne $names ]]; then
		echo "test: $list in $0 names $names tests, $n found: update it" >&2
		exit 1
	fi
done

rc=0
run "packages that need no build" "${early[@]}" || rc=1

await kube-control-plane || exit 1
mapfile -t middle < <(comm -23 <("$GO" list ./... | sort) \
	<("$GO" list "${early[@]}" "${late[@]}" | sort))
run "packages that need the Kubernetes binaries" -skip "$late_tests|$prev_tests|$integration_only" "${middle[@]}" || rc=1

await kube || exit 1
await s3 || exit 1
run "packages that need containerd or the S3 server" "${late[@]}" || rc=1
run "tests that need containerd or the S3 server" -run "$late_tests" "${late_test_pkgs[@]}" || rc=1

await kube-prev || exit 1
wait "$builder" || exit 1
run "tests that need the previous Kubernetes minor" -run "$prev_tests" "${late_test_pkgs[@]}" || rc=1
exit $rc
