//! Error paths: each bad input gives its exit code (1 runtime, 2 usage), a message naming what is
//! wrong and where, no panic, and leaves the MAPS byte-for-byte unchanged.

use std::path::Path;

use crate::harness::{Case, repo, run, stderr, tree_digest};

/// Runs predict on a fresh copy of the example after `mutate`, with the case arguments replaced
/// by `args` when given; checks the exit code, the message and that the MAPS is unchanged.
fn expect_failure(
    mutate: impl FnOnce(&Path),
    args: Option<Vec<String>>,
    extra: &[&str],
    code: i32,
    needles: &[&str],
) {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    mutate(&case.dir);
    let before = tree_digest(&case.maps());
    let args: Vec<String> = args
        .map(|a| {
            a.iter()
                .map(|s| s.replace("{case}", &case.dir.to_string_lossy()))
                .collect()
        })
        .unwrap_or(case.args.clone());
    let mut all: Vec<&str> = vec!["predict"];
    all.extend(args.iter().map(String::as_str));
    all.extend(extra);
    let out = run(&all, &case.dir);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code for {extra:?}; stderr:\n{err}"
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(
        err.starts_with("error: ") || err.contains("\nerror: ") || code == 2,
        "{err}"
    );
    for needle in needles {
        assert!(err.contains(needle), "`{needle}` not in:\n{err}");
    }
    assert!(tree_digest(&case.maps()) == before, "the MAPS changed");
}

fn args(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|s| (*s).to_owned()).collect())
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&["predict"], Path::new("."));
    assert_eq!(
        out.status.code(),
        Some(2),
        "no arguments prints the help and fails like click"
    );
    let out = run(
        &["predict", "/nonexistent/maps", "test", "--no-gpu"],
        Path::new("."),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/maps"));
    let out = run(&["predict", "maps", "test", "-s", "x"], Path::new("."));
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["predict", "--help"], Path::new("."));
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--caps_directory",
        "--participants_tsv",
        "--selection_metrics",
        "--n_proc",
        "--batch_size",
        "--no-gpu",
        "--amp",
        "--overwrite",
        "--skip_leak_check",
        "--save_tensor",
        "--label",
        "--diagnoses",
        "--no_labels",
        "--multi_cohort",
        "--split",
    ] {
        assert!(help.contains(option), "help lacks {option}");
    }
}

#[test]
fn amp_on_cpu_is_refused() {
    expect_failure(
        |_| {},
        None,
        &["--amp"],
        2,
        &["AMP is designed to work with modern GPUs. Please add the --gpu flag."],
    );
}

#[test]
fn gpu_without_cuda_is_refused() {
    if tch::Cuda::is_available() {
        return;
    }
    expect_failure(
        |_| {},
        args(&[
            "{case}/maps",
            "test",
            "--caps_directory",
            "{case}/caps",
            "--participants_tsv",
            "{case}/tsv/split/test_baseline.tsv",
        ]),
        &[],
        2,
        &["No GPU is available. Please add the --no-gpu flag to run on CPU."],
    );
}

#[test]
fn save_tensor_on_classification_is_refused() {
    expect_failure(
        |_| {},
        None,
        &["--save_tensor"],
        2,
        &["Cannot save tensors if the network task is not reconstruction"],
    );
    expect_failure(
        |_| {},
        None,
        &["--save_nifti"],
        2,
        &["Cannot save nifti if the network task is not reconstruction"],
    );
}

#[test]
fn missing_maps_json() {
    expect_failure(
        |d| std::fs::remove_file(d.join("maps/maps.json")).unwrap(),
        None,
        &[],
        1,
        &["MAPS was not found", "maps.json"],
    );
}

#[test]
fn invalid_maps_json() {
    expect_failure(
        |d| std::fs::write(d.join("maps/maps.json"), "{ not json").unwrap(),
        None,
        &[],
        1,
        &["not valid JSON", "maps.json"],
    );
}

/// An error that prints its cause is not followed by that cause again.
#[test]
fn a_cause_is_printed_once() {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    std::fs::write(case.maps().join("maps.json"), "{").unwrap();
    let before = tree_digest(&case.maps());
    let out = case.predict(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("EOF while parsing").count(), 1, "{err}");
    assert!(!err.contains("caused by"), "{err}");
    assert!(tree_digest(&case.maps()) == before, "the MAPS changed");
}

