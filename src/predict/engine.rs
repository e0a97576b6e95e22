//! The inference engine: batches from the loader go to the device, through the network (no
//! gradients, float16 autocast with `--amp`), and come back as rows and loss totals. Every
//! output of a batch (rows, losses, saved tensors and images) comes from one forward pass
//! (ClinicaDL runs the network up to four times for the save options).
//!
//! ClinicaDL: `TaskManager.test` (`clinicadl.utils.task_manager.task_manager`), the
//! `generate_test_row` of the task managers, and `MapsManager._compute_output_tensors` /
//! `_compute_output_nifti` / `_compute_latent_tensors`.

use anyhow::{Context, Result, bail};
use tch::{Device, Kind, Tensor};

use super::loader::{Batch, for_each_batch};
use super::loss::Loss;
use super::ssim::ssim;
use crate::caps::dataset::{Dataset, Label};
use crate::caps::transforms::Notes;
use crate::maps::json::{MapsJson, Task};
use crate::networks::{Forward, Network};
use crate::output::saved::{SavedElement, Saver};
use crate::rows::{Row, RowValues, first_argmax};
use crate::ui::Progress;

/// The criterion of the run.
#[derive(Debug, Clone)]
pub enum Criterion {
    /// Classification and regression: `criterion(output, label)`.
    Supervised(Loss),
    /// Reconstruction: the network's own loss for the criterion named so
    /// (`criterion(reconstruction, input)`, or the VAE losses).
    Reconstruction(String),
}

/// How to run the engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Device of the network.
    pub device: Device,
    /// Float16 autocast (CUDA only).
    pub amp: bool,
    /// Elements per batch.
    pub batch_size: usize,
    /// Reader threads.
    pub n_proc: usize,
    /// Labels are used: classification/regression losses and metrics are computed.
    pub use_labels: bool,
    /// The task.
    pub task: Task,
    /// The criterion.
    pub criterion: Criterion,
    /// Run the network on at most this many elements at a time within a batch (losses and
    /// rows still follow the batch): bounds the activation memory of large 3D inputs on the CPU.
    pub micro_batch: Option<usize>,
}

/// The forward pass of a batch, computed `chunk` elements at a time when given.
fn forward_in_chunks(
    network: &Network,
    input: &Tensor,
    chunk: Option<usize>,
) -> Result<Forward, tch::TchError> {
    let n = input.size().first().copied().unwrap_or(0);
    let Some(chunk) = chunk.map(|c| c.max(1) as i64).filter(|&c| c < n) else {
        return network.forward_full(input);
    };
    let mut parts = Vec::new();
    for start in (0..n).step_by(chunk as usize) {
        parts.push(network.forward_full(&input.f_narrow(0, start, chunk.min(n - start))?)?);
    }
    let cat = |get: &dyn Fn(&Forward) -> Option<&Tensor>| -> Result<Option<Tensor>, tch::TchError> {
        let tensors: Option<Vec<&Tensor>> = parts.iter().map(get).collect();
        tensors.map(|t| Tensor::f_cat(&t, 0)).transpose()
    };
    let output = cat(&|f| Some(&f.output))?
        .unwrap_or_else(|| Tensor::empty([0], (Kind::Float, Device::Cpu)));
    Ok(Forward {
        output,
        mu: cat(&|f| f.mu.as_ref())?,
        logvar: cat(&|f| f.logvar.as_ref())?,
    })
}

/// What one pass over the dataset gives.
#[derive(Debug)]
pub struct InferenceOutput {
    /// One row per element, in dataset order.
    pub rows: Vec<Row>,
    /// Σ over batches of each loss component (float32), in ClinicaDL's order, when computed.
    pub losses: Vec<(String, f32)>,
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

/// Adds a batch's loss components to the running float32 totals.
fn accumulate(totals: &mut Vec<(String, f32)>, batch: Vec<(String, f32)>) {
    if totals.is_empty() {
        *totals = batch;
    } else {
        for ((_, total), (_, value)) in totals.iter_mut().zip(batch) {
            *total += value;
        }
    }
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(
        t.f_to_kind(Kind::Float)?
            .f_to_device(Device::Cpu)?
            .f_flatten(0, -1)?,
    )?)
}

