//! `distrod status` on a boot that is slow and partly broken, in a sandbox (support/sandbox.rs)
//! with the test rootfs: a oneshot unit in multi-user.target that sleeps a minute keeps the
//! boot `starting`, and a service that fails with a known message makes a failed unit.
//! `status --json` and the text form must name both: the slow unit's job with an age that
//! grows as time passes, the waiting target's job without one, the failed unit with its
//! result and its last log line.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Output;
use crate::support::sandbox::{Sandbox, prerequisites};

const SLOW: &str = "distrod-test-slow.service";
const BROKEN: &str = "distrod-test-broken.service";
/// What the broken service says before it exits 3.
const MESSAGE: &str = "boom: no such file /etc/distrod-test.conf";

/// How long the slow job may take to show up (and the broken unit's line to reach the
/// journal) after `launch --no-wait`.
const SHOW_UP: Duration = Duration::from_secs(30);

/// `status --json`, which must succeed (the container runs).
fn status(sb: &Sandbox) -> (Value, Output) {
    let out = sb.distrod(&["status", "--json"]);
    out.success();
    (out.json(), out)
}

fn job<'a>(json: &'a Value, unit: &str) -> Option<&'a Value> {
    json["jobs"].as_array()?.iter().find(|j| j["unit"] == unit)
}

fn failed<'a>(json: &'a Value, unit: &str) -> Option<&'a Value> {
    json["failed"]
        .as_array()?
        .iter()
        .find(|f| f["unit"] == unit)
}

