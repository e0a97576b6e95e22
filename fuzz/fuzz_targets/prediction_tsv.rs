//! The validation prediction TSVs that weight soft voting
//! (`split-<k>/best-<m>/validation/validation_<mode>_level_prediction.tsv`): read back into
//! rows for each mode named in the file and each task (from a scratch file: the reader takes a
//! path), then the soft-voting weights, the soft vote and the mean vote over them.

#![no_main]

use clinicadl_rs::ensemble;
use clinicadl_rs::maps::json::Task;
use clinicadl_rs::maps::validation::read_prediction_rows;
use clinicadl_rs_fuzz::scratch_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("validation_image_level_prediction.tsv", data);
    let named = |mode: &str| {
        let column = format!("{mode}_id");
        data.windows(column.len()).any(|w| w == column.as_bytes())
    };
    let modes: Vec<&str> = ["image", "patch", "roi", "slice"]
        .into_iter()
        .filter(|mode| named(mode))
        .collect();
    for mode in if modes.is_empty() {
        vec!["image"]
    } else {
        modes
    } {
        // Reconstruction rows are read as regression ones.
        for task in [Task::Classification, Task::Regression] {
            let Ok(rows) = read_prediction_rows(&path, mode, task) else {
                continue;
            };
            match task {
                Task::Classification => {
                    for threshold in [None, Some(0.5)] {
                        let weights = ensemble::soft_voting_weights(&rows, threshold);
                        let _ = ensemble::soft_vote(&rows, &weights, 2);
                    }
                }
                _ => {
                    let _ = ensemble::mean_vote(&rows);
                }
            }
        }
    }
});
