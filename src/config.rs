//! The one resolve step: command-line options meet the MAPS (`maps.json`, its splits, selection
//! metrics and checkpoints) and the data group, and become one [`PredictConfig`]. Everything is
//! checked here, before any file is written: a config that resolves can run.
//!
//! ClinicaDL: the checks of `clinicadl.predict.predict_cli.cli`, `MapsManager.__init__`,
//! `MapsManager.predict` (up to the loop over splits) and `_check_data_group`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::caps::cohorts::{CapsMapping, caps_mapping, load_multi_cohort_participants};
use crate::caps::dataset::{CheckProgress, Dataset, DatasetOptions};
use crate::caps::participants::{Diagnoses, load_participants};
use crate::cli::PredictArgs;
use crate::error::UsageError;
use crate::maps::group::{
    GroupDefinition, group_data_table, group_exists, leaking_participants, read_group,
    stored_caps_path,
};
use crate::maps::json::{MapsJson, Mode, Task, read_maps_json};
use crate::maps::layout::{MapsLayout, is_training_group};
use crate::networks::{Family, Model};
use crate::problems::Problems;
use crate::shards::Shard;
use crate::torchfile::FileStamp;

/// What happens to the data group definition.
#[derive(Debug, Clone)]
pub enum GroupAction {
    /// Use `groups/<group>/` as it is.
    Reuse,
    /// Write a new definition (new group, or `--overwrite` with new data).
    Write {
        /// The definition to write.
        definition: GroupDefinition,
        /// Whether an existing definition is replaced.
        replace: bool,
    },
}

/// The work of one split: its selection metrics and its dataset.
#[derive(Debug)]
pub struct SplitRun {
    /// The split number.
    pub split: u32,
    /// Selection metrics to predict with (each has a checkpoint).
    pub selection_metrics: Vec<String>,
    /// Their checkpoints, each with the stamp of the file as it was checked.
    pub checkpoints: BTreeMap<PathBuf, FileStamp>,
    /// The group definition of this split.
    pub group: GroupDefinition,
    /// The checked dataset.
    pub dataset: Dataset,
    /// CAPS root of each cohort of the group.
    pub caps: CapsMapping,
}

/// Everything a prediction run needs, checked.
#[derive(Debug)]
pub struct PredictConfig {
    /// The MAPS.
    pub layout: MapsLayout,
    /// Its completed `maps.json`.
    pub maps: MapsJson,
    /// Its network and criterion, checked.
    pub model: Model,
    /// The data group name.
    pub group: String,
    /// What to do with the group definition.
    pub group_action: GroupAction,
    /// The splits, in order.
    pub runs: Vec<SplitRun>,
    /// Where the network runs.
    pub device: Device,
    /// `--amp`: float16 autocast (on the GPU).
    pub amp: bool,
    /// `--batch_size`.
    pub batch_size: usize,
    /// `--n_proc`: reader threads.
    pub n_proc: usize,
    /// Labels are used (not `--no_labels`): losses and metrics are computed.
    pub use_labels: bool,
    /// `--overwrite`.
    pub overwrite: bool,
    /// The save options (reconstruction).
    pub save: SaveOptions,
    /// What the checks met that the user should know (printed before the run).
    pub notices: Vec<Notice>,
    /// `--shard`: the share of the group this process predicts.
    pub shard: Option<Shard>,
    /// `--resume`.
    pub resume: bool,
    /// `--from_nifti`.
    pub from_nifti: bool,
    /// `--json`.
    pub json: bool,
    /// `--label`, when given.
    pub label: Option<String>,
}

/// What the resolve step needs from outside the command line and the files.
pub struct Environment<'a> {
    /// Whether CUDA can be used (asked only for `--gpu`).
    pub cuda_available: bool,
    /// Told how the up-front check of the tensor files goes.
    pub file_check: &'a dyn CheckProgress,
    /// Reads an environment variable (SLURM's, for `--shard slurm`).
    pub variable: &'a dyn Fn(&str) -> Option<String>,
}

