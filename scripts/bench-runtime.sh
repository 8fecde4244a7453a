#!/usr/bin/env bash
# Benchmark distrod's container runtime against systemd-nspawn, inside the same kind of
# sandbox the integration tests use as a stand-in for a WSL2 distro (own net, cgroup,
# mount, pid, uts and ipc namespaces; private /dev; read-only /proc/sys; no CAP_SYS_TIME
# or CAP_SYS_MODULE): boot to `running`, exec latency, stop time and the RSS of distrod's
# own long-lived processes.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/bench-runtime.sh [--runs N]

Measure, over N runs (default 5), each in a fresh sandbox (tests/integration/support/
sandbox-init.sh) over the test rootfs (scripts/build-rootfs.sh), alternating which side
goes first, and print the medians and their ratios:
  launch  `distrod launch` (returns at READY=1) vs `systemd-nspawn -b` on an overlay of
          the same rootfs, until `systemctl is-system-running` says running
  exec    `distrod exec -- true` vs `nsenter -t PID1 -a true` (50 calls each per run)
  stop    `distrod stop` vs nspawn's poweroff (SIGRTMIN+4 to its init, until it exits)
  rss     VmRSS of every distrod process during `distrod exec -- sleep 5` and
          `distrod exec -u distrod -- sleep 5` (first run only)

Needs root, a release build (cargo build --release), unshare, nsenter, setpriv, mount,
ip, hostname, apt-get and dpkg-deb. systemd-nspawn (systemd-container, the version of the
rootfs's systemd) is downloaded and extracted into .cache/bench-runtime/ when missing;
it is never installed on this machine.

Options:
  --runs N    number of runs (default 5)
  -h, --help  show this help
EOF
}

prog=bench-runtime
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
log() { echo "bench-runtime: $*" >&2; }

