//! Running a checked [`PredictConfig`]: the group definition is written (when new), then for
//! every split and selection metric the network is loaded, run over the dataset by the engine,
//! and the result set (description.log, prediction and metrics TSVs) written whole.
//!
//! ClinicaDL: `MapsManager.predict` and `_test_loader`.

pub mod engine;
pub mod loader;
pub mod ssim;

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

use crate::config::{GroupAction, PredictConfig, SplitRun};
use crate::ensemble;
use crate::maps::group::write_group;
use crate::maps::json::{Mode, Task};
use crate::maps::layout::{is_training_group, results_tsv_name};
use crate::metrics;
use crate::output::description::write_description;
use crate::output::prediction::write_prediction_tsv;
use crate::output::results::ResultSet;
use crate::output::saved::Saver;
use crate::rows::{Row, RowValues};
use crate::tsv::{Cell, Table};
use crate::ui;
use engine::run_inference;

/// Runs the prediction described by `config`.
pub fn execute(config: &PredictConfig) -> Result<()> {
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
    if config.engine.device != tch::Device::Cpu {
        ui::info(&format!("Working on {:?}", config.engine.device));
        // Every batch has the same shape: let cuDNN pick its fastest algorithms once.
        tch::Cuda::cudnn_set_benchmark(true);
    }
    for run in &config.runs {
        ui::info(&format!("Prediction of split {}", run.split));
        for metric in &run.selection_metrics {
            predict_one(config, run, metric)?;
        }
    }
    Ok(())
}

fn predict_one(config: &PredictConfig, run: &SplitRun, metric: &str) -> Result<()> {
    let layout = &config.layout;
    let maps = &config.maps;
    let target = layout.results_dir(run.split, metric, &config.group);
    let metric_dir = layout.metric_dir(run.split, metric);
    std::fs::create_dir_all(&metric_dir)
        .with_context(|| format!("cannot create `{}`", metric_dir.display()))?;
    let set = ResultSet::begin(&target)?;
    write_file(&set.file("description.log"), |w| {
        write_description(
            w,
            &config.group,
            &chrono::Local::now(),
            &run.caps,
            run.group.participant_count(),
            run.group.data.rows.len(),
        )
    })?;
    // One network for all elements, or (multi-network MAPS) one per element.
    let networks: Vec<Option<usize>> = if maps.multi_network {
        (0..run.dataset.extraction.count()).map(Some).collect()
    } else {
        vec![None]
    };
    let mut rows = Vec::with_capacity(run.dataset.len());
    let mut blocks = Vec::new();
    let mut notes = crate::caps::transforms::Notes::default();
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
            config.engine.device,
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
        let saver = Saver {
            dir: set.file(""),
            tensor: config.save.tensor,
            nifti: config.save.nifti,
            latent: config.save.latent,
            mode: maps.mode.name(),
            pattern: dataset.pattern.clone(),
        };
        let output = run_inference(dataset, &model, &config.engine, Some(&saver), &mut progress)?;
        progress.finish();
        ui::debug(&format!(
            "forward passes: {:.3} s for {} elements",
            output.forward_time.as_secs_f64(),
            dataset.len()
        ));
        notes |= output.notes;
        if let Some((_, loss)) = output.losses.first() {
            ui::info(&format!(
                "{} level {} loss is {} for model selected on {metric}",
                maps.mode.name(),
                config.group,
                crate::output::pyrepr::repr_f64(f64::from(*loss))
            ));
        }
        if config.engine.use_labels && !output.losses.is_empty() {
            blocks.push((
                mode_level_metrics(config.engine.task, &output.rows, n_classes(config)),
                output.losses,
            ));
        }
        rows.extend(output.rows);
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
    write_results(config, run, &set, &rows, &blocks, metric)?;
    set.commit()
}

fn n_classes(config: &PredictConfig) -> usize {
    config.maps.output_size.unwrap_or(1)
}

/// Writes a file through a buffer, flushing it explicitly so that a full disk is an error
/// naming the file (a buffer dropped unflushed loses it silently).
fn write_file(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    let mut w = BufWriter::new(file);
    write(&mut w)
        .and_then(|()| w.flush())
        .with_context(|| format!("cannot write `{}`", path.display()))
}

type MetricTable = (
    Vec<(String, metrics::MetricValue)>,
    Vec<metrics::ConfidenceInterval>,
);

