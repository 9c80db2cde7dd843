#!/bin/sh
# masterd pre-remove: deb prerm (remove | upgrade NEW | deconfigure |
# failed-upgrade) and rpm %preun (0 = erase, 1+ = upgrade). On removal stop
# masterd (its ExecStopPost deletes the VIP and kills leader-only units) and
# disable it; on upgrade leave it running, post-install restarts it.
set -e

case "${1:-}" in
remove | deconfigure | 0)
	if [ -d /run/systemd/system ]; then
		systemctl stop masterd.service >/dev/null 2>&1 || true
	fi
	if command -v systemctl >/dev/null 2>&1; then
		systemctl --no-reload disable masterd.service >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
