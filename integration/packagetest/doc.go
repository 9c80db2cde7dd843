// Package packagetest checks the masterd packages built by deploy/package.sh
// as a user meets them. It has no API: everything is in its tests.
//
// # What is checked
//
//   - Metadata and contents of the .deb (dpkg-deb -I/-c/-f, conffiles) and
//     the .rpm (rpm -qip/-qlvp, --configfiles, scriptlets), and lintian
//     on the .deb with no errors.
//   - The rpm installed with `rpm -i --nodeps --noscripts --root` into a
//     throwaway root: files, modes, config marking; then erased.
//   - deploy/masterd.service: `systemd-analyze verify` clean and the
//     `systemd-analyze security` exposure before and after hardening, both
//     inside a lab host (integration/labhost) after installing the .deb;
//     and the hardening checked from inside: a unit with the same sandbox
//     settings adds addresses over netlink, opens an AF_PACKET socket,
//     talks to systemd over its private socket, writes its state directory
//     and /run/systemd/system, and cannot write /etc/masterd.
//   - The .deb lifecycle in a lab host booted with real systemd: install (no
//     start, not enabled), `systemctl enable --now masterd`, upgrade to a
//     newer build (config edits and data kept, running daemon restarted),
//     remove (stopped, disabled, data kept), purge (masterd.yaml gone, the
//     data directory and cluster.key kept, the output saying how to delete
//     them).
//   - deploy/prometheus: `promtool check rules` and `promtool test rules`;
//     every alert the deploy issue asks for exists and is unit-tested.
//   - deploy/grafana: the dashboard is valid JSON with unique panel ids and
//     queries only masterd metrics that the packages define.
//
// Packages are built by running deploy/package.sh (cheap once the Go build
// cache is warm) into a temporary directory; nothing is installed on the
// machine itself. Tests that need root, dpkg, rpm, lintian or promtool skip
// with a message naming what is missing.
package packagetest
