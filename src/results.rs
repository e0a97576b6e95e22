//! A result set from what prediction gave: `description.log`, the element-level prediction and
//! metrics TSVs and, for patch, slice and ROI MAPS, the image level (a copy, or ClinicaDL's vote),
//! all written into a staged folder. One place for a run (`run.rs`) and for the merge of its
//! shards (`merge.rs`), which must write exactly the same files from the same rows.
//!
//! ClinicaDL: `MapsManager._test_loader` (the TSVs), `_mode_level_to_tsv`,
//! `_ensemble_prediction` and `_mode_to_image_tsv`.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

use crate::atomic::StagedFolder;
use crate::caps::cohorts::CapsMapping;
use crate::ensemble;
use crate::maps::json::{MapsJson, Task};
use crate::maps::layout::{MapsLayout, is_training_group};
use crate::maps::validation::read_prediction_rows;
use crate::metrics;
use crate::output::description::write_description;
use crate::output::metrics::{write_metrics_table, write_network_separator_row};
use crate::output::prediction::write_prediction_tsv;
use crate::plan::{DESCRIPTION, ImageLevel, LevelFiles, ResultFiles};
use crate::rows::Row;

/// What one network gave over the dataset (a multi-network MAPS has one block per network).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Block {
    /// Its rows, in dataset order.
    pub rows: Vec<Row>,
    /// Each batch's loss components, in order (none without labels).
    pub batch_losses: Vec<Vec<(String, f32)>>,
}

/// Σ over the batches of each loss component, in float32 and in batch order, as ClinicaDL sums
/// them (empty when no loss was computed).
pub fn loss_totals(batch_losses: &[Vec<(String, f32)>]) -> Vec<(String, f32)> {
    let mut totals: Vec<(String, f32)> = Vec::new();
    for batch in batch_losses {
        if totals.is_empty() {
            totals = batch.clone();
        } else {
            for ((_, total), (_, value)) in totals.iter_mut().zip(batch) {
                *total += value;
            }
        }
    }
    totals
}

/// Where a result set goes and what it is about.
pub struct SetContext<'a> {
    /// The data group.
    pub group: &'a str,
    /// The MAPS.
    pub layout: &'a MapsLayout,
    /// Its `maps.json`.
    pub maps: &'a MapsJson,
    /// The split.
    pub split: u32,
    /// The selection metric.
    pub selection_metric: &'a str,
    /// The files to write.
    pub files: &'a ResultFiles,
    /// The CAPS of each cohort of the group (for `description.log`).
    pub caps: &'a CapsMapping,
    /// Participants of the group.
    pub participants: usize,
    /// Sessions of the group.
    pub sessions: usize,
    /// When the prediction started (for `description.log`).
    pub started: chrono::DateTime<chrono::Local>,
}

impl SetContext<'_> {
    fn n_classes(&self) -> usize {
        self.maps.output_size.unwrap_or(1)
    }
}

