//! Predicting from the CAPS NIfTI images (no `clinicadl prepare-data` tensors, or
//! `--from_nifti`): every case gives ClinicaDL 1.6.1's outputs, within the parity tolerances;
//! mixed sources, counts in the dry run and the log, and the refusals.

use std::path::{Path, PathBuf};

use crate::harness::{Case, reference_dir, repo, stderr, tree_digest};
use crate::parity::{check_case_with, fixture};

/// Every prepare-data output of a case's CAPS: image tensors and pre-extracted elements.
fn tensors(case: &Case) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![case.dir.join("caps")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .to_string_lossy()
                .contains("/deeplearning_prepare_data/")
            {
                found.push(path);
            }
        }
    }
    found
}

fn delete_tensors(case: &Case) {
    let files = tensors(case);
    assert!(!files.is_empty(), "no tensor in {}", case.dir.display());
    for file in files {
        std::fs::remove_file(file).unwrap();
    }
}

/// Every case: with its tensors deleted, then with `--from_nifti` on an untouched copy.
fn check_both_ways(source: &Path) {
    check_case_with(source, delete_tensors, &[]);
    check_case_with(source, |_| {}, &["--from_nifti"]);
}

#[test]
fn reference_cases_predicted_from_their_images_match_clinicadl() {
    let Some(reference) = reference_dir() else {
        return;
    };
    for case in [
        "image_classification",
        "image_regression",
        // With --save_tensor and --save_nifti.
        "image_reconstruction",
        // Pre-extracted patches, cut from the images.
        "patch_classification",
    ] {
        check_both_ways(&reference.join(case));
    }
}

#[test]
fn slice_roi_and_patch_cases_predicted_from_their_images_match_clinicadl() {
    for case in [
        "roi_classification",
        "slice_rgb_classification",
        "slice_single_regression",
        "patch_onthefly_overlap",
        "patch_multinetwork",
        "patch_regression",
    ] {
        check_both_ways(&fixture(case));
    }
    check_both_ways(&repo().join("examples/image_classification"));
}

/// The predictions of the `test` results of split 0 (every row, as written).
fn predictions(maps: &Path) -> String {
    std::fs::read_to_string(maps.join("split-0/best-loss/test/test_image_level_prediction.tsv"))
        .unwrap()
}

