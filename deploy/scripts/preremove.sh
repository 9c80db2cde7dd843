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
	# The VIP fence (package fence) outlives a stop on purpose: it keeps a
	# dead holder's VIP silent. On removal nothing manages it any more, so
	# delete its tables (default name masterd_fence). TODO: `masterd cleanup`
	# should do this itself when asked to uninstall.
	if command -v nft >/dev/null 2>&1; then
		for family in arp netdev inet ip ip6; do
			nft delete table "$family" masterd_fence >/dev/null 2>&1 || true
		done
	fi
	;;
esac
exit 0
