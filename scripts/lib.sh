# shellcheck shell=bash
# What distrod's scripts share, sourced by each of them and never run on its own: their
# error line, the checks they make before they start, and the local image server that the
# demo and the benchmarks serve a test image from. The sourcing script sets `prog`, its
# name in messages, before it sources this file.

die() { echo "$prog: error: $*" >&2; exit 1; }

# help_only "$@": the arguments of a script whose only option is --help (shown by the
# script's `usage`); anything else is a usage error (exit 2).
help_only() {
    case "${1:-}" in
        -h|--help) usage; exit 0 ;;
        "") ;;
        *) echo "$prog: error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
}

# positive_runs VALUE: the value of a --runs option must be a positive number.
positive_runs() {
    [[ "$1" =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive number, not '$1'"
}

# require_root [WHY]
require_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root${1:+ ($1)}"
}

# require_tools TOOL...: each must be on PATH.
require_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "'$tool' not found"
    done
}

# serve_images DIR PORT_FILE: serves the catalog tree DIR (made by scripts/simplestreams.py
# make) on 127.0.0.1 in the background, the port it chose written to PORT_FILE; sets
# server_pid (the caller stops it) and server, its base URL ending in '/'.
serve_images() {
    local dir="$1" port_file="$2"
    rm -f "$port_file"
    python3 "$(dirname "${BASH_SOURCE[0]}")/simplestreams.py" serve --dir "$dir" \
        --port-file "$port_file" --quiet >/dev/null &
    server_pid=$!
    for _ in $(seq 100); do
        [[ -s "$port_file" ]] && break
        kill -0 "$server_pid" 2>/dev/null || die "the image server exited"
        sleep 0.05
    done
    [[ -s "$port_file" ]] || die "the image server did not start"
    server="http://127.0.0.1:$(cat "$port_file")/"
}

# stop_images: stops the server serve_images started, if it runs (for the caller's trap).
stop_images() {
    if [[ -n "${server_pid:-}" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}

# to_repo: into the repository's top directory, which `repo` then names.
to_repo() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    repo="$(pwd)"
}
