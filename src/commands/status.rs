//! `distrod status`: whether the container runs and how systemd is doing (root only):
//! the boot's state and how long it took, the jobs systemd still has (what a slow boot
//! waits for, and for how long), and the failed units with the last thing each logged.
//! Exit code 0 when it runs, 3 when not (as `systemctl status` does for inactive units).
//!
//! Every answer comes from the container's own `systemctl` and `journalctl`, each run
//! through [`enter::run`] (one container entry per query, four or five in all):
//! 1. `systemctl show -p SystemState,...`: the manager (`SystemState` is what
//!    `systemctl is-system-running` prints);
//! 2. `systemctl list-jobs`;
//! 3. `systemctl --failed`;
//! 4. one `systemctl show -p Id,ActiveState,... UNIT...` for the units of all jobs and all
//!    failed units, when there are any;
//! 5. one `sh` looping over the failed units' invocation IDs with `journalctl -n 1`, when
//!    there are any.
//!
//! All of it is parsed by pure functions that take whatever bytes come back (the container
//! is not trusted to answer sensibly) and never panic; they and [`text`] are public for the
//! fuzz target `status` (fuzz/), which checks that.
//!
//! A job's age: systemd does not publish when a job started, only when its unit changed
//! state. For a unit that is `activating`, `InactiveExitTimestampMonotonic` is the moment it
//! left `inactive`/`failed`, i.e. when its start began: ExecCondition/ExecStartPre included,
//! kept across `Restart=` attempts (an auto-restarting service stays `activating`). Not
//! `ExecMainStartTimestampMonotonic`: that is when the *main* process started (later than
//! the start, after ExecStartPre), it is 0 for units without processes (mounts, swaps,
//! targets) and, while ExecStartPre still runs, it is the *previous* run's. Likewise a
//! `deactivating` unit has been stopping since `ActiveExitTimestampMonotonic`. Any other
//! unit state (e.g. a device that has not appeared: its start job runs while the unit is
//! `inactive`) has no age. The timestamps are CLOCK_MONOTONIC in microseconds, the clock
//! distrod reads itself: the container has no time namespace of its own.

use std::collections::HashMap;
use std::ffi::OsString;
use std::process::ExitCode;

use serde::Serialize;

use crate::cli::StatusArgs;
use crate::runtime::{self, enter, state, sys};
use crate::ui::Ui;

/// Most jobs, then failed units, listed one per line in the text output (then "and N more").
const JOB_LINES: usize = 4;
const FAILED_LINES: usize = 5;
/// Most failed units whose journal is read (a single `sh` runs `journalctl` once for each).
const LOGGED_FAILED: usize = 16;
/// Longest container-provided text (a log line, a unit name) in the text output, in chars.
pub const TEXT_MAX: usize = 200;

/// Everything `distrod status` says, in the order of the text; its fields are the keys of
/// `--json` (described in the command's `--help`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// Whether the container runs; when false, only `previous` may be set.
    pub running: bool,
    /// The container's systemd (its PID 1), in this distro's pid namespace.
    pub pid: Option<i32>,
    /// Seconds since that systemd started (two decimals); None when unknown.
    pub uptime_secs: Option<f64>,
    /// What `systemctl is-system-running` would print (initializing, starting, running,
    /// degraded...); None when systemd did not answer.
    pub state: Option<String>,
    /// The names of the failed units (the same units as `failed`).
    pub failed_units: Vec<String>,
    /// The container's root directory.
    pub rootfs: Option<String>,
    /// Seconds from systemd's start to the end of its boot; None while it boots.
    pub boot_secs: Option<f64>,
    /// systemd's pending jobs, running ones first, the longest-running first.
    pub jobs: Vec<Job>,
    /// The failed units, each with why and the last line it logged.
    pub failed: Vec<Failed>,
    /// How the container before this one ended (when not running: the last one), as one
    /// line (`runtime::history`): cleanly, or killed with the distro. None: no record.
    pub previous: Option<String>,
}

/// One of systemd's pending jobs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// systemd's job number.
    pub id: u64,
    /// The unit the job is for.
    pub unit: String,
    /// start, stop, restart, reload, verify-active...
    #[serde(rename = "type")]
    pub kind: String,
    /// `running` or `waiting` (for other jobs to finish first).
    pub state: String,
    /// The unit's ActiveState (activating, deactivating, inactive...), if known.
    pub unit_state: Option<String>,
    /// Seconds the unit has been activating (deactivating for a stop job); None for a
    /// waiting job and when systemd does not tell.
    pub age_secs: Option<f64>,
}