/// A message of the checks for the user, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// An INFO line (as ClinicaDL logs it).
    Info(String),
    /// A WARNING line.
    Warning(String),
}

/// Where the network runs (`--gpu` / `--no-gpu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// The CPU.
    Cpu,
    /// The first CUDA device (`CUDA_VISIBLE_DEVICES` chooses it).
    Cuda,
}

/// `--save_tensor`, `--save_nifti`, `--save_latent_tensor`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveOptions {
    /// `--save_tensor`.
    pub tensor: bool,
    /// `--save_nifti`.
    pub nifti: bool,
    /// `--save_latent_tensor`.
    pub latent: bool,
}

impl SaveOptions {
    /// Whether anything is saved.
    pub fn any(&self) -> bool {
        self.tensor || self.nifti || self.latent
    }
}

/// The device of `--gpu/--no-gpu`, `cuda_available` telling whether CUDA can be used
/// (ClinicaDL: the checks of `predict_cli.cli`).
pub fn resolve_device(args: &PredictArgs, cuda_available: bool) -> Result<Device> {
    if args.gpu() {
        if !cuda_available {
            return Err(UsageError::new(
                "No GPU is available. Please add the --no-gpu flag to run on CPU.",
            )
            .into());
        }
        Ok(Device::Cuda)
    } else if args.amp {
        Err(
            UsageError::new("AMP is designed to work with modern GPUs. Please add the --gpu flag.")
                .into(),
        )
    } else {
        Ok(Device::Cpu)
    }
}

fn check_unsupported_options(args: &PredictArgs, maps: &MapsJson, model: &Model) -> Result<()> {
    if maps.task != Task::Reconstruction {
        if args.save_tensor {
            return Err(UsageError::new(
                "Cannot save tensors if the network task is not reconstruction. Please remove --save_tensor option.",
            )
            .into());
        }
        if args.save_nifti {
            return Err(UsageError::new(
                "Cannot save nifti if the network task is not reconstruction. Please remove --save_nifti option.",
            )
            .into());
        }
    }
    if args.save_latent_tensor && model.spec.family() != Family::Vae {
        return Err(UsageError::new(format!(
            "--save_latent_tensor needs a variational autoencoder (Vanilla3DdenseVAE or the CVAE_3D family), and this MAPS's network is {} (ClinicaDL 1.6.1 fails after writing the TSVs)",
            maps.architecture
        ))
        .into());
    }
    Ok(())
}

/// Splits to run: `--split` values (each must be trained: the others are problems), else
/// every trained split.
fn resolve_splits(
    layout: &MapsLayout,
    requested: &[u32],
    problems: &mut Problems,
) -> Result<Vec<u32>> {
    let trained = layout
        .discover_splits()
        .with_context(|| format!("cannot list the MAPS `{}`", layout.root.display()))?;
    if trained.is_empty() {
        bail!(
            "the MAPS `{}` has no trained split (no `{}-<k>` folder)",
            layout.root.display(),
            layout.split_prefix
        );
    }
    if requested.is_empty() {
        return Ok(trained);
    }
    let missing: Vec<String> = requested
        .iter()
        .filter(|s| !trained.contains(s))
        .map(u32::to_string)
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "split {} of --split was not trained in this MAPS (trained splits: {})",
            missing.join(", "),
            trained
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut splits = Vec::new();
    for s in requested {
        if trained.contains(s) && !splits.contains(s) {
            splits.push(*s);
        }
    }
    Ok(splits)
}

