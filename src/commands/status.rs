//! `distrod status`: whether the container runs and how systemd is doing (root only).
//! Exit code 0 when it runs, 3 when not (as `systemctl status` does for inactive units).

use std::process::ExitCode;

use serde::Serialize;

use crate::cli::StatusArgs;
use crate::linux::{self, enter, state, sys};
use crate::ui::Ui;

#[derive(Debug, Serialize)]
struct Report {
    running: bool,
    pid: Option<i32>,
    uptime_secs: Option<f64>,
    state: Option<String>,
    failed_units: Vec<String>,
    rootfs: Option<String>,
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
        }
    }
}

pub fn run(args: &StatusArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    // The record lives in a root-only directory, and asking systemd needs its namespaces.
    linux::require_root("status")?;
    let report = match state::running() {
        None => Report::not_running(),
        Some(st) => {
            let state = systemctl(st.pid, &["is-system-running"], ui)
                .and_then(|s| s.lines().next().map(str::to_string));
            let failed_units = systemctl(st.pid, &["--failed", "--plain", "--no-legend"], ui)
                .map(|s| failed_units(&s))
                .unwrap_or_default();
            Report {
                running: true,
                pid: Some(st.pid),
                uptime_secs: sys::uptime_of(st.pid).map(|u| (u * 100.0).round() / 100.0),
                state,
                failed_units,
                rootfs: Some(st.rootfs.display().to_string()),
            }
        }
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

fn systemctl(pid: i32, args: &[&str], ui: &Ui) -> Option<String> {
    let cmd = enter::Command {
        argv: std::iter::once("systemctl")
            .chain(args.iter().copied())
            .map(std::ffi::OsString::from)
            .collect(),
        capture: true,
        ..Default::default()
    };
    match enter::run(pid, &cmd, None, ui) {
        Ok(exit) => Some(String::from_utf8_lossy(&exit.stdout).trim().to_string()),
        Err(e) => {
            ui.warn(format_args!("cannot ask systemd: {e:#}"));
            None
        }
    }
}

/// `systemctl --failed --plain --no-legend`: one unit per line, its name first.
fn failed_units(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

fn text(r: &Report) -> String {
    if !r.running {
        return "the container is not running\n".into();
    }
    let mut s = format!("running: yes (pid {})\n", r.pid.unwrap_or(0));
    if let Some(u) = r.uptime_secs {
        s += &format!("uptime: {u:.1} s\n");
    }
    s += &format!("state: {}\n", r.state.as_deref().unwrap_or("unknown"));
    if r.failed_units.is_empty() {
        s += "failed units: none\n";
    } else {
        s += &format!("failed units: {}\n", r.failed_units.join(" "));
    }
    s += &format!("rootfs: {}\n", r.rootfs.as_deref().unwrap_or("?"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_failed_units() {
        let out = "foo.service loaded failed failed Foo\nbar.mount   loaded failed failed Bar\n";
        assert_eq!(failed_units(out), ["foo.service", "bar.mount"]);
        assert!(failed_units("").is_empty());
    }

    #[test]
    fn json_shape_when_not_running() {
        let r = Report::not_running();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"running":false,"pid":null,"uptime_secs":null,"state":null,"failed_units":[],"rootfs":null}"#
        );
    }
}