/// A failed unit and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failed {
    /// The unit's name.
    pub unit: String,
    /// The unit's `Result` property (exit-code, signal, timeout, resources...).
    pub result: Option<String>,
    /// The last line the unit's failed run logged (the journal, by its InvocationID).
    pub last_log: Option<String>,
}

impl Report {
    fn not_running() -> Report {
        Report {
            running: false,
            pid: None,
            uptime_secs: None,
            state: None,
            failed_units: vec![],
            rootfs: None,
            boot_secs: None,
            jobs: vec![],
            failed: vec![],
            previous: None,
        }
    }
}

/// `distrod status`: exit status 0 when the container runs, 3 when not.
pub fn run(args: &StatusArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    // The record lives in a root-only directory, and asking systemd needs its namespaces.
    runtime::require_root("status")?;
    let report = match state::running() {
        None => Report {
            previous: runtime::history::last().map(|r| runtime::history::describe(Some(&r))),
            ..Report::not_running()
        },
        Some(st) => Report {
            previous: st
                .previous
                .as_ref()
                .map(|r| runtime::history::describe(Some(r))),
            ..ask(st.pid, ui, st.rootfs.display().to_string())
        },
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report));
    }
    Ok(if report.running {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// Asks the container's systemd (PID `pid` here) everything the report holds.
fn ask(pid: i32, ui: &Ui, rootfs: String) -> Report {
    let manager = systemctl(
        pid,
        &[
            "show",
            "-p",
            "SystemState,UserspaceTimestampMonotonic,FinishTimestampMonotonic",
        ],
        ui,
    )
    .map(|s| parse_show(&s).into_iter().next().unwrap_or_default())
    .unwrap_or_default();
    let listed = systemctl(pid, &["list-jobs", "--plain", "--no-legend"], ui)
        .map(|s| parse_jobs(&s))
        .unwrap_or_default();
    let failed_units = systemctl(pid, &["--failed", "--plain", "--no-legend"], ui)
        .map(|s| failed_units(&s))
        .unwrap_or_default();

    let mut units: Vec<&str> = listed.iter().map(|j| j.unit.as_str()).collect();
    units.extend(failed_units.iter().map(String::as_str));
    units.sort_unstable();
    units.dedup();
    let props = if units.is_empty() {
        HashMap::new()
    } else {
        let mut argv = vec![
            "show",
            "-p",
            "Id,ActiveState,InactiveExitTimestampMonotonic,ActiveExitTimestampMonotonic,\
             Result,InvocationID",
            "--",
        ];
        argv.extend(&units);
        systemctl(pid, &argv, ui)
            .map(|s| by_id(parse_show(&s)))
            .unwrap_or_default()
    };
    // Read after systemd answered: every timestamp it gave is older.
    let now = monotonic_usec();
    let jobs = jobs(listed, &props, now);

    let invocations: Vec<&str> = failed_units
        .iter()
        .filter_map(|u| props.get(u)?.get("InvocationID"))
        .map(String::as_str)
        .filter(|id| is_invocation_id(id))
        .take(LOGGED_FAILED)
        .collect();
    let logs = if invocations.is_empty() {
        HashMap::new()
    } else {
        last_logs(pid, &invocations, ui)
    };
    let failed = failed(&failed_units, &props, &logs);
    Report {
        running: true,
        pid: Some(pid),
        uptime_secs: sys::uptime_of(pid).map(round2),
        state: system_state(&manager),
        failed_units,
        rootfs: Some(rootfs),
        boot_secs: boot_secs(&manager),
        jobs,
        failed,
        previous: None,
    }
}

/// Runs `systemctl ARGS` in the container; its stdout (whatever the exit code: `is-*`
/// queries answer with one), None when the container could not be entered.
fn systemctl(pid: i32, args: &[&str], ui: &Ui) -> Option<String> {
    let mut argv = vec!["systemctl"];
    argv.extend_from_slice(args);
    inside(pid, argv.into_iter().map(OsString::from).collect(), ui)
}

fn inside(pid: i32, argv: Vec<OsString>, ui: &Ui) -> Option<String> {
    let cmd = enter::Command {
        argv,
        capture: true,
        ..Default::default()
    };
    match enter::run(pid, &cmd, None, ui) {
        Ok(exit) => Some(String::from_utf8_lossy(&exit.stdout).into_owned()),
        Err(e) => {
            ui.warn(format_args!("cannot ask systemd: {e:#}"));
            None
        }
    }
}

/// The last journal line of each invocation, in one container entry. Only the unit's own
/// processes log with `_SYSTEMD_INVOCATION_ID` (systemd's lines about the unit, "Failed with
/// result ...", carry `INVOCATION_ID` and say less than `Result` does).
fn last_logs(pid: i32, invocations: &[&str], ui: &Ui) -> HashMap<String, String> {
    let script = "for id do journalctl --no-pager --quiet --all -o json \
                  --output-fields=MESSAGE,_SYSTEMD_INVOCATION_ID -n 1 \
                  \"_SYSTEMD_INVOCATION_ID=$id\"; done";
    let argv = ["sh", "-c", script, "sh"]
        .into_iter()
        .chain(invocations.iter().copied())
        .map(OsString::from)
        .collect();
    inside(pid, argv, ui)
        .map(|out| parse_journal(&out))
        .unwrap_or_default()
}

/// CLOCK_MONOTONIC in microseconds, as systemd's `*TimestampMonotonic` properties count.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0; // every age then comes out unknown (checked_sub)
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add(ts.tv_nsec as u64 / 1000)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `systemctl list-jobs --plain --no-legend`: `JOB UNIT TYPE STATE` per line. Anything
/// else (a legend, "No jobs running.", garbage) is skipped.
pub fn parse_jobs(out: &str) -> Vec<Job> {
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let id = w.next()?.parse().ok()?;
            let (unit, kind, state) = (w.next()?, w.next()?, w.next()?);
            Some(Job {
                id,
                unit: unit.to_string(),
                kind: kind.to_string(),
                state: state.to_string(),
                unit_state: None,
                age_secs: None,
            })
        })
        .collect()
}