/// Writes a file through a buffer, flushing it explicitly so that a full disk is an error
/// naming the file (a buffer dropped unflushed loses it silently).
pub fn write_file(
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

/// What writing a result set read besides the rows, and the metrics it wrote.
#[derive(Debug, Default)]
pub struct Written {
    /// The validation predictions read for the vote.
    pub validation: Option<std::path::PathBuf>,
    /// The metrics of each network block (with the loss components), and of the image level.
    pub metrics: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// A metric's value for JSON: a number, or null (NaN, N/A).
fn json_number(value: f64) -> serde_json::Value {
    serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// Writes the result set of `blocks` into `folder`: `description.log`, the element level (its
/// metrics per network block), and the image level the files list.
pub fn write(context: &SetContext, blocks: &[Block], folder: &StagedFolder) -> Result<Written> {
    let mut written = Written::default();
    write_file(&folder.file(DESCRIPTION), |w| {
        write_description(
            w,
            context.group,
            &context.started,
            context.caps,
            context.participants,
            context.sessions,
        )
    })?;
    let rows: Vec<Row> = blocks.iter().flat_map(|b| b.rows.iter().cloned()).collect();
    let mode = context.maps.mode;
    let task = context.maps.task;
    let files = context.files;
    write_file(&folder.file(&files.prediction), |w| {
        write_prediction_tsv(w, mode.name(), task, &rows, context.n_classes())
    })?;
    if let Some(name) = &files.metrics {
        write_file(&folder.file(name), |w| {
            for (network, block) in blocks.iter().enumerate() {
                let losses: Vec<(String, f64)> = loss_totals(&block.batch_losses)
                    .into_iter()
                    .map(|(k, v)| (k, f64::from(v)))
                    .collect();
                if losses.is_empty() {
                    continue;
                }
                let (table, ci) = metrics::of_rows(task, &block.rows, context.n_classes());
                written.metrics.push(
                    table
                        .iter()
                        .map(|(name, value)| (name.clone(), json_number(value.as_f64())))
                        .chain(
                            losses
                                .iter()
                                .map(|(name, v)| (name.clone(), json_number(*v))),
                        )
                        .collect(),
                );
                write_metrics_table(&mut *w, &table, Some(&ci), &losses)?;
                if context.maps.multi_network {
                    write_network_separator_row(&mut *w, network, table.len() + losses.len() + 1)?;
                }
            }
            Ok(())
        })?;
    }
    match &files.image_level {
        None => Ok(written),
        Some(ImageLevel::Copy(image)) => {
            // One element per image: the element-level results are the image-level ones.
            write_file(&folder.file(&image.prediction), |w| {
                write_prediction_tsv(w, "image", task, &rows, context.n_classes())
            })?;
            if let (Some(from), Some(to)) = (&files.metrics, &image.metrics) {
                let (from, to) = (folder.file(from), folder.file(to));
                std::fs::copy(&from, &to)
                    .with_context(|| format!("cannot write `{}`", to.display()))?;
            }
            Ok(written)
        }
        Some(ImageLevel::Vote(image)) => {
            write_vote(context, folder, &rows, image, &mut written)?;
            Ok(written)
        }
    }
}

/// The image level of several elements per image: ClinicaDL's soft vote (classification) or
/// the mean (regression), with its metrics.
fn write_vote(
    context: &SetContext,
    folder: &StagedFolder,
    rows: &[Row],
    image: &LevelFiles,
    written: &mut Written,
) -> Result<()> {
    let task = context.maps.task;
    let image_rows = match task {
        Task::Classification => {
            let (validation, path) = validation_rows(context, rows)?;
            written.validation = path;
            let weights =
                ensemble::soft_voting_weights(&validation, context.maps.selection_threshold);
            ensemble::soft_vote(rows, &weights, context.n_classes())?
        }
        Task::Regression => ensemble::mean_vote(rows)?,
        // The plan has no vote for reconstruction.
        Task::Reconstruction => return Ok(()),
    };
    write_file(&folder.file(&image.prediction), |w| {
        write_prediction_tsv(
            w,
            context.maps.mode.name(),
            task,
            &image_rows,
            context.n_classes(),
        )
    })?;
    if let Some(name) = &image.metrics {
        let (table, _) = metrics::of_rows(task, &image_rows, context.n_classes());
        written.metrics.push(
            std::iter::once(("level".to_owned(), serde_json::Value::from("image")))
                .chain(
                    table
                        .iter()
                        .map(|(name, value)| (name.clone(), json_number(value.as_f64()))),
                )
                .collect(),
        );
        write_file(&folder.file(name), |w| {
            write_metrics_table(w, &table, None, &[])
        })?;
    }
    Ok(())
}

/// The element-level validation predictions that weight soft voting: the group's own rows for
/// `train`/`validation`, else `split-<k>/best-<m>/validation/validation_<mode>_level_prediction.tsv`.
fn validation_rows(
    context: &SetContext,
    rows: &[Row],
) -> Result<(Vec<Row>, Option<std::path::PathBuf>)> {
    if is_training_group(context.group) {
        return Ok((rows.to_vec(), None));
    }
    let mode = context.maps.mode.name();
    let path = context
        .layout
        .validation_predictions(context.split, context.selection_metric, mode);
    let rows = read_prediction_rows(&path, mode, context.maps.task)?;
    Ok((rows, Some(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_totals_add_in_batch_order_in_float32() {
        let batches = vec![
            vec![("loss".to_owned(), 1.0e8_f32)],
            vec![("loss".to_owned(), 1.0)],
            vec![("loss".to_owned(), -1.0e8)],
        ];
        // (1e8 + 1) rounds back to 1e8 in float32: the order is ClinicaDL's, and it shows.
        assert_eq!(loss_totals(&batches), [("loss".to_owned(), 0.0)]);
        assert!(loss_totals(&[]).is_empty());
    }
}
