//! Running a checked [`PredictConfig`]: the group definition is written (when new), then for
//! every split and selection metric the network is loaded, run over the dataset by the engine,
//! and the result set (description.log, prediction and metrics TSVs) written whole.
//!
//! ClinicaDL: `MapsManager.predict` and `_test_loader`.

pub mod engine;
pub mod loader;
pub mod loss;

use std::io::BufWriter;

use anyhow::{Context, Result};

use crate::config::{GroupAction, PredictConfig, SplitRun};
use crate::maps::group::write_group;
use crate::maps::json::Task;
use crate::metrics;
use crate::output::description::write_description;
use crate::output::prediction::write_prediction_tsv;
use crate::output::results::ResultSet;
use crate::rows::{Row, RowValues};
use crate::ui;
use engine::{InferenceOutput, run_inference};

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
    let checkpoint = layout.checkpoint(run.split, metric, None);
    let checkpoint_abs = std::path::absolute(&checkpoint).unwrap_or_else(|_| checkpoint.clone());
    ui::info(&format!(
        "Loading model trained for split {} selected according to best validation {metric} at path {}.",
        run.split,
        checkpoint_abs.display()
    ));
    let network = crate::networks::load_network(&config.maps, &checkpoint, config.engine.device)?;
    let target = layout.results_dir(run.split, metric, &config.group);
    std::fs::create_dir_all(layout.metric_dir(run.split, metric))?;
    let set = ResultSet::begin(&target)?;
    let when = chrono::Local::now();
    let description = set.file("description.log");
    write_description(
        BufWriter::new(
            std::fs::File::create(&description)
                .with_context(|| format!("cannot write `{}`", description.display()))?,
        ),
        &config.group,
        &when,
        &[(String::from("single"), run.group.caps_directory.as_path())],
        run.group.participant_count(),
        run.group.data.rows.len(),
    )?;
    let mut progress = ui::Progress::new(
        &format!("split {} best-{metric}", run.split),
        run.dataset.len() as u64,
    );
    let output = run_inference(&run.dataset, &network, &config.engine, &mut progress)?;
    progress.finish();
    if output.had_nan {
        ui::warn("NaN values were found in your images and will be removed.");
    }
    write_results(config, &set, &output, metric)?;
    set.commit()?;
    Ok(())
}

fn write_results(
    config: &PredictConfig,
    set: &ResultSet,
    output: &InferenceOutput,
    metric: &str,
) -> Result<()> {
    let mode = config.maps.mode;
    let level = mode.name();
    let n_classes = config.maps.output_size.unwrap_or(1);
    let name = crate::maps::layout::results_tsv_name(&config.group, level, "prediction");
    let path = set.file(&name);
    let file = std::fs::File::create(&path)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    write_prediction_tsv(BufWriter::new(file), mode, &output.rows, n_classes)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    if let Some(loss) = output.loss {
        let table = mode_level_metrics(config.engine.task, &output.rows, n_classes);
        let losses = [("loss".to_owned(), f64::from(loss))];
        let name = crate::maps::layout::results_tsv_name(&config.group, level, "metrics");
        let path = set.file(&name);
        let file = std::fs::File::create(&path)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        metrics::write_metrics_table(BufWriter::new(file), &table.0, Some(&table.1), &losses)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        ui::info(&format!(
            "{level} level {} loss is {} for model selected on {metric}",
            config.group,
            crate::output::pyrepr::repr_f64(f64::from(loss))
        ));
    }
    Ok(())
}

type MetricTable = (
    Vec<(String, metrics::MetricValue)>,
    Vec<metrics::ConfidenceInterval>,
);

/// Metrics and confidence intervals of the mode-level rows.
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
        _ => {
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
