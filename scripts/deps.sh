#!/usr/bin/env bash
# What scripts/test.sh needs on a Debian 12 (or later) machine beyond a base system and
# rustup's Rust toolchain: installed with apt-get when run as root, else named exactly.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/deps.sh [--check]

Makes sure the test suite's prerequisites are there:
  - Debian packages (installed with apt-get as root; without root, or with --check, the
    missing ones are named and the script fails):
      xz-utils                  the test rootfs tarball (scripts/build-rootfs.sh)
      debian-archive-keyring    checks the trixie and sid packages scripts/build-rootfs.sh
                                downloads for the systemd matrix (its own apt lists; the
                                machine's apt set-up is untouched)
      busybox-static            scripts/install.sh is tested under busybox sh, as on Alpine
      iproute2                  the port proxy's test gives the sandbox an eth0
      g++                       libFuzzer (fuzz/, scripts/fuzz.sh) is built from C++
      rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64-win32
                                the Windows cross-build (scripts/build-windows.sh) and the
                                fake WSL DLL and programs of the Windows tests
      wine wine64               distrod.exe and its unit tests run under Wine
  - rustup's cargo (with clippy and rustfmt), at least the rust-version of Cargo.toml.
EOF
}

check_only=0
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    --check) check_only=1 ;;
    "") ;;
    *) echo "deps: error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

die() { echo "deps: error: $*" >&2; exit 1; }
log() { echo "deps: $*" >&2; }

cd "$(dirname "$0")/.."

packages=(xz-utils debian-archive-keyring busybox-static iproute2 g++
    rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64-win32 wine wine64)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ $check_only -eq 1 || $(id -u) -ne 0 ]]; then
        die "missing Debian packages: ${missing[*]} (as root: apt-get install --no-install-recommends ${missing[*]})"
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null >&2 || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >&2 ||
        die "apt-get install ${missing[*]} failed"
fi

# rustup's toolchain, not Debian's /usr/bin/cargo (which the packages above bring for the
# Windows cross-build only).
rustup_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
[[ -x "$rustup_bin/cargo" ]] ||
    die "no rustup toolchain in $rustup_bin (install one: https://rustup.rs, then rustup component add clippy rustfmt)"
need="$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)"
have="$("$rustup_bin/rustc" --version | awk '{print $2}')"
if [[ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]]; then
    die "rustup's rustc is $have; distrod needs $need or later (Cargo.toml's rust-version): rustup update stable"
fi
"$rustup_bin/cargo" clippy --version >/dev/null 2>&1 ||
    die "rustup's clippy is missing: rustup component add clippy"
"$rustup_bin/cargo" fmt --version >/dev/null 2>&1 ||
    die "rustup's rustfmt is missing: rustup component add rustfmt"
log "all there (rustc $have, Cargo.toml's rust-version $need)"
