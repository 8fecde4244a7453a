#!/usr/bin/env bash
# distrod's test command: formatting, lints, the static release build, every unit and
# integration test, and a type-check of the Windows build.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/test.sh

Run, stopping at the first failure:
  0. scripts/deps.sh: the Debian packages the tests need (installed as root, else named)
     and rustup's toolchain at Cargo.toml's rust-version
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
  8. the systemd matrix: for Debian trixie (systemd 257) and sid (the newest), their small
     and loaded trees (scripts/build-rootfs.sh --suite SUITE [--loaded]) and
     cargo test --locked --test integration -- runtime:: wsl:: run:: idle:: suites::
  9. cargo test --workspace --locked (distrod, and the fake WSL of tests/fakewsl) on
     bookworm, the loaded bookworm tree as DISTROD_TEST_LOADED_TREE; the Windows tests run
     the real distrod.exe under Wine against a fake WSL
Needs root (the test rootfs and the container tests), Wine, and deb.debian.org (step 8).
EOF
}

prog=test
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
help_only "$@"

to_repo
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

step "scripts/deps.sh (what the tests need)"
bash scripts/deps.sh

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

# The systemd matrix. Each suite's small tree (DISTROD_TEST_ROOTFS_TREE, and its tarball as
# DISTROD_TEST_ROOTFS_TARBALL) and loaded tree (DISTROD_TEST_LOADED_TREE: the services of a
# real installation) run the tests that boot the distro's own systemd and meet what changes
# between systemd versions: runtime:: (launch, exec, stop, status, both rootfs modes, no
# failed unit), wsl:: (sessions, interop, the masks, WSLg, slow boots, the packed .wsl file),
# run:: (one /run inside and outside: what systemd leaves there, what `wsl -e` reaches of
# it; /tmp with and without tmp.mount), idle:: (the clean poweroff before WSL's idle stop:
# the services' stop commands) and suites:: (the loaded distro boots to `running` with no
# failed unit, WSLg's X11 socket). Everything else (the image pipeline, the Windows side
# under Wine, install, the port proxy, hostile input, several distros in one VM: cgroups,
# ids, /mnt/wsl, ports) does not depend on the distro's systemd version: it runs once, on
# bookworm, in the last step. tests/integration/suites.rs says the same.
# Measured on this project's 2-core machine (shared with other work), from an empty cache:
# the trees build in bookworm 6 s, bookworm loaded 17 s, trixie 8-10 s, trixie loaded 17-19
# s, sid 8-9 s, sid loaded 17-19 s; with apt lists and the tarball (30-40 s) a suite's
# trees take 63-73 s (0-1 s cached); its tests take 33-42 s. This step adds about 3.5 min
# to a run from scratch (about 1.2 min with the trees cached); the loaded bookworm tree in
# the last step 17 s (0 s cached).
step "the systemd matrix: Debian trixie and sid (runtime:: wsl:: run:: idle:: suites::)"
# The major version of the systemd in tree $1.
systemd_of() {
    ls "$1"/usr/lib/systemd "$1"/usr/lib/*/systemd 2>/dev/null |
        sed -n 's/^libsystemd-shared-\([0-9]*\)\.so$/\1/p' | head -n1 || true
}
for suite in trixie sid; do
    started=$SECONDS
    tree="$(bash scripts/build-rootfs.sh --suite "$suite")"
    tarball="$(bash scripts/build-rootfs.sh --suite "$suite" \
        --tarball "$repo/.cache/test-rootfs-$suite.tar.xz")"
    loaded="$(bash scripts/build-rootfs.sh --suite "$suite" --loaded)"
    echo "suite $suite (systemd $(systemd_of "$tree")): trees built in $((SECONDS - started)) s:" \
        "$tree $loaded"
    started=$SECONDS
    DISTROD_TEST_SUITE="$suite" DISTROD_TEST_ROOTFS_TREE="$tree" \
        DISTROD_TEST_ROOTFS_TARBALL="$tarball" DISTROD_TEST_LOADED_TREE="$loaded" \
        cargo test --locked --test integration -- runtime:: wsl:: run:: idle:: suites::
    echo "suite $suite (systemd $(systemd_of "$tree")): runtime:: wsl:: run:: idle::" \
        "suites:: passed in $((SECONDS - started)) s"
done

# Last, so that its summary lines end the output.
step "cargo test --workspace --locked"
# bookworm, this machine's suite: the whole suite, and suites:: on its loaded tree.
DISTROD_TEST_LOADED_TREE="$(bash scripts/build-rootfs.sh --loaded)"
export DISTROD_TEST_SUITE=bookworm DISTROD_TEST_LOADED_TREE
echo "suite bookworm (systemd $(systemd_of "$DISTROD_TEST_ROOTFS_TREE")): the whole suite;" \
    "DISTROD_TEST_LOADED_TREE=$DISTROD_TEST_LOADED_TREE"
cargo test --workspace --locked
current=""
