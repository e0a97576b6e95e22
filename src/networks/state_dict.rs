//! Strict state_dict loading: the network asks for each parameter by its PyTorch key and shape;
//! every missing key, shape mismatch and unused key of the checkpoint is collected and reported
//! at once (PyTorch's `load_state_dict(strict=True)`, with better messages).
//!
//! Parameters come from one of three sources: the checkpoint's headers only (checking before a
//! run), the file itself (each parameter read straight from its zip entry into its tensor, large
//! ones on several threads: the tensor is the only large allocation), or a checkpoint decoded
//! whole (legacy files and unusual layouts).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tch::{Device, Kind, Tensor};

use crate::torchfile::{Checkpoint, DType, FileSpan, StoredTensor, TensorHeader};

/// Bytes read at a time when a parameter is read from the file (small enough to stay in the
/// cache between the read and the copy into the tensor: measured faster than larger chunks).
const CHUNK_BYTES: usize = 512 << 10;

/// Parameters at least this large are read on several threads.
const PARALLEL_BYTES: u64 = 16 << 20;

/// Where the parameters' values come from.
enum Source {
    /// Keys and shapes only: parameters are empty placeholders.
    HeadersOnly,
    /// The checkpoint file: each tensor is read from its span when asked for.
    File {
        file: File,
        spans: BTreeMap<String, (DType, FileSpan)>,
    },
    /// A checkpoint decoded whole.
    Decoded(BTreeMap<String, StoredTensor>),
}

/// The tensors of a checkpoint, handed out by key to the network being built.
pub struct StateDict {
    origin: PathBuf,
    /// Shape of every tensor, by key.
    shapes: BTreeMap<String, Vec<usize>>,
    source: Source,
    used: RefCell<BTreeSet<String>>,
    problems: RefCell<Vec<String>>,
    device: Device,
}

impl StateDict {
    fn with(
        origin: &Path,
        shapes: BTreeMap<String, Vec<usize>>,
        source: Source,
        device: Device,
    ) -> Self {
        StateDict {
            origin: origin.to_owned(),
            shapes,
            source,
            used: RefCell::new(BTreeSet::new()),
            problems: RefCell::new(Vec::new()),
            device,
        }
    }

    /// Opens the checkpoint at `path`; tensors are created on `device` when asked for, read
    /// from the file when every tensor owns a whole entry (what `torch.save` writes), else from
    /// the checkpoint decoded whole.
    pub fn open(path: &Path, device: Device) -> Result<Self> {
        let context = || "cannot load the checkpoint";
        let layout = crate::torchfile::read_checkpoint_layout(path).with_context(context)?;
        let spans: Option<BTreeMap<String, (DType, FileSpan)>> = layout
            .state_dict
            .iter()
            .map(|(key, (header, span))| span.map(|span| (key.clone(), (header.dtype, span))))
            .collect();
        let shapes = layout
            .state_dict
            .into_iter()
            .map(|(key, (header, _))| (key, header.shape))
            .collect();
        match spans {
            Some(spans) if cfg!(target_endian = "little") => {
                let file = File::open(path)
                    .with_context(|| format!("cannot read the checkpoint `{}`", path.display()))?;
                Ok(StateDict::with(
                    path,
                    shapes,
                    Source::File { file, spans },
                    device,
                ))
            }
            _ => {
                let decoded = crate::torchfile::read_checkpoint(path).with_context(context)?;
                Ok(StateDict::new(decoded, path, device))
            }
        }
    }

    /// Wraps a decoded checkpoint; tensors are created on `device` when asked for.
    pub fn new(checkpoint: Checkpoint, origin: &Path, device: Device) -> Self {
        let shapes = checkpoint
            .state_dict
            .iter()
            .map(|(key, tensor)| (key.clone(), tensor.shape.clone()))
            .collect();
        let tensors = checkpoint.state_dict.into_iter().collect();
        StateDict::with(origin, shapes, Source::Decoded(tensors), device)
    }

    /// Only keys and shapes are checked, from the checkpoint's headers: parameters are handed
    /// out as empty placeholders (for validating a checkpoint before a run, cheaply).
    pub fn check_only(checkpoint: Checkpoint<TensorHeader>, origin: &Path) -> Self {
        let shapes = checkpoint
            .state_dict
            .into_iter()
            .map(|(key, header)| (key, header.shape))
            .collect();
        StateDict::with(origin, shapes, Source::HeadersOnly, Device::Cpu)
    }

