//! The first prompt: how long `wsl -d` takes to give a shell inside systemd, on each rootfs
//! tree named in `DISTROD_BENCH_TREES` (`LABEL=TREE,...`; scripts/bench-firstprompt.sh
//! builds them and runs this), in the test suite's WSL stand-in (tests/integration/support:
//! a sandbox with its own namespaces, the `fakewsl` relay opening sessions the way WSL's
//! init does, distrod enabled in it).
//!
//! For each tree and run, each in a fresh sandbox, alternating which goes first:
//! - `plain`: the first session (`echo prompt` through the user's login shell), the
//!   baseline;
//! - `slow`: the same with a 45 s oneshot job in multi-user.target (a first boot's
//!   cloud-init or apt run): the session should not wait for it, so the target is
//!   `slow - plain <= 0.5 s`;
//! - `boot`: `distrod launch`, which returns at READY=1, the whole boot; then the failed
//!   units from `distrod status --json`.
//!
//! Prints the medians per tree and the slow/plain difference and ratio.

#[allow(dead_code, unused_imports)]
#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::fakewsl::{DistrodAt, FakeWsl};
use support::sandbox::{STAGED_DISTROD, Sandbox};

const INSTALLED: &str = "/opt/distrod/bin/distrod";

struct Tree {
    label: String,
    path: PathBuf,
}

fn trees() -> Vec<Tree> {
    let spec = std::env::var("DISTROD_BENCH_TREES").unwrap_or_else(|_| {
        eprintln!("firstprompt: DISTROD_BENCH_TREES=LABEL=TREE,... is not set");
        std::process::exit(2)
    });
    spec.split(',')
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (label, path) = item.split_once('=').unwrap_or_else(|| {
                eprintln!("firstprompt: {item:?} is not LABEL=TREE");
                std::process::exit(2)
            });
            Tree {
                label: label.to_string(),
                path: PathBuf::from(path),
            }
        })
        .collect()
}

/// One first session in a fresh sandbox over `tree`, with the slow job or without.
fn first_prompt(tree: &Tree, slow: bool) -> Duration {
    let wsl = FakeWsl::start(&tree.path, DistrodAt::Staged);
    let sb = &wsl.sandbox;
    sb.run(&[STAGED_DISTROD, "enable"]).success();
    if slow {
        sb.slow_boot(45);
    }
    let t0 = Instant::now();
    let out = wsl.session("distrod", "echo prompt");
    let took = t0.elapsed();
    out.success();
    assert_eq!(out.stdout.trim(), "prompt", "{out}");
    assert!(
        !out.stderr.contains("distrod:"),
        "the session did not go straight in\n{out}"
    );
    sb.run(&[INSTALLED, "stop"]).success();
    took
}

/// `distrod launch` to READY=1 in a fresh sandbox, and the failed units then.
fn boot(tree: &Tree) -> (Duration, Vec<String>) {
    let sb = Sandbox::start(&tree.path);
    let t0 = Instant::now();
    let out = sb.run(&["distrod", "launch"]);
    let took = t0.elapsed();
    out.success();
    let status = sb.run(&["distrod", "status", "--json"]);
    status.success();
    let failed = status.json()["failed_units"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    sb.run(&["distrod", "stop"]).success();
    (took, failed)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let runs: usize = std::env::var("DISTROD_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0)
        .unwrap_or(3);
    let trees = trees();
    if let Some(missing) = trees
        .iter()
        .find(|t| !t.path.join("usr/lib/systemd").is_dir())
    {
        eprintln!(
            "firstprompt: {} ({}) is not a rootfs tree with systemd",
            missing.path.display(),
            missing.label
        );
        std::process::exit(2);
    }
    println!(
        "{:<18} {:>9} {:>9} {:>9} {:>9} {:>7}  failed units",
        "tree", "boot", "plain", "slow", "slow-pl", "ratio"
    );
    for tree in &trees {
        let (mut plain, mut slow, mut boots) = (vec![], vec![], vec![]);
        let mut failed = vec![];
        for run in 0..runs {
            eprintln!("firstprompt: {} run {}/{runs}", tree.label, run + 1);
            if run % 2 == 0 {
                plain.push(first_prompt(tree, false));
                slow.push(first_prompt(tree, true));
            } else {
                slow.push(first_prompt(tree, true));
                plain.push(first_prompt(tree, false));
            }
            let (took, f) = boot(tree);
            boots.push(took);
            failed = f;
        }
        let (p, s, b) = (median(&mut plain), median(&mut slow), median(&mut boots));
        println!(
            "{:<18} {:>8.2}s {:>8.2}s {:>8.2}s {:>+8.2}s {:>7.2}  {}",
            tree.label,
            b.as_secs_f64(),
            p.as_secs_f64(),
            s.as_secs_f64(),
            s.as_secs_f64() - p.as_secs_f64(),
            s.as_secs_f64() / p.as_secs_f64(),
            if failed.is_empty() {
                "none".to_string()
            } else {
                failed.join(" ")
            }
        );
    }
    println!(
        "boot: `distrod launch` to READY=1; plain: the first session's `echo prompt`; slow: \
         the same with a 45 s job in multi-user.target (medians of {runs} runs; target: \
         slow-plain <= 0.50 s)"
    );
}
