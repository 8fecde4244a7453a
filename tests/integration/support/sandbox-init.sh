#!/bin/bash
# PID 1 of a test sandbox's new namespaces (net, cgroup, mount, pid, uts, ipc), before it
# becomes a stand-in for a WSL2 distro. support/sandbox.rs writes this file into the
# sandbox's directory and starts it under `unshare`; the safety rules it follows are listed
# at the top of support/sandbox.rs.
#
# Usage: sandbox-init.sh DIR LOWER DISTROD HOSTNAME [--wsl-like FAKEWSL] [--distrod-at PATH]
#   DIR      the sandbox's private directory: upper/, work/, merged/ and `binds`
#            (lines `HOST-PATH<TAB>PATH-INSIDE`, bound read-only); `ready` is created in
#            it once the sandbox is up
#   LOWER    the rootfs tree, overlaid read-only (it is never written to)
#   DISTROD  the binary under test, bound read-only at /opt/distrod/bin/distrod
#   HOSTNAME the sandbox's hostname (its own UTS namespace)
#   --wsl-like FAKEWSL  what WSL sessions meet: shared /proc and /mnt/wsl, /mnt/wslg,
#            /mnt/c/Windows, and FAKEWSL bound read-only at /opt/fakewsl/fakewsl
#   --distrod-at PATH   bind DISTROD at PATH instead, and create no /opt/distrod (a distro
#            before `distrod install`)
set -euo pipefail
D=$1 LOWER=$2 DISTROD=$3 NAME=$4
shift 4
FAKEWSL="" DISTROD_AT=/opt/distrod/bin/distrod
while [[ $# -gt 0 ]]; do
    case $1 in
        --wsl-like) FAKEWSL=$2; shift 2 ;;
        --distrod-at) DISTROD_AT=$2; shift 2 ;;
        *) echo "sandbox-init.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
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
mkdir -p "$(dirname "$R$DISTROD_AT")"
touch "$R$DISTROD_AT"
mount --bind "$DISTROD" "$R$DISTROD_AT"
mount -o remount,bind,ro "$R$DISTROD_AT"

if [[ -n $FAKEWSL ]]; then
    # WSL's /mnt/wsl: a tmpfs shared between the distros of the VM.
    mkdir -p "$R/mnt/wsl"
    mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$R/mnt/wsl"
    # WSLg's mount: the X11 socket directory, the Wayland runtime dir, the Pulse socket
    # (empty files: nothing listens, only their presence and modes matter).
    mkdir -p "$R/mnt/wslg"
    mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$R/mnt/wslg"
    mkdir -m 1777 "$R/mnt/wslg/.X11-unix"
    touch "$R/mnt/wslg/.X11-unix/X0"
    mkdir -m 700 "$R/mnt/wslg/runtime-dir"
    touch "$R/mnt/wslg/runtime-dir/wayland-0"
    chown -R 1000:1000 "$R/mnt/wslg/runtime-dir"
    touch "$R/mnt/wslg/PulseServer"
    # The Windows directories a session's PATH names.
    mkdir -p "$R/mnt/c/Windows/System32"
    # WSL's session relay and interop client.
    mkdir -p "$R/opt/fakewsl"
    touch "$R/opt/fakewsl/fakewsl"
    mount --bind "$FAKEWSL" "$R/opt/fakewsl/fakewsl"
    mount -o remount,bind,ro "$R/opt/fakewsl/fakewsl"
fi

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
if [[ -n $FAKEWSL ]]; then
    # WSL mounts /proc and /mnt/wsl shared in their own right, not only through `/`.
    mount --make-shared /proc
    mount --make-shared /mnt/wsl
fi
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
