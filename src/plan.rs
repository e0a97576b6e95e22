//! One list of everything a run writes, computed from the checked [`PredictConfig`]: the group
//! definition when it is written, and for each split and selection metric the result set's
//! folder and files. `--dry-run` prints it (`output::dry_run`) and the run driver (`run.rs`)
//! writes exactly it, so the two cannot disagree.
//!
//! ClinicaDL: the files of `MapsManager.predict`, `_test_loader` and `_ensemble_prediction`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::config::{GroupAction, PredictConfig, SaveOptions};
use crate::maps::json::{MapsJson, Mode, Task};
use crate::maps::layout::results_tsv_name;

/// Everything a run writes.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Whether `groups/<group>/data.tsv` and `maps.json` are written.
    pub writes_group: bool,
    /// The result sets, in the order they are written.
    pub result_sets: Vec<ResultSetPlan>,
}

/// One `split-<k>/best-<m>/<group>/` folder.
#[derive(Debug, Clone)]
pub struct ResultSetPlan {
    /// Index of the split in `PredictConfig::runs`.
    pub run: usize,
    /// The split.
    pub split: u32,
    /// The selection metric.
    pub selection_metric: String,
    /// The folder: the result set's, or a shard's part (`--shard`).
    pub dir: PathBuf,
    /// Its files.
    pub files: ResultFiles,
    /// The sessions predicted, in the group's order: all of them, or the shard's.
    pub sessions: Range<usize>,
    /// Whether the folder is a shard's part (`part.json` and the saved files), not the results.
    pub part: bool,
}

/// The files of a result set (names within its folder).
#[derive(Debug, Clone, PartialEq)]
pub struct ResultFiles {
    /// `<group>_<mode>_level_prediction.tsv`.
    pub prediction: String,
    /// `<group>_<mode>_level_metrics.tsv`, with labels.
    pub metrics: Option<String>,
    /// The image level of patch, slice and ROI MAPS.
    pub image_level: Option<ImageLevel>,
    /// The save options (`tensors/`, `nifti_images/`, `latent_tensors/`).
    pub save: SaveOptions,
}

/// How the image-level files of a patch, slice or ROI MAPS are made.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageLevel {
    /// One element per image: the element-level files, written again under their image-level
    /// names.
    Copy(LevelFiles),
    /// Several elements: soft voting (classification) or the mean (regression).
    Vote(LevelFiles),
}

/// A prediction TSV and, with labels, its metrics TSV.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelFiles {
    /// `<group>_image_level_prediction.tsv`.
    pub prediction: String,
    /// `<group>_image_level_metrics.tsv`.
    pub metrics: Option<String>,
}

/// `description.log`.
pub const DESCRIPTION: &str = "description.log";

/// `run.json`: the record of a result set (`output::record`).
pub const RUN_JSON: &str = "run.json";

/// The sessions that end on a batch boundary in every dataset of a run (see
/// `shards::granularity`): a multi-network MAPS runs one element per session and network.
pub fn granularity(config: &PredictConfig) -> usize {
    let elements = match config.runs.first() {
        Some(_) if config.maps.multi_network => 1,
        Some(run) => run.dataset.elements_per_session,
        None => 1,
    };
    crate::shards::granularity(elements, config.batch_size)
}

impl ResultFiles {
    /// The files of a result set of `group` for this MAPS, with or without labels.
    pub fn new(group: &str, maps: &MapsJson, labels: bool, save: SaveOptions) -> ResultFiles {
        let metrics_of = |level: &str| labels.then(|| results_tsv_name(group, level, "metrics"));
        let image = LevelFiles {
            prediction: results_tsv_name(group, "image", "prediction"),
            metrics: metrics_of("image"),
        };
        // ClinicaDL writes no image level for reconstruction with several elements per image.
        let image_level = match (maps.mode, maps.num_networks <= 1, maps.task) {
            (Mode::Image, _, _) => None,
            (_, true, _) => Some(ImageLevel::Copy(image)),
            (_, false, Task::Reconstruction) => None,
            (_, false, _) => Some(ImageLevel::Vote(image)),
        };
        let level = maps.mode.name();
        ResultFiles {
            prediction: results_tsv_name(group, level, "prediction"),
            metrics: metrics_of(level),
            image_level,
            save,
        }
    }
}

impl Plan {
    /// The plan of a checked configuration.
    pub fn of(config: &PredictConfig) -> Plan {
        let group = &config.group;
        let maps = &config.maps;
        let files = ResultFiles::new(group, maps, config.use_labels, config.save);
        let files = &files;
        let result_sets = config
            .runs
            .iter()
            .enumerate()
            .flat_map(|(index, run)| {
                let sessions = match &config.shard {
                    Some(shard) => shard.sessions(run.dataset.sessions.len(), granularity(config)),
                    None => 0..run.dataset.sessions.len(),
                };
                run.selection_metrics.iter().map(move |metric| {
                    let dir = match &config.shard {
                        Some(shard) => config
                            .layout
                            .shards_dir(run.split, metric, group)
                            .join(shard.part_name()),
                        None => config.layout.results_dir(run.split, metric, group),
                    };
                    ResultSetPlan {
                        run: index,
                        split: run.split,
                        selection_metric: metric.clone(),
                        dir,
                        files: files.clone(),
                        sessions: sessions.clone(),
                        part: config.shard.is_some(),
                    }
                })
            })
            .collect();
        Plan {
            writes_group: matches!(config.group_action, GroupAction::Write { .. }),
            result_sets,
        }
    }

