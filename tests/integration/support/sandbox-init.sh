#!/bin/bash
# PID 1 of a test sandbox's new namespaces (net, cgroup, mount, pid, uts, ipc), before it
# becomes a stand-in for a WSL2 distro. support/sandbox.rs writes this file into the
# sandbox's directory and starts it under `unshare`; the safety rules it follows are listed
# at the top of support/sandbox.rs.
#
# Usage: sandbox-init.sh DIR LOWER DISTROD HOSTNAME [--wsl-like FAKEWSL] [--distrod-at PATH]
#                        [--wsl-namespaces elevated|plain] [--cgroup-dir REL --vm-wsl PATH]
#        sandbox-init.sh --mount-drive POINT SOURCE MARKER   (inside the sandbox, see below)
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
#   --wsl-namespaces ELEVATION  (with --wsl-like) WSL's two mount namespaces: this one, the
#            first, with the elevation ELEVATION, and a second one with the other, made by
#            `unshare -m` from the first once its drive is mounted and kept by a keeper
#            process (a child of PID 1 running `sleep infinity`; its pid inside is written
#            to DIR/keeper). WSL's propagation: `/` private; /proc, /sys, /dev, /run,
#            /mnt/wsl and /mnt/wslg shared (peers in both namespaces). Each namespace has
#            its own Windows drive C: (see mount_drive), marker `ADMIN` or `user`.
#   --cgroup-dir REL  a distro of a VM of several (support/sandbox.rs, first_in_vm): this
#            process moves itself to REL below the cgroup namespace's root (the VM's)
#   --vm-wsl PATH  (with --wsl-like) /mnt/wsl is a bind of PATH, the VM's one shared tmpfs,
#            instead of a tmpfs of its own. The script then runs in a mount namespace made
#            from the VM's (private but for PATH), so `/` is not made private again
#            (that would cut PATH's sharing)
#   --mount-drive POINT SOURCE MARKER  only mount_drive, in the namespace it runs in (how
#            support/sandbox.rs adds a drive later, in each namespace)
set -euo pipefail

# A Windows drive as WSL mounts it (its drvfs mounts show SOURCE `C:\` in mountinfo): here a
# tmpfs of its own at POINT, private, holding `marker` (MARKER: which Windows token serves
# it) and the Windows directories a session's PATH names.
mount_drive() {
    mkdir -p "$1"
    mount -t tmpfs -o mode=755,size=1m "$2" "$1"
    mount --make-private "$1"
    echo "$3" >"$1/marker"
    mkdir -p "$1/Windows/System32"
}

if [[ ${1:-} == --mount-drive ]]; then
    mount_drive "$2" "$3" "$4"
    exit 0
fi

D=$1 LOWER=$2 DISTROD=$3 NAME=$4
shift 4
FAKEWSL="" DISTROD_AT=/opt/distrod/bin/distrod NAMESPACES="" CGROUP_DIR="" VM_WSL=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --wsl-like) FAKEWSL=$2; shift 2 ;;
        --cgroup-dir) CGROUP_DIR=$2; shift 2 ;;
        --vm-wsl) VM_WSL=$2; shift 2 ;;
        --distrod-at) DISTROD_AT=$2; shift 2 ;;
        --wsl-namespaces) NAMESPACES=$2; shift 2 ;;
        *) echo "sandbox-init.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
R=$D/merged

# Nothing mounted here may propagate to the host. A VM's mount namespace is a private
# copy of the host's already, its /mnt/wsl tmpfs the only shared mount.
if [[ -z $VM_WSL ]]; then
    mount --make-rprivate /
elif ! findmnt -rno PROPAGATION,TARGET | awk -v w="$VM_WSL" '$1 != "private" && $2 != w { bad = 1 } END { exit bad }'; then
    echo "sandbox-init.sh: the VM's mount namespace has shared mounts besides $VM_WSL" >&2
    exit 1
fi
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$D/upper,workdir=$D/work" "$R"

# /proc of this pid namespace, /proc/sys read-only (no global sysctl from systemd).
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
# /sys of this net namespace, read-only; cgroup2 rooted at the sandbox's cgroup (cgroupns).
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"
if [[ -n $CGROUP_DIR ]]; then
    mkdir -p "$R/sys/fs/cgroup/$CGROUP_DIR"
    echo $$ >"$R/sys/fs/cgroup/$CGROUP_DIR/cgroup.procs"
fi

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
    if [[ -n $VM_WSL ]]; then
        mount --bind "$VM_WSL" "$R/mnt/wsl"
    else
        mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$R/mnt/wsl"
    fi
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
    # The Windows directories a session's PATH names (on the drive itself with
    # --wsl-namespaces, mounted below).
    if [[ -n $NAMESPACES ]]; then
        mkdir -p "$R/mnt/c"
    else
        mkdir -p "$R/mnt/c/Windows/System32"
    fi
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

case $NAMESPACES in
    "") ;;
    elevated) FIRST_MARKER=ADMIN SECOND_MARKER=user ;;
    plain) FIRST_MARKER=user SECOND_MARKER=ADMIN ;;
    *) echo "sandbox-init.sh: --wsl-namespaces $NAMESPACES: elevated or plain" >&2; exit 2 ;;
esac
if [[ -n $NAMESPACES && -z $FAKEWSL ]]; then
    echo "sandbox-init.sh: --wsl-namespaces needs --wsl-like" >&2
    exit 2
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
if [[ -n $NAMESPACES ]]; then
    # WSL's propagation: the root private, its own mounts of /proc, /sys, /dev, /run,
    # /mnt/wsl and /mnt/wslg shared, drives private.
    mount --make-rprivate /
    for m in /proc /sys /dev /run /mnt/wsl /mnt/wslg; do
        mount --make-shared "$m"
    done
    mount_drive /mnt/c 'C:\' "$FIRST_MARKER"
    # The second namespace, as WSL makes it: unshare(CLONE_NEWNS) from the first (shared
    # mounts stay peers), every drive unmounted and mounted again with the other token.
    # Kept by its first process, which ends as `sleep infinity`.
    unshare --mount --propagation unchanged -- /bin/bash -c "set -eu
        $(declare -f mount_drive)"'
        umount /mnt/c
        mount_drive /mnt/c "C:\\" "$1"
        : >/proc/self/fd/9/second-ready
        exec sleep infinity 9<&-' sandbox-keeper "$SECOND_MARKER" &
    keeper=$!
    echo "$keeper" >/proc/self/fd/9/keeper
    for _ in $(seq 200); do
        [[ -e /proc/self/fd/9/second-ready ]] && break
        kill -0 "$keeper" 2>/dev/null || break
        sleep 0.05
    done
    if [[ ! -e /proc/self/fd/9/second-ready ]]; then
        echo "sandbox-init.sh: the second mount namespace did not come up" >&2
        exit 1
    fi
else
    # WSL's worst case: the distro's mounts are shared.
    mount --make-rshared /
    if [[ -n $FAKEWSL ]]; then
        # WSL mounts /proc and /mnt/wsl shared in their own right, not only through `/`.
        mount --make-shared /proc
        mount --make-shared /mnt/wsl
    fi
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