#[test]
fn unknown_architecture() {
    expect_failure(
        |d| {
            let p = d.join("maps/maps.json");
            let text = std::fs::read_to_string(&p)
                .unwrap()
                .replace("\"Conv4_FC3\"", "\"Conv9_FC9\"");
            std::fs::write(p, text).unwrap();
        },
        None,
        &[],
        1,
        &["unknown architecture `Conv9_FC9`"],
    );
}

#[test]
fn unknown_split_and_metric() {
    expect_failure(
        |_| {},
        None,
        &["-s", "7"],
        1,
        &["split 7", "trained splits: 0, 1"],
    );
    expect_failure(
        |_| {},
        None,
        &["-sm", "F1_score"],
        1,
        &["metric F1_score", "available metrics: BA, loss"],
    );
}

#[test]
fn missing_checkpoint() {
    expect_failure(
        |d| std::fs::remove_file(d.join("maps/split-1/best-BA/model.pth.tar")).unwrap(),
        None,
        &[],
        1,
        &["split-1/best-BA/model.pth.tar", "does not exist"],
    );
}

#[test]
fn corrupt_checkpoint() {
    expect_failure(
        |d| {
            std::fs::write(
                d.join("maps/split-0/best-loss/model.pth.tar"),
                b"PK\x03\x04garbage",
            )
            .unwrap()
        },
        None,
        &[],
        1,
        &["split-0/best-loss/model.pth.tar"],
    );
}

#[test]
fn new_group_needs_caps_and_tsv() {
    expect_failure(
        |_| {},
        args(&["{case}/maps", "test", "--no-gpu"]),
        &[],
        2,
        &["The data group test does not already exist"],
    );
}

#[test]
fn existing_group_with_other_data_needs_overwrite() {
    expect_failure(
        |d| {
            // Another definition of the group already exists.
            std::fs::create_dir_all(d.join("maps/groups/test")).unwrap();
            std::fs::write(
                d.join("maps/groups/test/data.tsv"),
                "participant_id\tsession_id\tcohort\tdiagnosis\nsub-T001\tses-M000\tsingle\tAD\n",
            )
            .unwrap();
            std::fs::write(
                d.join("maps/groups/test/maps.json"),
                "{\"caps_directory\": \"/x\", \"multi_cohort\": false}",
            )
            .unwrap();
        },
        None,
        &[],
        2,
        &["Data group test is already defined", "overwrite"],
    );
}

#[test]
fn leaking_participants_are_refused() {
    expect_failure(
        |d| {
            std::fs::write(d.join("tsv/leak.tsv"), "participant_id\tsession_id\tdiagnosis\nsub-S001\tses-M000\tAD\nsub-S002\tses-M000\tCN\n").unwrap()
        },
        args(&[
            "{case}/maps",
            "leak",
            "--caps_directory",
            "{case}/caps",
            "--participants_tsv",
            "{case}/tsv/leak.tsv",
            "--no-gpu",
        ]),
        &[],
        1,
        &[
            "already seen during the training step",
            "{'sub-S001', 'sub-S002'}",
        ],
    );
}

#[test]
fn missing_tensor_names_session_and_file() {
    expect_failure(
        |d| {
            // Neither the tensor nor the CAPS image it is made from.
            let dir = d.join("caps/subjects/sub-T003/ses-M000");
            std::fs::remove_dir_all(dir.join("deeplearning_prepare_data")).unwrap();
            std::fs::remove_dir_all(dir.join("t1_linear")).unwrap();
        },
        None,
        &[],
        1,
        &[
            "(sub-T003 | ses-M000): neither a CAPS image matching `*space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz` nor a tensor matching `*space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt` under `",
            "caps/subjects/sub-T003/ses-M000`",
        ],
    );
}

#[test]
fn missing_diagnosis_column() {
    expect_failure(
        |d| {
            std::fs::write(
                d.join("tsv/nodx.tsv"),
                "participant_id\tsession_id\nsub-T001\tses-M000\n",
            )
            .unwrap()
        },
        args(&[
            "{case}/maps",
            "x",
            "--caps_directory",
            "{case}/caps",
            "--participants_tsv",
            "{case}/tsv/nodx.tsv",
            "--no-gpu",
        ]),
        &[],
        1,
        &["'diagnosis' column must be present", "nodx.tsv"],
    );
}

