//! The inference engine: batches from the loader go to the device, through the network (no
//! gradients, float16 autocast with `--amp`), and come back as rows and loss totals; each
//! finished element's tensors go to an [`ElementSink`] the caller gives (the save options'
//! writers), so the engine writes no file. Every output of a batch (rows, losses, saved tensors
//! and images) comes from one forward pass (ClinicaDL runs the network up to four times for the
//! save options).
//!
//! ClinicaDL: `TaskManager.test` (`clinicadl.utils.task_manager.task_manager`), the
//! `generate_test_row` of the task managers, and `MapsManager._compute_output_tensors` /
//! `_compute_output_nifti` / `_compute_latent_tensors`.

use anyhow::{Context, Result, bail};
use tch::{Device, Kind, Tensor};

use super::loader::{Batch, ElementRef, for_each_batch};
use super::ssim::ssim;
use crate::caps::dataset::{Dataset, Label, SessionSample};
use crate::caps::transforms::Notes;
use crate::config::PredictConfig;
use crate::maps::json::Task;
use crate::networks::{Criterion, Forward, Network};
use crate::rows::{Row, RowValues, first_argmax};
use crate::ui::Progress;

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

impl EngineOptions {
    /// The engine settings of a checked run.
    pub fn of(config: &PredictConfig) -> EngineOptions {
        let device = match config.device {
            crate::config::Device::Cpu => Device::Cpu,
            crate::config::Device::Cuda => Device::Cuda(0),
        };
        EngineOptions {
            device,
            amp: config.amp,
            batch_size: config.batch_size,
            n_proc: config.n_proc,
            use_labels: config.use_labels,
            task: config.maps.task,
            criterion: config.model.criterion,
            // On the CPU, whole 3D images go through the network one at a time: the
            // activations of a batch of full-size images take gigabytes, and throughput does not
            // depend on it.
            micro_batch: (device == Device::Cpu
                && config.maps.input_size.iter().product::<usize>() >= 1 << 20)
                .then_some(1),
        }
    }
}

/// One finished element, as the engine hands it over.
#[derive(Debug)]
pub struct FinishedElement<'a> {
    /// The session.
    pub session: &'a SessionSample,
    /// `<mode>_id`.
    pub element_id: usize,
    /// The transformed input, C order.
    pub input: &'a [f32],
    /// The network's output (a reconstruction: the input's shape), C order.
    pub output: &'a [f32],
    /// Shape of one element (`[C, …]`).
    pub shape: &'a [usize],
    /// The latent vector (VAEs), when the sink wants it.
    pub latent: Option<&'a [f32]>,
}

/// One finished batch, as the engine hands it over.
#[derive(Debug)]
pub struct FinishedBatch<'a> {
    /// The rows of the batch's elements.
    pub rows: &'a [Row],
    /// The batch's loss components (empty when no loss is computed).
    pub losses: &'a [(String, f32)],
    /// Elements of the dataset finished so far, this batch's included.
    pub elements_done: usize,
    /// The files read for the sessions that start in this batch, with their SHA-256.
    pub read: &'a [(std::path::PathBuf, String)],
}

/// Receives every finished element (the save options of reconstruction runs), then every
/// finished batch (the journal of a run that can be resumed).
pub trait ElementSink {
    /// Whether it wants the elements at all.
    fn wants_elements(&self) -> bool {
        true
    }
    /// Whether it wants the latent vectors of a VAE.
    fn wants_latent(&self) -> bool;
    /// One element, in dataset order.
    fn element(&mut self, element: &FinishedElement<'_>) -> Result<()>;
    /// One batch, once every one of its elements went to [`ElementSink::element`].
    fn batch(&mut self, _batch: &FinishedBatch<'_>) -> Result<()> {
        Ok(())
    }
}

/// A sink that wants nothing (no save option).
pub struct Discard;

impl ElementSink for Discard {
    fn wants_elements(&self) -> bool {
        false
    }

    fn wants_latent(&self) -> bool {
        false
    }

    fn element(&mut self, _: &FinishedElement<'_>) -> Result<()> {
        Ok(())
    }
}

/// What one pass over the dataset gives.
#[derive(Debug)]
pub struct InferenceOutput {
    /// One row per element, in dataset order.
    pub rows: Vec<Row>,
    /// Each batch's loss components (float32, in ClinicaDL's order), when computed.
    pub batch_losses: Vec<Vec<(String, f32)>>,
    /// What the transforms met (NaN values, constant elements).
    pub notes: Notes,
    /// The files read, in dataset order, with the SHA-256 of their bytes.
    pub read: Vec<(std::path::PathBuf, String)>,
    /// Time spent in forward passes (device copies, network, loss, copy back).
    pub forward_time: std::time::Duration,
}

fn batch_targets(labels: &[Label], task: Task) -> Result<Tensor> {
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

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(
        t.f_to_kind(Kind::Float)?
            .f_to_device(Device::Cpu)?
            .f_flatten(0, -1)?,
    )?)
}