runs=5
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) [[ $# -ge 2 ]] || die "--runs needs a number"; runs="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
positive_runs "$runs"

to_repo
require_root "namespaces, mounts, cgroups"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin"
require_tools unshare nsenter setpriv mount ip hostname apt-get dpkg-deb awk stat
bin="$repo/target/x86_64-unknown-linux-gnu/release/distrod"
[[ -x "$bin" ]] || die "no release binary at $bin (run cargo build --release)"
init_script="$repo/tests/integration/support/sandbox-init.sh"
[[ -f "$init_script" ]] || die "missing $init_script"

exec_iters=50
# What sandbox.rs drops from the bounding set of the sandbox and of all it runs.
bounding="-sys_time,-sys_module"
inside_path="/opt/distrod/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# ---------------------------------------------------------------------------------------
# Cleanup: every sandbox this script started (by PID), its cgroup (depth-first), its
# directory; the scratch directory.
work=""
sb_name="" sb_dir="" sb_cg="" sb_unshare="" sb_pid1=""
bg_pids=()

sb_stop() {
    local p deadline
    for p in "${bg_pids[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    bg_pids=()
    if [[ -n "$sb_unshare" ]]; then
        if [[ -n "$sb_pid1" ]] &&
            [[ "$(awk '/^PPid:/ { print $2 }' "/proc/$sb_pid1/status" 2>/dev/null)" == "$sb_unshare" ]]; then
            # The sandbox's PID 1: the kernel kills its whole pid namespace with it.
            kill -KILL "$sb_pid1" 2>/dev/null || true
        elif [[ -z "$sb_pid1" ]]; then
            kill -KILL "$sb_unshare" 2>/dev/null || true
        fi
        wait "$sb_unshare" 2>/dev/null || true
    fi
    if [[ -n "$sb_cg" && -d "$sb_cg" ]]; then
        deadline=$((SECONDS + 20))
        while grep -qx 'populated 1' "$sb_cg/cgroup.events" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                log "warning: cgroup $sb_cg is still populated"
                break
            fi
            sleep 0.02
        done
        find "$sb_cg" -depth -type d -exec rmdir {} \; 2>/dev/null ||
            log "warning: could not remove all of $sb_cg"
    fi
    if [[ -n "$sb_dir" && -d "$sb_dir" ]]; then
        rm -rf "$sb_dir"
    fi
    sb_name="" sb_dir="" sb_cg="" sb_unshare="" sb_pid1=""
}

# shellcheck disable=SC2317 # run from the traps
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    sb_stop
    [[ -n "$work" ]] && rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------
# The rootfs and systemd-nspawn of the same systemd version.
log "building or reusing the test rootfs"
rootfs="$(bash scripts/build-rootfs.sh)"
[[ -d "$rootfs/usr/bin" ]] || die "$rootfs: not a rootfs tree"

shared_lib="$(find "$rootfs/usr/lib/x86_64-linux-gnu/systemd" -maxdepth 1 -name 'libsystemd-shared-*.so' | head -n1)"
[[ -n "$shared_lib" ]] || die "no libsystemd-shared in the rootfs"
systemd_version="$(grep -aoE '"name":"systemd","version":"[^"]+"' "$shared_lib" | head -n1 | sed -E 's/.*"version":"([^"]+)"/\1/')"
[[ -n "$systemd_version" ]] || die "could not tell the rootfs's systemd version"

nspawn_cache="$repo/.cache/bench-runtime/systemd-container_$systemd_version"
if [[ ! -x "$nspawn_cache/usr/bin/systemd-nspawn" ]]; then
    log "fetching systemd-container $systemd_version"
    dl="$(mktemp -d)"
    (cd "$dl" && apt-get download -q "systemd-container=$systemd_version" >&2) ||
        { rm -rf "$dl"; die "apt-get download systemd-container=$systemd_version failed"; }
    mkdir -p "$(dirname "$nspawn_cache")"
    rm -rf "$nspawn_cache.tmp"
    dpkg-deb -x "$dl"/systemd-container_*.deb "$nspawn_cache.tmp" ||
        { rm -rf "$dl"; die "could not extract systemd-container"; }
    rm -rf "$dl" "$nspawn_cache"
    mv "$nspawn_cache.tmp" "$nspawn_cache"
fi

# The host's cgroup2 mount and this script's cgroup in it: sandboxes' cgroups go below.
cg2_mount="$(awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } break } }' /proc/self/mountinfo)"
[[ -n "$cg2_mount" ]] || die "no cgroup2 mount on this host"
own_cg="$(sed -n 's/^0:://p' /proc/self/cgroup)"
cg_parent="$cg2_mount${own_cg%/}"
[[ -d "$cg_parent" ]] || die "$cg_parent: no such cgroup directory"

work="$(mktemp -d)"
mkdir "$work/lib"

# ---------------------------------------------------------------------------------------
# The helper run inside the sandbox (bound at /opt/bench/lib); times in microseconds.
cat >"$work/lib/inside.sh" <<'EOF'
#!/bin/bash
set -euo pipefail
us() { echo "${EPOCHREALTIME/./}"; }
container_pid() {
    local json
    json=$(distrod status --json)
    [[ $json =~ \"pid\"[[:space:]]*:[[:space:]]*([0-9]+) ]] || { echo "no pid in: $json" >&2; exit 1; }
    echo "${BASH_REMATCH[1]}"
}
# The PID of the init of a pid namespace below this one (nspawn's container).
find_init() {
    local f k a b rest
    for f in /proc/[0-9]*/status; do
        { while read -r k a b rest; do
            if [[ $k == NSpid: ]]; then
                [[ -n $b && $b == 1 && -z $rest ]] && { echo "$a"; return 0; }
                break
            fi
        done <"$f"; } 2>/dev/null || true
    done
}
case "$1" in
launch)
    s=$(us); distrod launch >/dev/null 2>/run/bench-launch.log || { cat /run/bench-launch.log >&2; exit 1; }; e=$(us)
    st=$(distrod exec -- systemctl is-system-running || true)
    echo "$((e - s)) $st"
    ;;
exec)
    n=$2 pid=$(container_pid)
    # Both sides, alternating which goes first, after one warm-up call each.
    distrod exec -- true; nsenter -t "$pid" -a true
    d=0 x=0
    for ((i = 0; i < n; i++)); do
        if ((i % 2 == 0)); then
            s=$(us); distrod exec -- true; m=$(us); nsenter -t "$pid" -a true; e=$(us)
            d=$((d + m - s)); x=$((x + e - m))
        else
            s=$(us); nsenter -t "$pid" -a true; m=$(us); distrod exec -- true; e=$(us)
            x=$((x + m - s)); d=$((d + e - m))
        fi
    done
    echo "$((d / n)) $((x / n))"
    ;;
stop)
    s=$(us); distrod stop >/dev/null 2>/run/bench-stop.log || { cat /run/bench-stop.log >&2; exit 1; }; e=$(us)
    echo "$((e - s))"
    ;;