#[test]
fn unknown_label_value() {
    expect_failure(
        |d| {
            std::fs::write(
                d.join("tsv/mci.tsv"),
                "participant_id\tsession_id\tdiagnosis\nsub-T001\tses-M000\tMCI\n",
            )
            .unwrap()
        },
        args(&[
            "{case}/maps",
            "x",
            "--caps_directory",
            "{case}/caps",
            "--participants_tsv",
            "{case}/tsv/mci.tsv",
            "--no-gpu",
            "-d",
            "MCI",
        ]),
        &[],
        1,
        &["(sub-T001 | ses-M000)", "`MCI`", "AD, CN"],
    );
}

#[test]
fn wrong_tensor_shape() {
    expect_failure(
        |d| {
            let p = d.join("maps/maps.json");
            let text =
                std::fs::read_to_string(&p)
                    .unwrap()
                    .replacen("        17,\n", "        18,\n", 1);
            std::fs::write(p, text).unwrap();
        },
        None,
        &[],
        1,
        &[
            "(sub-T001 | ses-M000)",
            "has shape [1, 17, 21, 19]",
            "expects [1, 18, 21, 19]",
        ],
    );
}

#[test]
fn checkpoint_that_does_not_fit_the_network() {
    expect_failure(
        |d| {
            let p = d.join("maps/maps.json");
            let text = std::fs::read_to_string(&p)
                .unwrap()
                .replace("\"output_size\": 2", "\"output_size\": 3");
            std::fs::write(p, text).unwrap();
        },
        None,
        &[],
        1,
        &[
            "best-loss/model.pth.tar",
            "does not fit the Conv4_FC3 network",
            "key `fc.6.weight` has shape [2, 40] in the checkpoint but the network expects [3, 40]",
        ],
    );
}

fn edit_maps_json(d: &Path, from: &str, to: &str) {
    let p = d.join("maps/maps.json");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(p, text.replacen(from, to, 1)).unwrap();
}

fn first_tensor(d: &Path) -> std::path::PathBuf {
    d.join("caps/subjects/sub-T001/ses-M000/deeplearning_prepare_data/image_based/t1_linear/sub-T001_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt")
}

#[test]
fn maps_json_missing_key() {
    expect_failure(
        |d| edit_maps_json(d, "\"input_size\"", "\"input_sizes\""),
        None,
        &[],
        1,
        &["maps.json", "key `input_size` is missing"],
    );
}

#[test]
fn maps_json_unknown_mode_and_task() {
    expect_failure(
        |d| {
            edit_maps_json(
                d,
                "\"mode\": \"image\",\n    \"split\"",
                "\"mode\": \"voxel\",\n    \"split\"",
            )
        },
        None,
        &[],
        1,
        &["Mode voxel is not implemented"],
    );
    expect_failure(
        |d| edit_maps_json(d, "\"classification\"", "\"segmentation\""),
        None,
        &[],
        1,
        &["network_task", "segmentation"],
    );
}

#[test]
fn unusable_architecture_and_bad_loss() {
    expect_failure(
        |d| edit_maps_json(d, "\"Conv4_FC3\"", "\"CAE_half\""),
        None,
        &[],
        1,
        &["CAE_half", "cannot be used"],
    );
    expect_failure(
        |d| edit_maps_json(d, "\"CrossEntropyLoss\"", "\"MSELoss\""),
        None,
        &[],
        1,
        &["Classification loss must be chosen in"],
    );
}

#[test]
fn truncated_checkpoint() {
    expect_failure(
        |d| {
            let p = d.join("maps/split-0/best-BA/model.pth.tar");
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        },
        None,
        &[],
        1,
        &["split-0/best-BA/model.pth.tar"],
    );
}

#[test]
fn checkpoint_asking_for_a_forbidden_global_is_never_run() {
    let marker = std::env::temp_dir().join("clinicadl-rs-pwned");
    let _ = std::fs::remove_file(&marker);
    expect_failure(
        |d| {
            std::fs::copy(
                repo().join("tests/fixtures/torchfile/evil.pt"),
                d.join("maps/split-0/best-loss/model.pth.tar"),
            )
            .unwrap();
        },
        None,
        &[],
        1,
        &["split-0/best-loss/model.pth.tar", "os", "system"],
    );
    assert!(!marker.exists());
}

#[test]
fn truncated_and_non_float_caps_tensors() {
    expect_failure(
        |d| {
            let p = first_tensor(d);
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
        },
        None,
        &[],
        1,
        &["sub-T001_ses-M000"],
    );
    expect_failure(
        |d| {
            std::fs::copy(
                repo().join("tests/fixtures/torchfile/dtypes.pt"),
                first_tensor(d),
            )
            .map(|_| ())
            .unwrap()
        },
        None,
        &[],
        1,
        &["sub-T001_ses-M000"],
    );
}

