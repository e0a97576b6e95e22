//! The run driver: the whole sequence of `clinicadl-rs predict`, from the command line to the
//! last file. Checks everything (`config::resolve`), computes what it will write (`plan`), then
//! writes the group definition (when new) and, for every split and selection metric, loads the
//! network, runs it over the dataset (`predict`), computes metrics and the image-level vote
//! (`metrics`, `ensemble`), and writes the result set whole (`output`). The only module that
//! knows every step; none of them calls it.
//!
//! ClinicaDL: `MapsManager.predict` and `_test_loader`.

use anyhow::{Context, Result};

use crate::atomic::StagedFolder;
use crate::caps::dataset::CheckProgress;
use crate::cli::PredictArgs;
use crate::config::{Environment, GroupAction, Notice, PredictConfig, SplitRun};
use crate::maps::group::write_group;
use crate::output::saved::Saver;
use crate::plan::{Plan, ResultSetPlan};
use crate::predict::engine::{Discard, ElementSink, EngineOptions, run_inference};
use crate::results::{self, Block, SetContext};
use crate::ui;

/// Runs `clinicadl-rs predict` with parsed arguments (or, with `--dry-run`, prints its plan).
pub fn predict(args: &PredictArgs) -> Result<()> {
    let maps = &args.input_maps_directory;
    if !maps.is_dir() {
        return Err(crate::error::UsageError::new(format!(
            "invalid value for 'INPUT_MAPS_DIRECTORY': `{}` is not a folder",
            maps.display()
        ))
        .into());
    }
    let progress = FileCheckProgress::default();
    let environment = Environment {
        cuda_available: args.gpu() && tch::Cuda::is_available(),
        file_check: &progress,
    };
    if args.dry_run {
        let config = crate::config::resolve(args, &environment)?;
        print_notices(&config);
        let plan = Plan::of(&config);
        return crate::output::dry_run::print_plan(&config, &plan, std::io::stdout().lock());
    }
    let _lock = crate::maps::lock::GroupLock::acquire(maps, &args.data_group)?;
    let started = std::time::Instant::now();
    let config = crate::config::resolve(args, &environment)?;
    ui::debug(&format!(
        "checks: {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    ));
    print_notices(&config);
    execute(&config, &Plan::of(&config))
}

fn print_notices(config: &PredictConfig) {
    for notice in &config.notices {
        match notice {
            Notice::Info(message) => ui::info(message),
            Notice::Warning(message) => ui::warn(message),
        }
    }
}

/// The progress of the up-front check of tensor files: a bar (or plain lines) from
/// [`CHECK_PROGRESS_FROM_FILES`] files, as large cohorts on network file systems take a while,
/// and a debug line with the time it took.
#[derive(Default)]
struct FileCheckProgress {
    bar: std::sync::Mutex<Option<ui::Progress>>,
}

/// Checks of at least this many files show their progress.
const CHECK_PROGRESS_FROM_FILES: usize = 1000;

impl CheckProgress for FileCheckProgress {
    fn start(&self, total: usize) {
        if total >= CHECK_PROGRESS_FROM_FILES
            && let Ok(mut bar) = self.bar.lock()
        {
            *bar = Some(ui::Progress::new(
                "checking tensor files",
                "files",
                total as u64,
            ));
        }
    }

    fn advance(&self) {
        if let Ok(mut bar) = self.bar.lock()
            && let Some(bar) = bar.as_mut()
        {
            bar.advance(1);
        }
    }

    fn finish(&self, total: usize, threads: usize, elapsed: std::time::Duration) {
        if let Some(bar) = self.bar.lock().ok().and_then(|mut bar| bar.take()) {
            bar.finish();
        }
        ui::debug(&format!(
            "tensor files checked: {total} in {:.1} ms ({threads} threads)",
            elapsed.as_secs_f64() * 1e3
        ));
    }
}

/// Runs the prediction described by `config`, writing what `plan` lists.
pub fn execute(config: &PredictConfig, plan: &Plan) -> Result<()> {
    if let GroupAction::Write {
        definition,
        replace,
    } = &config.group_action
    {
        write_group(
            &config.layout,
            &config.group,
            &definition.data,
            &definition.caps_directory,
            definition.multi_cohort,
            *replace,
        )?;
        ui::info(&format!(
            "Path of json file: {}",
            config
                .layout
                .group_dir(&config.group)
                .join("maps.json")
                .display()
        ));
    }
    let engine = EngineOptions::of(config);
    if engine.device != tch::Device::Cpu {
        ui::info(&format!("Working on {:?}", engine.device));
        // Every batch has the same shape: let cuDNN pick its fastest algorithms once.
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let mut announced = None;
    for set in &plan.result_sets {
        if announced != Some(set.split) {
            ui::info(&format!("Prediction of split {}", set.split));
            announced = Some(set.split);
        }
        predict_one(config, &engine, &config.runs[set.run], set)?;
    }
    Ok(())
}

fn predict_one(
    config: &PredictConfig,
    engine: &EngineOptions,
    run: &SplitRun,
    set: &ResultSetPlan,
) -> Result<()> {
    let layout = &config.layout;
    let maps = &config.maps;
    let metric = set.selection_metric.as_str();
    let metric_dir = layout.metric_dir(run.split, metric);
    std::fs::create_dir_all(&metric_dir)
        .with_context(|| format!("cannot create `{}`", metric_dir.display()))?;
    let started = chrono::Local::now();
    let folder = StagedFolder::begin(&set.dir)?;
    // One network for all elements, or (multi-network MAPS) one per element.
    let networks: Vec<Option<usize>> = if maps.multi_network {
        (0..run.dataset.extraction.count()).map(Some).collect()
    } else {
        vec![None]
    };
    let mut blocks = Vec::with_capacity(networks.len());
    let mut notes = crate::caps::transforms::Notes::default();
    let mut saver = Saver {
        dir: folder.file(""),
        save: config.save,
        mode: maps.mode,
    };
    for network in &networks {
        let checkpoint = layout.checkpoint(run.split, metric, *network);
        let checkpoint_abs =
            std::path::absolute(&checkpoint).unwrap_or_else(|_| checkpoint.clone());
        ui::info(&format!(
            "Loading model trained for split {} selected according to best validation {metric} at path {}.",
            run.split,
            checkpoint_abs.display()
        ));
        let model = crate::networks::load_network(
            &config.model.spec,
            &checkpoint,
            engine.device,
            run.checkpoints.get(&checkpoint),
        )?;
        let restricted;
        let dataset = match network {
            Some(n) => {
                restricted = run.dataset.restricted_to(*n);
                &restricted
            }
            None => &run.dataset,
        };
        let label = match network {
            Some(n) => format!("split {} best-{metric} network {n}", run.split),
            None => format!("split {} best-{metric}", run.split),
        };
        let unit = format!("{}s", maps.mode.name()).replace("patchs", "patches");
        let mut progress = ui::Progress::new(&label, &unit, dataset.len() as u64);
        let sink: &mut dyn ElementSink = if config.save.any() {
            &mut saver
        } else {
            &mut Discard
        };
        let output = run_inference(dataset, &model, engine, sink, &mut progress)?;
        progress.finish();
        ui::debug(&format!(
            "forward passes: {:.3} s for {} elements",
            output.forward_time.as_secs_f64(),
            dataset.len()
        ));
        notes |= output.notes;
        let block = Block {
            rows: output.rows,
            batch_losses: output.batch_losses,
        };
        log_loss(config, metric, &block);
        blocks.push(block);
    }
    if notes.nan_removed {
        ui::warn("NaN values were found in your images and will be removed.");
    }
    if notes.constant_elements > 0 {
        ui::warn(&format!(
            "{} constant {} element(s) could not be MinMax-normalised and were set to 0 (ClinicaDL 1.6.1 turns them into NaN)",
            notes.constant_elements,
            config.maps.mode.name()
        ));
    }
    let context = SetContext {
        group: &config.group,
        layout,
        maps,
        split: run.split,
        selection_metric: metric,
        files: &set.files,
        caps: &run.caps,
        participants: run.group.participant_count(),
        sessions: run.group.data.rows.len(),
        started,
    };
    results::write(&context, &blocks, &folder)?;
    folder.commit()
}

/// ClinicaDL's log line of a block's loss (its first component).
fn log_loss(config: &PredictConfig, metric: &str, block: &Block) {
    if let Some((_, loss)) = results::loss_totals(&block.batch_losses).first() {
        ui::info(&format!(
            "{} level {} loss is {} for model selected on {metric}",
            config.maps.mode.name(),
            config.group,
            crate::pyrepr::repr_f64(f64::from(*loss))
        ));
    }
}