/// One step of the forward pass: consecutive elements of a batch (all of it, or a micro-batch),
/// their input on the device and what the network gave.
struct Step {
    /// Its elements; their data only when kept (see `input`).
    batch: Batch,
    /// The input on the device, kept until the batch is finished only when it is needed again
    /// (reconstructions are measured against it; the save options write it): a batch of
    /// full-size images would otherwise hold two copies of each of its images.
    input: Option<Tensor>,
    forward: Forward,
}

/// What a run accumulates, batch after batch.
struct Totals {
    rows: Vec<Row>,
    batch_losses: Vec<Vec<(String, f32)>>,
    read: Vec<(std::path::PathBuf, String)>,
    forward_time: std::time::Duration,
}

/// Concatenates one tensor of every step along the batch axis (no copy for a single step).
fn cat_steps(
    steps: &[Step],
    get: impl Fn(&Step) -> Option<&Tensor>,
) -> Result<Option<Tensor>, tch::TchError> {
    let tensors: Option<Vec<&Tensor>> = steps.iter().map(get).collect();
    match tensors.as_deref() {
        None => Ok(None),
        Some([one]) => Ok(Some(one.shallow_clone())),
        Some(all) => Tensor::f_cat(all, 0).map(Some),
    }
}

/// Runs `network` over every element of `dataset`; `sink` receives every element.
///
/// Elements go through the network `micro_batch` at a time when set (the first forward pass
/// starts as soon as its first element is read), while losses and rows follow the batches of
/// `batch_size`, as in ClinicaDL.
pub fn run_inference(
    dataset: &Dataset,
    network: &Network,
    options: &EngineOptions,
    sink: &mut dyn ElementSink,
    progress: &mut Progress,
) -> Result<InferenceOutput> {
    let _guard = tch::no_grad_guard();
    let mut totals = Totals {
        rows: Vec::with_capacity(dataset.len()),
        batch_losses: Vec::new(),
        read: Vec::new(),
        forward_time: std::time::Duration::ZERO,
    };
    let mut shape: Vec<i64> = vec![0];
    shape.extend(dataset.element_shape.iter().map(|&d| d as i64));
    let step_size = options.micro_batch.map_or(options.batch_size, |m| {
        m.clamp(1, options.batch_size.max(1))
    });
    let mut steps: Vec<Step> = Vec::new();
    let mut pending = 0;
    let keep_inputs = options.task == Task::Reconstruction || sink.wants_elements();
    let notes = for_each_batch(dataset, step_size, options.n_proc, |mut batch| {
        let n = batch.elements.len();
        shape[0] = n as i64;
        let started = std::time::Instant::now();
        let input = Tensor::f_from_slice(&batch.data)?.f_reshape(shape.as_slice())?;
        if !keep_inputs {
            // The tensor holds a copy: the host data is not needed during the forward pass.
            batch.data = Vec::new();
        }
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
        let forward = tch::autocast(options.amp, || network.forward_full(&input))
            .context("the forward pass failed")?;
        totals.forward_time += started.elapsed();
        let input = keep_inputs.then_some(input);
        steps.push(Step {
            batch,
            input,
            forward,
        });
        pending += n;
        if pending >= options.batch_size {
            finish_batch(
                std::mem::take(&mut steps),
                dataset,
                network,
                options,
                &mut *sink,
                &mut totals,
            )?;
            progress.advance(pending as u64);
            pending = 0;
        }
        Ok(())
    })?;
    if !steps.is_empty() {
        finish_batch(steps, dataset, network, options, sink, &mut totals)?;
        progress.advance(pending as u64);
    }
    Ok(InferenceOutput {
        rows: totals.rows,
        batch_losses: totals.batch_losses,
        notes,
        read: totals.read,
        forward_time: totals.forward_time,
    })
}