/// Selection metrics of a split: `-sm` values, else `loss` (ClinicaDL 1.6.1's default with
/// click ≥ 8.3); each must have its `best-<metric>` folder and checkpoint(s), decodable and
/// fitting the network (the metrics that do not are problems); returned with the checkpoints
/// checked and their stamps.
fn resolve_metrics(
    layout: &MapsLayout,
    maps: &MapsJson,
    model: &Model,
    split: u32,
    requested: &[String],
    problems: &mut Problems,
) -> (Vec<String>, BTreeMap<PathBuf, FileStamp>) {
    let default = ["loss".to_owned()];
    let requested = if requested.is_empty() {
        &default[..]
    } else {
        requested
    };
    let available = layout.discover_selection_metrics(split).unwrap_or_default();
    let mut metrics: Vec<String> = Vec::new();
    let mut checkpoints = BTreeMap::new();
    for metric in requested {
        if metrics.contains(metric) {
            continue;
        }
        if !available.contains(metric) {
            problems.push(format!(
                "the metric {metric} is not available for split {split}: `{}` does not exist (available metrics: {})",
                layout.metric_dir(split, metric).display(),
                if available.is_empty() {
                    "none".to_owned()
                } else {
                    available.join(", ")
                }
            ));
            continue;
        }
        let networks: Vec<Option<usize>> = if maps.multi_network {
            (0..maps.num_networks).map(Some).collect()
        } else {
            vec![None]
        };
        for network in networks {
            let checkpoint = layout.checkpoint(split, metric, network);
            if !checkpoint.is_file() {
                problems.push(format!(
                    "the checkpoint `{}` does not exist",
                    checkpoint.display()
                ));
                continue;
            }
            match crate::networks::check_checkpoint(&model.spec, &checkpoint) {
                Ok(stamp) => {
                    checkpoints.insert(checkpoint, stamp);
                }
                Err(error) => problems.push_error(&error),
            }
        }
        metrics.push(metric.clone());
    }
    (metrics, checkpoints)
}

/// The group definition to use, and what to do with it (docs/ARCHITECTURE.md, "Data groups", with
/// 1.6.1's
/// `--overwrite` defect fixed: new data given with `--overwrite` redefines the group).
fn resolve_group(
    args: &PredictArgs,
    layout: &MapsLayout,
    maps: &MapsJson,
    label: Option<&str>,
    (problems, notices): (&mut Problems, &mut Vec<Notice>),
) -> Result<GroupAction> {
    let group = args.data_group.as_str();
    let exists = group_exists(layout, group);
    let given = args.caps_directory.is_some() || args.participants_tsv.is_some();
    if exists && args.overwrite && is_training_group(group) {
        return Err(UsageError::new("Cannot overwrite train or validation data group.").into());
    }
    if exists && !given {
        return Ok(GroupAction::Reuse);
    }
    let (Some(caps), Some(tsv)) = (&args.caps_directory, &args.participants_tsv) else {
        if exists {
            return Err(UsageError::new(format!(
                "to redefine the data group {group}, give both --caps_directory and --participants_tsv with --overwrite"
            ))
            .into());
        }
        return Err(UsageError::new(format!(
            "The data group {group} does not already exist. Please specify a caps_directory and a tsv_path to create this data group."
        ))
        .into());
    };
    for (path, option) in [(caps, "--caps_directory"), (tsv, "--participants_tsv")] {
        if !path.exists() {
            return Err(UsageError::new(format!(
                "invalid value for {option}: path `{}` does not exist",
                path.display()
            ))
            .into());
        }
    }
    let diagnoses = if args.diagnoses.is_empty() {
        Diagnoses::Training {
            diagnoses: &maps.diagnoses,
            use_labels: args.use_labels(),
        }
    } else {
        Diagnoses::Given(&args.diagnoses)
    };
    let participants = if args.multi_cohort {
        load_multi_cohort_participants(tsv, diagnoses.wanted())?
    } else {
        load_participants(tsv, diagnoses)?
    };
    // Checked now (1.6.1 only reads it once the group is written).
    caps_mapping(caps, args.multi_cohort)?;
    let data = group_data_table(&participants, maps.label.as_deref(), label);
    let definition = GroupDefinition {
        name: group.to_owned(),
        data,
        caps_directory: stored_caps_path(caps)?,
        multi_cohort: args.multi_cohort,
    };
    if exists && !args.overwrite {
        // Identical data given again: reuse the group (1.6.1 refuses any data for an existing group).
        let current = read_group(layout, group, 0).ok();
        if current.is_some_and(|c| {
            c.data == definition.data
                && c.caps_directory == definition.caps_directory
                && c.multi_cohort == definition.multi_cohort
        }) {
            return Ok(GroupAction::Reuse);
        }
        return Err(UsageError::new(format!(
            "Data group {group} is already defined. Please do not give any caps_directory, tsv_path or multi_cohort to use it. To erase {group} please set overwrite to True."
        ))
        .into());
    }
    if args.skip_leak_check {
        notices.push(Notice::Info("Skipping data leakage check".to_owned()));
    } else {
        let leaking = leaking_participants(layout, group, &definition.data)?;
        if !leaking.is_empty() {
            problems.push(format!(
                "Your evaluation set contains participants who were already seen during the training step. The list of common participants is the following: {}.",
                crate::pyrepr::repr_str_set(&leaking)
            ));
        }
    }
    Ok(GroupAction::Write {
        definition,
        replace: exists,
    })
}