nspawn)
    # In a mount namespace of its own: the overlay goes away with it.
    exec unshare --mount --propagation private "$0" nspawn-inner
    ;;
nspawn-inner)
    m=/run/bench-nspawn
    mkdir -p "$m"
    mount -t tmpfs -o mode=755 tmpfs "$m"
    mkdir "$m/upper" "$m/work" "$m/root"
    mount -t overlay overlay -o "lowerdir=/opt/bench/rootfs,upperdir=$m/upper,workdir=$m/work" "$m/root"
    s=$(us)
    /opt/bench/nspawn/systemd-nspawn -q -D "$m/root" -b --private-network --register=no \
        --keep-unit --link-journal=no --console=passive </dev/null >/run/bench-nspawn.log 2>&1 &
    np=$!
    # The container's init: PID 1 of a pid namespace below this one.
    # (Only bash builtins and coreutils here: the rootfs has no sed, awk or grep.)
    c=""
    for ((i = 0; i < 2000; i++)); do
        c=$(find_init)
        [[ -n $c && $(cat "/proc/$c/comm" 2>/dev/null) == systemd ]] && break
        c=""
        kill -0 "$np" 2>/dev/null || { cat /run/bench-nspawn.log >&2; exit 1; }
        sleep 0.005
    done
    [[ -n $c ]] || { echo "nspawn's container did not start" >&2; cat /run/bench-nspawn.log >&2; kill -KILL "$np"; exit 1; }
    st=""
    for ((i = 0; i < 3000; i++)); do
        st=$(nsenter -t "$c" -a systemctl is-system-running 2>/dev/null || true)
        [[ $st == running || $st == degraded ]] && break
        sleep 0.005
    done
    e=$(us)
    boot=$((e - s))
    s=$(us); kill -s RTMIN+4 "$c"; rc=0; wait "$np" || rc=$?; e=$(us)
    echo "$boot $((e - s)) $st $rc"
    ;;
*)
    echo "unknown subcommand $1" >&2; exit 2 ;;
esac
EOF
chmod 755 "$work/lib/inside.sh"

