#!/bin/sh
# Runs as PID 1 of the lab's fresh PID and mount namespaces (started by
# unshare), prepares the lab's mounts on $1 (the overlay root), pivots into it
# and becomes systemd. Arguments: root, host name.
set -eu
R="$1"
NAME="$2"

mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
mount --bind "$R/proc/sys/net" "$R/proc/sys/net"
mount -o remount,bind,rw "$R/proc/sys/net"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"

mount -t tmpfs -o mode=755,size=4m,nosuid tmpfs "$R/dev"
for spec in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
	IFS=: read -r n maj min <<-END
	$spec
	END
	mknod -m 666 "$R/dev/$n" c "$maj" "$min"
done
mkdir -p "$R/dev/net" "$R/dev/pts" "$R/dev/shm"
mknod -m 666 "$R/dev/net/tun" c 10 200
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,nosuid,noexec devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$R/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/tmp"

cd "$R"
pivot_root . .oldroot
cd /
umount -l /.oldroot

exec setpriv --bounding-set -sys_module,-sys_time \
	env -i container="$NAME" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	/lib/systemd/systemd --system --unit=lab.target
