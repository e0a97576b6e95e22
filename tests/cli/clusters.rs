//! Clusters: a data group predicted as N shard processes started at once (`--shard K/N`, or
//! `slurm` from the array variables), merged by `clinicadl-rs merge` into exactly the files of
//! one unsharded run; a merge that misses a shard names it and writes nothing; a run killed in
//! the middle of a result set resumes from its journal (`--resume`) to the same bytes; `--json`
//! and `run.json` say what was written and from what.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::harness::{Case, binary, reference_dir, repo, run, stderr, tree_digest};

/// Every result file of `group` (all `split-*/best-*/<group>/` files but the ones holding a
/// time or a path: `description.log`, `run.json`), read whole.
fn results(maps: &Path, group: &str) -> Vec<(String, Vec<u8>)> {
    tree_digest(maps)
        .into_iter()
        .filter(|(p, c)| {
            let p = p.to_string_lossy();
            c != b"<dir>"
                && p.starts_with("split-")
                && p.contains(&format!("/{group}/"))
                && !p.ends_with("description.log")
                && !p.ends_with("run.json")
        })
        .map(|(p, c)| (p.to_string_lossy().into_owned(), c))
        .collect()
}

/// The case's predict command, with `extra`.
fn command(case: &Case, extra: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .arg("predict")
        .args(&case.args)
        .args(extra)
        .current_dir(&case.dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Runs the `n` shards of the case's command at once; each must succeed.
fn run_shards(case: &Case, n: u32, extra: &[&str]) {
    let children: Vec<_> = (1..=n)
        .map(|k| {
            let shard = format!("{k}/{n}");
            let mut all = vec!["--shard", shard.as_str()];
            all.extend(extra);
            command(case, &all).spawn().unwrap()
        })
        .collect();
    for (k, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "shard {}/{n}: {}",
            k + 1,
            stderr(&out)
        );
    }
}

fn merge(maps: &Path, group: &str, extra: &[&str]) -> Output {
    let mut all = vec!["merge", maps.to_str().unwrap(), group];
    all.extend(extra);
    run(&all, maps.parent().unwrap())
}

/// The files of an unsharded run of `source` with `extra`.
fn unsharded(source: &Path, extra: &[&str]) -> Vec<(String, Vec<u8>)> {
    let case = Case::prepare(source, "test");
    let out = case.predict(extra);
    assert!(out.status.success(), "{}", stderr(&out));
    results(&case.maps(), "test")
}

/// Shards of `source` (N = 2, 3, 4, all started at once), merged: the same files as one run.
fn shards_merge_into_one_run(source: &Path, extra: &[&str]) {
    let expected = unsharded(source, extra);
    assert!(!expected.is_empty());
    for n in [2, 3, 4] {
        let case = Case::prepare(source, "test");
        run_shards(&case, n, extra);
        assert!(
            results(&case.maps(), "test").is_empty(),
            "a shard left a file that looks final"
        );
        let out = merge(&case.maps(), "test", &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let merged = results(&case.maps(), "test");
        let names = |f: &[(String, Vec<u8>)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&merged),
            names(&expected),
            "{n} shards of {}",
            source.display()
        );
        for ((name, bytes), (_, want)) in merged.iter().zip(&expected) {
            assert!(
                bytes == want,
                "{n} shards of {}: {name} differs",
                source.display()
            );
        }
        let shards_left: Vec<_> = tree_digest(&case.maps())
            .into_iter()
            .filter(|(p, _)| p.to_string_lossy().contains(".shards"))
            .collect();
        assert!(
            shards_left.is_empty(),
            "the parts are removed after the merge"
        );
        // Merging again is harmless.
        let before = tree_digest(&case.maps());
        let again = merge(&case.maps(), "test", &[]);
        assert!(again.status.success(), "{}", stderr(&again));
        assert!(stderr(&again).contains("Nothing to merge"));
        assert!(tree_digest(&case.maps()) == before);
    }
}

#[test]
fn shards_of_an_image_group_merge_into_one_run() {
    shards_merge_into_one_run(
        &repo().join("examples/image_classification"),
        &["--batch_size", "2"],
    );
}

#[test]
fn shards_of_a_patch_group_merge_into_one_run_with_its_vote() {
    let Some(reference) = reference_dir() else {
        return;
    };
    // 6 sessions of 4 patches in batches of 8: shards of 2 sessions, one of them empty at N = 4.
    shards_merge_into_one_run(&reference.join("patch_classification"), &[]);
}

#[test]
fn shards_of_a_reconstruction_group_merge_with_their_saved_files() {
    let Some(reference) = reference_dir() else {
        return;
    };
    // Its command saves tensors and NIfTI images.
    shards_merge_into_one_run(
        &reference.join("image_reconstruction"),
        &["--batch_size", "2"],
    );
}

#[test]
fn shards_of_a_multi_cohort_group_merge_into_one_run() {
    // The example's test participants as two cohorts (paths with the case placeholder, which
    // `Case::prepare` replaces by the copy's folder).
    let source = tempfile::tempdir().unwrap();
    let d = source.path();
    let status = std::process::Command::new("cp")
        .args([
            "-r",
            &format!(
                "{}/.",
                repo().join("examples/image_classification").display()
            ),
            d.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    crate::harness::write_diagnosis_tsvs(d);
    std::fs::write(
        d.join("tsv/caps.tsv"),
        "cohort\tpath\nA\t/REFERENCE_CASE/caps\nB\t/REFERENCE_CASE/caps\n",
    )
    .unwrap();
    std::fs::write(
        d.join("tsv/cohorts.tsv"),
        "cohort\tdiagnoses\tpath\nA\tAD\t/REFERENCE_CASE/tsv/ad.tsv\nB\tCN\t/REFERENCE_CASE/tsv/cn.tsv\n",
    )
    .unwrap();
    std::fs::write(
        d.join("cmd.txt"),
        "clinicadl predict /REFERENCE_CASE/maps test --multi_cohort --caps_directory /REFERENCE_CASE/tsv/caps.tsv --participants_tsv /REFERENCE_CASE/tsv/cohorts.tsv --no-gpu -s 0\n",
    )
    .unwrap();
    shards_merge_into_one_run(d, &["--batch_size", "3"]);
}

#[test]
fn a_missing_shard_is_named_and_nothing_is_written() {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    // Shards 1 and 3 of 3 ran as tasks 11 and 13 of a SLURM array (from 11); task 12 failed.
    for task in ["11", "13"] {
        let out = command(&case, &["--shard", "slurm", "--batch_size", "2", "-s", "0"])
            .env("SLURM_ARRAY_TASK_ID", task)
            .env("SLURM_ARRAY_TASK_MIN", "11")
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .env("SLURM_ARRAY_JOB_ID", "4242")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let parts = case.maps().join("split-0/best-loss/.test.shards");
    let names: Vec<String> = std::fs::read_dir(&parts)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"shard-1-of-3".to_owned()) && names.contains(&"shard-3-of-3".to_owned())
    );
    let before = tree_digest(&case.maps());
    let out = merge(&case.maps(), "test", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "split 0 best-loss: shard 2 of 3 is missing (not finished, or failed): run it again (SLURM array task 12 of job 4242)"
        ),
        "{}",
        stderr(&out)
    );
    assert!(tree_digest(&case.maps()) == before, "the MAPS changed");
    // Outside an array job, `--shard slurm` is a usage error.
    let out = case.predict(&["--shard", "slurm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--shard slurm needs a SLURM array job"),
        "{}",
        stderr(&out)
    );
}

/// The long case of the harness, in batches of 4.
fn long_case(n: usize) -> (Case, Vec<String>) {
    crate::harness::long_case(n, &["--batch_size", "4"])
}

#[test]
fn a_killed_run_resumes_to_the_same_bytes_without_predicting_again() {
    let (reference, args) = long_case(6000);
    let out = Command::new(binary())
        .args(&args)
        .current_dir(&reference.dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = results(&reference.maps(), "long");
    let (case, args) = long_case(6000);
    // Killed once the journal holds a chunk (chunks go to it every second at most).
    let mut child = Command::new(binary())
        .args(&args)
        .current_dir(&case.dir)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journal = || -> Option<PathBuf> {
        let dir = case.maps().join("split-0/best-loss");
        std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".long.partial-")
            })
            .map(|e| e.path().join("journal.jsonl"))
    };
    let started = std::time::Instant::now();
    loop {
        let chunks = journal()
            .and_then(|j| std::fs::read_to_string(j).ok())
            .map_or(0, |t| t.lines().count().saturating_sub(1));
        if chunks >= 1 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        assert!(started.elapsed().as_secs() < 60, "no chunk in the journal");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        results(&case.maps(), "long").is_empty(),
        "no final file of the killed set"
    );
    let out = Command::new(binary())
        .args(&args)
        .arg("--resume")
        .current_dir(&case.dir)
        .output()
        .unwrap();
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let kept: usize = log
        .lines()
        .find_map(|l| {
            l.split("best-loss: ")
                .nth(1)?
                .split(" of 6000 sessions predicted by the interrupted run")
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no resume line in:\n{log}"));
    assert!(kept > 0 && kept < 6000, "{log}");
    assert!(
        log.contains(&format!("{}/{} images", 6000 - kept, 6000 - kept)),
        "only the rest is predicted:\n{log}"
    );
    assert!(
        results(&case.maps(), "long") == expected,
        "the resumed results differ"
    );
    // A resumed run whose options differ from the journal's is refused.
    let (case, args) = long_case(40);
    std::fs::create_dir_all(
        case.maps()
            .join("split-0/best-loss/.long.partial-4000000000"),
    )
    .unwrap();
    let journal_of_other_run = case
        .maps()
        .join("split-0/best-loss/.long.partial-4000000000/journal.jsonl");
    let out = Command::new(binary())
        .args(&args)
        .arg("--dry-run")
        .current_dir(&case.dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&journal_of_other_run, "{\"version\":\"0\"}\n").unwrap();
    let out = Command::new(binary())
        .args(&args)
        .arg("--resume")
        .current_dir(&case.dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("run without --resume to start again"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn json_output_and_run_records_name_every_file_with_its_digest() {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    let out = case.predict(&["--json", "-s", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(document["data_group"], "test");
    let results = document["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "split 1, loss and BA");
    let maps = case.maps();
    for set in results {
        assert_eq!(set["split"], 1);
        let metrics = &set["metrics"][0];
        assert!(
            metrics["BA"].as_f64().is_some() && metrics["loss"].as_f64().is_some(),
            "{set}"
        );
        let files: Vec<&str> = set["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        let metric = set["selection_metric"].as_str().unwrap();
        let dir = format!("split-1/best-{metric}/test");
        assert_eq!(
            files,
            [
                format!("{dir}/description.log"),
                format!("{dir}/test_image_level_metrics.tsv"),
                format!("{dir}/test_image_level_prediction.tsv"),
                format!("{dir}/run.json"),
            ]
        );
        let record: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(maps.join(&dir).join("run.json")).unwrap(),
        )
        .unwrap();
        for key in [
            "version", "libtorch", "device", "command", "options", "started", "finished", "sha256",
        ] {
            assert!(!record[key].is_null(), "run.json has no `{key}`");
        }
        assert_eq!(record["command"][0], "clinicadl-rs");
        assert_eq!(record["options"]["selection_metric"], metric);
        let digests = record["sha256"].as_object().unwrap();
        // Every digest is the file's, inputs (beside the MAPS too) and outputs alike.
        for (path, digest) in digests {
            let bytes = std::fs::read(maps.join(path)).unwrap();
            assert_eq!(digest, &clinicadl_rs::digest::sha256_hex(&bytes), "{path}");
        }
        for needed in [
            "maps.json".to_owned(),
            format!("split-1/best-{metric}/model.pth.tar"),
            "groups/test/data.tsv".to_owned(),
            format!("{dir}/test_image_level_prediction.tsv"),
            "../caps/subjects/sub-T001/ses-M000/deeplearning_prepare_data/image_based/t1_linear/sub-T001_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt".to_owned(),
        ] {
            assert!(digests.contains_key(&needed), "no digest of {needed}: {digests:?}");
        }
        assert_eq!(
            digests.keys().filter(|k| k.ends_with(".pt")).count(),
            10,
            "the 10 tensors read"
        );
    }
    // An error in --json mode: also on stdout, as JSON.
    let out = case.predict(&["--json", "-s", "9"]);
    assert_eq!(out.status.code(), Some(1));
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["exit_code"], 1);
    assert!(
        error["error"].as_str().unwrap().contains("split 9"),
        "{error}"
    );
}