#[test]
fn participants_tsv_problems() {
    let with = |name: &str| {
        args(&[
            "{case}/maps",
            "x",
            "--caps_directory",
            "{case}/caps",
            "--participants_tsv",
            &format!("{{case}}/tsv/{name}"),
            "--no-gpu",
        ])
    };
    expect_failure(
        |_| {},
        with("nope.tsv"),
        &[],
        2,
        &["--participants_tsv", "nope.tsv", "does not exist"],
    );
    expect_failure(
        |d| std::fs::write(d.join("tsv/empty.tsv"), "").unwrap(),
        with("empty.tsv"),
        &[],
        1,
        &["empty.tsv", "empty"],
    );
    expect_failure(
        |d| {
            std::fs::write(
                d.join("tsv/nopid.tsv"),
                "session_id\tdiagnosis\nses-M000\tAD\n",
            )
            .unwrap()
        },
        with("nopid.tsv"),
        &[],
        1,
        &["nopid.tsv", "participant_id"],
    );
    expect_failure(
        |d| {
            std::fs::write(d.join("tsv/dup.tsv"), "participant_id\tsession_id\tdiagnosis\nsub-T001\tses-M000\tAD\nsub-T001\tses-M000\tAD\n").unwrap()
        },
        with("dup.tsv"),
        &[],
        1,
        &["dup.tsv", "more than once", "sub-T001 ses-M000"],
    );
    expect_failure(
        |d| {
            std::fs::write(
                d.join("tsv/ghost.tsv"),
                "participant_id\tsession_id\tdiagnosis\nsub-T001\tses-M999\tAD\n",
            )
            .unwrap()
        },
        with("ghost.tsv"),
        &[],
        1,
        &["(sub-T001 | ses-M999)", "neither a CAPS image matching"],
    );
    expect_failure(
        |d| {
            std::fs::write(
                d.join("tsv/mcionly.tsv"),
                "participant_id\tsession_id\tdiagnosis\nsub-T001\tses-M000\tMCI\n",
            )
            .unwrap()
        },
        with("mcionly.tsv"),
        &[],
        1,
        &[
            "diagnoses wanted ['AD', 'CN'] were not found",
            "mcionly.tsv",
        ],
    );
}

#[test]
fn label_column_absent() {
    expect_failure(
        |_| {},
        None,
        &["--label", "weight"],
        1,
        &["no label column `weight`"],
    );
}

#[test]
fn multi_cohort_tsv_malformed() {
    expect_failure(
        |d| {
            std::fs::write(d.join("tsv/cohorts.tsv"), "cohort\tdiagnoses\nA\tAD\n").unwrap();
            std::fs::write(d.join("tsv/caps.tsv"), "cohort\tpath\nA\t/x\n").unwrap();
        },
        args(&[
            "{case}/maps",
            "x",
            "--multi_cohort",
            "--caps_directory",
            "{case}/tsv/caps.tsv",
            "--participants_tsv",
            "{case}/tsv/cohorts.tsv",
            "--no-gpu",
        ]),
        &[],
        1,
        &["('cohort', 'diagnoses', 'path')", "cohorts.tsv"],
    );
    expect_failure(
        |_| {},
        args(&[
            "{case}/maps",
            "x",
            "--multi_cohort",
            "--caps_directory",
            "{case}/caps",
            "--participants_tsv",
            "{case}/tsv/split/test_baseline.tsv",
            "--no-gpu",
        ]),
        &[],
        1,
        &["('cohort', 'diagnoses', 'path')"],
    );
}

#[test]
fn corrupt_group_definition() {
    expect_failure(
        |d| {
            std::fs::create_dir_all(d.join("maps/groups/old")).unwrap();
            std::fs::write(
                d.join("maps/groups/old/data.tsv"),
                "participant_id\tsession_id\nsub-T001\tses-M000\n",
            )
            .unwrap();
            std::fs::write(d.join("maps/groups/old/maps.json"), "{").unwrap();
        },
        args(&["{case}/maps", "old", "--no-gpu"]),
        &[],
        1,
        &["groups/old/maps.json", "not valid JSON"],
    );
}

#[test]
fn overwriting_training_groups_is_refused() {
    expect_failure(
        |_| {},
        args(&["{case}/maps", "validation", "--no-gpu", "-o"]),
        &[],
        2,
        &["Cannot overwrite train or validation data group."],
    );
}

#[test]
fn batch_size_zero_is_a_usage_error() {
    expect_failure(|_| {}, None, &["--batch_size", "0"], 2, &["batch_size"]);
}