/// Installs the two units, enabled in multi-user.target, into the sandbox's root (the
/// container's rootfs: the distro's own `/`).
fn install_units(sb: &Sandbox) {
    sb.write_file(
        &format!("/etc/systemd/system/{SLOW}"),
        "[Unit]\nDescription=distrod test: a slow boot\n\
         [Service]\nType=oneshot\nExecStart=/bin/sleep 60\n\
         [Install]\nWantedBy=multi-user.target\n",
    );
    sb.write_file(
        &format!("/etc/systemd/system/{BROKEN}"),
        format!(
            "[Unit]\nDescription=distrod test: a broken service\n\
             [Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo \"{MESSAGE}\" >&2; exit 3'\n\
             [Install]\nWantedBy=multi-user.target\n"
        ),
    );
    let wants = sb.path("/etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants).expect("create multi-user.target.wants");
    for unit in [SLOW, BROKEN] {
        std::os::unix::fs::symlink(format!("/etc/systemd/system/{unit}"), wants.join(unit))
            .unwrap_or_else(|e| panic!("enable {unit}: {e}"));
    }
}

#[test]
fn status_says_what_is_slow_or_broken() {
    let Some(tree) = prerequisites("status_says_what_is_slow_or_broken") else {
        return;
    };
    let sb = Sandbox::start(&tree);
    install_units(&sb);
    sb.distrod(&["launch", "--no-wait"]).success();

    // Until the slow unit's job has an age and the broken unit's line is in the journal.
    let deadline = Instant::now() + SHOW_UP;
    let (first, before_first) = loop {
        let asked = Instant::now();
        let (json, out) = status(&sb);
        let slow_has_age = job(&json, SLOW).is_some_and(|j| j["age_secs"].is_number());
        let logged = failed(&json, BROKEN).is_some_and(|f| f["last_log"].is_string());
        if slow_has_age && logged {
            break (json, asked);
        }
        assert!(
            Instant::now() < deadline,
            "after {SHOW_UP:?}, status shows no age for {SLOW} or no log line for {BROKEN}\n{out}\n{}",
            sb.distrod(&[
                "exec",
                "--",
                "journalctl",
                "--no-pager",
                "-n",
                "30",
                "-u",
                BROKEN
            ])
        );
        thread::sleep(Duration::from_millis(200));
    };
    let after_first = Instant::now();
    eprintln!(
        "status --json ({:?}):\n{first:#}",
        after_first - before_first
    );

    assert_eq!(first["running"], true, "{first:#}");
    assert_eq!(
        first["state"], "starting",
        "the slow unit holds the boot\n{first:#}"
    );
    assert!(
        first["boot_secs"].is_null(),
        "the boot is not finished\n{first:#}"
    );
    let uptime = first["uptime_secs"].as_f64().expect("uptime_secs");

    let slow = job(&first, SLOW).unwrap();
    assert_eq!(slow["type"], "start", "{first:#}");
    assert_eq!(slow["state"], "running", "{first:#}");
    assert_eq!(slow["unit_state"], "activating", "{first:#}");
    let age1 = slow["age_secs"].as_f64().unwrap();
    assert!(
        age1 >= 0.0 && age1 <= uptime + 0.05,
        "{SLOW} activating for {age1} s, longer than systemd runs ({uptime} s)\n{first:#}"
    );
    // multi-user.target waits for the slow unit: a waiting job, no age.
    let target = job(&first, "multi-user.target")
        .unwrap_or_else(|| panic!("no job for multi-user.target\n{first:#}"));
    assert_eq!(target["state"], "waiting", "{first:#}");
    assert!(
        target["age_secs"].is_null(),
        "a waiting job has no age\n{first:#}"
    );

    let failed_units: Vec<&str> = first["failed_units"]
        .as_array()
        .expect("failed_units")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(failed_units.contains(&BROKEN), "{first:#}");
    let broken = failed(&first, BROKEN).unwrap();
    assert_eq!(broken["result"], "exit-code", "{first:#}");
    assert_eq!(broken["last_log"], MESSAGE, "{first:#}");

    // Two seconds later the slow unit's age grew by as much as the time that passed
    // between the two answers, no more, no less.
    thread::sleep(Duration::from_secs(2));
    let before_second = Instant::now();
    let (second, out) = status(&sb);
    let after_second = Instant::now();
    let age2 = job(&second, SLOW)
        .and_then(|j| j["age_secs"].as_f64())
        .unwrap_or_else(|| panic!("{SLOW} no longer has an age\n{out}"));
    let grew = age2 - age1;
    let least = (before_second - after_first).as_secs_f64() - 0.02;
    let most = (after_second - before_first).as_secs_f64() + 0.02;
    assert!(
        grew >= least && grew <= most,
        "{SLOW}'s age went from {age1} to {age2} s, expected it to grow by {least:.2}..{most:.2}\n{out}"
    );
    assert_eq!(second["state"], "starting", "{out}");

    // The text form says the same, one fact a line.
    let text = sb.distrod(&["status"]);
    assert_eq!(text.code(), Some(0), "{text}");
    eprintln!("status:\n{}", text.stdout);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("running: yes (pid ")),
        "{text}"
    );
    assert!(
        lines.contains(&"state: starting, boot not finished"),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("  {SLOW} (start, activating for "))),
        "{text}"
    );
    // At least multi-user.target's job waits (which waiting jobs are listed depends on
    // how many there are).
    assert!(
        lines.iter().any(|l| l.starts_with("jobs: ")
            && l.split_whitespace()
                .nth(3)
                .and_then(|n| n.parse::<u32>().ok())
                >= Some(1)
            && l.ends_with(" waiting")),
        "{text}"
    );
    assert!(
        lines.contains(&format!("  {BROKEN} (exit-code): \"{MESSAGE}\"").as_str()),
        "{text}"
    );
    assert!(lines.contains(&"rootfs: /"), "{text}");

    sb.distrod(&["stop"]).success();
    let stopped = sb.distrod(&["status", "--json"]);
    assert_eq!(stopped.code(), Some(3), "status after stop\n{stopped}");
    let stopped = stopped.json();
    assert_eq!(stopped["running"], false, "{stopped:#}");
    assert_eq!(stopped["jobs"], serde_json::json!([]), "{stopped:#}");
    assert_eq!(stopped["failed"], serde_json::json!([]), "{stopped:#}");
}
