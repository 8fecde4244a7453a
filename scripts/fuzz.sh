#!/usr/bin/env bash
# Coverage-guided fuzzing of distrod's parsers of outside input (fuzz/), on the stable
# toolchain: libFuzzer, built by the libfuzzer-sys crate, driven by rustc's
# SanitizerCoverage instrumentation. One target at a time, each for a bounded time.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/fuzz.sh [--seconds N] [--seed N] [--work DIR] [--tmpdir DIR] [TARGET...]
       scripts/fuzz.sh --list

Build the fuzz targets of fuzz/ (release, instrumented for coverage, with debug assertions
and overflow checks) and run each TARGET (default: all, in the order of --list) for N
seconds, one after the other. Each run starts from a working copy of the target's seeds
(fuzz/corpus/TARGET) and of its saved crash inputs (fuzz/regressions/TARGET), with the
keyword dictionary of fuzz/dicts/ for the targets that have one; the fuzzer never writes
into fuzz/corpus. It prints, per target, the inputs executed, the coverage reached (edges
and features) and the seconds taken, and fails naming the target and the input if any
target crashes (a panic, including a failed assertion or an arithmetic overflow), hangs
(-timeout=10 s for one input) or runs out of memory (-rss_limit_mb=2048). Such inputs are
kept in fuzz/artifacts/TARGET/ (git-ignored).

Options:
  --seconds N   time per target (default 30); for a longer run, e.g. --seconds 3600
  --seed N      libFuzzer's random seed (default 1, so that runs repeat; 0 picks one)
  --work DIR    keep the working corpora in DIR/TARGET instead of a temporary directory,
                so that a later run with the same --work resumes from what this one found
  --tmpdir DIR  where the targets that write files (tar_unpack, accounts) make their
                scratch trees, one per input, removed after it (default: /dev/shm when
                it is a writable directory, else the temporary directory)
  --list        list the targets and exit

A longer run of one target, keeping what it finds:
  scripts/fuzz.sh --seconds 3600 --work /var/tmp/distrod-fuzz tar_unpack

Reproducing a crash (the binary runs the input once and prints the panic):
  RUST_BACKTRACE=1 fuzz/target/<host triple>/release/TARGET fuzz/artifacts/TARGET/crash-...
and, to keep it as a regression test, copy the file into fuzz/regressions/TARGET/ and run
`cargo test` in fuzz/ (it runs every seed and every saved input through its target,
without the fuzzer). libFuzzer's -minimize_crash=1 shrinks an input first.

Needs rustup's stable toolchain (cargo, rustc) and a C++ compiler (libFuzzer is built
from source). The build alone takes about 1.5 minutes on two cores.
EOF
}

die() { echo "fuzz: error: $*" >&2; exit 1; }
log() { echo "fuzz: $*" >&2; }

cd "$(dirname "$0")/.."
repo="$(pwd)"
fuzz="$repo/fuzz"

# Every target, with the largest input it is given (the largest seed fits).
declare -A max_len=(
    [tar_unpack]=16384 [tar_repack]=16384 [xz]=8192 [catalog]=16384 [config]=4096
    [accounts]=4096 [wsl_conf]=2048 [wsl_exe]=4096 [elf]=4096 [procfs]=4096
    [content_range]=256 [status]=4096 [privbus]=4096
)
# Targets whose inputs have keywords a mutation rarely spells: libFuzzer's -dict.
declare -A dict=(
    [tar_unpack]=tar [tar_repack]=tar [catalog]=catalog [config]=config [accounts]=accounts
    [status]=status
)
all_targets=(tar_unpack tar_repack xz catalog config accounts wsl_conf wsl_exe elf procfs
    content_range status privbus)

