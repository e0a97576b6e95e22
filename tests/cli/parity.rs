//! Parity with ClinicaDL 1.6.1: same files, same columns and rows, every value within the
//! tolerances of `compare` (which follow from float32 error analysis, src/tolerance.rs).

use std::path::Path;

use crate::compare::{self, Allowance, Predictions};
use crate::harness::{Case, reference_dir, repo, results_dirs, stderr, tree_digest};

/// Relative paths of every file under `dir`, but the `run.json` records clinicadl-rs adds.
fn files(dir: &Path) -> Vec<String> {
    tree_digest(dir)
        .into_iter()
        .filter(|(p, c)| c != b"<dir>" && !p.ends_with("run.json"))
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect()
}

/// Runs a case and compares every output with what ClinicaDL wrote.
fn check_case(source: &Path) {
    check_case_with(source, |_| {}, &[]);
}

/// [`check_case`] on a copy changed by `change`, with `extra` arguments.
pub fn check_case_with(source: &Path, change: impl Fn(&Case), extra: &[&str]) {
    let case = Case::prepare(source, "test");
    change(&case);
    let out = case.predict(extra);
    assert!(out.status.success(), "predict failed: {}", stderr(&out));
    let expected_maps = source.join("maps");
    // Exactly the files ClinicaDL has after predict, nothing more (no staging leftovers).
    assert_eq!(
        files(&case.maps()),
        files(&expected_maps),
        "file lists differ"
    );
    let placeholder =
        |text: String| text.replace(&case.dir.to_string_lossy().into_owned(), "/REFERENCE_CASE");
    for name in ["data.tsv", "maps.json"] {
        let actual = placeholder(
            std::fs::read_to_string(case.maps().join("groups/test").join(name)).unwrap(),
        );
        let expected =
            std::fs::read_to_string(expected_maps.join("groups/test").join(name)).unwrap();
        assert_eq!(actual, expected, "groups/test/{name}");
    }
    let dirs = results_dirs(&case.maps(), "test");
    assert!(!dirs.is_empty());
    for dir in dirs {
        let rel = dir.strip_prefix(case.maps()).unwrap();
        compare::results_folder(&dir, &expected_maps.join(rel), case.settings());
        let description =
            |text: String| -> Vec<String> { text.lines().skip(1).map(str::to_owned).collect() };
        assert_eq!(
            description(placeholder(
                std::fs::read_to_string(dir.join("description.log")).unwrap()
            )),
            description(
                std::fs::read_to_string(expected_maps.join(rel).join("description.log")).unwrap()
            ),
            "{}/description.log",
            rel.display()
        );
    }
}

/// The allowance of the element-level prediction TSV `expected` of the results folder `dir`.
fn allowance(dir: &Path, expected: &str) -> Allowance {
    let metric_dir = dir.parent().unwrap();
    Allowance::of(
        &Predictions::parse(expected),
        compare::network_error(metric_dir),
    )
}

#[test]
fn image_reconstruction_matches_clinicadl() {
    if let Some(reference) = reference_dir() {
        check_case(&reference.join("image_reconstruction"));
    }
}

/// `--save_nifti` keeps the space of the CAPS image (ClinicaDL writes an identity affine).
#[test]
fn saved_nifti_keeps_the_caps_image_affine() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let case = Case::prepare(&reference.join("image_reconstruction"), "test");
    assert!(case.predict(&["-s", "0"]).status.success());
    let source = case.dir.join("caps/subjects/sub-T002/ses-M000/t1_linear/sub-T002_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz");
    let saved = case
        .maps()
        .join("split-0/best-loss/test/nifti_images/sub-T002_ses-M000_image_output.nii.gz");
    let (s, o) = (
        nifti::NiftiHeader::from_file(&source).unwrap(),
        nifti::NiftiHeader::from_file(&saved).unwrap(),
    );
    assert_eq!(
        (o.srow_x, o.srow_y, o.srow_z, o.sform_code),
        (s.srow_x, s.srow_y, s.srow_z, s.sform_code)
    );
    assert_eq!(o.pixdim[1..4], s.pixdim[1..4]);
    assert_ne!(o.srow_x[3], 0.0, "the source affine has an offset");
}