/// A multi-cohort group whose first cohort has its tensors and whose second has only its
/// images gives the predictions of the single-cohort run from tensors.
#[test]
fn multi_cohort_group_mixing_tensors_and_images_matches_the_single_cohort_run() {
    let single = Case::prepare(&repo().join("examples/image_classification"), "test");
    let out = single.predict(&["-s", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    let d = &case.dir;
    let all = std::fs::read_to_string(d.join("tsv/split/test_baseline.tsv")).unwrap();
    let mut lines = all.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let (first, second) = rows.split_at(rows.len() / 2);
    std::fs::write(
        d.join("tsv/a.tsv"),
        format!("{header}\n{}\n", first.join("\n")),
    )
    .unwrap();
    std::fs::write(
        d.join("tsv/b.tsv"),
        format!("{header}\n{}\n", second.join("\n")),
    )
    .unwrap();
    // Cohort B: a copy of the CAPS without its tensors.
    let images_only = d.join("caps_images");
    crate::harness::copy_tree(&d.join("caps"), &images_only);
    for file in tensors(&case) {
        let copy = images_only.join(file.strip_prefix(d.join("caps")).unwrap());
        std::fs::remove_file(copy).unwrap();
    }
    std::fs::write(
        d.join("tsv/caps.tsv"),
        format!(
            "cohort\tpath\nA\t{}\nB\t{}\n",
            d.join("caps").display(),
            images_only.display()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("tsv/tsvs.tsv"),
        format!(
            "cohort\tdiagnoses\tpath\nA\tAD,CN\t{}\nB\tAD,CN\t{}\n",
            d.join("tsv/a.tsv").display(),
            d.join("tsv/b.tsv").display()
        ),
    )
    .unwrap();
    let maps = case.maps();
    let out = crate::harness::run(
        &[
            "predict",
            maps.to_str().unwrap(),
            "mixed",
            "--caps_directory",
            d.join("tsv/caps.tsv").to_str().unwrap(),
            "--participants_tsv",
            d.join("tsv/tsvs.tsv").to_str().unwrap(),
            "--multi_cohort",
            "--no-gpu",
            "-s",
            "0",
        ],
        d,
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    // Rows of other diagnoses (MCI) are not predicted.
    let diagnosis = header.split('\t').position(|c| c == "diagnosis").unwrap();
    let kept = |rows: &[&str]| {
        rows.iter()
            .filter(|row| ["AD", "CN"].contains(&row.split('\t').nth(diagnosis).unwrap()))
            .count()
    };
    let expected_counts = format!(
        "Sessions: {} read from prepare-data tensors, {} from CAPS NIfTI images",
        kept(first),
        kept(second)
    );
    assert!(err.contains(&expected_counts), "{err}");
    // The same rows, with the cohort column the multi-cohort run adds.
    let mixed = std::fs::read_to_string(
        maps.join("split-0/best-loss/mixed/mixed_image_level_prediction.tsv"),
    )
    .unwrap();
    let strip_cohort = |text: &str| -> Vec<String> {
        let header: Vec<&str> = text.lines().next().unwrap().split('\t').collect();
        let cohort = header.iter().position(|c| *c == "cohort");
        text.lines()
            .map(|line| {
                line.split('\t')
                    .enumerate()
                    .filter(|(i, _)| Some(*i) != cohort)
                    .map(|(_, cell)| cell)
                    .collect::<Vec<_>>()
                    .join("\t")
            })
            .collect()
    };
    assert_eq!(
        strip_cohort(&mixed),
        strip_cohort(&predictions(&single.maps()))
    );
}

/// The dry run says per split how many sessions come from tensors and how many from images.
#[test]
fn dry_run_counts_the_sessions_of_each_source() {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    std::fs::remove_file(tensor_of_t002(&case)).unwrap();
    let out = case.predict(&["--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    let line = text
        .lines()
        .find(|l| l.starts_with("split 0:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("(9 read from prepare-data tensors, 1 from CAPS NIfTI images)"),
        "{line}"
    );
}

/// Runs `case` with `extra`, expecting a refusal naming `needles`, the MAPS unchanged.
fn refused(case: &Case, extra: &[&str], needles: &[&str]) {
    let before = tree_digest(&case.maps());
    let out = case.predict(extra);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "`{needle}` not in:\n{err}");
    }
    assert!(tree_digest(&case.maps()) == before, "the MAPS changed");
}

const T1: &str = "t1_linear/sub-T002_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w";

fn session_dir(case: &Case) -> PathBuf {
    case.dir.join("caps/subjects/sub-T002/ses-M000")
}

fn tensor_of_t002(case: &Case) -> PathBuf {
    session_dir(case).join(format!("deeplearning_prepare_data/image_based/{T1}.pt"))
}

fn image_of_t002(case: &Case) -> PathBuf {
    session_dir(case).join(format!("{T1}.nii.gz"))
}

/// sub-T002's CAPS image becomes a 5 x 4 x 3 one.
fn replace_image_of_t002_with_a_small_one(case: &Case) {
    let header = clinicadl_rs::output::nifti::identity_header();
    clinicadl_rs::output::nifti::write_element(
        &image_of_t002(case),
        &[0.5; 60],
        &[1, 5, 4, 3],
        &header,
    )
    .unwrap();
}

#[test]
fn a_session_with_neither_tensor_nor_image_is_named_with_both_patterns() {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    std::fs::remove_file(tensor_of_t002(&case)).unwrap();
    std::fs::remove_file(image_of_t002(&case)).unwrap();
    refused(
        &case,
        &[],
        &[
            "(sub-T002 | ses-M000): neither a CAPS image matching `*space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz` nor a tensor matching `*space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt` under `",
        ],
    );
}

#[test]
fn from_nifti_refuses_a_session_without_its_image() {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    std::fs::remove_file(image_of_t002(&case)).unwrap();
    refused(
        &case,
        &["--from_nifti"],
        &["(sub-T002 | ses-M000): --from_nifti: no CAPS image matching `"],
    );
}

/// An image of another shape than the model takes, and damaged images, are all reported up
/// front, at once.
#[test]
fn misshaped_and_damaged_images_are_refused_up_front() {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    std::fs::remove_file(tensor_of_t002(&case)).unwrap();
    replace_image_of_t002_with_a_small_one(&case);
    // Another session: not a NIfTI file at all.
    let t003 = case.dir.join("caps/subjects/sub-T003/ses-M000");
    std::fs::remove_file(t003.join(
        "deeplearning_prepare_data/image_based/t1_linear/sub-T003_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt",
    ))
    .unwrap();
    let broken = t003.join(
        "t1_linear/sub-T003_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz",
    );
    std::fs::write(&broken, b"not gzip").unwrap();
    refused(
        &case,
        &[],
        &[
            "2 problems",
            "(sub-T002 | ses-M000): the CAPS image `",
            "has shape [1, 5, 4, 3] but the model expects",
            "(sub-T003 | ses-M000): cannot read the CAPS image `",
        ],
    );
}

/// Slices cut from images: an image of another shape than the first session's is refused.
#[test]
fn an_image_of_another_shape_is_refused_when_elements_are_cut() {
    let case = Case::prepare(&fixture("slice_rgb_classification"), "test");
    delete_tensors(&case);
    replace_image_of_t002_with_a_small_one(&case);
    refused(
        &case,
        &[],
        &[
            "(sub-T002 | ses-M000): the CAPS image `",
            "has shape [1, 5, 4, 3] (as a tensor) but the first session's image has shape [1, ",
        ],
    );
}

/// An image whose voxels are cut short is found when it is read: a clear error naming it, and
/// no results half-written.
#[test]
fn a_truncated_image_ends_the_run_with_its_name_and_no_results() {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    std::fs::remove_file(tensor_of_t002(&case)).unwrap();
    let image = image_of_t002(&case);
    let raw = {
        use std::io::Read;
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&image).unwrap())
            .read_to_end(&mut raw)
            .unwrap();
        raw
    };
    // The header and half of the voxels, uncompressed (a `.nii` read as `.nii.gz` would not
    // decompress: keep the name and write gzip).
    let half = &raw[..352 + (raw.len() - 352) / 2];
    let mut encoder =
        flate2::write::GzEncoder::new(std::fs::File::create(&image).unwrap(), Default::default());
    std::io::Write::write_all(&mut encoder, half).unwrap();
    encoder.finish().unwrap();
    let out = case.predict(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for needle in [
        "the CAPS image `",
        "sub-T002_ses-M000",
        "it is truncated: its header describes [17, 21, 19] float32 voxels",
    ] {
        assert!(err.contains(needle), "`{needle}` not in:\n{err}");
    }
    // The group is defined (as ClinicaDL defines it first), and no result set is left.
    assert!(case.maps().join("groups/test/data.tsv").is_file());
    assert!(crate::harness::results_dirs(&case.maps(), "test").is_empty());
}

/// A NIfTI volume `[X, Y, Z]` read with the nifti crate (C order), padded with zeros (2 voxels
/// before and 3 after on every axis), written to `to` as float32.
fn pad_volume(from: &Path, to: &Path) {
    let volume = crate::harness::read_nifti_f32(from);
    let shape = volume.shape().to_vec();
    let [x, y, z] = [shape[0], shape[1], shape[2]];
    let (px, py, pz) = (x + 5, y + 5, z + 5);
    let mut padded = vec![0.0f32; px * py * pz];
    for i in 0..x {
        for j in 0..y {
            for k in 0..z {
                padded[((i + 2) * py + j + 2) * pz + k + 2] = volume[[i, j, k]];
            }
        }
    }
    let header = clinicadl_rs::output::nifti::identity_header();
    clinicadl_rs::output::nifti::write_element(to, &padded, &[1, px, py, pz], &header).unwrap();
}

/// Pre-extracted ROIs of uncropped images: prepare-data cut them with the masks *without*
/// `_desc-Crop_` (predict names them after the masks with it). The ROI case's images and masks
/// padded with zeros become "uncropped" ones; their ROIs, cropped to the masks' planes, are the
/// same voxels: cut from the images with prepare-data's masks, they give ClinicaDL's outputs.
#[test]
fn pre_extracted_rois_of_uncropped_images_are_cut_with_prepare_datas_masks() {
    let case = Case::prepare(&fixture("roi_classification"), "test");
    delete_tensors(&case);
    let subjects = case.dir.join("caps/subjects");
    for subject in std::fs::read_dir(&subjects).unwrap().flatten() {
        for session in std::fs::read_dir(subject.path()).unwrap().flatten() {
            let Ok(images) = std::fs::read_dir(session.path().join("t1_linear")) else {
                continue;
            };
            for image in images.flatten() {
                let path = image.path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let uncropped = path.with_file_name(name.replace("_desc-Crop", ""));
                pad_volume(&path, &uncropped);
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    let masks = case.dir.join("caps/masks/tpl-MNI152NLin2009cSym");
    for mask in std::fs::read_dir(&masks).unwrap().flatten() {
        let path = mask.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // The cropped masks stay: predict names the pre-extracted files after them.
        pad_volume(&path, &path.with_file_name(name.replace("_desc-Crop", "")));
    }
    let json = case.maps().join("maps.json");
    let text = std::fs::read_to_string(&json).unwrap();
    assert!(
        text.contains("\"use_uncropped_image\": false") && text.contains("\"prepare_dl\": true")
    );
    std::fs::write(
        &json,
        text.replace(
            "\"use_uncropped_image\": false",
            "\"use_uncropped_image\": true",
        )
        .replace("Sym_desc-Crop_res-1x1x1_T1w", "Sym_res-1x1x1_T1w"),
    )
    .unwrap();
    let out = case.predict(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    crate::compare::results_folder(
        &case.maps().join("split-0/best-loss/test"),
        &case.source.join("maps/split-0/best-loss/test"),
        case.settings(),
    );
    // Without prepare-data's masks the run says which are missing.
    for mask in std::fs::read_dir(&masks).unwrap().flatten() {
        if !mask.file_name().to_string_lossy().contains("_desc-Crop_") {
            std::fs::remove_file(mask.path()).unwrap();
        }
    }
    let out = case.predict(&["--overwrite"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("masks without '_desc-Crop_'") && err.contains("_roi-boxA_mask.nii"),
        "{err}"
    );
}