#[test]
fn negative_values_name_the_option_and_why() {
    for (option, value, needle) in [
        (
            "--batch_size",
            "-3",
            "invalid value '-3' for '--batch_size <INTEGER>': the batch size is a number of elements, at least 1, not -3",
        ),
        (
            "-np",
            "-1",
            "invalid value '-1' for '--n_proc <INTEGER>': the number of reader threads is 0 (read on the main thread) to 256, not -1",
        ),
        (
            "-s",
            "-1",
            "invalid value '-1' for '--split <INTEGER>': splits are numbered from 0",
        ),
    ] {
        expect_failure(|_| {}, None, &[option, value], 2, &[needle]);
    }
}

#[test]
fn data_group_must_be_a_plain_folder_name() {
    for group in ["../escape", "a/b", ".", "..", ".hidden", ""] {
        expect_failure(
            |_| {},
            args(&[
                "--no-gpu",
                "--caps_directory",
                "{case}/caps",
                "--participants_tsv",
                "{case}/tsv/split/test_baseline.tsv",
                "--",
                "{case}/maps",
                group,
            ]),
            &[],
            2,
            &["for '<DATA_GROUP>': a data group is named by one plain folder name"],
        );
    }
}

/// Without labels, a participants TSV without a `diagnosis` column keeps every row
/// (aramis-lab/clinicadl#481); `--diagnoses` then cannot filter and is refused.
#[test]
fn no_labels_keeps_every_row_of_a_tsv_without_diagnosis() {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    let all = std::fs::read_to_string(case.dir.join("tsv/split/test_baseline.tsv")).unwrap();
    let sessions: Vec<String> = all
        .lines()
        .skip(1)
        .map(|l| l.split('\t').take(2).collect::<Vec<_>>().join("\t"))
        .collect();
    std::fs::write(
        case.dir.join("tsv/nodx.tsv"),
        format!("participant_id\tsession_id\n{}\n", sessions.join("\n")),
    )
    .unwrap();
    let maps = case.maps();
    let command = |extra: &[&str]| {
        let mut all = vec![
            "predict",
            maps.to_str().unwrap(),
            "nodx",
            "--caps_directory",
            "caps",
            "--participants_tsv",
            "tsv/nodx.tsv",
            "--no-gpu",
            "--no_labels",
            "-s",
            "0",
        ];
        all.extend(extra);
        run(&all, &case.dir)
    };
    // --diagnoses asks for a filter the TSV cannot give: refused, nothing written.
    let before = tree_digest(&maps);
    let out = command(&["-d", "AD"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nodx.tsv` has no `diagnosis` column, so its rows cannot be kept by diagnosis (['AD'] asked)"),
        "{}",
        stderr(&out)
    );
    assert!(tree_digest(&maps) == before, "the MAPS changed");
    // Without it: every session (the MCI one too, which the training diagnoses would drop).
    let out = command(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let predicted = std::fs::read_to_string(
        maps.join("split-0/best-loss/nodx/nodx_image_level_prediction.tsv"),
    )
    .unwrap();
    assert_eq!(predicted.lines().count() - 1, sessions.len(), "{predicted}");
    assert!(sessions.len() > 10, "the example's TSV has an MCI row");
}

#[test]
fn nan_values_warn_and_run() {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    let mut data = vec![0.5f32; 17 * 21 * 19];
    data[10] = f32::NAN;
    data[20] = 1.0;
    clinicadl_rs::torchfile::write_tensor(&first_tensor(&case.dir), &[1, 17, 21, 19], &data, false)
        .unwrap();
    let out = case.predict(&["-s", "0", "-sm", "loss"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("WARNING: NaN values were found in your images and will be removed.")
    );
}

#[test]
fn constant_image_warns_and_predicts_numbers() {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    let data = vec![3.0f32; 17 * 21 * 19];
    clinicadl_rs::torchfile::write_tensor(&first_tensor(&case.dir), &[1, 17, 21, 19], &data, false)
        .unwrap();
    let out = case.predict(&["-s", "0", "-sm", "loss"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "1 constant image element(s) could not be MinMax-normalised and were set to 0"
        ),
        "{}",
        stderr(&out)
    );
    let tsv = std::fs::read_to_string(
        case.maps()
            .join("split-0/best-loss/test/test_image_level_prediction.tsv"),
    )
    .unwrap();
    let first = tsv.lines().nth(1).unwrap();
    assert!(
        first.starts_with("sub-T001\tses-M000\t0\t0\t")
            && !first.ends_with('\t')
            && !first.contains("\t\t"),
        "{first}"
    );
}

fn tensor_of(d: &Path, participant: &str, session: &str) -> std::path::PathBuf {
    d.join(format!(
        "caps/subjects/{participant}/{session}/deeplearning_prepare_data/image_based/t1_linear/{participant}_{session}_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt"
    ))
}

/// Every CAPS tensor is checked (header only) before anything is written, not just the first
/// session's: three faulty files deep in the group are all named in one message.
#[test]
fn every_caps_tensor_is_checked_before_writing() {
    expect_failure(
        |d| {
            // A float32 tensor of another shape, a truncated file, a dict instead of a tensor.
            std::fs::copy(
                repo().join("tests/fixtures/torchfile/caps_image.pt"),
                tensor_of(d, "sub-T007", "ses-M000"),
            )
            .unwrap();
            let p = tensor_of(d, "sub-T008", "ses-M000");
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
            std::fs::copy(
                repo().join("tests/fixtures/torchfile/dtypes.pt"),
                tensor_of(d, "sub-T006", "ses-M000"),
            )
            .unwrap();
        },
        None,
        &[],
        1,
        &[
            "3 problems with the sessions of",
            "(sub-T007 | ses-M000): tensor `",
            "sub-T007_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt` has shape [1, 5, 4, 3] but the model expects [1, 17, 21, 19] (maps.json `input_size`)",
            "(sub-T008 | ses-M000): `",
            "(sub-T006 | ses-M000): `",
            "holds a dict, not a tensor",
        ],
    );
}