/// `systemctl show`: blocks of `KEY=VALUE` lines, one block per unit, separated by empty
/// lines. Lines without `=` are skipped.
pub fn parse_show(out: &str) -> Vec<HashMap<String, String>> {
    let mut blocks = vec![];
    let mut cur = HashMap::new();
    for line in out.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                blocks.push(std::mem::take(&mut cur));
            }
        } else if let Some((k, v)) = line.split_once('=') {
            cur.insert(k.to_string(), v.to_string());
        }
    }
    if !cur.is_empty() {
        blocks.push(cur);
    }
    blocks
}

/// The blocks of [`parse_show`] by their `Id` (blocks without one are dropped).
pub fn by_id(blocks: Vec<HashMap<String, String>>) -> HashMap<String, HashMap<String, String>> {
    blocks
        .into_iter()
        .filter_map(|b| Some((b.get("Id")?.clone(), b)))
        .collect()
}

/// A `*TimestampMonotonic` value; 0 (never) and garbage are None.
fn usec(props: &HashMap<String, String>, key: &str) -> Option<u64> {
    props.get(key)?.trim().parse().ok().filter(|&t: &u64| t > 0)
}

/// The manager's `SystemState` (what `systemctl is-system-running` prints), if it said.
pub fn system_state(manager: &HashMap<String, String>) -> Option<String> {
    manager
        .get("SystemState")
        .filter(|s| !s.is_empty())
        .cloned()
}

/// Each failed unit with its `Result` and the last line its run logged (from `logs`, by
/// the unit's InvocationID), from the units' properties (`props`, by unit name).
pub fn failed(
    failed_units: &[String],
    props: &HashMap<String, HashMap<String, String>>,
    logs: &HashMap<String, String>,
) -> Vec<Failed> {
    failed_units
        .iter()
        .map(|u| {
            let p = props.get(u);
            Failed {
                unit: u.clone(),
                result: p
                    .and_then(|p| p.get("Result"))
                    .filter(|r| !r.is_empty())
                    .cloned(),
                last_log: p
                    .and_then(|p| p.get("InvocationID"))
                    .and_then(|id| logs.get(id))
                    .cloned(),
            }
        })
        .collect()
}