# ---------------------------------------------------------------------------------------
# One sandbox, as tests/integration/support/sandbox.rs makes it.
sb_count=0
sb_start() {
    local deadline
    sb_name="distrod-bench-$$-$sb_count"
    sb_count=$((sb_count + 1))
    sb_cg="$cg_parent/$sb_name"
    mkdir "$sb_cg"
    # tmpfs for the sandbox's overlay upper dir, like the tmpfs upper of nspawn's overlay.
    sb_dir="$(mktemp -d -p /dev/shm "$sb_name.XXXXXX")"
    mkdir "$sb_dir/upper" "$sb_dir/work" "$sb_dir/merged"
    printf '%s\t%s\n' "$rootfs" /opt/bench/rootfs "$work/lib" /opt/bench/lib \
        "$nspawn_cache/usr/bin" /opt/bench/nspawn >"$sb_dir/binds"
    cp "$init_script" "$sb_dir/init.sh"
    # sh moves itself into the sandbox's cgroup before `unshare --cgroup` (the cgroup
    # namespace's root); the bounding set is cut before any namespace exists.
    # shellcheck disable=SC2016
    sh -c 'echo $$ > "$1/cgroup.procs" || exit 125
           shift
           exec setpriv --bounding-set "$0" \
                unshare --net --cgroup --mount --pid --uts --ipc --fork \
                --kill-child --propagation private -- bash "$@"' \
        "$bounding" "$sb_cg" "$sb_dir/init.sh" "$sb_dir" "$rootfs" "$bin" "$sb_name" \
        </dev/null >"$sb_dir/init.log" 2>&1 &
    sb_unshare=$!
    deadline=$((SECONDS + 20))
    until [[ -e "$sb_dir/ready" ]]; do
        [[ -n "$sb_pid1" ]] || sb_pid1="$(first_child "$sb_unshare")"
        kill -0 "$sb_unshare" 2>/dev/null || die "the sandbox exited during its setup: $(cat "$sb_dir/init.log")"
        ((SECONDS < deadline)) || die "the sandbox was not up after 20 s: $(cat "$sb_dir/init.log")"
        sleep 0.01
    done
    [[ -n "$sb_pid1" ]] || sb_pid1="$(first_child "$sb_unshare")"
    [[ -n "$sb_pid1" ]] || die "no PID 1 in the sandbox"
    until tr '\0' ' ' <"/proc/$sb_pid1/cmdline" 2>/dev/null | grep -q 'sleep infinity'; do
        ((SECONDS < deadline)) || die "the sandbox's init did not start"
        sleep 0.01
    done
}

first_child() {
    local c
    c="$(cat "/proc/$1/task/$1/children" 2>/dev/null || true)"
    echo "${c%% *}"
}

# Runs a command in the sandbox as a WSL session would (its cgroup, all its namespaces,
# the reduced bounding set, a clean environment, stdin /dev/null).
sb_run() {
    # shellcheck disable=SC2016
    env -i PATH="$inside_path" HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 \
        sh -c 'echo $$ > "$1/cgroup.procs" || exit 125
               pid=$2; shift 2
               exec setpriv --bounding-set "$0" nsenter -t "$pid" -a -- "$@"' \
        "$bounding" "$sb_cg" "$sb_pid1" "$@" </dev/null
}

# ---------------------------------------------------------------------------------------
# RSS of every process of the sandbox whose executable is the binary under test.
bin_id="$(stat -L -c %d:%i "$bin")"
rss_report() { # LABEL; prints "ROLE KIB" lines
    local label=$1 dir p id levels role rss cmd
    while IFS= read -r dir; do
        while IFS= read -r p; do
            [[ -n "$p" ]] || continue
            id="$(stat -L -c %d:%i "/proc/$p/exe" 2>/dev/null)" || continue
            [[ "$id" == "$bin_id" ]] || continue
            levels="$(awk '/^NSpid:/ { print NF - 1 }' "/proc/$p/status")"
            rss="$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status")"
            cmd="$(tr '\0' ' ' <"/proc/$p/cmdline")"
            # Levels of pid namespaces: host, sandbox (a WSL session's view), container.
            if [[ "$levels" -ge 3 ]]; then
                role="reaper"
            elif [[ "$cmd" == *" exec "* ]]; then
                role="outer-exec"
            else
                role="other"
            fi
            log "rss ($label): pid $p $role ${rss} KiB: $cmd"
            echo "$role $rss"
        done <"$dir/cgroup.procs"
    done < <(find "$sb_cg" -type d)
}

rss_lines=()
measure_rss() {
    local label=$1 job line
    shift
    sb_run distrod exec "$@" -- sleep 5 >/dev/null &
    job=$!
    bg_pids+=("$job")
    sleep 2
    while IFS= read -r line; do
        rss_lines+=("$label $line")
    done < <(rss_report "$label")
    wait "$job" || die "distrod exec $* -- sleep 5 failed"
    bg_pids=()
}

