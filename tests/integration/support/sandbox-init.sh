#!/bin/bash
# PID 1 of a test sandbox's new namespaces (net, cgroup, mount, pid, uts, ipc), before it
# becomes a stand-in for a WSL2 distro. support/sandbox.rs writes this file into the
# sandbox's directory and starts it under `unshare`; the safety rules it follows are listed
# at the top of support/sandbox.rs.
#
# Usage: sandbox-init.sh DIR LOWER DISTROD HOSTNAME
#   DIR      the sandbox's private directory: upper/, work/, merged/ and `binds`
#            (lines `HOST-PATH<TAB>PATH-INSIDE`, bound read-only); `ready` is created in
#            it once the sandbox is up
#   LOWER    the rootfs tree, overlaid read-only (it is never written to)
#   DISTROD  the binary under test, bound read-only at /opt/distrod/bin/distrod
#   HOSTNAME the sandbox's hostname (its own UTS namespace)
set -euo pipefail
D=$1 LOWER=$2 DISTROD=$3 NAME=$4
R=$D/merged

# Nothing mounted here may propagate to the host.
mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$D/upper,workdir=$D/work" "$R"

# /proc of this pid namespace, /proc/sys read-only (no global sysctl from systemd).
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
# /sys of this net namespace, read-only; cgroup2 rooted at the sandbox's cgroup (cgroupns).
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"

# A private /dev: never devtmpfs, never the host's /dev.
mount -t tmpfs -o mode=755,size=4m,nosuid tmpfs "$R/dev"
for n in null zero full random urandom tty; do
    touch "$R/dev/$n"
    mount --bind "/dev/$n" "$R/dev/$n"
done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5,nosuid,noexec devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
# WSL has a /dev/console; a placeholder a runtime may bind over.
touch "$R/dev/console"

# WSL-like /run (a tmpfs with /run/WSL).
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$R/run"
mkdir -p "$R/run/lock" "$R/run/WSL" "$R/run/user" "$R/run/shm"

# WSL bind-mounts its own init at /init; a fake one that must never be needed.
printf '#!/bin/sh\necho "fake WSL /init: must not be run" >&2\nexit 1\n' >"$R/init"
chmod 755 "$R/init"

# The binary under test.
mkdir -p "$R/opt/distrod/bin"
touch "$R/opt/distrod/bin/distrod"
mount --bind "$DISTROD" "$R/opt/distrod/bin/distrod"
mount -o remount,bind,ro "$R/opt/distrod/bin/distrod"

# Extra read-only binds the test asked for.
if [[ -s $D/binds ]]; then
    while IFS=$'\t' read -r src dst; do
        mkdir -p "$R$dst"
        mount --rbind "$src" "$R$dst"
        mount -o remount,bind,ro "$R$dst"
    done <"$D/binds"
fi

hostname "$NAME"
ip link set lo up

exec 9<"$D"
cd "$R"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot
# WSL's worst case: the distro's mounts are shared.
mount --make-rshared /
touch /proc/self/fd/9/ready
exec 9<&-

# The stand-in for WSL's /init: reaps every orphan and does nothing else. While bash
# waits for a job it reaps with waitpid(-1), so every child dies reaped, also those it never
# started; its one child of its own is the idle `sleep infinity`. SIGKILL from the host
# ends the sandbox.
exec /bin/bash -c '
    trap "" TERM INT HUP QUIT USR1 USR2
    while :; do sleep infinity & wait; done
' sandbox-init
