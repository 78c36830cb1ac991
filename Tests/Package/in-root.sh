#!/bin/sh
# in-root.sh ROOT COMMAND [ARG...]: runs COMMAND chrooted in ROOT (a Debian root the package
# test made with debootstrap), with /proc, /sys and /dev mounted there.
#
# It first moves into a mount namespace of its own (unshare --mount, private propagation) and
# checks that it did, so its mounts are never seen outside it: nothing else (a `git clean` of
# the build tree, another test) ever finds them under ROOT, and they go with the namespace when
# its last process ends, however it ends (SIGKILL included): nothing is left to unmount.
# COMMAND replaces this shell (exec), so a signal sent to this process reaches COMMAND itself.
set -eu
[ $# -ge 2 ] || { echo "usage: in-root.sh ROOT COMMAND [ARG...]" >&2; exit 2; }
namespace=$(readlink /proc/self/ns/mnt) || namespace=
[ -n "$namespace" ] || { echo "in-root.sh: cannot read /proc/self/ns/mnt" >&2; exit 2; }
if [ -z "${IN_ROOT_OUTER_NAMESPACE:-}" ]; then
    IN_ROOT_OUTER_NAMESPACE=$namespace exec unshare --mount --propagation private "$0" "$@"
fi
if [ "$namespace" = "$IN_ROOT_OUTER_NAMESPACE" ]; then
    echo "in-root.sh: still in the caller's mount namespace ($namespace); not mounting" >&2
    exit 2
fi
root=$1
shift
[ -x "$root/bin/sh" ] || { echo "in-root.sh: $root is not a root file system" >&2; exit 2; }
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb \
    DEBIAN_FRONTEND=noninteractive chroot "$root" "$@"