/// Checks what the elements of a non-image mode need: one network per element for
/// multi-network MAPS, and the validation predictions that weight soft voting
/// (docs/ARCHITECTURE.md, "Image level").
fn check_elements(
    layout: &MapsLayout,
    maps: &MapsJson,
    group: &str,
    split: u32,
    metrics: &[String],
    dataset: &Dataset,
    problems: &mut Problems,
) {
    let count = dataset.extraction.count();
    if maps.multi_network && count != maps.num_networks {
        problems.push(format!(
            "this multi-network MAPS has {} networks (maps.json `num_networks`) but the images of the data group give {count} {} elements",
            maps.num_networks,
            maps.mode.name()
        ));
    }
    if maps.mode == Mode::Image || maps.num_networks <= 1 || is_training_group(group) {
        return;
    }
    for metric in metrics {
        let path = layout.validation_predictions(split, metric, maps.mode.name());
        if !path.is_file() {
            problems.push(format!(
                "the validation predictions `{}` are missing: image-level results of a {} MAPS are a vote of its {} elements weighted by each element's accuracy on the validation group, and `clinicadl train` writes them; predict the `validation` group first (`clinicadl-rs predict MAPS validation -s {split} -sm {metric}`) to recreate them",
                path.display(),
                maps.mode.name(),
                maps.mode.name()
            ));
        }
    }
}