# ---------------------------------------------------------------------------------------
launch_d=() launch_n=() exec_d=() exec_n=() stop_d=() stop_n=()

run_distrod() {
    local out us st d x
    out="$(sb_run /opt/bench/lib/inside.sh launch)" || die "distrod launch failed"
    read -r us st <<<"$out"
    [[ "$st" == running ]] || die "after distrod launch: is-system-running says '$st'"
    launch_d+=("$us")
    out="$(sb_run /opt/bench/lib/inside.sh exec "$exec_iters")" || die "exec timing failed"
    read -r d x <<<"$out"
    exec_d+=("$d")
    exec_n+=("$x")
    if [[ $1 -eq 1 ]]; then
        measure_rss root
        measure_rss "-u distrod" -u distrod
    fi
    out="$(sb_run /opt/bench/lib/inside.sh stop)" || die "distrod stop failed"
    stop_d+=("$out")
}

run_nspawn() {
    local out boot stop st rc
    out="$(sb_run /opt/bench/lib/inside.sh nspawn)" || die "the nspawn run failed"
    read -r boot stop st rc <<<"$out"
    [[ "$st" == running ]] || log "warning: nspawn's container said '$st'"
    [[ "$rc" == 0 ]] || log "warning: systemd-nspawn exited with $rc"
    launch_n+=("$boot")
    stop_n+=("$stop")
}

for ((run = 1; run <= runs; run++)); do
    sb_start
    if ((run % 2 == 1)); then
        run_distrod "$run"
        run_nspawn
    else
        run_nspawn
        run_distrod "$run"
    fi
    log "run $run: launch ${launch_d[-1]} vs ${launch_n[-1]} us; exec ${exec_d[-1]} vs ${exec_n[-1]} us; stop ${stop_d[-1]} vs ${stop_n[-1]} us"
    sb_stop
done

# ---------------------------------------------------------------------------------------
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
line() { # NAME UNIT(s|ms) DIVISOR OTHER-NAME DISTROD-US OTHER-US TARGET
    awk -v n="$1" -v u="$2" -v div="$3" -v o="$4" -v a="$5" -v b="$6" -v t="$7" 'BEGIN {
        prec = (u == "s") ? 2 : 1
        printf "%s: distrod %.*f%s vs %s %.*f%s, ratio %.2f (target <= %s)\n", n, prec, a / div, u, o, prec, b / div, u, a / b, t
    }'
}
rss_max() { # LABEL ROLE
    local l max=""
    for l in "${rss_lines[@]}"; do
        read -r -a f <<<"$l"
        # label may be two words ("-u distrod")
        if [[ "$l" == "$1 $2 "* ]]; then
            [[ -z "$max" || "${f[-1]}" -gt "$max" ]] && max="${f[-1]}"
        fi
    done
    if [[ -z "$max" ]]; then echo "none"; else awk -v k="$max" 'BEGIN { printf "%.1f MiB", k / 1024 }'; fi
}

echo
echo "== distrod runtime vs systemd-nspawn $systemd_version, $runs runs, medians =="
line launch s 1000000 nspawn "$(median "${launch_d[@]}")" "$(median "${launch_n[@]}")" 0.8
line exec ms 1000 nsenter "$(median "${exec_d[@]}")" "$(median "${exec_n[@]}")" 1.25
line stop s 1000000 nspawn "$(median "${stop_d[@]}")" "$(median "${stop_n[@]}")" 0.5
echo "rss (exec -- sleep 5): outer exec $(rss_max root outer-exec), reaper $(rss_max root reaper) (target <= 2 MiB each)"
echo "rss (exec -u distrod -- sleep 5): outer exec $(rss_max "-u distrod" outer-exec), reaper $(rss_max "-u distrod" reaper) (target <= 2 MiB each)"
for l in "${rss_lines[@]}"; do
    [[ "$l" == *" other "* ]] && echo "rss: other distrod process ($l KiB)"
done
exit 0
