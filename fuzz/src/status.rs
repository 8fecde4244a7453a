//! What `distrod status` reads from the container's systemd (`commands::status`): the
//! output of `systemctl show` (`parse_show`, `by_id`, `boot_secs`), of `systemctl
//! list-jobs` (`parse_jobs`, then `jobs`, which adds each unit's state and age and sorts
//! them), of `systemctl --failed` (`failed_units`) and of `journalctl -o json`
//! (`parse_journal`), and the text that `status` prints of the report built from them
//! (`text`, and the same report as JSON). Also the D-Bus answer a waiter reads the manager's
//! `SystemState` from (`runtime::readiness::parse_string_variant`) and what it makes of it
//! (`is_booting`).
//!
//! All of it is the container's output: its own `systemctl`, `journalctl` and system bus,
//! which may be any program and print anything, read as root. `status` reads it as UTF-8
//! with lossy conversion, so the input is too. Each input is tried as each of these outputs
//! whole, then split at NUL bytes (see [`crate::sections`]) into the five answers `status`
//! gets, in the order it asks: the manager's `show`, `list-jobs`, `--failed`, the units'
//! `show` and the journal; a report is built from them as `status` builds it and printed.
//! What is checked is what the module documents: the parsers' shapes, the jobs' order and
//! ages, and a text whose only control characters are its line ends, one line per item
//! shown up to the caps.

use std::collections::HashMap;

use distrod::commands::status::{
    Job, Report, TEXT_MAX, boot_secs, by_id, failed_units, is_invocation_id, jobs, parse_jobs,
    parse_journal, parse_show, system_state, text,
};
use distrod::runtime::readiness::{is_booting, parse_string_variant};

/// Jobs, then failed units, the text lists one per line (then "and N more"): status's
/// `JOB_LINES` and `FAILED_LINES`.
const JOB_LINES: usize = 4;
const FAILED_LINES: usize = 5;
/// The longest line of the text, in chars: three container-provided fields (each at most
/// `TEXT_MAX` chars, a control character escaped into at most 6, `\u{9f}`, then `…`) and
/// distrod's own words and numbers.
const LINE_MAX: usize = 3 * (6 * TEXT_MAX + 1) + 100;
/// CLOCK_MONOTONIC (µs) at which the jobs' ages are taken: the start, about 13 days up, the
/// end of time.
const NOWS: [u64; 3] = [0, 1 << 40, u64::MAX];

pub fn run(data: &[u8]) {
    let whole = String::from_utf8_lossy(data);
    let listed = check_parse_jobs(&whole);
    let props = check_parse_show(&whole);
    for now in NOWS {
        check_jobs(listed.clone(), &props, now);
    }
    check_parse_journal(&whole);
    check_failed_units(&whole);
    check_variant(data);

    let parts = crate::sections(data);
    let part = |i: usize| String::from_utf8_lossy(parts.get(i).copied().unwrap_or_default());
    report(&part(0), &part(1), &part(2), &part(3), &part(4));
}

fn check_parse_jobs(out: &str) -> Vec<Job> {
    let listed = parse_jobs(out);
    assert!(listed.len() <= out.lines().count(), "more jobs than lines");
    for j in &listed {
        for word in [&j.unit, &j.kind, &j.state] {
            assert!(
                !word.is_empty() && !word.contains(char::is_whitespace),
                "not one word: {j:?}"
            );
        }
        assert!(out.contains(&j.id.to_string()), "id not in the text: {j:?}");
        assert!(j.unit_state.is_none() && j.age_secs.is_none(), "{j:?}");
    }
    listed
}

fn check_parse_show(out: &str) -> HashMap<String, HashMap<String, String>> {
    let blocks = parse_show(out);
    assert!(
        blocks.len() <= out.lines().count(),
        "more blocks than lines"
    );
    for b in &blocks {
        assert!(!b.is_empty(), "an empty block");
        for (k, v) in b {
            assert!(!k.contains(['=', '\n']), "key {k:?}");
            assert!(!v.contains('\n'), "value {v:?}");
        }
    }
    let manager = blocks.first().cloned().unwrap_or_default();
    if let Some(b) = boot_secs(&manager) {
        assert!(b.is_finite() && b >= 0.0, "boot took {b} s");
    }
    let ids = by_id(blocks);
    for (id, b) in &ids {
        assert_eq!(b.get("Id"), Some(id), "filed under another id");
    }
    ids
}