/// Writes the mode-level TSVs and, outside image mode, the image-level ones.
fn write_results(
    config: &PredictConfig,
    run: &SplitRun,
    set: &ResultSet,
    rows: &[Row],
    blocks: &[(MetricTable, Vec<(String, f32)>)],
    metric: &str,
) -> Result<()> {
    let mode = config.maps.mode;
    let level = mode.name();
    let group = &config.group;
    let path = set.file(&results_tsv_name(group, level, "prediction"));
    let task = config.engine.task;
    write_file(&path, |w| {
        write_prediction_tsv(w, mode.name(), task, rows, n_classes(config))
    })?;
    let metrics_path = set.file(&results_tsv_name(group, level, "metrics"));
    if !blocks.is_empty() {
        write_file(&metrics_path, |w| {
            for (network, ((table, ci), losses)) in blocks.iter().enumerate() {
                let losses: Vec<(String, f64)> = losses
                    .iter()
                    .map(|(k, v)| (k.clone(), f64::from(*v)))
                    .collect();
                metrics::write_metrics_table(&mut *w, table, Some(ci), &losses)?;
                if config.maps.multi_network {
                    metrics::write_network_separator_row(
                        &mut *w,
                        network,
                        table.len() + losses.len() + 1,
                    )?;
                }
            }
            Ok(())
        })?;
    }
    if mode == Mode::Image {
        return Ok(());
    }
    // Image level (predict.md §9), also with --skip_leak_check (1.6.1 then silently skips it).
    let image_prediction = set.file(&results_tsv_name(group, "image", "prediction"));
    let image_metrics = set.file(&results_tsv_name(group, "image", "metrics"));
    if config.maps.num_networks <= 1 {
        // One element per image: the element-level results are the image-level ones.
        write_file(&image_prediction, |w| {
            write_prediction_tsv(w, "image", task, rows, n_classes(config))
        })?;
        if !blocks.is_empty() {
            std::fs::copy(&metrics_path, &image_metrics)
                .with_context(|| format!("cannot write `{}`", image_metrics.display()))?;
        }
        return Ok(());
    }
    if task == Task::Reconstruction {
        // ClinicaDL writes no image-level results for reconstruction with several elements.
        return Ok(());
    }
    let validation = validation_rows(config, run, rows, metric)?;
    let image_rows = match task {
        Task::Classification => {
            let weights =
                ensemble::soft_voting_weights(&validation, config.maps.selection_threshold);
            ensemble::soft_vote(rows, &weights, n_classes(config))?
        }
        Task::Regression => ensemble::mean_vote(rows)?,
        Task::Reconstruction => return Ok(()),
    };
    write_file(&image_prediction, |w| {
        write_prediction_tsv(w, mode.name(), task, &image_rows, n_classes(config))
    })?;
    if !blocks.is_empty() {
        let (table, _) = mode_level_metrics(config.engine.task, &image_rows, n_classes(config));
        write_file(&image_metrics, |w| {
            metrics::write_metrics_table(w, &table, None, &[])
        })?;
    }
    Ok(())
}

/// The element-level validation predictions that weight soft voting: the group's own rows for
/// `train`/`validation`, else `split-<k>/best-<m>/validation/validation_<mode>_level_prediction.tsv`.
fn validation_rows(
    config: &PredictConfig,
    run: &SplitRun,
    rows: &[Row],
    metric: &str,
) -> Result<Vec<Row>> {
    if is_training_group(&config.group) {
        return Ok(rows.to_vec());
    }
    let path = config
        .layout
        .validation_predictions(run.split, metric, config.maps.mode.name());
    read_prediction_rows(&path, config.maps.mode.name(), config.engine.task)
}

/// Reads a prediction TSV back into rows (the columns soft voting needs).
pub fn read_prediction_rows(path: &Path, mode: &str, task: Task) -> Result<Vec<Row>> {
    let table = Table::read(path)?;
    let column = |name: &str| table.require_column(name, path);
    let (p, s, id) = (
        column("participant_id")?,
        column("session_id")?,
        column(&format!("{mode}_id"))?,
    );
    let (t, pred) = (column("true_label")?, column("predicted_label")?);
    let mut rows = Vec::with_capacity(table.rows.len());
    for (i, r) in table.rows.iter().enumerate() {
        let bad = |what: &str| {
            anyhow::anyhow!(
                "`{}` line {}: `{what}` is not a number",
                path.display(),
                i + 2
            )
        };
        let element_id = match &r[id] {
            Cell::Int(v) if *v >= 0 => *v as usize,
            _ => return Err(bad(&format!("{mode}_id"))),
        };
        let values = match task {
            Task::Classification => {
                let int = |c: &Cell, what: &str| match c {
                    Cell::Int(v) => Ok(*v),
                    _ => Err(bad(what)),
                };
                RowValues::Classification {
                    true_label: int(&r[t], "true_label")?,
                    predicted_label: int(&r[pred], "predicted_label")?,
                    probabilities: Vec::new(),
                }
            }
            _ => RowValues::Regression {
                true_label: r[t].as_f64(),
                predicted_label: r[pred].as_f64().ok_or_else(|| bad("predicted_label"))?,
            },
        };
        rows.push(Row {
            participant_id: r[p].py_str(),
            session_id: r[s].py_str(),
            element_id,
            values,
        });
    }
    Ok(rows)
}

/// Metrics and confidence intervals of element-level rows.
fn mode_level_metrics(task: Task, rows: &[Row], n_classes: usize) -> MetricTable {
    match task {
        Task::Classification => {
            let (y, p): (Vec<i64>, Vec<i64>) = rows
                .iter()
                .filter_map(|r| match r.values {
                    RowValues::Classification {
                        true_label,
                        predicted_label,
                        ..
                    } => Some((true_label, predicted_label)),
                    _ => None,
                })
                .unzip();
            (
                metrics::classification_metrics(&y, &p, n_classes),
                metrics::classification_ci(&y, &p, n_classes),
            )
        }
        Task::Reconstruction => {
            let (mut mae, mut rmse, mut psnr, mut ssim) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for r in rows {
                if let RowValues::Reconstruction {
                    mae: a,
                    rmse: b,
                    psnr: c,
                    ssim: d,
                } = r.values
                {
                    mae.push(a);
                    rmse.push(b);
                    psnr.push(c);
                    ssim.push(d);
                }
            }
            (
                metrics::reconstruction_metrics(&mae, &rmse, &psnr, &ssim),
                metrics::reconstruction_ci(&mae, &rmse, &psnr, &ssim),
            )
        }
        Task::Regression => {
            let (y, p): (Vec<f64>, Vec<f64>) = rows
                .iter()
                .filter_map(|r| match r.values {
                    RowValues::Regression {
                        true_label,
                        predicted_label,
                    } => Some((true_label.unwrap_or(-1.0), predicted_label)),
                    _ => None,
                })
                .unzip();
            (
                metrics::regression_metrics(&y, &p),
                metrics::regression_ci(&y, &p),
            )
        }
    }
}
