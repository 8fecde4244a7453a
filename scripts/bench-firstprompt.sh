#!/usr/bin/env bash
# Benchmark the first prompt: how long the first `wsl -d` session takes to give a shell
# inside systemd, with and without a slow job in the boot, on Debian 12, 13 and unstable
# (systemd 252, 257, newest), each as the small test rootfs and as a loaded distro.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/bench-firstprompt.sh [--runs N] [--suites LIST] [--no-loaded]

Build (or reuse) the rootfs trees with scripts/build-rootfs.sh and run benches/
firstprompt.rs on each: in the test suite's WSL stand-in (a sandbox with its own
namespaces, sessions opened by the fakewsl relay the way WSL's init opens them, distrod
enabled), over N runs (default 3), each in a fresh sandbox, alternating which goes first:
  boot    `distrod launch` until systemd reports READY=1 (the whole boot)
  plain   the first session's `echo prompt` through the user's login shell: the baseline
  slow    the same with a 45 s oneshot job in multi-user.target
and print the medians, slow-plain and slow/plain (target: slow-plain <= 0.5 s), and the
failed units after the boot.

Options:
  --runs N       runs per tree (default 3)
  --suites LIST  comma-separated suites (default bookworm,trixie,sid)
  --no-loaded    only the small trees, not the loaded ones (build-rootfs.sh --loaded)
  -h, --help     show this help

Needs root, the sandbox's tools (unshare, nsenter, setpriv, mount, ip, hostname) and what
build-rootfs.sh needs; trixie and sid are downloaded from deb.debian.org.
EOF
}

prog=bench-firstprompt
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

runs=3
suites="bookworm,trixie,sid"
loaded=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) [[ $# -ge 2 ]] || die "--runs needs a number"; runs="$2"; shift 2 ;;
        --suites) [[ $# -ge 2 ]] || die "--suites needs a list"; suites="$2"; shift 2 ;;
        --no-loaded) loaded=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
positive_runs "$runs"
require_root "namespaces, mounts, cgroups"

cd "$(dirname "$0")/.."
trees=""
IFS=',' read -ra list <<<"$suites"
for suite in "${list[@]}"; do
    case "$suite" in bookworm|trixie|sid) ;; *) die "unknown suite '$suite'" ;; esac
    tree="$(bash scripts/build-rootfs.sh --suite "$suite")"
    trees+="$suite=$tree,"
    if [[ $loaded == 1 ]]; then
        tree="$(bash scripts/build-rootfs.sh --suite "$suite" --loaded)"
        trees+="$suite-loaded=$tree,"
    fi
done

DISTROD_BENCH_TREES="$trees" DISTROD_BENCH_RUNS="$runs" \
    cargo bench --locked --bench firstprompt
