//! Safety of the MAPS: `--dry-run` writes nothing and plans exactly what a run writes; the
//! group lock refuses a concurrent run and recovers a stale one; a run killed with SIGKILL at
//! any moment leaves whole result sets and a rerun completes with the results of an
//! uninterrupted run.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Case, binary, repo, results_dirs, stderr, tree_digest};

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
            let timed = name.ends_with("description.log") || name.ends_with("run.json");
            let new = expected
                .iter()
                .any(|(n, t)| n == name && (t == text || timed));
            assert!(
                old || new || timed,
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
        // Same machine, same options: the same bytes (description.log and run.json hold the
        // time).
        let rerun = results(&case.maps());
        assert_eq!(rerun.len(), expected.len());
        for ((name, text), (_, want)) in rerun.iter().zip(&expected) {
            if !name.ends_with("description.log") && !name.ends_with("run.json") {
                assert_eq!(
                    text, want,
                    "delay {delay_ms} ms: {name} differs from an uninterrupted run"
                );
            }
        }
        let leftovers: Vec<_> = tree_digest(&case.maps())
            .into_iter()
            .map(|(p, _)| p.to_string_lossy().into_owned())
            .filter(|p| p.contains(".partial-") || p.contains(".old-") || p.contains(".lock"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "delay {delay_ms} ms: leftovers {leftovers:?}"
        );
    }
}

/// Runs `clinicadl-rs predict <args>` inside a private mount namespace (`unshare -m`, root only)
/// after `setup`, a shell snippet run there first. `None` when namespaces are not available.
fn predict_in_namespace(case: &Case, setup: &str, extra: &[&str]) -> Option<std::process::Output> {
    let probe = Command::new("unshare").args(["-m", "true"]).output().ok()?;
    if !probe.status.success() {
        eprintln!("SKIPPED: `unshare -m` is not permitted here");
        return None;
    }
    let mut args: Vec<String> = case.args.clone();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        "set -e\n{setup}\nexec '{}' predict {}",
        binary().display(),
        quoted.join(" ")
    );
    Some(
        Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .current_dir(&case.dir)
            .output()
            .unwrap(),
    )
}

#[test]
fn read_only_maps_is_a_clear_error_and_stays_unchanged() {
    let case = example();
    let before = tree_digest(&case.maps());
    let maps = case.maps().display().to_string();
    let setup = format!("mount --bind '{maps}' '{maps}'\nmount -o remount,bind,ro '{maps}'");
    let Some(out) = predict_in_namespace(&case, &setup, &[]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("the MAPS must be writable") && err.contains("Read-only file system"),
        "{err}"
    );
    assert!(tree_digest(&case.maps()) == before, "the MAPS changed");
}

#[test]
fn full_disk_is_a_clear_error_without_partial_results() {
    let case = example();
    // A previous complete run, whose results must survive.
    assert!(case.predict(&["-s", "0"]).status.success());
    let previous = std::fs::read_to_string(
        case.maps()
            .join("split-0/best-loss/test/test_image_level_prediction.tsv"),
    )
    .unwrap();
    let maps = case.maps().display().to_string();
    // Inside the namespace only: the MAPS moved onto a tiny file system that is then filled up
    // but for three pages (the lock and the first result files fit, the rest does not), predict
    // runs (and fails), and what is left in the MAPS is listed.
    let setup = format!(
        "cp -a '{maps}' /tmp/.maps-copy-$$\nmount -t tmpfs -o size=16m tmpfs '{maps}'\ncp -a /tmp/.maps-copy-$$/. '{maps}/'\nrm -rf /tmp/.maps-copy-$$\ndd if=/dev/zero of='{maps}/.reserve' bs=4k count=3 2>/dev/null\ndd if=/dev/zero of='{maps}/.filler' bs=1k count=999999 2>/dev/null || true\nrm '{maps}/.reserve'"
    );
    let list = format!(
        "set +e\n'{}' predict {} -s 0 --batch_size 3\necho \"rc=$?\"\nfind '{maps}' -name '*partial*' -o -name '*.old-*' -o -name '*.lock'\necho '--'\ncat '{maps}/split-0/best-loss/test/test_image_level_prediction.tsv'",
        binary().display(),
        case.args
            .iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let probe = Command::new("unshare").args(["-m", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: `unshare -m` is not permitted here");
        return;
    }
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &format!("set -e\n{setup}\n{list}")])
        .current_dir(&case.dir)
        .output()
        .unwrap();
    let (stdout, err) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr(&out),
    );
    assert!(stdout.starts_with("rc=1\n"), "{stdout}\n{err}");
    assert!(
        err.contains("No space left on device")
            && err.contains("cannot write `")
            && !err.contains("panicked"),
        "{err}"
    );
    let (leftovers, prediction) = stdout["rc=1\n".len()..].split_once("--\n").unwrap();
    assert!(leftovers.trim().is_empty(), "leftovers: {leftovers}");
    assert_eq!(prediction, previous, "the previous results changed");
}

/// The files `--dry-run` lists for a case, and the files its real run writes (new or changed,
/// relative to the MAPS).
fn planned_and_written(case: &Case, extra: &[&str]) -> (Vec<String>, Vec<String>) {
    let before = tree_digest(&case.maps());
    let mut args = vec!["--dry-run"];
    args.extend(extra);
    let out = case.predict(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut planned: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .map(str::to_owned)
        .collect();
    let out = case.predict(extra);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut written: Vec<String> = tree_digest(&case.maps())
        .into_iter()
        .filter(|(p, c)| c != b"<dir>" && !before.iter().any(|(q, d)| q == p && d == c))
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect();
    planned.sort();
    written.sort();
    (planned, written)
}

/// `--dry-run` lists exactly the files a run writes, in every mode and task the fixtures have:
/// image (classification, regression, reconstruction with every save option), patch (voted,
/// multi-network, regression, cut on the fly), ROI, slice (rgb classification, regression, and
/// one element per image).
#[test]
fn dry_run_lists_exactly_what_each_mode_writes() {
    let fixture = |name: &str| repo().join("tests/fixtures/clinicadl").join(name);
    let mut cases = vec![
        repo().join("examples/image_classification"),
        fixture("roi_classification"),
        fixture("slice_rgb_classification"),
        fixture("slice_single_regression"),
        fixture("patch_onthefly_overlap"),
        fixture("patch_multinetwork"),
        fixture("patch_regression"),
    ];
    if let Some(reference) = crate::harness::reference_dir() {
        // The reconstruction case's command saves tensors and NIfTI images.
        for name in [
            "image_regression",
            "patch_classification",
            "image_reconstruction",
        ] {
            cases.push(reference.join(name));
        }
    }
    for source in cases {
        let case = Case::prepare(&source, "test");
        let (planned, written) = planned_and_written(&case, &[]);
        assert!(!written.is_empty(), "{}", source.display());
        assert_eq!(planned, written, "{}", source.display());
    }
    // One element per image: the image-level files are written, and listed.
    let case = Case::prepare(&fixture("slice_rgb_classification"), "test");
    let json = case.maps().join("maps.json");
    let text = std::fs::read_to_string(&json).unwrap().replace(
        "\"discarded_slices\": [\n            8\n        ]",
        "\"discarded_slices\": [\n            9\n        ]",
    );
    std::fs::write(
        &json,
        text.replace("\"num_networks\": 3", "\"num_networks\": 1"),
    )
    .unwrap();
    let (planned, written) = planned_and_written(&case, &[]);
    assert!(
        written
            .iter()
            .any(|f| f.ends_with("test_image_level_prediction.tsv"))
    );
    assert_eq!(planned, written);
}