/// `jobs`: the same jobs with their unit's state; an age only for a running job whose unit
/// is activating or deactivating; running jobs first, the longest-running first, then by id.
fn check_jobs(
    listed: Vec<Job>,
    props: &HashMap<String, HashMap<String, String>>,
    now: u64,
) -> Vec<Job> {
    let mut ids: Vec<u64> = listed.iter().map(|j| j.id).collect();
    let out = jobs(listed, props, now);
    let mut got: Vec<u64> = out.iter().map(|j| j.id).collect();
    ids.sort_unstable();
    got.sort_unstable();
    assert_eq!(ids, got, "jobs lost or added");
    for j in &out {
        let state = props
            .get(&j.unit)
            .and_then(|p| p.get("ActiveState"))
            .filter(|s| !s.is_empty());
        assert_eq!(j.unit_state.as_ref(), state, "{j:?}");
        if let Some(age) = j.age_secs {
            assert!(age.is_finite() && age >= 0.0, "age {age}: {j:?}");
            assert!(
                j.state == "running"
                    && matches!(j.unit_state.as_deref(), Some("activating" | "deactivating")),
                "an age for {j:?}"
            );
        }
    }
    for w in out.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let (ra, rb) = (a.state == "running", b.state == "running");
        assert!(ra || !rb, "a running job after another: {a:?} {b:?}");
        if ra == rb {
            let (x, y) = (a.age_secs.unwrap_or(-1.0), b.age_secs.unwrap_or(-1.0));
            assert!(x >= y, "a younger job first: {a:?} {b:?}");
            if x == y {
                assert!(a.id <= b.id, "not by id: {a:?} {b:?}");
            }
        }
    }
    out
}

fn check_parse_journal(out: &str) -> HashMap<String, String> {
    let logs = parse_journal(out);
    assert!(logs.len() <= out.lines().count(), "more logs than lines");
    for (id, msg) in &logs {
        assert!(
            !msg.is_empty() && msg.trim_end() == msg,
            "message {msg:?} of {id:?}"
        );
        // What `status` asks the journal for: an ID of systemd's form, 32 hex digits.
        if is_invocation_id(id) {
            assert_eq!(id.len(), 32, "{id:?}");
        }
    }
    logs
}

fn check_failed_units(out: &str) -> Vec<String> {
    let units = failed_units(out);
    assert!(units.len() <= out.lines().count(), "more units than lines");
    for u in &units {
        assert!(
            !u.is_empty() && !u.contains(char::is_whitespace),
            "unit {u:?}"
        );
    }
    units
}

/// The manager's `SystemState` over D-Bus: the input as a reply's body, of signature `v`.
fn check_variant(body: &[u8]) {
    if let Some(s) = parse_string_variant("v", body) {
        assert!(
            s.chars().count() <= body.len(),
            "{s:?} longer than its body"
        );
        let _ = is_booting(&s);
    }
    assert_eq!(parse_string_variant("s", body), None, "not a variant");
}

/// The report `status` builds of its five answers (as its `ask` does), printed.
fn report(manager: &str, listed: &str, failed: &str, units: &str, journal: &str) {
    let manager = parse_show(manager).into_iter().next().unwrap_or_default();
    let listed = check_parse_jobs(listed);
    let failed_units = check_failed_units(failed);
    let props = check_parse_show(units);
    let logs = check_parse_journal(journal);
    let failed = distrod::commands::status::failed(&failed_units, &props, &logs);
    let r = Report {
        running: true,
        pid: Some(4242),
        uptime_secs: Some(47.21),
        state: system_state(&manager),
        failed_units,
        rootfs: Some("/var/lib/distrod/rootfs".into()),
        boot_secs: boot_secs(&manager),
        jobs: check_jobs(listed, &props, NOWS[1]),
        failed,
        // Written by distrod itself, not the container: no line to check here.
        previous: None,
    };
    check_text(&r);
    let json = serde_json::to_string(&r).expect("the report as JSON");
    let back: serde_json::Value = serde_json::from_str(&json).expect("JSON that reads back");
    assert_eq!(back["jobs"].as_array().map(Vec::len), Some(r.jobs.len()));
    assert_eq!(
        back["failed"].as_array().map(Vec::len),
        Some(r.failed.len())
    );
}

/// The text: lines of distrod's making, container text escaped in them. Its only control
/// characters are the line ends, and it has one line for the pid, the state, the jobs'
/// count, each job shown, the failed units' count, each failed unit shown and the rootfs.
fn check_text(r: &Report) {
    let t = text(r);
    assert!(t.ends_with('\n'), "no final newline: {t:?}");
    if let Some(c) = t.chars().find(|&c| c.is_control() && c != '\n') {
        panic!("control character {c:?} in the text: {t:?}");
    }
    let shown = |n: usize, cap: usize| if n > cap { cap } else { n };
    let lines: Vec<&str> = t.lines().collect();
    let expected = 5 + shown(r.jobs.len(), JOB_LINES) + shown(r.failed.len(), FAILED_LINES);
    assert_eq!(lines.len(), expected, "lines of the text: {t:?}");
    for l in &lines {
        assert!(l.chars().count() <= LINE_MAX, "a line too long: {l:?}");
    }
    let booting = r.state.as_deref().is_some_and(is_booting);
    if booting {
        assert!(lines[1].ends_with(", boot not finished"), "{:?}", lines[1]);
    }
    let running = r.jobs.iter().filter(|j| j.state == "running").count();
    let jobs_line = if r.jobs.is_empty() {
        "jobs: none".to_string()
    } else {
        format!(
            "jobs: {running} running, {} waiting",
            r.jobs.len() - running
        )
    };
    assert_eq!(lines[2], jobs_line);
    assert_eq!(
        lines.last().copied(),
        Some("rootfs: /var/lib/distrod/rootfs")
    );
}
