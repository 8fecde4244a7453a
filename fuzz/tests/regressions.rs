//! Runs every seed (`corpus/<target>/`) and every saved crash input
//! (`regressions/<target>/`) through its fuzz target, without the fuzzer: a plain
//! `cargo test` in fuzz/ proves that the inputs which once made a parser panic, hang or
//! overflow no longer do, and that the seeds still pass the targets' checks.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use distrod_fuzz::TARGETS;

/// What one input may take here, unoptimised; the fuzzer's own limit is 10 s.
const SLOW: Duration = Duration::from_secs(60);

fn run_dir(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(kind);
    let mut failures = Vec::new();
    let mut count = 0;
    for (name, run) in TARGETS {
        let dir = root.join(name);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries
            .map(|e| e.expect("read a directory").path())
            .collect();
        files.sort();
        for file in files.into_iter().filter(|f| f.is_file()) {
            let data = fs::read(&file).expect("read an input");
            let t0 = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| run(&data)));
            let took = t0.elapsed();
            count += 1;
            let shown = file
                .strip_prefix(&root)
                .unwrap_or(&file)
                .display()
                .to_string();
            if outcome.is_err() {
                failures.push(format!("{shown}: panicked (message above)"));
            } else if took > SLOW {
                failures.push(format!("{shown}: took {took:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "failed inputs:\n{}",
        failures.join("\n")
    );
    count
}

#[test]
fn saved_crash_inputs_pass_their_targets() {
    run_dir("regressions");
}

#[test]
fn seeds_pass_their_targets() {
    assert!(run_dir("corpus") > 0, "no seeds found");
}

#[test]
fn every_target_has_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, _) in TARGETS {
        let n = fs::read_dir(root.join(name)).map_or(0, |d| d.count());
        assert!(n > 0, "no seeds in corpus/{name}");
    }
}

#[test]
fn targets_binaries_and_script_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut bins: Vec<String> = fs::read_dir(root.join("fuzz_targets"))
        .expect("list fuzz_targets")
        .map(|e| e.expect("read fuzz_targets").path())
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    bins.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(bins, names, "fuzz_targets/ and TARGETS differ");
    let script = fs::read_to_string(root.join("../scripts/fuzz.sh")).expect("read scripts/fuzz.sh");
    for name in &names {
        assert!(
            script.contains(&format!("[{name}]=")),
            "scripts/fuzz.sh has no -max_len for {name}"
        );
    }
}