    /// Whether this only checks keys and shapes (parameters are empty placeholders).
    pub fn is_check_only(&self) -> bool {
        matches!(self.source, Source::HeadersOnly)
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
        if self.shapes.contains_key(key) {
            self.used.borrow_mut().insert(key.to_owned());
        } else {
            self.problems
                .borrow_mut()
                .push(format!("missing key `{key}`"));
        }
    }

    fn fetch(&self, key: &str, shape: &[i64]) -> Result<Tensor, String> {
        let found = self
            .shapes
            .get(key)
            .ok_or_else(|| format!("missing key `{key}` (expected shape {shape:?})"))?;
        self.used.borrow_mut().insert(key.to_owned());
        let found: Vec<i64> = found.iter().map(|&d| d as i64).collect();
        if found != shape {
            return Err(format!(
                "key `{key}` has shape {found:?} in the checkpoint but the network expects {shape:?}"
            ));
        }
        let error = |e: &dyn std::fmt::Display| format!("key `{key}`: {e}");
        let tensor = match &self.source {
            Source::HeadersOnly => return Ok(Tensor::empty([0], (Kind::Float, Device::Cpu))),
            Source::File { file, spans } => {
                let (dtype, span) = spans.get(key).ok_or_else(|| error(&"not in the file"))?;
                read_span(file, *dtype, *span, shape, PARALLEL_BYTES).map_err(|e| error(&e))?
            }
            Source::Decoded(tensors) => {
                let stored = tensors.get(key).ok_or_else(|| error(&"not decoded"))?;
                // Float32 parameters in C order are copied once, from the bytes read from the
                // file into the tensor; others are converted first.
                match stored.contiguous_bytes() {
                    Some(bytes) if stored.dtype == DType::F32 && cfg!(target_endian = "little") => {
                        Tensor::f_from_data_size(bytes, shape, Kind::Float)
                            .map_err(|e| error(&e))?
                    }
                    _ => {
                        let values = stored.to_f32_vec().map_err(|e| error(&e))?;
                        Tensor::f_from_slice(&values)
                            .and_then(|t| t.f_reshape(shape))
                            .map_err(|e| error(&e))?
                    }
                }
            }
        };
        tensor.f_to_device(self.device).map_err(|e| error(&e))
    }