seconds=30
seed=1
work=""
tmpdir=""
targets=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seconds) [[ $# -ge 2 ]] || die "--seconds needs a number"; seconds="$2"; shift 2 ;;
        --seed) [[ $# -ge 2 ]] || die "--seed needs a number"; seed="$2"; shift 2 ;;
        --work) [[ $# -ge 2 ]] || die "--work needs a directory"; work="$2"; shift 2 ;;
        --tmpdir) [[ $# -ge 2 ]] || die "--tmpdir needs a directory"; tmpdir="$2"; shift 2 ;;
        --list) printf '%s\n' "${all_targets[@]}"; exit 0 ;;
        -h|--help) usage; exit 0 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *)
            [[ -n "${max_len[$1]:-}" ]] || die "unknown target '$1' (see --list)"
            targets+=("$1")
            shift
            ;;
    esac
done
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "--seconds must be a positive number, not '$seconds'"
[[ "$seed" =~ ^[0-9]+$ ]] || die "--seed must be a number, not '$seed'"
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")

# rustup's stable toolchain before Debian's /usr/bin/cargo, if both are installed.
rustup_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
if [[ -x "$rustup_bin/cargo" ]]; then
    export PATH="$rustup_bin:$PATH"
fi
command -v cargo >/dev/null || die "cargo not found (install Rust with rustup)"
command -v c++ >/dev/null || die "no C++ compiler 'c++' (apt-get install g++): libFuzzer is C++"
host="$(rustc -vV | sed -n 's/^host: //p')"
[[ -n "$host" ]] || die "cannot tell rustc's host triple"

start_all=$SECONDS

# The scratch: working corpora and logs, removed at the end unless --work names them.
scratch="$(mktemp -d "${TMPDIR:-/tmp}/distrod-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
if [[ -z "$tmpdir" ]]; then
    if [[ -d /dev/shm && -w /dev/shm ]]; then
        tmpdir="$(mktemp -d /dev/shm/distrod-fuzz.XXXXXX)"
        trap 'rm -rf "$scratch" "$tmpdir"' EXIT
    else
        tmpdir="$scratch/tmp"
        mkdir -p "$tmpdir"
    fi
fi
[[ -d "$tmpdir" && -w "$tmpdir" ]] || die "--tmpdir $tmpdir is not a writable directory"
if [[ -z "$work" ]]; then
    work="$scratch/work"
fi
mkdir -p "$work" || die "cannot create --work $work"
work="$(cd "$work" && pwd)"

# SanitizerCoverage through stable codegen options: inline 8-bit edge counters and the PC
# table (libFuzzer's coverage), and comparison tracing (its value profile and dictionary).
# `--cfg fuzzing` as cargo-fuzz sets it. The explicit --target keeps these flags away from
# build scripts and proc-macros, and RUSTFLAGS replaces the `+crt-static` of distrod's
# .cargo/config.toml: libFuzzer links dynamically.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
log "building ${#targets[@]} target(s) for $host"
build_start=$SECONDS
(cd "$fuzz" && cargo build --release --locked --target "$host" "${bins[@]}") \
    || die "the build of the fuzz targets failed"
log "built in $((SECONDS - build_start)) s"
bindir="$fuzz/target/$host/release"

failed=()
summary=()
for t in "${targets[@]}"; do
    corpus="$work/$t"
    artifacts="$fuzz/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    for seeds in "$fuzz/corpus/$t" "$fuzz/regressions/$t"; do
        if [[ -d "$seeds" ]]; then
            find "$seeds" -maxdepth 1 -type f -exec cp -p -t "$corpus" {} +
        fi
    done
    logfile="$scratch/$t.log"
    before="$(find "$artifacts" -maxdepth 1 -type f | sort)"
    options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048
        -max_len="${max_len[$t]}" -seed="$seed" -print_final_stats=1
        -artifact_prefix="$artifacts/")
    if [[ -n "${dict[$t]:-}" ]]; then
        options+=(-dict="$fuzz/dicts/${dict[$t]}.dict")
    fi
    log "$t: ${seconds} s, -max_len=${max_len[$t]}"
    t0=$SECONDS
    rc=0
    # The scratch trees of the targets that write files go under $tmpdir.
    (cd "$scratch" && TMPDIR="$tmpdir" RUST_BACKTRACE=1 "$bindir/$t" "${options[@]}" "$corpus") \
        >"$logfile" 2>&1 || rc=$?
    took=$((SECONDS - t0))
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$logfile" | tail -n 1)"
    cov="$(grep -o 'cov: [0-9]* ft: [0-9]*' "$logfile" | tail -n 1 || true)"
    line="$(printf '%-14s %10s runs  %-22s %4d s' "$t" "${runs:-?}" "${cov:-cov: ?}" "$took")"
    if [[ $rc -ne 0 ]]; then
        new="$(comm -13 <(echo "$before") <(find "$artifacts" -maxdepth 1 -type f | sort) \
            | head -n 1)"
        echo "---- $t: last lines of libFuzzer's output" >&2
        grep -v '^#[0-9]' "$logfile" | tail -n 40 >&2 || true
        line="$line  FAILED (exit $rc): ${new:-no input saved, see the output above}"
        failed+=("$t: ${new:-exit $rc}")
    fi
    echo "$line"
    summary+=("$line")
done

echo
echo "== fuzz summary (${seconds} s per target, seed $seed; total $((SECONDS - start_all)) s including the build)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    for f in "${failed[@]}"; do
        echo "fuzz: error: target $f" >&2
    done
    exit 1
fi
