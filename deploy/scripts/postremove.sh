#!/bin/sh
# masterd post-remove: deb postrm (remove | purge | upgrade | abort-* |
# failed-upgrade | disappear) and rpm %postun (0 = erase, 1+ = upgrade).
# Remove keeps /var/lib/masterd (etcd data, PKI) and /etc/masterd; only a
# deb purge deletes them, cluster key included.
set -e

case "${1:-}" in
remove | purge | 0)
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null || true
	fi
	;;
esac

if [ "${1:-}" = purge ]; then
	rm -rf /var/lib/masterd /etc/masterd
fi
exit 0