/// Runs `network` over every element of `dataset`; `saver` writes the save options' files.
pub fn run_inference(
    dataset: &Dataset,
    network: &Network,
    maps: &MapsJson,
    options: &EngineOptions,
    saver: Option<&Saver>,
    progress: &mut Progress,
) -> Result<InferenceOutput> {
    let _guard = tch::no_grad_guard();
    let mut rows = Vec::with_capacity(dataset.len());
    let mut losses: Vec<(String, f32)> = Vec::new();
    let mut forward_time = std::time::Duration::ZERO;
    let mut shape: Vec<i64> = vec![0];
    shape.extend(dataset.element_shape.iter().map(|&d| d as i64));
    let element_len: usize = dataset.element_shape.iter().product();
    let notes = for_each_batch(dataset, options.batch_size, options.n_proc, |batch| {
        let n = batch.elements.len();
        shape[0] = n as i64;
        let started = std::time::Instant::now();
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
        let (forward, batch_losses) = tch::autocast(options.amp, || -> Result<_> {
            let mut forward = forward_in_chunks(network, &input, options.micro_batch)
                .context("the forward pass failed")?;
            forward.output = forward.output.f_to_kind(Kind::Float)?;
            let batch_losses: Vec<(String, f32)> = match &options.criterion {
                Criterion::Supervised(loss) if options.use_labels => {
                    let target = batch_targets(dataset, &batch, options.task)?
                        .f_to_device(options.device)?;
                    let value = loss
                        .compute(&forward.output, &target)
                        .context("the loss computation failed")?;
                    vec![(
                        "loss".to_owned(),
                        value.f_to_kind(Kind::Float)?.f_double_value(&[])? as f32,
                    )]
                }
                Criterion::Supervised(_) => Vec::new(),
                Criterion::Reconstruction(name) => network
                    .reconstruction_loss(&forward, &input, name, maps)
                    .context("the loss computation failed")?
                    .into_iter()
                    .map(|(k, v)| Ok((k, v.f_to_kind(Kind::Float)?.f_double_value(&[])? as f32)))
                    .collect::<Result<_>>()?,
            };
            Ok((forward, batch_losses))
        })?;
        if !batch_losses.is_empty() {
            accumulate(&mut losses, batch_losses);
        }
        let output = forward.output.f_to_device(Device::Cpu)?;
        forward_time += started.elapsed();
        let values = to_vec(&output)?;
        let width = values.len() / n.max(1);
        if values.len() != n * width
            || (options.task == Task::Reconstruction && width != element_len)
        {
            bail!(
                "the network returned {} values for a batch of {n} elements",
                values.len()
            );
        }
        let probabilities = match options.task {
            Task::Classification => Some(to_vec(&output.f_softmax(1, Kind::Float)?)?),
            _ => None,
        };
        let latents = match (saver.is_some_and(|s| s.latent), network.latent(&forward)) {
            (true, Some(latent)) => Some(to_vec(&latent)?),
            _ => None,
        };
        for (i, element) in batch.elements.iter().enumerate() {
            let session = &dataset.sessions[element.session];
            let out = &values[i * width..(i + 1) * width];
            let values = match options.task {
                Task::Classification => RowValues::Classification {
                    true_label: if let Label::Class(c) = session.label {
                        c
                    } else {
                        -1
                    },
                    predicted_label: first_argmax(out) as i64,
                    probabilities: probabilities
                        .as_ref()
                        .map(|p| {
                            p[i * width..(i + 1) * width]
                                .iter()
                                .map(|&v| f64::from(v))
                                .collect()
                        })
                        .unwrap_or_default(),
                },
                Task::Regression => RowValues::Regression {
                    true_label: if let Label::Value(v) = session.label {
                        Some(f64::from(v))
                    } else {
                        None
                    },
                    predicted_label: f64::from(out[0]),
                },
                Task::Reconstruction => {
                    let x = &batch.data[i * element_len..(i + 1) * element_len];
                    let (mae, rmse, psnr) = crate::metrics::reconstruction_mae_rmse_psnr(x, out)
                        .with_context(|| {
                            format!(
                                "({} | {}): {} {}",
                                session.participant_id,
                                session.session_id,
                                dataset.mode.name(),
                                element.element_id
                            )
                        })?;
                    let similarity = ssim(
                        &input.f_select(0, i as i64)?.f_to_kind(Kind::Float)?,
                        &forward.output.f_select(0, i as i64)?,
                    )?;
                    RowValues::Reconstruction {
                        mae,
                        rmse,
                        psnr,
                        ssim: similarity,
                    }
                }
            };
            if let Some(saver) = saver.filter(|s| s.any()) {
                let latent_width = latents.as_ref().map_or(0, |l| l.len() / n.max(1));
                saver.save(&SavedElement {
                    session,
                    element_id: element.element_id,
                    input: &batch.data[i * element_len..(i + 1) * element_len],
                    output: out,
                    shape: &dataset.element_shape,
                    latent: latents
                        .as_ref()
                        .map(|l| &l[i * latent_width..(i + 1) * latent_width]),
                })?;
            }
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
        losses,
        notes,
        forward_time,
    })
}
