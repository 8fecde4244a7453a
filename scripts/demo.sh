#!/usr/bin/env bash
# distrod's main job, end to end, with nothing from the internet but package registries:
# a Debian rootfs built from this machine's apt sources is published on a simplestreams
# server on 127.0.0.1, and `distrod images` / `distrod create` fetch it from there.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/demo.sh

Build the static release binary and a Debian rootfs tarball, serve the tarball as a
simplestreams image on 127.0.0.1, then run
  distrod images --server http://127.0.0.1:PORT/
  distrod create debian --server http://127.0.0.1:PORT/ --dir .cache/demo/debian
and show what was made. Needs root (the rootfs holds root-owned and setuid files).
EOF
}

die() { echo "demo: error: $*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) die "unknown argument '$1' (see --help)" ;;
esac

cd "$(dirname "$0")/.."
repo="$(pwd)"
[[ $(id -u) -eq 0 ]] || die "must run as root"
for tool in cargo python3 ldd chroot; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done

work="$repo/.cache/demo"
bin="$repo/target/x86_64-unknown-linux-gnu/release/distrod"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
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

rm -f "$work/port"
python3 scripts/simplestreams.py serve --dir "$work/server" --port-file "$work/port" --quiet \
    >/dev/null &
server_pid=$!
for _ in $(seq 100); do
    [[ -s "$work/port" ]] && break
    kill -0 "$server_pid" 2>/dev/null || die "the image server exited"
    sleep 0.05
done
[[ -s "$work/port" ]] || die "the image server did not start"
server="http://127.0.0.1:$(cat "$work/port")/"
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
