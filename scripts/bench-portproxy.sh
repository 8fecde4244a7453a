#!/usr/bin/env bash
# Benchmark distrod's port proxy relay (`distrod portproxy serve`) against talking to the
# same servers directly, on 127.0.0.1. The measuring is done by bench-portproxy.py.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/bench-portproxy.sh [--bytes N] [--runs N] [--pings N] [--connects N]
                                  [--binary FILE]

Start a sink and an echo server on 127.0.0.1 (python3, in a process of their own) and
`distrod portproxy serve` in front of both, then measure each of these directly and
through the relay, alternating which goes first, and print a table with the ratios
relay/direct:
  throughput  N bytes sent one way in 1 MiB writes, until the sink confirms the count
              (median over the runs)
  round trip  32-byte ping-pongs on one connection with TCP_NODELAY (median and 99th
              percentile over all of them)
  connect     a new connection until its first byte comes back (the relay connects to
              the server for each one)

Options:
  --bytes N     bytes per transfer, with an optional K, M or G suffix (powers of 1024;
                default 1G)
  --runs N      number of runs (default 5)
  --pings N     ping-pongs per run (default 2000)
  --connects N  connections per run for the connect time (default 200)
  --binary FILE the distrod to run (default: the release build,
                $CARGO_TARGET_DIR or target/, x86_64-unknown-linux-gnu/release/distrod;
                build it with `cargo build --release`)
  -h, --help    show this help
EOF
}

die() { echo "bench-portproxy: error: $*" >&2; exit 1; }

# A positive count, with an optional K/M/G suffix when $2 is "size".
parse_count() {
    local name="$1" value="$2" kind="${3:-}" pattern='^[1-9][0-9]*$' mult=1
    [[ "$kind" == size ]] && pattern='^[1-9][0-9]*[KMG]?$'
    [[ "$value" =~ $pattern ]] || {
        [[ "$kind" == size ]] && die "$name must be a positive number of bytes (suffix K, M or G allowed), not '$value'"
        die "$name must be a positive number, not '$value'"
    }
    case "$value" in
        *K) mult=1024; value="${value%K}" ;;
        *M) mult=$((1024 * 1024)); value="${value%M}" ;;
        *G) mult=$((1024 * 1024 * 1024)); value="${value%G}" ;;
    esac
    [[ ${#value} -le 12 ]] || die "$name is too large: '$2'"
    echo $((value * mult))
}

bytes=1G runs=5 pings=2000 connects=200 binary=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bytes|--runs|--pings|--connects|--binary)
            [[ $# -ge 2 ]] || die "$1 needs a value (see --help)"
            case "$1" in
                --bytes) bytes="$2" ;;
                --runs) runs="$2" ;;
                --pings) pings="$2" ;;
                --connects) connects="$2" ;;
                --binary) binary="$2" ;;
            esac
            shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
bytes="$(parse_count --bytes "$bytes" size)" || exit 1
runs="$(parse_count --runs "$runs")" || exit 1
pings="$(parse_count --pings "$pings")" || exit 1
connects="$(parse_count --connects "$connects")" || exit 1

cd "$(dirname "$0")/.."
repo="$(pwd)"
command -v python3 >/dev/null || die "python3 not found"
if [[ -z "$binary" ]]; then
    binary="${CARGO_TARGET_DIR:-$repo/target}/x86_64-unknown-linux-gnu/release/distrod"
    [[ -x "$binary" ]] || die "no release binary at $binary (run cargo build --release, or give --binary)"
fi
[[ -x "$binary" ]] || die "$binary is not an executable file"
help="$("$binary" portproxy serve --help 2>&1)" || help=""
[[ "$help" == *--to* ]] || die "$binary has no \`portproxy serve\` command"

exec python3 "$repo/scripts/bench-portproxy.py" measure --binary "$binary" --bytes "$bytes" \
    --runs "$runs" --pings "$pings" --connects "$connects"