/// Turns the command line into a checked [`PredictConfig`]. Nothing is written.
pub fn resolve(args: &PredictArgs, environment: &Environment) -> Result<PredictConfig> {
    let maps_dir = &args.input_maps_directory;
    let device = resolve_device(args, environment.cuda_available)?;
    let shard = args
        .shard
        .map(|arg| Shard::resolve(arg, environment.variable))
        .transpose()?;
    let mut notices = Vec::new();
    let layout = MapsLayout::new(maps_dir);
    let maps = read_maps_json(maps_dir)?;
    let model = Model::resolve(&maps)?;
    check_unsupported_options(args, &maps, &model)?;
    let label = args.label.clone().or_else(|| maps.label.clone());
    let mut problems = Problems::default();
    let splits = resolve_splits(&layout, &args.split, &mut problems)?;
    let group_action = resolve_group(
        args,
        &layout,
        &maps,
        args.label.as_deref(),
        (&mut problems, &mut notices),
    )?;
    let use_labels = args.use_labels();
    let mut runs: Vec<SplitRun> = Vec::new();
    for split in splits {
        let (selection_metrics, checkpoints) = resolve_metrics(
            &layout,
            &maps,
            &model,
            split,
            &args.selection_metrics,
            &mut problems,
        );
        let group = match &group_action {
            GroupAction::Write { definition, .. } => definition.clone(),
            GroupAction::Reuse => match read_group(&layout, &args.data_group, split) {
                Ok(group) => group,
                Err(error) => {
                    problems.push_error(&error);
                    continue;
                }
            },
        };
        // Splits usually share their group's data: its dataset is built (and its files
        // checked) once.
        let same_data = runs.iter().find(|run| {
            run.group.data == group.data
                && run.group.caps_directory == group.caps_directory
                && run.group.multi_cohort == group.multi_cohort
        });
        let (caps, dataset) = match same_data {
            Some(run) => (run.caps.clone(), run.dataset.clone()),
            None => {
                // Messages name where the sessions come from: the given participants TSV for
                // a group being defined, else the group's own definition.
                let data_path = match (&group_action, &args.participants_tsv) {
                    (GroupAction::Write { .. }, Some(tsv)) => tsv.clone(),
                    _ => layout
                        .group_definition_dir(&args.data_group, split)
                        .join("data.tsv"),
                };
                let options = DatasetOptions {
                    use_labels,
                    label: label.as_deref(),
                    // Header reads wait on the file system more than on the CPU.
                    threads: (args.n_proc as usize).max(4),
                    from_nifti: args.from_nifti,
                    progress: environment.file_check,
                };
                let built =
                    caps_mapping(&group.caps_directory, group.multi_cohort).and_then(|caps| {
                        Dataset::build(&group.data, &data_path, &caps, &maps, &options)
                            .map(|dataset| (caps, dataset))
                    });
                match built {
                    Ok(built) => built,
                    Err(error) => {
                        problems.push_error(&error);
                        continue;
                    }
                }
            }
        };
        check_elements(
            &layout,
            &maps,
            &args.data_group,
            split,
            &selection_metrics,
            &dataset,
            &mut problems,
        );
        let sources = dataset.sources();
        let sources = Notice::Info(format!(
            "Sessions: {} read from prepare-data tensors, {} from CAPS NIfTI images{}",
            sources.tensors,
            sources.nifti,
            if sources.nifti > 0 {
                " (converted as `clinicadl prepare-data` does)"
            } else {
                ""
            }
        ));
        let warnings = dataset.warnings.iter().cloned().map(Notice::Warning);
        for notice in std::iter::once(sources).chain(warnings) {
            if !notices.contains(&notice) {
                notices.push(notice);
            }
        }
        runs.push(SplitRun {
            split,
            selection_metrics,
            checkpoints,
            group,
            dataset,
            caps,
        });
    }
    problems.check()?;
    Ok(PredictConfig {
        layout,
        maps,
        model,
        group: args.data_group.clone(),
        group_action,
        runs,
        device,
        amp: args.amp,
        batch_size: args.batch_size as usize,
        n_proc: args.n_proc as usize,
        use_labels,
        overwrite: args.overwrite,
        save: SaveOptions {
            tensor: args.save_tensor,
            nifti: args.save_nifti,
            latent: args.save_latent_tensor,
        },
        notices,
        shard,
        resume: args.resume,
        from_nifti: args.from_nifti,
        json: args.json,
        label: args.label.clone(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::caps::dataset::Quiet;
    use crate::cli::{Cli, Command};
    use crate::error::{EXIT_FAILURE, EXIT_USAGE, exit_code};

    /// The bundled example (a MAPS trained by ClinicaDL: 2 splits, `loss` and `BA`).
    fn example() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/image_classification")
    }

    /// `predict <example maps> <group> <extra>` parsed as the command does.
    fn args(group: &str, extra: &[&str]) -> PredictArgs {
        let maps = example().join("maps");
        let mut argv = vec!["clinicadl-rs", "predict", maps.to_str().unwrap(), group];
        argv.extend(extra);
        let Ok(Cli {
            command: Command::Predict(args),
            ..
        }) = crate::cli::parse(argv.iter().map(std::ffi::OsString::from))
        else {
            panic!("{argv:?} does not parse");
        };
        args
    }

    fn resolve_with(args: &PredictArgs, cuda_available: bool) -> Result<PredictConfig> {
        resolve(
            args,
            &Environment {
                cuda_available,
                file_check: &Quiet,
                variable: &|_| None,
            },
        )
    }

    /// A new group of the example's test participants (a name the MAPS does not have).
    fn new_group(extra: &[&str]) -> PredictArgs {
        let (caps, tsv) = (
            example().join("caps"),
            example().join("tsv/split/test_baseline.tsv"),
        );
        let mut all = vec![
            "--caps_directory",
            caps.to_str().unwrap(),
            "--participants_tsv",
            tsv.to_str().unwrap(),
        ];
        all.extend(extra);
        args("fresh", &all)
    }

    #[test]
    fn a_new_group_resolves_to_every_split_and_its_sessions() {
        let config =
            resolve_with(&new_group(&["--no-gpu", "-sm", "loss", "-sm", "BA"]), false).unwrap();
        assert_eq!(config.device, Device::Cpu);
        assert!(matches!(
            config.group_action,
            GroupAction::Write { replace: false, .. }
        ));
        let splits: Vec<u32> = config.runs.iter().map(|r| r.split).collect();
        assert_eq!(splits, [0, 1]);
        for run in &config.runs {
            assert_eq!(run.selection_metrics, ["loss", "BA"]);
            assert_eq!(run.checkpoints.len(), 2);
            // The MCI session is not one of the training diagnoses.
            assert_eq!(run.dataset.sessions.len(), 10);
        }
        assert_eq!((config.batch_size, config.n_proc), (8, 2));
        assert!(config.use_labels);
        // Where the sessions come from, once for the two splits that share their data.
        assert_eq!(
            config.notices,
            [Notice::Info(
                "Sessions: 10 read from prepare-data tensors, 0 from CAPS NIfTI images".to_owned()
            )]
        );
        // The second split reuses the first one's dataset: the same sessions.
        assert_eq!(
            config.runs[0].dataset.sessions,
            config.runs[1].dataset.sessions
        );
    }

    #[test]
    fn the_device_follows_gpu_and_cuda() {
        let error = resolve_with(&new_group(&[]), false).unwrap_err();
        assert_eq!(exit_code(&error), EXIT_USAGE);
        assert!(error.to_string().contains("No GPU is available"), "{error}");
        let error = resolve_with(&new_group(&["--no-gpu", "--amp"]), false).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("AMP is designed to work with modern GPUs")
        );
        let config = resolve_with(&new_group(&["-s", "0"]), true).unwrap();
        assert_eq!(config.device, Device::Cuda);
    }

    #[test]
    fn problems_are_collected_and_typed() {
        // An unknown split and an unknown metric: both reported, a runtime error.
        let error = resolve_with(
            &new_group(&["--no-gpu", "-s", "0", "-s", "7", "-sm", "F1"]),
            false,
        )
        .unwrap_err();
        let text = error.to_string();
        assert_eq!(exit_code(&error), EXIT_FAILURE);
        assert!(
            text.starts_with("2 problems found before anything was written")
                && text.contains("split 7 of --split was not trained")
                && text.contains("the metric F1 is not available for split 0"),
            "{text}"
        );
        // A group that does not exist, without data: a usage error.
        let error = resolve_with(&args("absent", &["--no-gpu"]), false).unwrap_err();
        assert_eq!(exit_code(&error), EXIT_USAGE);
    }

    #[test]
    fn skipping_the_leak_check_is_a_notice_not_a_print() {
        let config = resolve_with(
            &new_group(&["--no-gpu", "--skip_leak_check", "-s", "1"]),
            false,
        )
        .unwrap();
        assert!(
            config
                .notices
                .contains(&Notice::Info("Skipping data leakage check".to_owned())),
            "{:?}",
            config.notices
        );
        assert!(config.notices.iter().all(|n| matches!(n, Notice::Info(_))));
        assert_eq!(config.runs.len(), 1);
    }
}
