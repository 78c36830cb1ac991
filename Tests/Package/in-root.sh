#!/bin/sh
# in-root.sh ROOT COMMAND [ARG...]: runs COMMAND chrooted in ROOT (a Debian root the package
# test made with debootstrap), with /proc, /sys and /dev mounted there.
#
# Run it only in a mount namespace of its own (unshare --mount --propagation private, or under
# `ip netns exec`, which makes one): it refuses to run in the initial one. Its mounts are then
# never seen outside that namespace, so nothing else (a `git clean` of the build tree, another
# test) ever finds them under ROOT, and they go with the namespace when its last process ends,
# however it ends (SIGKILL included): nothing is left to unmount. COMMAND replaces this shell
# (exec), so a signal sent to this process reaches COMMAND itself.
set -eu
[ $# -ge 2 ] || { echo "usage: in-root.sh ROOT COMMAND [ARG...]" >&2; exit 2; }
root=$1
shift
[ -x "$root/bin/sh" ] || { echo "in-root.sh: $root is not a root file system" >&2; exit 2; }
if [ "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/1/ns/mnt)" ]; then
    echo "in-root.sh: refusing to mount in the initial mount namespace (run it under unshare --mount)" >&2
    exit 2
fi
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb \
    DEBIAN_FRONTEND=noninteractive chroot "$root" "$@"
