#!/usr/bin/env bash
# distrod's main job, end to end, with nothing from the internet but package registries:
# a Debian rootfs built from this machine's apt sources is published on a simplestreams
# server on 127.0.0.1, `distrod images` / `distrod create` fetch it from there, and the
# distro made that way then plays a WSL distro: `distrod enable`, and a WSL-style session
# lands in its systemd.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/demo.sh

Build the static release binary and a Debian rootfs tarball, serve the tarball as a
simplestreams image on 127.0.0.1, then run
  distrod images --server http://127.0.0.1:PORT/
  distrod create debian --server http://127.0.0.1:PORT/ --dir .cache/demo/debian
and show what was made. Then, in a sandbox standing in for a WSL distro (its own network,
cgroup, mount, pid, uts and ipc namespaces, private /dev, read-only /proc/sys: the test
suite's tests/integration/support/sandbox-init.sh) whose root is an overlay of that
directory, with distrod staged as a downloaded binary:
  distrod enable                 (installs to /opt/distrod, hooks the login shells)
  a session as `wsl -d` opens it (tests/fakewsl's relay): systemd is PID 1, a logind
  session, Windows interop through the session's socket
  distrod disable                (the shells as they were)
Needs root (the rootfs holds root-owned and setuid files; the sandbox needs namespaces).
EOF
}

prog=demo
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
step() { printf '\n== %s\n' "$*"; }

help_only "$@"

to_repo
require_root
require_tools cargo python3 ldd chroot unshare nsenter setpriv mount ip hostname

work="$repo/.cache/demo"
bin="$repo/target/x86_64-unknown-linux-gnu/release/distrod"
sb_unshare="" sb_pid1="" sb_cg="" sb_dir=""
cleanup() {
    stop_images
    sb_stop
}
# The sandbox's PID 1 (by pid: the kernel then ends its whole pid namespace), then its
# cgroup tree (depth-first) and its directory.
sb_stop() {
    if [[ -n "$sb_pid1" ]]; then
        kill -KILL "$sb_pid1" 2>/dev/null || true
    elif [[ -n "$sb_unshare" ]]; then
        kill -KILL "$sb_unshare" 2>/dev/null || true
    fi
    [[ -n "$sb_unshare" ]] && wait "$sb_unshare" 2>/dev/null || true
    if [[ -n "$sb_cg" && -d "$sb_cg" ]]; then
        for _ in $(seq 400); do
            grep -qx 'populated 1' "$sb_cg/cgroup.events" 2>/dev/null || break
            sleep 0.05
        done
        find "$sb_cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    fi
    [[ -n "$sb_dir" && -d "$sb_dir" ]] && rm -rf "$sb_dir"
    sb_unshare="" sb_pid1="" sb_cg="" sb_dir=""
}
trap cleanup EXIT

step "cargo build --release --locked"
cargo build --release --locked || die "cargo build failed"
[[ -x "$bin" ]] || die "no binary at $bin"
# A static binary runs in any distro, whatever its libc. ldd says "not a dynamic
# executable" for a static binary and "statically linked" for a static PIE.
ldd_out="$(ldd "$bin" 2>&1 || true)"
grep -Eq 'not a dynamic executable|statically linked' <<<"$ldd_out" ||
    die "$bin is dynamically linked: $(tr '\n\t' '  ' <<<"$ldd_out")"
echo "$bin: $(du -h "$bin" | cut -f1), ldd: $(echo "$ldd_out" | tr -d '\t')"

step "scripts/build-rootfs.sh --tarball .cache/demo/rootfs.tar.xz"
mkdir -p "$work"
tarball="$(bash scripts/build-rootfs.sh --tarball "$work/rootfs.tar.xz")"
echo "$tarball: $(du -h "$tarball" | cut -f1)"

step "simplestreams tree"
rm -rf "$work/server"
python3 scripts/simplestreams.py make --out "$work/server" \
    --product debian:bookworm:amd64:default --release-title 12 \
    --aliases debian/bookworm/default,debian/12/default,debian/bookworm,debian/12 \
    --build "$(date -u +%Y%m%d_%H:%M)" "$tarball"

serve_images "$work/server" "$work/port"
echo "serving $work/server at $server (pid $server_pid)"

step "distrod images --server $server"
"$bin" images --server "$server" || die "distrod images failed"

dir="$work/debian"
# Keep distrod's download cache inside the repo rather than in /var/cache/distrod.
export DISTROD_CACHE_DIR="$work/downloads"
step "distrod create debian --server $server --dir $dir"
rm -rf "$dir"
start=$EPOCHREALTIME
"$bin" create debian --server "$server" --dir "$dir" || die "distrod create failed"
end=$EPOCHREALTIME

step "what was made"
echo "$dir: $(du -sh "$dir" | cut -f1), $(find "$dir" | wc -l) entries, created in $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }') s"
[[ -e "$dir/usr/lib/systemd/systemd" ]] || die "$dir/usr/lib/systemd/systemd is missing"
echo "usr/lib/systemd/systemd: present"
echo "chroot: $(chroot "$dir" systemctl --version | head -1)"

# ---------------------------------------------------------------------------------------
# The WSL side: the distro just made, as a WSL distro with distrod downloaded into it.
step "cargo build --release --locked -p fakewsl (a stand-in for WSL's session relay)"
cargo build --release --locked -p fakewsl || die "cargo build -p fakewsl failed"
fakewsl="$repo/target/x86_64-unknown-linux-gnu/release/fakewsl"
cg_parent="$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)"
[[ -n "$cg_parent" ]] || die "no cgroup2 mount"
sb_name="distrod-demo-$$"
sb_cg="$cg_parent/$sb_name"
mkdir "$sb_cg"
sb_dir="$(mktemp -d "/tmp/$sb_name.XXXXXX")"
mkdir "$sb_dir/upper" "$sb_dir/work" "$sb_dir/merged"
: >"$sb_dir/binds"
cp tests/integration/support/sandbox-init.sh "$sb_dir/init.sh"
# shellcheck disable=SC2016
sh -c 'echo $$ > "$1/cgroup.procs" || exit 125
       shift
       exec setpriv --bounding-set -sys_time,-sys_module \
            unshare --net --cgroup --mount --pid --uts --ipc --fork \
            --kill-child --propagation private -- bash "$@"' \
    x "$sb_cg" "$sb_dir/init.sh" "$sb_dir" "$dir" "$bin" "$sb_name" \
    --wsl-like "$fakewsl" --distrod-at /root/distrod </dev/null >"$sb_dir/init.log" 2>&1 &
sb_unshare=$!
for _ in $(seq 400); do
    [[ -e "$sb_dir/ready" ]] && break
    kill -0 "$sb_unshare" 2>/dev/null || die "the sandbox did not start: $(cat "$sb_dir/init.log")"
    sleep 0.05
done
[[ -e "$sb_dir/ready" ]] || die "the sandbox did not start in 20 s"
sb_pid1="$(cut -d' ' -f1 "/proc/$sb_unshare/task/$sb_unshare/children")"
# Runs a command in the sandbox as root, as a WSL session's processes run.
sb_run() {
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 sh -c 'echo $$ > "$1/cgroup.procs" || exit 125
               pid=$2; shift 2
               exec setpriv --bounding-set -sys_time,-sys_module nsenter -t "$pid" -a -- "$@"' \
        x "$sb_cg" "$sb_pid1" "$@" </dev/null
}
echo "sandbox $sb_name: a WSL stand-in over $dir (changes go to $sb_dir/upper)"

step "[in the distro] sudo ./distrod enable"
sb_run /root/distrod enable || die "distrod enable failed"
echo "distrod's shell: $(grep '^distrod:' "/proc/$sb_pid1/root/etc/passwd" | cut -d: -f7)"

step "[wsl -d] a session as the distro's user"
sb_run /opt/fakewsl/fakewsl relay --user distrod -- \
    'echo "PID 1: $(cat /proc/1/comm) ($(systemctl is-system-running --wait))"
     echo "I am $(id -un) in $PWD, shell $0, XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR"
     echo "systemctl --user: $(systemctl --user is-system-running --wait)"
     echo "logind: $(loginctl list-sessions --no-legend | wc -l) session(s)"
     echo "interop: $(/opt/fakewsl/fakewsl client notepad.exe | head -1) via $WSL_INTEROP"
     echo "and through sudo: $(sudo /opt/fakewsl/fakewsl client cmd.exe | head -1)"' ||
    die "the session failed"

step "[in the distro] distrod status; distrod disable"
sb_run /opt/distrod/bin/distrod status || true
sb_run /opt/distrod/bin/distrod disable || die "distrod disable failed"
echo "distrod's shell: $(grep '^distrod:' "/proc/$sb_pid1/root/etc/passwd" | cut -d: -f7)"
sb_stop
echo
echo "demo: done"