/// Seconds from systemd's start to the end of its boot, once it ended.
pub fn boot_secs(manager: &HashMap<String, String>) -> Option<f64> {
    let start = usec(manager, "UserspaceTimestampMonotonic")?;
    let end = usec(manager, "FinishTimestampMonotonic")?;
    Some(round2(end.checked_sub(start)? as f64 / 1e6))
}

/// The listed jobs with their unit's state and age at `now` (µs of CLOCK_MONOTONIC):
/// running jobs first, the longest-running first, then the waiting ones, each by job id.
pub fn jobs(
    listed: Vec<Job>,
    props: &HashMap<String, HashMap<String, String>>,
    now: u64,
) -> Vec<Job> {
    let mut jobs: Vec<Job> = listed
        .into_iter()
        .map(|mut j| {
            let p = props.get(&j.unit);
            j.unit_state = p
                .and_then(|p| p.get("ActiveState"))
                .filter(|s| !s.is_empty())
                .cloned();
            if j.state == "running" {
                let since = match j.unit_state.as_deref() {
                    Some("activating") => p.and_then(|p| usec(p, "InactiveExitTimestampMonotonic")),
                    Some("deactivating") => p.and_then(|p| usec(p, "ActiveExitTimestampMonotonic")),
                    _ => None,
                };
                j.age_secs = since
                    .and_then(|t| now.checked_sub(t))
                    .map(|d| round2(d as f64 / 1e6));
            }
            j
        })
        .collect();
    // Ties (all the waiting ones, running ones without an age) in job id order: the order
    // systemd queued them in (list-jobs itself does not sort).
    jobs.sort_by(|a, b| {
        let running = |j: &Job| j.state == "running";
        running(b)
            .cmp(&running(a))
            .then(
                b.age_secs
                    .unwrap_or(-1.0)
                    .total_cmp(&a.age_secs.unwrap_or(-1.0)),
            )
            .then(a.id.cmp(&b.id))
    });
    jobs
}

/// An invocation ID as systemd prints it: 32 hex digits.
pub fn is_invocation_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `journalctl -o json` lines: the MESSAGE of each `_SYSTEMD_INVOCATION_ID` (the last line
/// of each wins). MESSAGE is a string, or an array of bytes when it is not valid UTF-8.
pub fn parse_journal(out: &str) -> HashMap<String, String> {
    let mut logs = HashMap::new();
    for line in out.lines() {
        let Ok(serde_json::Value::Object(entry)) = serde_json::from_str(line) else {
            continue;
        };
        let Some(id) = entry.get("_SYSTEMD_INVOCATION_ID").and_then(|v| v.as_str()) else {
            continue;
        };
        let msg = match entry.get("MESSAGE") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(bytes)) => {
                let bytes: Vec<u8> = bytes
                    .iter()
                    .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => continue,
        };
        let msg = msg.trim_end().to_string();
        if !msg.is_empty() {
            logs.insert(id.to_string(), msg);
        }
    }
    logs
}