    /// Ends loading: an error listing every problem and every key the network did not use.
    pub fn finish(self, architecture: &str) -> Result<()> {
        let used = self.used.into_inner();
        let mut problems = self.problems.into_inner();
        for key in self.shapes.keys().filter(|k| !used.contains(*k)) {
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

/// The tch kind of a storage dtype.
fn kind_of(dtype: DType) -> Kind {
    match dtype {
        DType::Bool => Kind::Bool,
        DType::U8 => Kind::Uint8,
        DType::I8 => Kind::Int8,
        DType::I16 => Kind::Int16,
        DType::I32 => Kind::Int,
        DType::I64 => Kind::Int64,
        DType::F16 => Kind::Half,
        DType::BF16 => Kind::BFloat16,
        DType::F32 => Kind::Float,
        DType::F64 => Kind::Double,
    }
}

/// The float32 tensor of `shape` whose values (of `dtype`, C order, little-endian) lie at
/// `span` in `file`. Float32 values are read in chunks straight into the tensor, on several
/// threads from `parallel_from` bytes; others are read whole and converted. The CRC-32 is
/// checked when the zip records one.
fn read_span(
    file: &File,
    dtype: DType,
    span: FileSpan,
    shape: &[i64],
    parallel_from: u64,
) -> Result<Tensor, String> {
    let itemsize = dtype.itemsize() as u64;
    let numel = span.len / itemsize;
    let tch_error = |e: tch::TchError| e.to_string();
    let io_error = |e: std::io::Error| format!("cannot read its values: {e}");
    let (tensor, crc) = if dtype != DType::F32 {
        let mut bytes = vec![0u8; usize::try_from(span.len).map_err(|e| e.to_string())?];
        file.read_exact_at(&mut bytes, span.start)
            .map_err(io_error)?;
        let tensor = Tensor::f_from_data_size(&bytes, shape, kind_of(dtype))
            .and_then(|t| t.f_to_kind(Kind::Float))
            .map_err(tch_error)?;
        (tensor, crc32fast::hash(&bytes))
    } else {
        let tensor = Tensor::f_empty(shape, (Kind::Float, Device::Cpu)).map_err(tch_error)?;
        let flat = tensor.f_view([-1]).map_err(tch_error)?;
        let threads = if span.len >= parallel_from {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(4)) as u64
        } else {
            1
        };
        let per_thread = numel.div_ceil(threads);
        // Reads elements [first, last) into `view` (the tensor, flattened).
        let read_part =
            |view: Tensor, first: u64, last: u64| -> Result<crc32fast::Hasher, String> {
                let mut hasher = crc32fast::Hasher::new();
                let chunk = (CHUNK_BYTES as u64 / 4).min(last - first) as usize;
                let mut buffer = vec![0u8; chunk * 4];
                let mut at = first;
                while at < last {
                    let n = chunk.min((last - at) as usize);
                    let bytes = &mut buffer[..n * 4];
                    file.read_exact_at(bytes, span.start + at * 4)
                        .map_err(io_error)?;
                    hasher.update(bytes);
                    let values = Tensor::f_from_data_size(bytes, &[n as i64], Kind::Float)
                        .map_err(tch_error)?;
                    view.f_narrow(0, at as i64, n as i64)
                        .and_then(|mut part| part.f_copy_(&values))
                        .map_err(tch_error)?;
                    at += n as u64;
                }
                Ok(hasher)
            };
        let parts: Vec<Result<crc32fast::Hasher, String>> = if threads == 1 {
            vec![read_part(flat, 0, numel)]
        } else {
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..threads)
                    .map(|part| {
                        let view = flat.shallow_clone();
                        let first = (part * per_thread).min(numel);
                        let last = (first + per_thread).min(numel);
                        scope.spawn(move || read_part(view, first, last))
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|w| {
                        w.join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    })
                    .collect()
            })
        };
        let mut crc = crc32fast::Hasher::new();
        for part in parts {
            crc.combine(&part?);
        }
        (tensor, crc.finalize())
    };
    if span.crc32 != 0 && crc != span.crc32 {
        return Err(format!(
            "its values are corrupt (CRC-32 {crc:08x}, the zip records {:08x})",
            span.crc32
        ));
    }
    Ok(tensor)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/torchfile")
            .join(name)
    }

    fn values(tensor: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(tensor.flatten(0, -1)).unwrap()
    }

    /// Tensors read from their file spans (on one thread, or split across threads) hold the
    /// values of the decoded checkpoint, bit for bit, with and without recorded CRC-32s.
    #[test]
    fn file_spans_give_the_decoded_values() {
        for name in ["model.pth.tar", "model_no_crc32.pth.tar"] {
            let path = fixture(name);
            let layout = crate::torchfile::read_checkpoint_layout(&path).unwrap();
            let decoded = crate::torchfile::read_checkpoint(&path).unwrap();
            let file = File::open(&path).unwrap();
            assert_eq!(layout.state_dict.len(), decoded.state_dict.len());
            for ((key, (header, span)), (_, stored)) in
                layout.state_dict.iter().zip(&decoded.state_dict)
            {
                let span = span.unwrap_or_else(|| panic!("{name}: {key} has no span"));
                let shape: Vec<i64> = header.shape.iter().map(|&d| d as i64).collect();
                let want = stored.to_f32_vec().unwrap();
                for parallel_from in [0, u64::MAX] {
                    let got = read_span(&file, header.dtype, span, &shape, parallel_from).unwrap();
                    assert_eq!(got.size(), shape, "{name}: {key}");
                    let got = values(&got);
                    assert_eq!(got.len(), want.len());
                    assert!(
                        got.iter()
                            .zip(&want)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{name}: {key}"
                    );
                }
            }
        }
    }

    /// A flipped byte in a parameter's values is caught by the entry's CRC-32.
    #[test]
    fn corrupt_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.pth.tar");
        std::fs::copy(fixture("model.pth.tar"), &path).unwrap();
        let layout = crate::torchfile::read_checkpoint_layout(&path).unwrap();
        let (_, (_, span)) = layout
            .state_dict
            .iter()
            .find(|(key, _)| key == "3.weight")
            .unwrap();
        let span = span.unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[span.start as usize + 1] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
        let sd = StateDict::open(&path, Device::Cpu).unwrap();
        let message = sd.fetch("3.weight", &[3, 2]).unwrap_err();
        assert!(
            message.starts_with("key `3.weight`: its values are corrupt (CRC-32 "),
            "{message}"
        );
        // The other parameters are intact.
        assert!(sd.fetch("3.bias", &[3]).is_ok());
    }
}
