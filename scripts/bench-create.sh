#!/usr/bin/env bash
# Benchmark `distrod create` against the shell pipeline it replaces,
# `curl -s URL | xz -dc | tar -x`, on a ~40 MB multi-block rootfs.tar.xz served from
# 127.0.0.1. Both run as root, alternating, each into a fresh directory.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/bench-create.sh [--runs N] [--rebuild-archive] [--archive-only]

Time `distrod create --image URL --dir X --no-cache --quiet` against
`curl -s URL | xz -dc | tar -x -C Y` over N alternating runs (default 5) and report the
median wall times, their ratio and the peak RSS of each.

The archive (~40 MB, xz -T0 so it has several blocks) is the test rootfs plus files from
this machine's /usr, cached in .cache/bench/; --rebuild-archive makes it again, and
--archive-only stops once the archive is made (no binary needed).
Needs root, curl, xz, GNU time (/usr/bin/time) and a built release binary
(cargo build --release).
EOF
}

prog=bench-create
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
log() { echo "bench-create: $*" >&2; }

runs=5
rebuild=0
archive_only=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) [[ $# -ge 2 ]] || die "--runs needs a number"; runs="$2"; shift 2 ;;
        --rebuild-archive) rebuild=1; shift ;;
        --archive-only) archive_only=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
positive_runs "$runs"

to_repo
require_root "both sides unpack root-owned files"
require_tools curl xz tar python3
gnu_time=/usr/bin/time
[[ -x "$gnu_time" ]] || die "GNU time not found at $gnu_time (apt-get install time)"
bin="$repo/target/x86_64-unknown-linux-gnu/release/distrod"
[[ $archive_only -eq 1 || -x "$bin" ]] || die "no release binary at $bin (run cargo build --release)"

work="$repo/.cache/bench"
archive="$work/rootfs.tar.xz"
mkdir -p "$work"

# ---------------------------------------------------------------------------------------
# The archive: the test rootfs plus host files up to ~40 MB compressed, so that it has the
# mix of a real image (libraries, binaries, text) and several xz blocks.
target_mib=40
make_archive() {
    local tree stage list host_bytes size rootfs_size dir
    tree="$(bash scripts/build-rootfs.sh)"
    rootfs_size="$(stat -c %s "$(bash scripts/build-rootfs.sh --tarball "$work/rootfs-only.tar.xz")")"
    rm -f "$work/rootfs-only.tar.xz"
    stage="$work/stage"
    list="$work/host-files"
    trap 'rm -rf "$stage" "$list" "$archive.tmp"' EXIT
    # A first guess of how many uncompressed bytes of host files make ~40 MB; corrected
    # once from the measured ratio if it lands more than 15% off.
    host_bytes=$((110 * 1024 * 1024))
    for attempt in 1 2; do
        rm -rf "$stage" "$archive.tmp"
        cp -a "$tree" "$stage"
        # From each of three directories (binaries, libraries, data: the mix of a real
        # image), regular files under 8 MiB in path order until a third of the budget.
        for dir in /usr/bin /usr/lib/x86_64-linux-gnu /usr/share; do
            find "$dir" -xdev -type f -size -8M -printf '%s %p\n' 2>/dev/null | sort -k2 |
                awk -v budget="$((host_bytes / 3))" '{ sum += $1 } sum <= budget { print substr($0, index($0, " ") + 1) }'
        done >"$list"
        tar -c --files-from="$list" 2>/dev/null | tar -x -C "$stage" ||
            log "warning: some host files could not be copied"
        log "compressing $(du -sh "$stage" | cut -f1) (rootfs + $(wc -l <"$list") host files), attempt $attempt"
        tar --xattrs --numeric-owner --sort=name -C "$stage" -c . | xz -T0 >"$archive.tmp"
        size=$(stat -c %s "$archive.tmp")
        log "archive is $((size / 1024 / 1024)) MiB"
        local target=$((target_mib * 1024 * 1024))
        if ((size > target * 85 / 100 && size < target * 115 / 100)); then
            break
        fi
        host_bytes=$((host_bytes * (target - rootfs_size) / (size - rootfs_size)))
    done
    mv "$archive.tmp" "$archive"
    rm -rf "$stage" "$list"
    trap - EXIT
}

if [[ $rebuild -eq 1 || ! -f "$archive" ]]; then
    make_archive
fi
blocks="$(xz -lv "$archive" | awk '/^ +Blocks:/ { print $2; exit }')"
[[ "$blocks" =~ ^[0-9]+$ ]] || die "could not read the block count of $archive"
((blocks > 1)) || die "$archive has $blocks xz block; needs several (xz -T0)"
archive_size="$(stat -c %s "$archive")"
unpacked_size="$(xz -lv "$archive" | awk '/Uncompressed size:/ { gsub(",", "", $0); for (i = 1; i <= NF; i++) if ($i == "MiB") { print $(i-1); exit } }')"
echo "archive: $archive, $(awk -v s="$archive_size" 'BEGIN { printf "%.1f", s / 1048576 }') MiB, $blocks xz blocks, ${unpacked_size:-?} MiB unpacked"
[[ $archive_only -eq 1 ]] && exit 0

