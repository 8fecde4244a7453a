#!/usr/bin/env bash
# Cross-build distrod for Windows (x86_64-pc-windows-gnu) from Linux.
#
# When rustup has the Windows target installed this is an ordinary `cargo build --target`.
# Otherwise Debian's own Rust (rustc-web, cargo-web) builds the standard library from its
# source package (rust-web-src) with -Zbuild-std; RUSTC_BOOTSTRAP=1 allows the unstable
# flag on a stable compiler. rustup's compiler cannot be paired with Debian's std source:
# their versions differ. Both paths link with MinGW-w64's gcc (see .cargo/config.toml).
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/build-windows.sh [--release] [--check] [--test] [--linux-binary FILE]

Cross-build distrod for x86_64-pc-windows-gnu into target-windows/ and print the .exe path.
distrod.exe embeds the static Linux distrod it installs into distros: FILE, else
$DISTROD_LINUX_BINARY, else this script first runs `cargo build --release --locked` and
embeds target/x86_64-unknown-linux-gnu/release/distrod.

Options:
  --release            optimised build (default: debug)
  --check              type-check only (cargo check), no .exe
  --test               build and run the unit tests under Wine (needs a prefix made by
                       scripts/wine-prefix.sh in $WINEPREFIX)
  --linux-binary FILE  the static Linux distrod to embed
  -h, --help           show this help

Uses rustup's x86_64-pc-windows-gnu target when installed; otherwise installs (if missing)
Debian's rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64-win32 with apt-get and builds
std from source (-Zbuild-std). The first build-std run fetches std's dependencies from
crates.io.
EOF
}

die() { echo "build-windows: error: $*" >&2; exit 1; }
log() { echo "build-windows: $*" >&2; }

target=x86_64-pc-windows-gnu
profile=debug
command=build
while [[ $# -gt 0 ]]; do
    case "$1" in
        --release) profile=release; shift ;;
        --check) command=check; shift ;;
        --test) command=test; shift ;;
        --linux-binary)
            [[ $# -ge 2 ]] || die "--linux-binary needs a FILE"
            DISTROD_LINUX_BINARY="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

cd "$(dirname "$0")/.."
repo="$(pwd)"
if [[ -z "${DISTROD_LINUX_BINARY:-}" ]]; then
    log "building the static Linux distrod to embed (cargo build --release --locked)"
    # With the caller's toolchain (rustup's), before PATH is changed below.
    (unset CARGO_TARGET_DIR CARGO_BUILD_TARGET; cargo build --release --locked >&2) ||
        die "cargo build --release failed"
    DISTROD_LINUX_BINARY="$repo/target/x86_64-unknown-linux-gnu/release/distrod"
fi
[[ -f "$DISTROD_LINUX_BINARY" ]] || die "no Linux binary at $DISTROD_LINUX_BINARY"
DISTROD_LINUX_BINARY="$(cd "$(dirname "$DISTROD_LINUX_BINARY")" && pwd)/$(basename "$DISTROD_LINUX_BINARY")"
export DISTROD_LINUX_BINARY
# A target dir of its own, so this never waits for (or invalidates) the host build's lock.
target_dir="$(pwd)/target-windows"

cargo_args=("$command" --locked --target "$target" --target-dir "$target_dir")
# distrod.exe copies itself into every distro it installs (the port proxy runs it there):
# without debug info a debug build is a few MB instead of some 200, and builds faster.
export CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_DEV_STRIP=symbols
if [[ "$command" == test ]]; then
    # The unit tests (the library's and the binary's); each test executable runs under Wine.
    command -v wine >/dev/null || die "--test needs wine (apt-get install wine wine64)"
    cargo_args+=(--lib --bins)
    export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine WINEDEBUG=-all
fi
[[ "$profile" == release ]] && cargo_args+=(--release)

# Variables that would pin the toolchain to rustup's, or retarget the build, when this
# script is run from within cargo or a rustup-managed shell.
unset RUSTC RUSTDOC RUSTC_WRAPPER RUSTUP_TOOLCHAIN CARGO_BUILD_TARGET CARGO_TARGET_DIR

need_apt=()
command -v x86_64-w64-mingw32-gcc >/dev/null || need_apt+=(gcc-mingw-w64-x86-64-win32)

if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    mode=rustup
else
    mode=build-std
    for pkg in rustc-web cargo-web rust-web-src; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            need_apt+=("$pkg")
    done
fi

if [[ ${#need_apt[@]} -gt 0 ]]; then
    [[ $(id -u) -eq 0 ]] || die "missing ${need_apt[*]}; install them with apt-get (needs root)"
    log "installing ${need_apt[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${need_apt[@]}" >&2 || die "apt-get install ${need_apt[*]} failed"
fi

# Debian's rustc must be at least Cargo.toml's rust-version (the locked dependencies need
# it): an older rustc-web (1.85 was once found installed) is upgraded, or the way to do it
# is named.
rust_version="$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)"
older_than() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" != "$2" ]]; }
if [[ "$mode" == build-std ]]; then
    have="$(/usr/bin/rustc --version | awk '{print $2}')"
    if older_than "$have" "$rust_version"; then
        [[ $(id -u) -eq 0 ]] ||
            die "Debian's rustc is $have, distrod needs $rust_version (Cargo.toml's rust-version): as root, apt-get update && apt-get install --only-upgrade rustc-web cargo-web rust-web-src"
        log "Debian's rustc is $have, older than $rust_version: upgrading rustc-web"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 </dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                --only-upgrade rustc-web cargo-web rust-web-src >&2 </dev/null ||
            die "apt-get could not upgrade rustc-web"
        have="$(/usr/bin/rustc --version | awk '{print $2}')"
        older_than "$have" "$rust_version" &&
            die "Debian's rustc-web is still $have after the upgrade, older than $rust_version: install rustup's $target target instead (rustup target add $target)"
    fi
fi

start=$SECONDS
if [[ "$mode" == rustup ]]; then
    log "cargo ${cargo_args[*]} (rustup toolchain)"
    cargo "${cargo_args[@]}" || die "cargo $command for $target failed"
else
    # Debian's cargo and rustc in /usr/bin must come before rustup's shims.
    export PATH="/usr/bin:$PATH"
    [[ -x /usr/bin/cargo && -x /usr/bin/rustc ]] || die "/usr/bin/cargo or /usr/bin/rustc missing"
    log "cargo ${cargo_args[*]} -Zbuild-std ($(/usr/bin/rustc --version))"
    # `test` (the test harness's crate) always, so that building the .exe and its unit
    # tests share one standard library and one set of dependencies.
    RUSTC_BOOTSTRAP=1 /usr/bin/cargo "${cargo_args[@]}" -Zbuild-std=std,panic_abort,test ||
        die "cargo $command for $target (build-std) failed"
fi
log "$command finished in $((SECONDS - start)) s"

if [[ "$command" == build ]]; then
    exe="$target_dir/$target/$profile/distrod.exe"
    [[ -f "$exe" ]] || die "expected $exe after the build"
    echo "$exe"
fi