#[test]
fn image_classification_matches_clinicadl() {
    if let Some(reference) = reference_dir() {
        check_case(&reference.join("image_classification"));
    }
}

#[test]
fn image_regression_matches_clinicadl() {
    if let Some(reference) = reference_dir() {
        check_case(&reference.join("image_regression"));
    }
}

#[test]
fn patch_classification_matches_clinicadl() {
    if let Some(reference) = reference_dir() {
        check_case(&reference.join("patch_classification"));
    }
}

#[test]
fn patch_skip_leak_check_keeps_image_level_results() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let case = Case::prepare(&reference.join("patch_classification"), "test");
    let out = case.predict(&["--skip_leak_check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = case.maps().join("split-0/best-loss/test");
    compare::results_folder(
        &dir,
        &case.source.join("maps/split-0/best-loss/test"),
        case.settings(),
    );
}

#[test]
fn patch_without_validation_predictions_is_refused_up_front() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let case = Case::prepare(&reference.join("patch_classification"), "test");
    let validation = case
        .maps()
        .join("split-0/best-loss/validation/validation_patch_level_prediction.tsv");
    std::fs::remove_file(&validation).unwrap();
    let before = tree_digest(&case.maps());
    let out = case.predict(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("validation_patch_level_prediction.tsv")
            && err.contains("are missing")
            && err.contains("weighted by each element's accuracy"),
        "{err}"
    );
    assert!(tree_digest(&case.maps()) == before, "the MAPS changed");
}

/// The project's own ClinicaDL 1.6.1 cases (tests/fixtures/clinicadl, made by
/// scripts/fixtures/make_clinicadl_cases.py).
pub fn fixture(name: &str) -> std::path::PathBuf {
    repo().join("tests/fixtures/clinicadl").join(name)
}

#[test]
fn roi_classification_matches_clinicadl() {
    check_case(&fixture("roi_classification"));
}

#[test]
fn slice_rgb_classification_matches_clinicadl() {
    check_case(&fixture("slice_rgb_classification"));
}

#[test]
fn slice_single_regression_matches_clinicadl() {
    check_case(&fixture("slice_single_regression"));
}

#[test]
fn patch_on_the_fly_with_overlapping_strides_matches_clinicadl() {
    check_case(&fixture("patch_onthefly_overlap"));
}

#[test]
fn patch_multi_network_matches_clinicadl() {
    check_case(&fixture("patch_multinetwork"));
}

#[test]
fn patch_regression_matches_clinicadl() {
    check_case(&fixture("patch_regression"));
}

#[test]
fn bundled_example_matches_clinicadl() {
    check_case(&repo().join("examples/image_classification"));
}

