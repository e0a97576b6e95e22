//! The inference engine: batches from the loader go to the device, through the network (no
//! gradients, float16 autocast with `--amp`), and come back as rows and a loss total.
//!
//! ClinicaDL: `TaskManager.test` (`clinicadl.utils.task_manager.task_manager`) and the
//! `generate_test_row` of the classification and regression managers.

use anyhow::{Context, Result, bail};
use tch::{Device, Kind, Tensor};

use super::loader::{Batch, for_each_batch};
use super::loss::Loss;
use crate::caps::dataset::{Dataset, Label};
use crate::caps::transforms::Notes;
use crate::maps::json::Task;
use crate::networks::Network;
use crate::rows::{Row, RowValues, first_argmax};
use crate::ui::Progress;

/// How to run the engine.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    /// Device of the network.
    pub device: Device,
    /// Float16 autocast (CUDA only).
    pub amp: bool,
    /// Elements per batch.
    pub batch_size: usize,
    /// Reader threads.
    pub n_proc: usize,
    /// Compute the loss (labels are used).
    pub use_labels: bool,
    /// The task.
    pub task: Task,
    /// The criterion.
    pub loss: Loss,
}

/// What one pass over the dataset gives.
#[derive(Debug)]
pub struct InferenceOutput {
    /// One row per element, in dataset order.
    pub rows: Vec<Row>,
    /// Σ of the per-batch mean losses (float32), when labels are used.
    pub loss: Option<f32>,
    /// What the transforms met (NaN values, constant elements).
    pub notes: Notes,
    /// Time spent in forward passes (device copies, network, loss, copy back).
    pub forward_time: std::time::Duration,
}

fn batch_targets(dataset: &Dataset, batch: &Batch, task: Task) -> Result<Tensor> {
    let labels: Vec<Label> = batch
        .elements
        .iter()
        .map(|e| dataset.sessions[e.session].label)
        .collect();
    Ok(match task {
        Task::Classification => {
            let codes: Vec<i64> = labels
                .iter()
                .map(|l| if let Label::Class(c) = l { *c } else { -1 })
                .collect();
            Tensor::f_from_slice(&codes)?
        }
        _ => {
            let values: Vec<f32> = labels
                .iter()
                .map(|l| if let Label::Value(v) = l { *v } else { -1.0 })
                .collect();
            Tensor::f_from_slice(&values)?.f_unsqueeze(1)?
        }
    })
}

/// Runs `network` over every element of `dataset`.
pub fn run_inference(
    dataset: &Dataset,
    network: &Network,
    options: &EngineOptions,
    progress: &mut Progress,
) -> Result<InferenceOutput> {
    let _guard = tch::no_grad_guard();
    let mut rows = Vec::with_capacity(dataset.len());
    let mut loss_total: Option<f32> = None;
    let mut forward_time = std::time::Duration::ZERO;
    let mut shape: Vec<i64> = vec![0];
    shape.extend(dataset.element_shape.iter().map(|&d| d as i64));
    let notes = for_each_batch(dataset, options.batch_size, options.n_proc, |batch| {
        let n = batch.elements.len();
        shape[0] = n as i64;
        let input = Tensor::f_from_slice(&batch.data)?.f_reshape(shape.as_slice())?;
        let input = if options.device == Device::Cpu {
            input
        } else {
            input.f_pin_memory(options.device)?.f_to_device_(
                options.device,
                Kind::Float,
                true,
                false,
            )?
        };
        let started = std::time::Instant::now();
        let (output, loss) = tch::autocast(options.amp, || -> Result<(Tensor, Option<f32>)> {
            let output = network
                .forward(&input)
                .context("the forward pass failed")?
                .f_to_kind(Kind::Float)?;
            let loss = if options.use_labels {
                let target =
                    batch_targets(dataset, &batch, options.task)?.f_to_device(options.device)?;
                let value = options
                    .loss
                    .compute(&output, &target)
                    .context("the loss computation failed")?;
                Some(value.f_to_kind(Kind::Float)?.f_double_value(&[])? as f32)
            } else {
                None
            };
            Ok((output, loss))
        })?;
        if let Some(l) = loss {
            loss_total = Some(loss_total.unwrap_or(0.0) + l);
        }
        let output = output.f_to_device(Device::Cpu)?;
        forward_time += started.elapsed();
        let width = output.size().get(1).copied().unwrap_or(1) as usize;
        let logits: Vec<f32> = Vec::<f32>::try_from(output.f_flatten(0, -1)?)?;
        let probabilities: Option<Vec<f32>> = match options.task {
            Task::Classification => Some(Vec::<f32>::try_from(
                output.f_softmax(1, Kind::Float)?.f_flatten(0, -1)?,
            )?),
            _ => None,
        };
        if logits.len() != n * width {
            bail!(
                "the network returned {} values for a batch of {n}",
                logits.len()
            );
        }
        for (i, element) in batch.elements.iter().enumerate() {
            let session = &dataset.sessions[element.session];
            let values = match options.task {
                Task::Classification => {
                    let out = &logits[i * width..(i + 1) * width];
                    let probabilities = probabilities
                        .as_ref()
                        .map(|p| &p[i * width..(i + 1) * width])
                        .unwrap_or(&[]);
                    RowValues::Classification {
                        true_label: if let Label::Class(c) = session.label {
                            c
                        } else {
                            -1
                        },
                        predicted_label: first_argmax(out) as i64,
                        probabilities: probabilities.iter().map(|&p| f64::from(p)).collect(),
                    }
                }
                _ => RowValues::Regression {
                    true_label: if let Label::Value(v) = session.label {
                        Some(f64::from(v))
                    } else {
                        None
                    },
                    predicted_label: f64::from(logits[i * width]),
                },
            };
            rows.push(Row {
                participant_id: session.participant_id.clone(),
                session_id: session.session_id.clone(),
                element_id: element.element_id,
                values,
            });
        }
        progress.advance(n as u64);
        Ok(())
    })?;
    Ok(InferenceOutput {
        rows,
        loss: loss_total,
        notes,
        forward_time,
    })
}