    /// Every file the run writes, relative to the MAPS, in the order it writes them.
    pub fn files(&self, config: &PredictConfig) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if self.writes_group {
            let dir = PathBuf::from("groups").join(&config.group);
            files.extend(["data.tsv", "maps.json"].map(|name| dir.join(name)));
        }
        for set in &self.result_sets {
            let dir = set
                .dir
                .strip_prefix(&config.layout.root)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| set.dir.clone());
            files.extend(set.names(config).into_iter().map(|name| dir.join(name)));
        }
        files
    }
}

impl ResultSetPlan {
    /// The files of the set, relative to its folder: the TSVs, then the saved files of every
    /// element.
    pub fn names(&self, config: &PredictConfig) -> Vec<String> {
        let files = &self.files;
        let mut names = Vec::new();
        if self.part {
            names.push(crate::shards::PART_FILE.to_owned());
        } else {
            names.extend([
                DESCRIPTION.to_owned(),
                RUN_JSON.to_owned(),
                files.prediction.clone(),
            ]);
            names.extend(files.metrics.clone());
            if let Some(ImageLevel::Copy(image) | ImageLevel::Vote(image)) = &files.image_level {
                names.push(image.prediction.clone());
                names.extend(image.metrics.clone());
            }
        }
        let save = files.save;
        if save.any() {
            let dataset = &config.runs[self.run].dataset;
            let mode = config.maps.mode;
            for session in &dataset.sessions[self.sessions.clone()] {
                for &position in &dataset.selected {
                    let id = dataset.extraction.element_id(position);
                    let saved =
                        SavedNames::new(mode, &session.participant_id, &session.session_id, id);
                    if save.tensor {
                        names.extend([saved.tensor_input.clone(), saved.tensor_output.clone()]);
                    }
                    if save.nifti {
                        names.extend([saved.nifti_input.clone(), saved.nifti_output.clone()]);
                    }
                    if save.latent {
                        names.push(saved.latent);
                    }
                }
            }
        }
        names
    }
}

/// The files the save options write for one element, relative to its results folder.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedNames {
    /// `tensors/<p>_<s>_<mode>-<id>_input.pt`.
    pub tensor_input: String,
    /// `tensors/<p>_<s>_<mode>-<id>_output.pt`.
    pub tensor_output: String,
    /// `nifti_images/<p>_<s>_image_input.nii.gz` (other modes: `<p>_<s>_<mode>-<id>_input.nii.gz`,
    /// where ClinicaDL 1.6.1 writes one name per session and overwrites it).
    pub nifti_input: String,
    /// The NIfTI output, named likewise.
    pub nifti_output: String,
    /// `latent_tensors/<p>_<s>_<mode>-<id>_latent.pt`.
    pub latent: String,
}

impl SavedNames {
    /// The names for element `element_id` of a session, in `mode`.
    pub fn new(mode: Mode, participant: &str, session: &str, element_id: usize) -> Self {
        let stem = format!("{participant}_{session}");
        let element = format!("{stem}_{}-{element_id}", mode.name());
        let nifti = if mode == Mode::Image {
            format!("{stem}_image")
        } else {
            element.clone()
        };
        SavedNames {
            tensor_input: format!("tensors/{element}_input.pt"),
            tensor_output: format!("tensors/{element}_output.pt"),
            nifti_input: format!("nifti_images/{nifti}_input.nii.gz"),
            nifti_output: format!("nifti_images/{nifti}_output.nii.gz"),
            latent: format!("latent_tensors/{element}_latent.pt"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_names_carry_the_element_outside_image_mode() {
        let image = SavedNames::new(Mode::Image, "sub-1", "ses-M000", 0);
        assert_eq!(
            image.tensor_input,
            "tensors/sub-1_ses-M000_image-0_input.pt"
        );
        assert_eq!(
            image.nifti_output,
            "nifti_images/sub-1_ses-M000_image_output.nii.gz"
        );
        let patch = SavedNames::new(Mode::Patch, "sub-1", "ses-M000", 3);
        assert_eq!(
            patch.nifti_input,
            "nifti_images/sub-1_ses-M000_patch-3_input.nii.gz"
        );
        assert_eq!(
            patch.latent,
            "latent_tensors/sub-1_ses-M000_patch-3_latent.pt"
        );
    }
}