#[test]
fn rerun_replaces_results_and_keeps_group() {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    assert!(case.predict(&[]).status.success());
    let group = std::fs::read(case.maps().join("groups/test/data.tsv")).unwrap();
    // Same data again: the group is reused, results rewritten.
    let again = case.predict(&["--batch_size", "3"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        std::fs::read(case.maps().join("groups/test/data.tsv")).unwrap(),
        group
    );
    // Reusing the group without data works too.
    let out = crate::harness::run(
        &[
            "predict",
            case.maps().to_str().unwrap(),
            "test",
            "--no-gpu",
            "-s",
            "0",
            "--no_labels",
        ],
        &case.dir,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let results = case.maps().join("split-0/best-loss/test");
    assert!(
        !results.join("test_image_level_metrics.tsv").exists(),
        "no metrics without labels"
    );
    let prediction =
        std::fs::read_to_string(results.join("test_image_level_prediction.tsv")).unwrap();
    assert!(
        prediction
            .lines()
            .skip(1)
            .all(|l| l.split('\t').nth(3) == Some("-1")),
        "{prediction}"
    );
}

#[test]
fn batch_size_changes_loss_not_predictions() {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    let out = case.predict(&["--batch_size", "1", "-np", "0", "-s", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = case.maps().join("split-0/best-loss/test");
    let expected = case.source.join("maps/split-0/best-loss/test");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let theirs = read(&expected.join("test_image_level_prediction.tsv"));
    compare::compare_predictions(
        &read(&dir.join("test_image_level_prediction.tsv")),
        &theirs,
        &allowance(&expected, &theirs),
        "batch 1",
    );
    let loss = |t: &str| -> f64 {
        t.lines()
            .nth(1)
            .unwrap()
            .split('\t')
            .next_back()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (one, eight) = (
        loss(&read(&dir.join("test_image_level_metrics.tsv"))),
        loss(&read(&expected.join("test_image_level_metrics.tsv"))),
    );
    // Σ of 10 batch means vs Σ of 2 batch means (ClinicaDL's definition, docs/ARCHITECTURE.md,
    // "Inference, rows and losses").
    assert!(
        one > 4.0 * eight,
        "batch 1 loss {one} vs batch 8 loss {eight}"
    );
}

#[test]
fn multi_cohort_group_matches_single_cohort_predictions() {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    let d = &case.dir;
    crate::harness::write_diagnosis_tsvs(d);
    let caps = d.join("caps");
    std::fs::write(
        d.join("tsv/caps.tsv"),
        format!("cohort\tpath\nA\t{0}\nB\t{0}\n", caps.display()),
    )
    .unwrap();
    std::fs::write(
        d.join("tsv/cohorts.tsv"),
        format!(
            "cohort\tdiagnoses\tpath\nA\tAD\t{}\nB\tCN,MCI\t{}\n",
            d.join("tsv/ad.tsv").display(),
            d.join("tsv/cn.tsv").display()
        ),
    )
    .unwrap();
    let maps = case.maps();
    let out = crate::harness::run(
        &[
            "predict",
            maps.to_str().unwrap(),
            "mc",
            "--multi_cohort",
            "--caps_directory",
            d.join("tsv/caps.tsv").to_str().unwrap(),
            "--participants_tsv",
            d.join("tsv/cohorts.tsv").to_str().unwrap(),
            "--no-gpu",
            "-s",
            "0",
        ],
        d,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json = std::fs::read_to_string(maps.join("groups/mc/maps.json")).unwrap();
    assert!(
        json.contains("\"multi_cohort\": true") && json.contains("caps.tsv"),
        "{json}"
    );
    let data = std::fs::read_to_string(maps.join("groups/mc/data.tsv")).unwrap();
    assert!(
        data.lines()
            .skip(1)
            .all(|l| l.contains("\tA\tAD") || l.contains("\tB\tCN")),
        "{data}"
    );
    let description =
        std::fs::read_to_string(maps.join("split-0/best-loss/mc/description.log")).unwrap();
    assert!(
        description.contains(&format!(
            "{{'A': PosixPath('{0}'), 'B': PosixPath('{0}')}}",
            caps.display()
        )),
        "{description}"
    );
    // Same predictions as the single-cohort run, session by session.
    let expected = std::fs::read_to_string(
        case.source
            .join("maps/split-0/best-loss/test/test_image_level_prediction.tsv"),
    )
    .unwrap();
    let actual =
        std::fs::read_to_string(maps.join("split-0/best-loss/mc/mc_image_level_prediction.tsv"))
            .unwrap();
    let mut a: Vec<&str> = actual.lines().collect();
    let mut e: Vec<&str> = expected.lines().collect();
    a.sort();
    e.sort();
    let theirs = e.join("\n");
    compare::compare_predictions(
        &a.join("\n"),
        &theirs,
        &allowance(&case.source.join("maps/split-0/best-loss/test"), &theirs),
        "multi-cohort predictions",
    );
}

/// ROI extraction on the fly gives the inputs `clinicadl prepare-data roi` saved: the ROI case run
/// with `prepare_dl: false`, from image tensors made of the CAPS NIfTI images as
/// `clinicadl prepare-data image` makes them, gives ClinicaDL's results.
#[test]
fn roi_on_the_fly_matches_pre_extracted_rois() {
    use nifti::{IntoNdArray, NiftiObject};
    let case = Case::prepare(&fixture("roi_classification"), "test");
    let subjects = case.dir.join("caps/subjects");
    for subject in std::fs::read_dir(&subjects).unwrap().flatten() {
        for session in std::fs::read_dir(subject.path()).unwrap().flatten() {
            let t1 = session.path().join("t1_linear");
            let Ok(entries) = std::fs::read_dir(&t1) else {
                continue;
            };
            for nii in entries.flatten() {
                let name = nii.file_name().to_string_lossy().into_owned();
                let Some(stem) = name.strip_suffix(".nii.gz") else {
                    continue;
                };
                let volume = nifti::ReaderOptions::new()
                    .read_file(nii.path())
                    .unwrap()
                    .into_volume()
                    .into_ndarray::<f32>()
                    .unwrap();
                let shape: Vec<usize> = std::iter::once(1)
                    .chain(volume.shape().iter().copied())
                    .collect();
                let data: Vec<f32> = volume.iter().copied().collect();
                let dir = session
                    .path()
                    .join("deeplearning_prepare_data/image_based/t1_linear");
                std::fs::create_dir_all(&dir).unwrap();
                clinicadl_rs::torchfile::write_tensor(
                    &dir.join(format!("{stem}.pt")),
                    &shape,
                    &data,
                    false,
                )
                .unwrap();
            }
        }
        // Pre-extracted ROIs are no longer there to be used by mistake.
        for session in std::fs::read_dir(subject.path()).unwrap().flatten() {
            let _ =
                std::fs::remove_dir_all(session.path().join("deeplearning_prepare_data/roi_based"));
        }
    }
    let json = case.maps().join("maps.json");
    let text = std::fs::read_to_string(&json).unwrap();
    assert!(text.contains("\"prepare_dl\": true"));
    std::fs::write(
        &json,
        text.replace("\"prepare_dl\": true", "\"prepare_dl\": false"),
    )
    .unwrap();
    let out = case.predict(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    compare::results_folder(
        &case.maps().join("split-0/best-loss/test"),
        &case.source.join("maps/split-0/best-loss/test"),
        case.settings(),
    );
}

/// One element per image (`num_networks` 1) outside image mode: the image-level files are the
/// element-level ones, with `participant_id` and `session_id` kept (1.6.1 drops them).
#[test]
fn one_element_per_image_keeps_the_identifiers() {
    let case = Case::prepare(&fixture("slice_rgb_classification"), "test");
    let json = case.maps().join("maps.json");
    let text = std::fs::read_to_string(&json).unwrap();
    let text = text
        .replace(
            "\"discarded_slices\": [\n            8\n        ]",
            "\"discarded_slices\": [\n            9\n        ]",
        )
        .replace("\"num_networks\": 3", "\"num_networks\": 1");
    std::fs::write(&json, text).unwrap();
    let out = case.predict(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = case.maps().join("split-0/best-loss/test");
    let slices = std::fs::read_to_string(dir.join("test_slice_level_prediction.tsv")).unwrap();
    let images = std::fs::read_to_string(dir.join("test_image_level_prediction.tsv")).unwrap();
    assert!(
        slices
            .lines()
            .skip(1)
            .all(|l| l.split('\t').nth(2) == Some("9")),
        "{slices}"
    );
    assert_eq!(
        images.lines().next().unwrap(),
        "participant_id\tsession_id\timage_id\ttrue_label\tpredicted_label\tproba0\tproba1"
    );
    assert_eq!(
        images.lines().skip(1).collect::<Vec<_>>(),
        slices.lines().skip(1).collect::<Vec<_>>()
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("test_image_level_metrics.tsv")).unwrap(),
        std::fs::read_to_string(dir.join("test_slice_level_metrics.tsv")).unwrap()
    );
}

/// Puts a float32 tensor of shape [1, 5, 4, 3] (a torch-written fixture) in place of `file`.
fn replace_with_small_tensor(file: &Path) {
    assert!(file.is_file(), "{}", file.display());
    std::fs::copy(repo().join("tests/fixtures/torchfile/caps_image.pt"), file).unwrap();
}

/// Runs `case` (prepared by the caller), expecting a refusal that names `needles` and leaves the
/// MAPS unchanged.
pub fn expect_refusal(case: &Case, needles: &[&str]) {
    let before = tree_digest(&case.maps());
    let out = case.predict(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "`{needle}` not in:\n{err}");
    }
    assert!(tree_digest(&case.maps()) == before, "the MAPS changed");
}

/// Pre-extracted patches: every patch file's shape is checked before anything is written.
#[test]
fn patch_file_of_another_shape_is_refused_up_front() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let case = Case::prepare(&reference.join("patch_classification"), "test");
    replace_with_small_tensor(&case.dir.join(
        "caps/subjects/sub-T003/ses-M000/deeplearning_prepare_data/patch_based/t1_linear/sub-T003_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_patchsize-18_stride-18_patch-1_T1w.pt",
    ));
    expect_refusal(
        &case,
        &[
            "(sub-T003 | ses-M000): patch 1 `",
            "patch-1_T1w.pt` has shape [1, 5, 4, 3] but the model expects [1, 18, 18, 18] (maps.json `input_size`)",
        ],
    );
}

/// Slices cut on the fly: every image must have the first session's shape.
#[test]
fn image_of_another_shape_is_refused_up_front_when_slices_are_cut() {
    let case = Case::prepare(&fixture("slice_rgb_classification"), "test");
    replace_with_small_tensor(&case.dir.join(
        "caps/subjects/sub-T002/ses-M000/deeplearning_prepare_data/image_based/t1_linear/sub-T002_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt",
    ));
    expect_refusal(
        &case,
        &[
            "(sub-T002 | ses-M000): tensor `",
            "has shape [1, 5, 4, 3] but the first session's image has shape [1, ",
            "slices are cut from every image at the same places",
        ],
    );
}

/// Every results file of the group `test` in a MAPS, read whole (but `description.log` and
/// `run.json`, which hold the time of the run and the paths).
fn result_bytes(maps: &Path) -> Vec<(String, Vec<u8>)> {
    tree_digest(maps)
        .into_iter()
        .filter(|(p, c)| {
            let p = p.to_string_lossy();
            c != b"<dir>"
                && p.starts_with("split-")
                && p.contains("/test/")
                && !p.ends_with("description.log")
                && !p.ends_with("run.json")
        })
        .map(|(p, c)| (p.to_string_lossy().into_owned(), c))
        .collect()
}

/// Same machine, same options: the same bytes, whatever the number of reader threads (image
/// mode, and patches voted into images).
#[test]
fn the_same_run_gives_the_same_bytes_whatever_n_proc() {
    for source in [
        repo().join("examples/image_classification"),
        fixture("patch_multinetwork"),
    ] {
        let mut outputs = Vec::new();
        for n_proc in ["0", "1", "3"] {
            let case = Case::prepare(&source, "test");
            let out = case.predict(&["-np", n_proc]);
            assert!(out.status.success(), "{}", stderr(&out));
            outputs.push((n_proc, result_bytes(&case.maps())));
        }
        let (_, first) = &outputs[0];
        assert!(first.iter().any(|(p, _)| p.ends_with("_prediction.tsv")));
        for (n_proc, files) in &outputs[1..] {
            let names =
                |f: &[(String, Vec<u8>)]| f.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
            assert_eq!(names(files), names(first), "{}", source.display());
            for ((path, bytes), (_, want)) in files.iter().zip(first) {
                assert!(
                    bytes == want,
                    "{}: {path} differs between -np 0 and -np {n_proc}",
                    source.display()
                );
            }
        }
    }
}