/// `systemctl --failed --plain --no-legend`: one unit per line, its name first.
pub fn failed_units(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// Container-provided text made safe and short for a terminal: control characters escaped,
/// at most `max` characters.
fn clean(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        // Control characters, and the bidirectional overrides and line separators that
        // would make a terminal show something other than what the container said.
        if c.is_control()
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
        {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A duration for people: `4.2 s`, `47 s`, `12 min 5 s`, `3 h 12 min`, `2 d 3 h`.
fn secs(s: f64) -> String {
    if s.is_nan() || s < 0.0 {
        return "? s".into(); // NaN or negative: nothing distrod computes, but never panic
    }
    if s < 10.0 {
        return format!("{s:.1} s");
    }
    let n = s.round() as u64;
    match n {
        0..120 => format!("{n} s"),
        120..7200 => format!("{} min {} s", n / 60, n % 60),
        7200..172_800 => format!("{} h {} min", n / 3600, n % 3600 / 60),
        _ => format!("{} d {} h", n / 86_400, n % 86_400 / 3600),
    }
}

/// The text output of a [`Report`], ending in a newline. Whatever the container said is
/// shown escaped (control characters, bidirectional overrides) and cut at [`TEXT_MAX`]
/// characters per item.
pub fn text(r: &Report) -> String {
    if !r.running {
        let mut s = "the container is not running\n".to_string();
        if let Some(p) = &r.previous {
            s += &format!("the last one: {}\n", clean(p, TEXT_MAX));
        }
        return s;
    }
    let mut s = format!("running: yes (pid {})", r.pid.unwrap_or(0));
    if let Some(u) = r.uptime_secs {
        s += &format!(", up {}", secs(u));
    }
    s += "\n";
    s += &format!(
        "state: {}",
        clean(r.state.as_deref().unwrap_or("unknown"), TEXT_MAX)
    );
    match (r.state.as_deref(), r.boot_secs) {
        (Some("initializing" | "starting"), _) => s += ", boot not finished",
        (_, Some(b)) => s += &format!(", booted in {}", secs(b)),
        _ => {}
    }
    s += "\n";

    let running = r.jobs.iter().filter(|j| j.state == "running").count();
    if r.jobs.is_empty() {
        s += "jobs: none\n";
    } else {
        s += &format!(
            "jobs: {running} running, {} waiting\n",
            r.jobs.len() - running
        );
        // All of them when that takes no more lines than the cap, else the cap minus one
        // and a line for the rest.
        let shown = if r.jobs.len() <= JOB_LINES {
            JOB_LINES
        } else {
            JOB_LINES - 1
        };
        for j in r.jobs.iter().take(shown) {
            let what = match (j.state.as_str(), j.age_secs) {
                ("waiting", _) => "waiting".to_string(),
                (_, Some(age)) => format!(
                    "{} for {}",
                    clean(j.unit_state.as_deref().unwrap_or("running"), TEXT_MAX),
                    secs(age)
                ),
                (state, None) => clean(state, TEXT_MAX),
            };
            s += &format!(
                "  {} ({}, {what})\n",
                clean(&j.unit, TEXT_MAX),
                clean(&j.kind, TEXT_MAX)
            );
        }
        let rest = &r.jobs[shown.min(r.jobs.len())..];
        if !rest.is_empty() {
            let waiting = rest.iter().filter(|j| j.state == "waiting").count();
            s += &format!("  and {} more ({waiting} waiting)\n", rest.len());
        }
    }

    if r.failed.is_empty() {
        s += "failed units: none\n";
    } else {
        s += &format!("failed units: {}\n", r.failed.len());
        let shown = if r.failed.len() <= FAILED_LINES {
            FAILED_LINES
        } else {
            FAILED_LINES - 1
        };
        for f in r.failed.iter().take(shown) {
            let result = clean(f.result.as_deref().unwrap_or("unknown result"), TEXT_MAX);
            let log = match &f.last_log {
                Some(l) => format!("\"{}\"", clean(l, TEXT_MAX)),
                None => "nothing in its journal".to_string(),
            };
            s += &format!("  {} ({result}): {log}\n", clean(&f.unit, TEXT_MAX));
        }
        let rest = r.failed.len().saturating_sub(shown);
        if rest > 0 {
            s += &format!("  and {rest} more (`distrod status --json` lists them all)\n");
        }
    }
    s += &format!("rootfs: {}\n", r.rootfs.as_deref().unwrap_or("?"));
    if let Some(p) = &r.previous {
        s += &format!("the previous container: {}\n", clean(p, TEXT_MAX));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_failed_units() {
        let out = "foo.service loaded failed failed Foo\nbar.mount   loaded failed failed Bar\n";
        assert_eq!(failed_units(out), ["foo.service", "bar.mount"]);
        assert!(failed_units("").is_empty());
        assert!(failed_units("\n \n").is_empty());
    }

    #[test]
    fn parses_jobs() {
        let out = "130 slow.service    start running\n\
                   1   multi-user.target start waiting\n\
                   No jobs running.\n\
                   x y z w\n\
                   7 short.service start\n\
                   \n";
        let jobs = parse_jobs(out);
        assert_eq!(jobs.len(), 2, "{jobs:?}");
        assert_eq!(
            (
                jobs[0].id,
                jobs[0].unit.as_str(),
                jobs[0].kind.as_str(),
                jobs[0].state.as_str()
            ),
            (130, "slow.service", "start", "running")
        );
        assert_eq!(jobs[1].unit, "multi-user.target");
        assert_eq!(jobs[1].state, "waiting");
        assert!(parse_jobs("").is_empty());
        assert!(parse_jobs("No jobs running.\n").is_empty());
        assert!(parse_jobs("-1 a b c\n99999999999999999999999 a b c").is_empty());
    }

    #[test]
    fn parses_show_blocks() {
        let out = "Id=a.service\nActiveState=activating\nResult=success\n\n\
                   ActiveState=failed\nId=b.service\nInvocationID=\nweird line\nX=1=2\n\n\n";
        let blocks = parse_show(out);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1]["X"], "1=2");
        assert_eq!(blocks[1]["InvocationID"], "");
        let ids = by_id(blocks);
        assert_eq!(ids["a.service"]["ActiveState"], "activating");
        assert_eq!(ids["b.service"]["ActiveState"], "failed");
        assert!(parse_show("").is_empty());
        assert!(parse_show("\n\n  \n").is_empty());
        assert!(by_id(parse_show("garbage\nNoId=1\n")).is_empty());
    }

    #[test]
    fn ages_of_jobs() {
        let listed = parse_jobs(
            "1 multi-user.target start waiting\n\
             5 slow.service start running\n\
             6 dev-sdz.device start running\n\
             7 old.service stop running\n\
             8 older.service start running\n\
             9 future.service start running\n",
        );
        let p = by_id(parse_show(
            "Id=slow.service\nActiveState=activating\nInactiveExitTimestampMonotonic=10000000\n\
             ActiveExitTimestampMonotonic=0\n\n\
             Id=dev-sdz.device\nActiveState=inactive\nInactiveExitTimestampMonotonic=0\n\n\
             Id=old.service\nActiveState=deactivating\nInactiveExitTimestampMonotonic=1\n\
             ActiveExitTimestampMonotonic=40000000\n\n\
             Id=older.service\nActiveState=activating\nInactiveExitTimestampMonotonic=2500000\n\n\
             Id=future.service\nActiveState=activating\nInactiveExitTimestampMonotonic=999000000\n\n\
             Id=multi-user.target\nActiveState=inactive\n",
        ));
        let jobs = jobs(listed, &p, 50_000_000);
        let got: Vec<(&str, Option<f64>)> =
            jobs.iter().map(|j| (j.unit.as_str(), j.age_secs)).collect();
        assert_eq!(
            got,
            [
                ("older.service", Some(47.5)),
                ("slow.service", Some(40.0)),
                ("old.service", Some(10.0)),
                ("dev-sdz.device", None),
                ("future.service", None),
                ("multi-user.target", None),
            ]
        );
        assert_eq!(jobs[0].unit_state.as_deref(), Some("activating"));
        assert_eq!(jobs[3].unit_state.as_deref(), Some("inactive"));
        // No properties at all (the show failed): jobs without ages, nothing lost.
        let bare = super::jobs(
            parse_jobs("5 slow.service start running\n"),
            &HashMap::new(),
            1,
        );
        assert_eq!(bare.len(), 1);
        assert_eq!(
            (bare[0].unit_state.as_ref(), bare[0].age_secs),
            (None, None)
        );
    }

    #[test]
    fn waiting_jobs_have_no_age() {
        let p = by_id(parse_show(
            "Id=a.service\nActiveState=activating\nInactiveExitTimestampMonotonic=1\n",
        ));
        let jobs = jobs(parse_jobs("3 a.service start waiting\n"), &p, 5_000_000);
        assert_eq!(jobs[0].age_secs, None);
    }

    #[test]
    fn boot_time() {
        let m = props(&[
            ("UserspaceTimestampMonotonic", "1000000"),
            ("FinishTimestampMonotonic", "1620000"),
        ]);
        assert_eq!(boot_secs(&m), Some(0.62));
        let booting = props(&[
            ("UserspaceTimestampMonotonic", "1000000"),
            ("FinishTimestampMonotonic", "0"),
        ]);
        assert_eq!(boot_secs(&booting), None);
        let backwards = props(&[
            ("UserspaceTimestampMonotonic", "5"),
            ("FinishTimestampMonotonic", "4"),
        ]);
        assert_eq!(boot_secs(&backwards), None);
        assert_eq!(
            boot_secs(&props(&[("FinishTimestampMonotonic", "x")])),
            None
        );
        assert_eq!(boot_secs(&HashMap::new()), None);
    }

    #[test]
    fn parses_journal_lines() {
        let a = "0123456789abcdef0123456789abcdef";
        let b = "fedcba9876543210fedcba9876543210";
        let out = format!(
            "{{\"__CURSOR\":\"s=1\",\"MESSAGE\":\"first\",\"_SYSTEMD_INVOCATION_ID\":\"{a}\"}}\n\
             {{\"MESSAGE\":\"boom: no such file\\n\",\"_SYSTEMD_INVOCATION_ID\":\"{a}\"}}\n\
             {{\"MESSAGE\":[104,105,255],\"_SYSTEMD_INVOCATION_ID\":\"{b}\"}}\n\
             {{\"MESSAGE\":null,\"_SYSTEMD_INVOCATION_ID\":\"c\"}}\n\
             {{\"MESSAGE\":\"no id\"}}\n\
             -- No entries --\n\
             [1,2]\n\
             {{\"MESSAGE\":[1000,\"x\"],\"_SYSTEMD_INVOCATION_ID\":7}}\n\
             {{\"MESSAGE\":\"   \",\"_SYSTEMD_INVOCATION_ID\":\"d\"}}\n\
             {{\"MESSAGE\":\"trunc"
        );
        let logs = parse_journal(&out);
        assert_eq!(logs.len(), 2, "{logs:?}");
        assert_eq!(logs[a], "boom: no such file");
        assert_eq!(logs[b], "hi\u{fffd}");
        assert!(parse_journal("").is_empty());
        assert!(parse_journal("\0\u{1b}[2J\n{").is_empty());
    }

    /// Every parser on every prefix of real answers and on bytes that are not text: no
    /// panic, and the report built from it prints.
    #[test]
    fn garbage_never_panics() {
        let samples: [&[u8]; 6] = [
            b"66 distrod-test-slow.service start running\n1 graphical.target start waiting\n",
            b"Id=a.service\nActiveState=activating\nInactiveExitTimestampMonotonic=18446744073709551615\n\nId=b\n",
            b"{\"MESSAGE\":[255,0,1],\"_SYSTEMD_INVOCATION_ID\":\"0123456789abcdef0123456789abcdef\"}\n",
            b"\xff\xfe\x00=\n\n=\x1b[31m\n\t\r\n-5 a b c\n",
            b"[\"\\ud800\"]\n{\"MESSAGE\":{\"a\":1},\"_SYSTEMD_INVOCATION_ID\":\"x\"}",
            b"",
        ];
        for sample in samples {
            for end in 0..=sample.len() {
                let t = String::from_utf8_lossy(&sample[..end]);
                let listed = parse_jobs(&t);
                let props = by_id(parse_show(&t));
                let logs = parse_journal(&t);
                let units = failed_units(&t);
                let mut r = running_report();
                r.state = Some(t.to_string());
                r.boot_secs = boot_secs(&parse_show(&t).into_iter().next().unwrap_or_default());
                r.jobs = jobs(listed, &props, 0);
                r.jobs.extend(jobs(parse_jobs(&t), &props, u64::MAX));
                r.failed = units
                    .into_iter()
                    .map(|unit| Failed {
                        unit,
                        result: Some(t.to_string()),
                        last_log: logs.values().next().cloned(),
                    })
                    .collect();
                let _ = text(&r);
                serde_json::to_string(&r).unwrap();
            }
        }
    }

    #[test]
    fn invocation_ids() {
        assert!(is_invocation_id("0123456789abcdef0123456789ABCDEF"));
        assert!(!is_invocation_id(""));
        assert!(!is_invocation_id("0123456789abcdef0123456789abcde"));
        assert!(!is_invocation_id("0123456789abcdef0123456789abcdeg"));
        assert!(!is_invocation_id("-0123456789abcdef0123456789abcde"));
    }

    #[test]
    fn durations() {
        assert_eq!(secs(0.0), "0.0 s");
        assert_eq!(secs(4.25), "4.2 s");
        assert_eq!(secs(47.21), "47 s");
        assert_eq!(secs(725.0), "12 min 5 s");
        assert_eq!(secs(11_520.0), "3 h 12 min");
        assert_eq!(secs(183_600.0), "2 d 3 h");
        assert_eq!(secs(f64::NAN), "? s");
        assert_eq!(secs(-1.0), "? s");
        assert!(secs(1e30).ends_with(" h")); // saturates, never panics
    }

    #[test]
    fn cleans_text() {
        assert_eq!(clean("a\u{1b}[2Jb\nc", 100), "a\\u{1b}[2Jb\\nc");
        assert_eq!(clean("abcdef", 3), "abc…");
        assert_eq!(clean("abc", 3), "abc");
        assert_eq!(clean("", 3), "");
        assert_eq!(clean("a\u{202e}b\u{2028}c", 100), "a\\u{202e}b\\u{2028}c");
    }

    fn job(unit: &str, state: &str, age: Option<f64>) -> Job {
        Job {
            id: 1,
            unit: unit.into(),
            kind: "start".into(),
            state: state.into(),
            unit_state: age.map(|_| "activating".into()),
            age_secs: age,
        }
    }

    fn running_report() -> Report {
        Report {
            running: true,
            pid: Some(123),
            uptime_secs: Some(47.21),
            state: Some("starting".into()),
            failed_units: vec!["broken.service".into()],
            rootfs: Some("/".into()),
            boot_secs: None,
            jobs: vec![],
            failed: vec![],
            previous: None,
        }
    }

    #[test]
    fn text_of_a_slow_boot() {
        let mut r = running_report();
        r.jobs = vec![
            job("slow.service", "running", Some(41.3)),
            job("dev-x.device", "running", None),
            job("multi-user.target", "waiting", None),
            job("graphical.target", "waiting", None),
            job("a.target", "waiting", None),
        ];
        r.failed = vec![
            Failed {
                unit: "broken.service".into(),
                result: Some("exit-code".into()),
                last_log: Some("boom: no such file".into()),
            },
            Failed {
                unit: "quiet.service".into(),
                result: Some("signal".into()),
                last_log: None,
            },
        ];
        assert_eq!(
            text(&r),
            "running: yes (pid 123), up 47 s\n\
             state: starting, boot not finished\n\
             jobs: 2 running, 3 waiting\n\
             \x20 slow.service (start, activating for 41 s)\n\
             \x20 dev-x.device (start, running)\n\
             \x20 multi-user.target (start, waiting)\n\
             \x20 and 2 more (2 waiting)\n\
             failed units: 2\n\
             \x20 broken.service (exit-code): \"boom: no such file\"\n\
             \x20 quiet.service (signal): nothing in its journal\n\
             rootfs: /\n"
        );
    }

    #[test]
    fn text_of_a_finished_boot() {
        let mut r = running_report();
        r.state = Some("running".into());
        r.uptime_secs = Some(3.04);
        r.boot_secs = Some(0.62);
        r.failed_units = vec![];
        r.jobs = vec![job("a.service", "waiting", None)];
        assert_eq!(
            text(&r),
            "running: yes (pid 123), up 3.0 s\n\
             state: running, booted in 0.6 s\n\
             jobs: 0 running, 1 waiting\n\
             \x20 a.service (start, waiting)\n\
             failed units: none\n\
             rootfs: /\n"
        );
        r.state = None;
        r.boot_secs = None;
        assert!(text(&r).contains("\nstate: unknown\n"), "{}", text(&r));
        assert_eq!(
            text(&Report::not_running()),
            "the container is not running\n"
        );
    }

    #[test]
    fn text_caps_failed_units() {
        let mut r = running_report();
        r.failed = (0..7)
            .map(|i| Failed {
                unit: format!("u{i}.service"),
                result: None,
                last_log: Some("x".repeat(500)),
            })
            .collect();
        let t = text(&r);
        assert_eq!(
            t.matches("(unknown result)").count(),
            FAILED_LINES - 1,
            "{t}"
        );
        assert!(t.contains("  and 3 more"), "{t}");
        assert!(t.lines().all(|l| l.chars().count() < TEXT_MAX + 40), "{t}");
    }

    #[test]
    fn json_shape() {
        let r = Report::not_running();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"running":false,"pid":null,"uptime_secs":null,"state":null,"failed_units":[],"rootfs":null,"boot_secs":null,"jobs":[],"failed":[],"previous":null}"#
        );
        let mut r = running_report();
        r.jobs = vec![job("slow.service", "running", Some(41.3))];
        r.failed = vec![Failed {
            unit: "broken.service".into(),
            result: Some("exit-code".into()),
            last_log: None,
        }];
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["jobs"][0],
            serde_json::json!({"id": 1, "unit": "slow.service", "type": "start",
                "state": "running", "unit_state": "activating", "age_secs": 41.3})
        );
        assert_eq!(
            v["failed"][0],
            serde_json::json!({"unit": "broken.service", "result": "exit-code", "last_log": null})
        );
    }
}
