#!/bin/sh
# masterd post-remove: deb postrm (remove | purge | upgrade | abort-* |
# failed-upgrade | disappear) and rpm %postun (0 = erase, 1+ = upgrade).
# Neither remove nor purge (nor rpm -e) deletes /var/lib/masterd (etcd data,
# snapshots, PKI, election state) or /etc/masterd/cluster.key: losing them
# can lose the cluster, so only the operator deletes them, explicitly (see the
# README). A purge lets dpkg delete the conffile masterd.yaml, as usual.
set -e

case "${1:-}" in
remove | purge | 0)
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null || true
	fi
	;;
esac

case "${1:-}" in
purge | 0)
	kept=""
	for p in /var/lib/masterd /etc/masterd/cluster.key; do
		[ -e "$p" ] && kept="$kept $p"
	done
	if [ -n "$kept" ]; then
		echo "masterd: kept$kept (etcd data, snapshots, cluster key)." >&2
		echo "masterd: delete them yourself once no longer needed: rm -rf$kept" >&2
	fi
	;;
esac
exit 0
