#!/bin/sh
# masterd post-install: deb postinst (configure [old-version]) and rpm %post
# (1 = install, 2+ = upgrade). Never starts masterd on a fresh install: the
# admin edits /etc/masterd/masterd.yaml first and runs
# `systemctl enable --now masterd`. On upgrade a running masterd is restarted
# so the new binary runs (a graceful stop hands its roles over first).
set -e

upgrade=false
case "${1:-}" in
configure) [ -z "${2:-}" ] || upgrade=true ;;
[2-9] | [1-9][0-9]*) upgrade=true ;;
esac

# The package ships /var/lib/masterd 0700; keep it so if an admin loosened it.
if [ -d /var/lib/masterd ]; then
	chmod 0700 /var/lib/masterd
fi

# Only talk to systemd when it is the running init.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
	if [ "$upgrade" = true ]; then
		systemctl try-restart masterd.service >/dev/null || true
	fi
fi
exit 0