# ---------------------------------------------------------------------------------------
trash="$work/trash"
cleanup() {
    stop_images
    rm -rf "$work/out-distrod" "$work/out-baseline" "$trash"
}
trap cleanup EXIT

rm -rf "$work/server" "$trash"
python3 scripts/simplestreams.py make --out "$work/server" \
    --product debian:bench:amd64:default "$archive" >/dev/null
serve_images "$work/server" "$work/port"
url="${server}images/debian/bench/amd64/default/20260101_00:00/rootfs.tar.xz"
curl -sf -o /dev/null "$url" || die "cannot fetch $url"
echo "url: $url"

out_d="$work/out-distrod"
out_b="$work/out-baseline"
rss="$work/rss"
mkdir -p "$rss"

# run_distrod sets t_d (wall seconds) and r_d (peak RSS, KiB); run_baseline sets t_b, and
# r_b and s_b: the largest peak RSS of the pipeline's stages, and which stage that was.
# Outputs are moved aside between runs and deleted only at the end: on a filesystem
# mounted with `discard`, deleting 160 MB slowed the next run 2-5x for several seconds.
# Each run also starts with no dirty pages left from the previous one (sync), so neither
# side pays for the other's writeback.
set_aside() {
    if [[ -e "$1" ]]; then
        mkdir -p "$trash"
        mv "$1" "$(mktemp -u "$trash/out.XXXXXX")"
    fi
}

run_distrod() {
    set_aside "$out_d"
    sync
    local start=$EPOCHREALTIME
    "$gnu_time" -f %M -o "$rss/distrod" "$bin" create --image "$url" --dir "$out_d" \
        --no-cache --quiet >/dev/null || die "distrod create failed (see above)"
    t_d="$(awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.3f", e - s }')"
    r_d="$(tail -1 "$rss/distrod")"
}

run_baseline() {
    set_aside "$out_b"
    mkdir -p "$out_b"
    sync
    local start=$EPOCHREALTIME
    "$gnu_time" -f %M -o "$rss/curl" curl -sf "$url" |
        "$gnu_time" -f %M -o "$rss/xz" xz -dc |
        "$gnu_time" -f %M -o "$rss/tar" tar -x -C "$out_b" || die "the baseline pipeline failed"
    t_b="$(awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.3f", e - s }')"
    local stage
    s_b=curl
    for stage in xz tar; do
        (($(tail -1 "$rss/$stage") > $(tail -1 "$rss/$s_b"))) && s_b=$stage
    done
    r_b="$(tail -1 "$rss/$s_b")"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

times_d=()
times_b=()
ratios=()
peak_d=0
peak_b=0
peak_b_stage=""
printf '%-4s %12s %12s %7s\n' run distrod baseline ratio
for ((i = 1; i <= runs; i++)); do
    # Alternate which side goes first, so neither always gets the warmer machine.
    if ((i % 2)); then
        run_distrod
        run_baseline
    else
        run_baseline
        run_distrod
    fi
    if ((i == 1)); then
        # Same input, same result: compare the trees once (content, modes, owners, links).
        if ! diff -r --no-dereference -q "$out_d" "$out_b" >"$work/diff" 2>&1; then
            log "warning: the two outputs differ (first lines of $work/diff):"
            head -5 "$work/diff" >&2
        elif [[ "$(cd "$out_d" && find . -printf '%M %U %G %p\n' | sort | sha256sum)" != \
                "$(cd "$out_b" && find . -printf '%M %U %G %p\n' | sort | sha256sum)" ]]; then
            log "warning: the two outputs differ in modes or owners"
        fi
    fi
    set_aside "$out_d"
    set_aside "$out_b"
    times_d+=("$t_d")
    times_b+=("$t_b")
    ratios+=("$(awk -v a="$t_d" -v b="$t_b" 'BEGIN { printf "%.3f", a / b }')")
    ((r_d > peak_d)) && peak_d=$r_d
    ((r_b > peak_b)) && { peak_b=$r_b; peak_b_stage=$s_b; }
    printf '%-4s %11.3fs %11.3fs %7.2f   (RSS distrod %s MiB, baseline %s %s MiB)\n' "$i" "$t_d" "$t_b" \
        "${ratios[-1]}" "$(mib "$r_d")" "$s_b" "$(mib "$r_b")"
done

med_d="$(printf '%s\n' "${times_d[@]}" | median)"
med_b="$(printf '%s\n' "${times_b[@]}" | median)"
# The ratio is the median of the per-run ratios: the two sides of a run share the machine's
# load at that moment, so pairing cancels most of the noise of a busy machine.
ratio="$(printf '%s\n' "${ratios[@]}" | median | awk '{ printf "%.2f", $1 }')"
echo "ratio of the medians: $(awk -v a="$med_d" -v b="$med_b" 'BEGIN { printf "%.2f", a / b }'); median of per-run ratios: $ratio"
printf 'create: median %.2fs vs baseline %.2fs, ratio %s (target <= 1.0); peak RSS distrod %s MiB (target <= 64 MiB), baseline %s %s MiB\n' \
    "$med_d" "$med_b" "$ratio" "$(mib "$peak_d")" "$peak_b_stage" "$(mib "$peak_b")"
