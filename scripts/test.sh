#!/usr/bin/env bash
# distrod's test command: formatting, lints, the static release build, every unit and
# integration test, and a type-check of the Windows build.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/test.sh

Run, stopping at the first failure:
  1. cargo fmt --all -- --check (and in fuzz/, its own workspace)
  2. cargo clippy --workspace --all-targets --locked -- -D warnings (and in fuzz/)
  3. cargo build --release --locked, and check the binary is statically linked
  4. scripts/build-rootfs.sh --tarball .cache/test-rootfs.tar.xz
     (exported as DISTROD_TEST_ROOTFS_TARBALL for the tests that need a real distro,
     and the cached tree as DISTROD_TEST_ROOTFS_TREE for the container runtime's tests)
  5. scripts/build-windows.sh: distrod.exe, with the static binary of step 3 embedded
     (exported as DISTROD_TEST_WINDOWS_EXE, and that binary as DISTROD_TEST_LINUX_BINARY)
  6. distrod.exe's unit tests under Wine (scripts/wine-prefix.sh makes the prefix)
  7. in fuzz/: cargo test (seeds and saved crash inputs), then scripts/fuzz.sh: every
     fuzz target for 30 s under libFuzzer
  8. cargo test --workspace --locked (distrod, and the fake WSL of tests/fakewsl); the
     Windows tests run the real distrod.exe under Wine against a fake WSL
Needs root (the test rootfs and the container tests) and Wine.
EOF
}

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) echo "test: error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
repo="$(pwd)"
# rustup's toolchain (with clippy and rustfmt) before Debian's /usr/bin/cargo, which the
# Windows cross-build installs; scripts/build-windows.sh picks its own.
rustup_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
if [[ -x "$rustup_bin/cargo" ]]; then
    export PATH="$rustup_bin:$PATH"
fi

current=""
step() {
    current="$*"
    printf '\n==> %s\n' "$current"
}
on_exit() {
    local rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "test: FAILED at step: $current (exit $rc)" >&2
    fi
}
trap on_exit EXIT

step "cargo fmt --all -- --check"
cargo fmt --all -- --check
(cd fuzz && cargo fmt -- --check)

step "cargo clippy --workspace --all-targets --locked -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
(cd fuzz && cargo clippy --all-targets --locked -- -D warnings)

step "cargo build --release --locked (static)"
cargo build --release --locked
bin="$repo/target/x86_64-unknown-linux-gnu/release/distrod"
[[ -x "$bin" ]] || { echo "test: error: no binary at $bin" >&2; exit 1; }
# "not a dynamic executable" (static) or "statically linked" (static PIE).
ldd_out="$(ldd "$bin" 2>&1 || true)"
if ! grep -Eq 'not a dynamic executable|statically linked' <<<"$ldd_out"; then
    echo "test: error: $bin is dynamically linked: $(tr '\n\t' '  ' <<<"$ldd_out")" >&2
    exit 1
fi
echo "$bin: $(du -h "$bin" | cut -f1), $(tr -d '\t' <<<"$ldd_out")"

step "scripts/build-rootfs.sh --tarball .cache/test-rootfs.tar.xz"
DISTROD_TEST_ROOTFS_TARBALL="$(bash scripts/build-rootfs.sh --tarball "$repo/.cache/test-rootfs.tar.xz")"
export DISTROD_TEST_ROOTFS_TARBALL
echo "DISTROD_TEST_ROOTFS_TARBALL=$DISTROD_TEST_ROOTFS_TARBALL"
# The cached tree itself: the container tests overlay it read-only, never write to it.
DISTROD_TEST_ROOTFS_TREE="$(bash scripts/build-rootfs.sh)"
export DISTROD_TEST_ROOTFS_TREE
echo "DISTROD_TEST_ROOTFS_TREE=$DISTROD_TEST_ROOTFS_TREE"

step "scripts/build-windows.sh (distrod.exe)"
DISTROD_TEST_WINDOWS_EXE="$(bash scripts/build-windows.sh --linux-binary "$bin")"
export DISTROD_TEST_WINDOWS_EXE DISTROD_TEST_LINUX_BINARY="$bin"
echo "DISTROD_TEST_WINDOWS_EXE=$DISTROD_TEST_WINDOWS_EXE"

step "distrod.exe's unit tests under Wine"
WINEPREFIX="$(bash scripts/wine-prefix.sh "$repo/target-windows/wine-unit")"
WINEPREFIX="$WINEPREFIX" bash scripts/build-windows.sh --test --linux-binary "$bin"

step "cargo test --locked in fuzz/ (seeds and saved crash inputs, without the fuzzer)"
(cd fuzz && cargo test --locked)

step "scripts/fuzz.sh (every fuzz target for 30 s)"
bash scripts/fuzz.sh --seconds 30

# Last, so that its summary lines end the output.
step "cargo test --workspace --locked"
cargo test --workspace --locked
current=""