/// The losses and rows of one batch, from the forward passes of its steps.
fn finish_batch(
    steps: Vec<Step>,
    dataset: &Dataset,
    network: &Network,
    options: &EngineOptions,
    sink: &mut dyn ElementSink,
    totals: &mut Totals,
) -> Result<()> {
    let started = std::time::Instant::now();
    let element_len: usize = dataset.element_shape.iter().product();
    let n: usize = steps.iter().map(|s| s.batch.elements.len()).sum();
    // Each element of the batch with its step and its position within that step.
    let elements: Vec<(&Step, usize, &ElementRef)> = steps
        .iter()
        .flat_map(|s| {
            s.batch
                .elements
                .iter()
                .enumerate()
                .map(move |(j, e)| (s, j, e))
        })
        .collect();
    let forward = Forward {
        output: cat_steps(&steps, |s| Some(&s.forward.output))?
            .context("a batch without a forward pass")?
            .f_to_kind(Kind::Float)?,
        mu: cat_steps(&steps, |s| s.forward.mu.as_ref())?,
        logvar: cat_steps(&steps, |s| s.forward.logvar.as_ref())?,
    };
    // Inputs are needed again only to compare reconstructions with them.
    let input = match options.task {
        Task::Reconstruction => cat_steps(&steps, |s| s.input.as_ref())?,
        _ => None,
    };
    let batch_losses = tch::autocast(options.amp, || -> Result<Vec<(String, f32)>> {
        Ok(match (&options.criterion, options.task) {
            (criterion, Task::Reconstruction) => network
                .reconstruction_loss(
                    &forward,
                    input.as_ref().context("reconstruction without its input")?,
                    criterion,
                )
                .context("the loss computation failed")?
                .into_iter()
                .map(|(k, v)| Ok((k, v.f_to_kind(Kind::Float)?.f_double_value(&[])? as f32)))
                .collect::<Result<_>>()?,
            (Criterion::Plain(loss), _) if options.use_labels => {
                let labels: Vec<Label> = elements
                    .iter()
                    .map(|(_, _, e)| dataset.sessions[e.session].label)
                    .collect();
                let target = batch_targets(&labels, options.task)?.f_to_device(options.device)?;
                let value = loss
                    .compute(&forward.output, &target)
                    .context("the loss computation failed")?;
                vec![(
                    "loss".to_owned(),
                    value.f_to_kind(Kind::Float)?.f_double_value(&[])? as f32,
                )]
            }
            _ => Vec::new(),
        })
    })?;
    let first_row = totals.rows.len();
    let output = forward.output.f_to_device(Device::Cpu)?;
    totals.forward_time += started.elapsed();
    let values = to_vec(&output)?;
    let width = values.len() / n.max(1);
    if values.len() != n * width || (options.task == Task::Reconstruction && width != element_len) {
        bail!(
            "the network returned {} values for a batch of {n} elements",
            values.len()
        );
    }
    let probabilities = match options.task {
        Task::Classification => Some(to_vec(&output.f_softmax(1, Kind::Float)?)?),
        _ => None,
    };
    let latents = match (sink.wants_latent(), network.latent(&forward)) {
        (true, Some(latent)) => Some(to_vec(&latent)?),
        _ => None,
    };
    for (i, &(step, j, element)) in elements.iter().enumerate() {
        let session = &dataset.sessions[element.session];
        let out = &values[i * width..(i + 1) * width];
        // The element's input, when kept (its data is emptied otherwise).
        let x = step.batch.data.get(j * element_len..(j + 1) * element_len);
        let input_of = || {
            x.with_context(|| {
                format!(
                    "({} | {}): the input of {} {} was not kept",
                    session.participant_id,
                    session.session_id,
                    dataset.mode.name(),
                    element.element_id
                )
            })
        };
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
                let (mae, rmse, psnr) =
                    super::measures::reconstruction_mae_rmse_psnr(input_of()?, out).with_context(
                        || {
                            format!(
                                "({} | {}): {} {}",
                                session.participant_id,
                                session.session_id,
                                dataset.mode.name(),
                                element.element_id
                            )
                        },
                    )?;
                let similarity = ssim(
                    &step
                        .input
                        .as_ref()
                        .context("a reconstruction without its input")?
                        .f_select(0, j as i64)?
                        .f_to_kind(Kind::Float)?,
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
        if sink.wants_elements() {
            let latent_width = latents.as_ref().map_or(0, |l| l.len() / n.max(1));
            sink.element(&FinishedElement {
                session,
                element_id: element.element_id,
                input: input_of()?,
                output: out,
                shape: &dataset.element_shape,
                latent: latents
                    .as_ref()
                    .map(|l| &l[i * latent_width..(i + 1) * latent_width]),
            })?;
        }
        totals.rows.push(Row {
            participant_id: session.participant_id.clone(),
            session_id: session.session_id.clone(),
            element_id: element.element_id,
            values,
        });
    }
    let read: Vec<(std::path::PathBuf, String)> = steps
        .iter()
        .flat_map(|s| s.batch.read.iter().cloned())
        .collect();
    sink.batch(&FinishedBatch {
        rows: &totals.rows[first_row..],
        losses: &batch_losses,
        elements_done: totals.rows.len(),
        read: &read,
    })?;
    totals.read.extend(read);
    if !batch_losses.is_empty() {
        totals.batch_losses.push(batch_losses);
    }
    Ok(())
}
