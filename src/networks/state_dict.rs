//! Strict state_dict loading: the network asks for each parameter by its PyTorch key and shape;
//! every missing key, shape mismatch and unused key of the checkpoint is collected and reported
//! at once (PyTorch's `load_state_dict(strict=True)`, with better messages).
//!
//! Parameters come from one of three sources: the checkpoint's headers only (checking before a
//! run), the file mapped into memory (each parameter a view of its zip entry: nothing is copied
//! and memory is only touched as the network reads it), or a checkpoint decoded whole (legacy
//! files and unusual layouts).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tch::{Device, Kind, Tensor};

use crate::torchfile::{Checkpoint, DType, FileSpan, FileStamp, StoredTensor, TensorHeader};

/// Bytes copied out of the mapping at a time when checking a parameter's CRC-32.
const CHUNK_BYTES: usize = 512 << 10;

/// Where the parameters' values come from.
enum Source {
    /// Keys and shapes only: parameters are empty placeholders.
    HeadersOnly,
    /// The checkpoint file mapped into memory (privately: the file is never written), as bytes;
    /// each tensor is a view of its span, its CRC-32 checked first when `verify`.
    Mapped {
        bytes: Tensor,
        spans: BTreeMap<String, (DType, FileSpan)>,
        verify: bool,
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

    /// Opens the checkpoint at `path`; tensors are created on `device` when asked for. When
    /// every tensor owns a whole entry (what `torch.save` writes), the file is mapped into memory
    /// and parameters are views of it, their values checked against their CRC-32s unless
    /// `checked` is the file's stamp (the values were checked and the file is unchanged since);
    /// else the checkpoint is decoded whole.
    pub fn open(path: &Path, device: Device, checked: Option<&FileStamp>) -> Result<Self> {
        let context = || "cannot load the checkpoint";
        let (layout, stamp) =
            crate::torchfile::read_checkpoint_layout(path).with_context(context)?;
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
        // Mapping can fail where decoding does not (a file system without mmap, a path that is
        // not UTF-8): the checkpoint is then decoded whole.
        let mapped = match (&spans, path.to_str()) {
            (Some(_), Some(name)) if cfg!(target_endian = "little") => {
                match Tensor::f_from_file(name, false, stamp.len as i64, (Kind::Uint8, Device::Cpu))
                {
                    Ok(bytes) => Some(bytes),
                    Err(error) => {
                        crate::ui::debug(&format!(
                            "cannot map `{}` into memory, decoding it instead: {error}",
                            path.display()
                        ));
                        None
                    }
                }
            }
            _ => None,
        };
        match (spans, mapped) {
            (Some(spans), Some(bytes)) => {
                if FileStamp::of(path).ok() != Some(stamp) {
                    bail!(
                        "the checkpoint `{}` changed while it was being read (is another program writing it?); run again once it is complete",
                        path.display()
                    );
                }
                let verify = checked != Some(&stamp);
                // Truncating the file from now on kills the run with SIGBUS: the command names it.
                crate::supervision::record_mapped_file(path);
                Ok(StateDict::with(
                    path,
                    shapes,
                    Source::Mapped {
                        bytes,
                        spans,
                        verify,
                    },
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
            Source::Mapped {
                bytes,
                spans,
                verify,
            } => {
                let (dtype, span) = spans.get(key).ok_or_else(|| error(&"not in the file"))?;
                let raw = bytes
                    .f_narrow(0, span.start as i64, span.len as i64)
                    .map_err(|e| error(&e))?;
                if *verify {
                    check_crc32(&raw, span.crc32).map_err(|e| error(&e))?;
                }
                tensor_from_bytes(raw, *dtype, shape).map_err(|e| error(&e))?
            }
            Source::Decoded(tensors) => {
                let stored = tensors.get(key).ok_or_else(|| error(&"not decoded"))?;
                // Parameters in C order are copied once, from the bytes read from the file into
                // a tensor (then converted like mapped ones); others are gathered first.
                match stored.contiguous_bytes() {
                    Some(bytes) if cfg!(target_endian = "little") => Tensor::f_from_slice(bytes)
                        .and_then(|raw| tensor_from_bytes(raw, stored.dtype, shape))
                        .map_err(|e| error(&e))?,
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

/// The float32 tensor of `shape` whose values (of `dtype`, C order, little-endian) are `bytes`
/// (a 1-D byte tensor): a view of them when they are float32 and aligned for it, else a converted
/// copy.
fn tensor_from_bytes(bytes: Tensor, dtype: DType, shape: &[i64]) -> Result<Tensor, tch::TchError> {
    let kind = kind_of(dtype);
    // Viewing bytes as wider values needs their offset aligned to the value's size (`torch.save`
    // aligns every entry to 64 bytes); others are copied to fresh memory first.
    let typed = match bytes.f_view_dtype(kind) {
        Ok(typed) => typed,
        Err(_) => {
            let mut fresh = Tensor::f_empty(bytes.size(), (Kind::Uint8, Device::Cpu))?;
            fresh.f_copy_(&bytes)?;
            fresh.f_view_dtype(kind)?
        }
    };
    let typed = typed.f_view(shape)?;
    if dtype == DType::F32 {
        Ok(typed)
    } else {
        typed.f_to_kind(Kind::Float)
    }
}

/// Checks the CRC-32 of `bytes` (a 1-D byte tensor) against the one the zip records (0: none).
fn check_crc32(bytes: &Tensor, recorded: u32) -> Result<(), String> {
    if recorded == 0 {
        return Ok(());
    }
    let len = bytes.size()[0];
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; CHUNK_BYTES.min(len as usize)];
    let mut at = 0;
    while at < len {
        let n = (CHUNK_BYTES as i64).min(len - at);
        let chunk = &mut buffer[..n as usize];
        bytes
            .f_narrow(0, at, n)
            .and_then(|part| part.f_copy_data_u8(chunk, n as usize))
            .map_err(|e| e.to_string())?;
        hasher.update(chunk);
        at += n;
    }
    let crc = hasher.finalize();
    if crc != recorded {
        return Err(format!(
            "its values are corrupt (CRC-32 {crc:08x}, the zip records {recorded:08x})"
        ));
    }
    Ok(())
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

    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    /// Parameters viewed in the mapped file hold the values of the decoded checkpoint, bit for
    /// bit, with and without recorded CRC-32s, checked or not.
    #[test]
    fn mapped_parameters_are_the_decoded_values() {
        for name in ["model.pth.tar", "model_no_crc32.pth.tar"] {
            let path = fixture(name);
            let decoded = crate::torchfile::read_checkpoint(&path).unwrap();
            let stamp = FileStamp::of(&path).unwrap();
            for checked in [None, Some(&stamp)] {
                let sd = StateDict::open(&path, Device::Cpu, checked).unwrap();
                assert!(
                    matches!(sd.source, Source::Mapped { verify, .. } if verify == checked.is_none())
                );
                for (key, stored) in &decoded.state_dict {
                    let shape: Vec<i64> = stored.shape.iter().map(|&d| d as i64).collect();
                    let got = sd.fetch(key, &shape).unwrap();
                    assert_eq!(got.size(), shape, "{name}: {key}");
                    assert!(
                        same_bits(&values(&got), &stored.to_f32_vec().unwrap()),
                        "{name}: {key}"
                    );
                }
            }
        }
    }

    /// A checkpoint that cannot be mapped (here: a path libtorch cannot take, not UTF-8) is
    /// decoded whole instead, with the same values.
    #[test]
    fn unmappable_checkpoints_are_decoded() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir
            .path()
            .join(std::ffi::OsStr::from_bytes(b"mod\xffel.pth.tar"));
        std::fs::copy(fixture("model.pth.tar"), &path).unwrap();
        let sd = StateDict::open(&path, Device::Cpu, None).unwrap();
        assert!(matches!(sd.source, Source::Decoded(_)));
        let decoded = crate::torchfile::read_checkpoint(&path).unwrap();
        for (key, stored) in &decoded.state_dict {
            let shape: Vec<i64> = stored.shape.iter().map(|&d| d as i64).collect();
            let got = sd.fetch(key, &shape).unwrap();
            assert!(
                same_bits(&values(&got), &stored.to_f32_vec().unwrap()),
                "{key}"
            );
        }
    }

    /// Bytes at an offset that float32 values cannot be viewed at are copied first; other dtypes
    /// are converted to float32.
    #[test]
    fn unaligned_and_other_dtypes_are_converted() {
        let want = [1.5f32, -2.25, 3.0e-7, f32::MAX];
        let mut raw = vec![0u8];
        raw.extend(want.iter().flat_map(|v| v.to_le_bytes()));
        let bytes = Tensor::from_slice(&raw).narrow(0, 1, 16);
        let got = tensor_from_bytes(bytes, DType::F32, &[2, 2]).unwrap();
        assert_eq!(got.size(), [2, 2]);
        assert!(same_bits(&values(&got), &want));

        let doubles: Vec<u8> = [0.5f64, -4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let got = tensor_from_bytes(Tensor::from_slice(&doubles), DType::F64, &[2]).unwrap();
        assert_eq!(got.kind(), Kind::Float);
        assert_eq!(values(&got), [0.5, -4.0]);
    }

    /// A flipped byte in a parameter's values is caught by the entry's CRC-32, unless the file
    /// carries the stamp its values were checked with (then they are not read again).
    #[test]
    fn corrupt_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.pth.tar");
        std::fs::copy(fixture("model.pth.tar"), &path).unwrap();
        let checked_before = FileStamp::of(&path).unwrap();
        let (layout, _) = crate::torchfile::read_checkpoint_layout(&path).unwrap();
        let (_, (_, span)) = layout
            .state_dict
            .iter()
            .find(|(key, _)| key == "3.weight")
            .unwrap();
        let span = span.unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[span.start as usize + 1] ^= 0x40;
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, bytes).unwrap();
        // Not checked, or checked before the file changed: the values are checked now.
        for checked in [None, Some(&checked_before)] {
            let sd = StateDict::open(&path, Device::Cpu, checked).unwrap();
            let message = sd.fetch("3.weight", &[3, 2]).unwrap_err();
            assert!(
                message.starts_with("key `3.weight`: its values are corrupt (CRC-32 "),
                "{message}"
            );
            // The other parameters are intact.
            assert!(sd.fetch("3.bias", &[3]).is_ok());
        }
        let unchanged = FileStamp::of(&path).unwrap();
        let sd = StateDict::open(&path, Device::Cpu, Some(&unchanged)).unwrap();
        assert!(sd.fetch("3.weight", &[3, 2]).is_ok());
    }
}