/// Problems of the configuration (splits, metrics, checkpoints) and of the data are reported
/// together, each with the path at fault.
#[test]
fn all_problems_are_reported_at_once() {
    expect_failure(
        |d| {
            std::fs::write(
                d.join("maps/split-0/best-loss/model.pth.tar"),
                b"PK\x03\x04garbage",
            )
            .unwrap();
            std::fs::remove_file(d.join("maps/split-1/best-BA/model.pth.tar")).unwrap();
            std::fs::remove_file(tensor_of(d, "sub-T009", "ses-M000")).unwrap();
            // Nor the CAPS image to read instead.
            std::fs::remove_dir_all(d.join("caps/subjects/sub-T009/ses-M000/t1_linear")).unwrap();
            std::fs::copy(
                repo().join("tests/fixtures/torchfile/caps_image.pt"),
                tensor_of(d, "sub-T002", "ses-M000"),
            )
            .unwrap();
        },
        None,
        &["-s", "0", "-s", "1", "-s", "7", "-sm", "F1_score"],
        1,
        &[
            "problems found before anything was written:",
            "split 7 of --split was not trained in this MAPS (trained splits: 0, 1)",
            "split-0/best-loss/model.pth.tar",
            "split-1/best-BA/model.pth.tar` does not exist",
            "the metric F1_score is not available for split 0",
            "the metric F1_score is not available for split 1",
            "(sub-T009 | ses-M000): neither a CAPS image matching `",
            "2 problems with the sessions of `",
            "tsv/split/test_baseline.tsv` (CAPS `",
            "(sub-T002 | ses-M000): tensor `",
            "has shape [1, 5, 4, 3] but the model expects [1, 17, 21, 19]",
        ],
    );
}

/// Corrupted values in a checkpoint (a flipped byte inside its largest parameter) are caught by
/// the up-front checks (CRC-32), before anything is written.
#[test]
fn corrupted_checkpoint_values_are_caught_up_front() {
    expect_failure(
        |d| {
            let path = d.join("maps/split-1/best-BA/model.pth.tar");
            let mut bytes = std::fs::read(&path).unwrap();
            let (start, size) = {
                let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
                let mut largest = (0, 0);
                for i in 0..archive.len() {
                    let entry = archive.by_index_raw(i).unwrap();
                    if entry.name().unwrap().contains("/data/") && entry.size() > largest.1 {
                        largest = (entry.data_start().unwrap(), entry.size());
                    }
                }
                largest
            };
            assert!(size > 0);
            bytes[(start + size / 2) as usize] ^= 0x10;
            std::fs::write(&path, bytes).unwrap();
        },
        None,
        &[],
        1,
        &[
            "cannot load the checkpoint: `",
            "split-1/best-BA/model.pth.tar",
            "are damaged (Invalid checksum: their CRC-32 does not match the one the zip records); restore the file from a copy",
        ],
    );
}
