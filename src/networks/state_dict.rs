//! Strict state_dict loading: the network asks for each parameter by its PyTorch key and shape;
//! every missing key, shape mismatch and unused key of the checkpoint is collected and reported
//! at once (PyTorch's `load_state_dict(strict=True)`, with better messages).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use tch::{Device, Kind, Tensor};

use crate::torchfile::{Checkpoint, DType, StoredTensor};

/// The tensors of a checkpoint, handed out by key to the network being built.
pub struct StateDict {
    origin: PathBuf,
    tensors: BTreeMap<String, StoredTensor>,
    used: RefCell<BTreeSet<String>>,
    problems: RefCell<Vec<String>>,
    device: Device,
    check_only: bool,
}

impl StateDict {
    /// Wraps a decoded checkpoint; tensors are created on `device` when asked for.
    pub fn new(checkpoint: Checkpoint, origin: &Path, device: Device) -> Self {
        StateDict {
            origin: origin.to_owned(),
            tensors: checkpoint.state_dict.into_iter().collect(),
            used: RefCell::new(BTreeSet::new()),
            problems: RefCell::new(Vec::new()),
            device,
            check_only: false,
        }
    }

    /// Like [`StateDict::new`], but only keys and shapes are checked: parameters are handed out
    /// as empty placeholders (for validating a checkpoint before a run, cheaply).
    pub fn check_only(checkpoint: Checkpoint, origin: &Path) -> Self {
        StateDict {
            check_only: true,
            ..StateDict::new(checkpoint, origin, Device::Cpu)
        }
    }

    /// Whether this only checks keys and shapes (parameters are empty placeholders).
    pub fn is_check_only(&self) -> bool {
        self.check_only
    }

    /// The float32 parameter `key` with the expected `shape`. A problem is recorded (and a
    /// zero tensor returned) when the key is missing or its shape differs.
    pub fn param(&self, key: &str, shape: &[i64]) -> Tensor {
        match self.fetch(key, shape) {
            Ok(t) => t,
            Err(problem) => {
                self.problems.borrow_mut().push(problem);
                Tensor::empty([0], (Kind::Float, Device::Cpu))
            }
        }
    }

    /// Marks an integer buffer (`num_batches_tracked`) as expected, checking its presence only.
    pub fn buffer(&self, key: &str) {
        if self.tensors.contains_key(key) {
            self.used.borrow_mut().insert(key.to_owned());
        } else {
            self.problems
                .borrow_mut()
                .push(format!("missing key `{key}`"));
        }
    }

    fn fetch(&self, key: &str, shape: &[i64]) -> Result<Tensor, String> {
        let stored = self
            .tensors
            .get(key)
            .ok_or_else(|| format!("missing key `{key}` (expected shape {shape:?})"))?;
        self.used.borrow_mut().insert(key.to_owned());
        let found: Vec<i64> = stored.shape.iter().map(|&d| d as i64).collect();
        if found != shape {
            return Err(format!(
                "key `{key}` has shape {found:?} in the checkpoint but the network expects {shape:?}"
            ));
        }
        if self.check_only {
            return Ok(Tensor::empty([0], (Kind::Float, Device::Cpu)));
        }
        let error = |e: &dyn std::fmt::Display| format!("key `{key}`: {e}");
        // Float32 parameters in C order (all of ClinicaDL's) are copied once, from the bytes
        // read from the file straight into the tensor; others are converted first.
        let tensor = match stored.contiguous_bytes() {
            Some(bytes) if stored.dtype == DType::F32 && cfg!(target_endian = "little") => {
                Tensor::f_from_data_size(bytes, shape, Kind::Float).map_err(|e| error(&e))?
            }
            _ => {
                let values = stored.to_f32_vec().map_err(|e| error(&e))?;
                Tensor::f_from_slice(&values)
                    .and_then(|t| t.f_reshape(shape))
                    .map_err(|e| error(&e))?
            }
        };
        tensor.f_to_device(self.device).map_err(|e| error(&e))
    }

    /// Ends loading: an error listing every problem and every key the network did not use.
    pub fn finish(self, architecture: &str) -> Result<()> {
        let used = self.used.into_inner();
        let mut problems = self.problems.into_inner();
        for key in self.tensors.keys().filter(|k| !used.contains(*k)) {
            problems.push(format!("unexpected key `{key}`"));
        }
        if !problems.is_empty() {
            bail!(
                "the checkpoint `{}` does not fit the {architecture} network described by maps.json ({} problem(s)):\n  * {}",
                self.origin.display(),
                problems.len(),
                problems.join("\n  * ")
            );
        }
        Ok(())
    }
}
