//! Safety of the MAPS: `--dry-run` writes nothing and plans exactly what a run writes; the
//! group lock refuses a concurrent run and recovers a stale one; a run killed with SIGKILL at
//! any moment leaves whole result sets and a rerun completes with the results of an
//! uninterrupted run.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Case, assert_tsv_close, binary, repo, results_dirs, stderr, tree_digest};

fn example() -> Case {
    Case::prepare(&repo().join("examples/image_classification"), "test")
}

#[test]
fn dry_run_writes_nothing_and_lists_what_a_run_writes() {
    let case = example();
    let before = tree_digest(&case.maps());
    let out = case.predict(&["--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        tree_digest(&case.maps()) == before,
        "--dry-run changed the MAPS"
    );
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        plan.contains("split 0: selection metrics loss, BA; 10 sessions of 9 participants"),
        "{plan}"
    );
    let planned: Vec<String> = plan
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .map(str::to_owned)
        .collect();
    // The real run writes exactly the planned files.
    assert!(case.predict(&[]).status.success());
    let mut written: Vec<String> = tree_digest(&case.maps())
        .into_iter()
        .filter(|(p, c)| c != b"<dir>" && !before.iter().any(|(q, _)| q == p))
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect();
    let mut planned_sorted = planned.clone();
    written.sort();
    planned_sorted.sort();
    assert_eq!(written, planned_sorted);
    // A failing dry run exits 1 like a real one.
    let out = case.predict(&["--dry-run", "-s", "9"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_second_run_on_the_same_group_is_refused_and_stale_locks_are_recovered() {
    let case = example();
    let lock = case.maps().join(".clinicadl-rs-test.lock");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    // pid 1 is alive: the lock is held.
    std::fs::write(
        &lock,
        format!(
            "pid=1\nhost={}\nstarted=2026-01-01 00:00:00\ncommand=clinicadl-rs predict ...\n",
            host.trim()
        ),
    )
    .unwrap();
    let out = case.predict(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("being predicted by another run (pid 1")
            && err.contains(".clinicadl-rs-test.lock"),
        "{err}"
    );
    assert!(!case.maps().join("groups/test").exists());
    // A dead owner: the lock is recovered.
    std::fs::write(&lock, format!("pid=4000000000\nhost={}\n", host.trim())).unwrap();
    let out = case.predict(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!lock.exists(), "the lock is released");
}

/// The files of every results folder, read whole.
fn results(maps: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for dir in results_dirs(maps, "test") {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = format!(
                "{}/{}",
                dir.strip_prefix(maps).unwrap().display(),
                entry.file_name().to_string_lossy()
            );
            out.push((
                name,
                std::fs::read_to_string(entry.path()).unwrap_or_default(),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn sigkill_at_any_moment_leaves_whole_results_and_a_rerun_completes() {
    // Reference: an uninterrupted run.
    let reference = example();
    assert!(
        reference
            .predict(&["--batch_size", "1", "-np", "0"])
            .status
            .success()
    );
    let expected = results(&reference.maps());
    for delay_ms in [0u64, 60, 150, 300, 500, 800] {
        let case = example();
        // A previous complete run (batch 8: same predictions, another loss).
        assert!(case.predict(&[]).status.success());
        let group_before = std::fs::read(case.maps().join("groups/test/data.tsv")).unwrap();
        let previous = results(&case.maps());
        let mut child = Command::new(binary())
            .arg("predict")
            .args(&case.args)
            .args(["--batch_size", "1", "-np", "0"])
            .current_dir(&case.dir)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Every results folder is whole: the previous set or the new one, never a mix.
        let after = results(&case.maps());
        let mut names: Vec<&String> = after.iter().map(|(n, _)| n).collect();
        names.dedup();
        assert_eq!(
            after.len(),
            previous.len(),
            "delay {delay_ms} ms: files appeared or vanished: {names:?}"
        );
        for (name, text) in &after {
            let old = previous.iter().any(|(n, t)| n == name && t == text);
            let new = expected
                .iter()
                .any(|(n, t)| n == name && (t == text || name.ends_with("description.log")));
            assert!(
                old || new || name.ends_with("description.log"),
                "delay {delay_ms} ms: {name} is neither the old nor the new result"
            );
        }
        assert_eq!(
            std::fs::read(case.maps().join("groups/test/data.tsv")).unwrap(),
            group_before
        );
        // A rerun completes, cleans up, and gives the uninterrupted results.
        let out = case.predict(&["--batch_size", "1", "-np", "0"]);
        assert!(
            out.status.success(),
            "delay {delay_ms} ms: rerun failed: {}",
            stderr(&out)
        );
        let rerun = results(&case.maps());
        assert_eq!(rerun.len(), expected.len());
        for ((name, text), (_, want)) in rerun.iter().zip(&expected) {
            if name.ends_with(".tsv") {
                let rows = if name.ends_with("_metrics.tsv") {
                    Some(2)
                } else {
                    None
                };
                assert_tsv_close(text, want, 1e-5, rows, name);
            }
        }
        let leftovers: Vec<_> = tree_digest(&case.maps())
            .into_iter()
            .map(|(p, _)| p.to_string_lossy().into_owned())
            .filter(|p| p.contains(".partial-") || p.contains(".old-") || p.ends_with(".lock"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "delay {delay_ms} ms: leftovers {leftovers:?}"
        );
    }
}
