#!/usr/bin/env bash
# Create (or refresh) a Wine prefix that runs distrod.exe and its unit tests.
#
# Wine 8 lacks bcryptprimitives.dll, whose ProcessPrng every program built with a current
# Rust standard library imports; such a program fails to start (status c0000135) until a
# stand-in sits in the prefix's system32. This builds it with MinGW-w64's gcc from
# tests/windows/bcryptprimitives.c and installs it there. Idempotent: a prefix that is
# already set up is only checked (well under a second).
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/wine-prefix.sh DIR

Create a 64-bit Wine prefix in DIR (if it is not one yet), put the bcryptprimitives.dll
stand-in into DIR/drive_c/windows/system32, and print DIR (absolute) on standard output.

Then run Windows programs with WINEPREFIX=DIR WINEDEBUG=-all wine PROGRAM.EXE, or the
Windows unit tests with
  WINEPREFIX=DIR CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine cargo test --target x86_64-pc-windows-gnu

Needs wine (apt-get install --no-install-recommends wine wine64) and
x86_64-w64-mingw32-gcc (gcc-mingw-w64-x86-64-win32).
EOF
}

die() { echo "wine-prefix: error: $*" >&2; exit 1; }

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") die "give the prefix directory (see --help)" ;;
esac
[[ $# -eq 1 ]] || die "one argument expected, the prefix directory (see --help)"

command -v wine >/dev/null ||
    die "wine is missing: apt-get install --no-install-recommends wine wine64"
command -v wineserver >/dev/null ||
    die "wineserver is missing: apt-get install --no-install-recommends wine wine64"
command -v x86_64-w64-mingw32-gcc >/dev/null ||
    die "x86_64-w64-mingw32-gcc is missing: apt-get install --no-install-recommends gcc-mingw-w64-x86-64-win32"

repo="$(cd "$(dirname "$0")/.." && pwd)"
source_file="$repo/tests/windows/bcryptprimitives.c"
[[ -f "$source_file" ]] || die "$source_file is missing"

mkdir -p "$1" || die "cannot create $1"
prefix="$(cd "$1" && pwd)"

# One setup at a time per prefix: parallel test processes may all ask for it.
exec 9>"$prefix/.distrod-setup.lock"
flock 9

export WINEPREFIX="$prefix" WINEDEBUG=-all
unset WINEARCH WINEDLLOVERRIDES WINELOADER WINESERVER

system32="$prefix/drive_c/windows/system32"
if [[ ! -f "$prefix/system.reg" || ! -d "$system32" ]]; then
    log="$prefix/.distrod-wineboot.log"
    # No Mono or Gecko installers (they would ask on a display that is not there). The
    # lock's descriptor is closed for Wine: its server and services outlive this script.
    if ! WINEDLLOVERRIDES="mscoree,mshtml=" wineboot --init >"$log" 2>&1 </dev/null 9>&-; then
        die "wineboot --init failed for $prefix (see $log)"
    fi
    # wineboot returns before the prefix is complete; the server finishes it.
    wineserver --wait >>"$log" 2>&1 </dev/null 9>&- || true
    [[ -f "$prefix/system.reg" && -d "$system32" ]] ||
        die "wineboot did not create $system32 (see $log)"
fi

# Built once per source version; copied into system32 when it differs from what is there.
build_dir="$prefix/.distrod-build"
mkdir -p "$build_dir"
hash="$(sha256sum "$source_file" | cut -c1-16)"
dll="$build_dir/bcryptprimitives-$hash.dll"
if [[ ! -f "$dll" ]]; then
    x86_64-w64-mingw32-gcc -shared -O2 -Wall -Wextra -o "$dll.tmp" "$source_file" -ladvapi32 ||
        die "x86_64-w64-mingw32-gcc failed to build $source_file"
    mv "$dll.tmp" "$dll"
fi
if ! cmp -s "$dll" "$system32/bcryptprimitives.dll"; then
    cp "$dll" "$system32/bcryptprimitives.dll.tmp"
    mv "$system32/bcryptprimitives.dll.tmp" "$system32/bcryptprimitives.dll"
fi

echo "$prefix"
