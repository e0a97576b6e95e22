//! Writes a C-contiguous float32 tensor as a file `torch.load(path, weights_only=True)` reads
//! (docs/ARCHITECTURE.md, "PyTorch files"): a stored zip with the entries torch 2.11 writes, each
//! aligned on 64 bytes like torch's own, and the single-tensor pickle torch writes (protocol 2, the
//! same opcodes and memo use as torch). `write_tensor` writes to a temporary file in the target
//! folder and renames it, so a reader never sees a half-written file. Reading is left to the other
//! files. Counterpart in torch: `torch/serialization.py`, `_save` (and
//! `torch.Tensor.__reduce_ex__`).

use std::fs::{self, File};
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use zip::CompressionMethod;
use zip::ZipWriter;
use zip::write::SimpleFileOptions;

use super::error::TorchFileError;
use super::opcodes;
use super::tensor::checked_numel;

/// Alignment of entry data, as torch writes it (`.storage_alignment`).
const ALIGNMENT: u16 = 64;
/// Id of the padding extra field torch uses for alignment: the bytes `FB`.
const ALIGNMENT_FIELD_ID: u16 = u16::from_le_bytes(*b"FB");
/// Floats converted to bytes per write.
const CHUNK: usize = 1 << 16;

/// Everything the single-tensor pickle says; signed so that tests can describe lying files.
#[derive(Debug, Clone)]
pub(crate) struct TensorPickle<'a> {
    /// Storage class in module `torch`, e.g. `FloatStorage`.
    pub storage_class: &'a str,
    /// Storage key (the entry `data/<key>`).
    pub key: &'a str,
    /// Device location, `cpu` or `cuda:<n>`.
    pub location: &'a str,
    /// Number of elements of the storage.
    pub storage_numel: i64,
    /// Storage offset in elements.
    pub offset: i64,
    /// Size of each dimension.
    pub shape: &'a [i64],
    /// Stride of each dimension, in elements.
    pub strides: &'a [i64],
    /// The recorded `requires_grad` flag.
    pub requires_grad: bool,
}

/// Builds pickle opcodes the way Python's protocol-2 pickler does.
#[derive(Debug, Default)]
struct PickleWriter {
    out: Vec<u8>,
    memo: u32,
}

impl PickleWriter {
    fn op(&mut self, code: u8) {
        self.out.push(code);
    }

    /// BINPUT / LONG_BINPUT of the next memo index (Python memoizes almost every object).
    fn put(&mut self) {
        match u8::try_from(self.memo) {
            Ok(index) => self.out.extend_from_slice(&[opcodes::BINPUT, index]),
            Err(_) => {
                self.out.push(opcodes::LONG_BINPUT);
                self.out.extend_from_slice(&self.memo.to_le_bytes());
            }
        }
        self.memo += 1;
    }

    fn int(&mut self, value: i64) {
        if let Ok(small) = u8::try_from(value) {
            self.out.extend_from_slice(&[opcodes::BININT1, small]);
        } else if let Ok(medium) = u16::try_from(value) {
            self.out.push(opcodes::BININT2);
            self.out.extend_from_slice(&medium.to_le_bytes());
        } else if let Ok(word) = i32::try_from(value) {
            self.out.push(opcodes::BININT);
            self.out.extend_from_slice(&word.to_le_bytes());
        } else {
            // LONG1 with the shortest two's-complement encoding.
            let bytes = value.to_le_bytes();
            let mut len = bytes.len();
            while len > 1 {
                let top = bytes[len - 1];
                let sign_of_next = bytes[len - 2] & 0x80;
                if (top == 0x00 && sign_of_next == 0) || (top == 0xff && sign_of_next != 0) {
                    len -= 1;
                } else {
                    break;
                }
            }
            self.out.push(opcodes::LONG1);
            self.out.push(len as u8);
            self.out.extend_from_slice(&bytes[..len]);
        }
    }

    fn unicode(&mut self, text: &str) {
        self.out.push(opcodes::BINUNICODE);
        // Strings written here are short names; a longer one is a bug, not a file problem.
        let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out.extend_from_slice(text.as_bytes());
        self.put();
    }

    fn global(&mut self, module: &str, name: &str) {
        self.out.push(opcodes::GLOBAL);
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
        self.put();
    }

    fn int_tuple(&mut self, values: &[i64]) {
        match values.len() {
            0 => self.op(opcodes::EMPTY_TUPLE),
            1..=3 => {
                values.iter().for_each(|&v| self.int(v));
                self.op([opcodes::TUPLE1, opcodes::TUPLE2, opcodes::TUPLE3][values.len() - 1]);
            }
            _ => {
                self.op(opcodes::MARK);
                values.iter().for_each(|&v| self.int(v));
                self.op(opcodes::TUPLE);
            }
        }
        self.put();
    }
}

/// The `data.pkl` of a file holding one tensor, opcode for opcode as torch writes it.
pub(crate) fn tensor_pickle(spec: &TensorPickle<'_>) -> Vec<u8> {
    let mut p = PickleWriter::default();
    p.out.extend_from_slice(&[opcodes::PROTO, 2]);
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.op(opcodes::MARK);
    // Persistent id ('storage', torch.<Class>, key, location, numel).
    p.op(opcodes::MARK);
    p.unicode("storage");
    p.global("torch", spec.storage_class);
    p.unicode(spec.key);
    p.unicode(spec.location);
    p.int(spec.storage_numel);
    p.op(opcodes::TUPLE);
    p.put();
    p.op(opcodes::BINPERSID);
    p.int(spec.offset);
    p.int_tuple(spec.shape);
    p.int_tuple(spec.strides);
    p.op(if spec.requires_grad {
        opcodes::NEWTRUE
    } else {
        opcodes::NEWFALSE
    });
    // backward_hooks = collections.OrderedDict()
    p.global("collections", "OrderedDict");
    p.op(opcodes::EMPTY_TUPLE);
    p.op(opcodes::REDUCE);
    p.put();
    p.op(opcodes::TUPLE);
    p.put();
    p.op(opcodes::REDUCE);
    p.put();
    p.op(opcodes::STOP);
    p.out
}

/// Writes a C-contiguous float32 tensor to `writer` as a torch zip archive whose entries live
/// under `<archive_name>/`.
pub fn write_tensor_to(
    writer: impl Write + Seek,
    archive_name: &str,
    shape: &[usize],
    data: &[f32],
    requires_grad: bool,
) -> Result<(), TorchFileError> {
    let origin = Path::new(archive_name);
    let invalid = |detail: String| TorchFileError::InvalidArgument {
        path: origin.to_path_buf(),
        detail,
    };
    if archive_name.is_empty() || archive_name.contains(['/', '\\', '\n']) {
        return Err(invalid(format!(
            "archive name `{archive_name}` must be a non-empty file stem without separators"
        )));
    }
    let numel = checked_numel(shape).ok_or_else(|| {
        invalid(format!(
            "shape {shape:?} holds more elements than memory can address"
        ))
    })?;
    if numel != data.len() {
        return Err(invalid(format!(
            "shape {shape:?} holds {numel} values but {} were given",
            data.len()
        )));
    }
    // C-contiguous strides, computed as torch does (a size-0 dimension counts as 1).
    let mut strides = vec![0usize; shape.len()];
    let mut step: usize = 1;
    for (stride, &size) in strides.iter_mut().zip(shape).rev() {
        *stride = step;
        step = step.saturating_mul(size.max(1));
    }
    let to_i64 = |values: &[usize]| -> Result<Vec<i64>, TorchFileError> {
        values
            .iter()
            .map(|&v| {
                i64::try_from(v)
                    .map_err(|_| invalid(format!("size {v} does not fit in a pickle int")))
            })
            .collect()
    };
    let storage_numel = i64::try_from(numel)
        .map_err(|_| invalid(format!("{numel} elements do not fit in a pickle int")))?;
    let pickle = tensor_pickle(&TensorPickle {
        storage_class: "FloatStorage",
        key: "0",
        location: "cpu",
        storage_numel,
        offset: 0,
        shape: &to_i64(shape)?,
        strides: &to_i64(&strides)?,
        requires_grad,
    });
    let data_bytes = numel
        .checked_mul(4)
        .ok_or_else(|| invalid(format!("{numel} float32 values do not fit in memory")))?;

    let zip_error = |source| TorchFileError::Zip {
        path: origin.to_path_buf(),
        action: "cannot write",
        source,
    };
    let io_error = |source| TorchFileError::Io {
        path: origin.to_path_buf(),
        action: "write the zip archive",
        source,
    };
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .with_alignment_and_header_id(ALIGNMENT, ALIGNMENT_FIELD_ID);
    let mut zip = ZipWriter::new(writer);
    let small_entries: [(&str, &[u8]); 3] = [
        ("data.pkl", &pickle),
        (".format_version", b"1"),
        (".storage_alignment", b"64"),
    ];
    for (name, content) in small_entries
        .into_iter()
        .chain([("byteorder", &b"little"[..])])
    {
        zip.start_file(format!("{archive_name}/{name}"), options)
            .map_err(zip_error)?;
        zip.write_all(content).map_err(io_error)?;
    }
    let large = u64::try_from(data_bytes).map_or(true, |bytes| bytes >= u64::from(u32::MAX));
    zip.start_file(format!("{archive_name}/data/0"), options.large_file(large))
        .map_err(zip_error)?;
    let mut buffer = Vec::with_capacity(CHUNK.min(numel) * 4);
    for chunk in data.chunks(CHUNK) {
        buffer.clear();
        buffer.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
        zip.write_all(&buffer).map_err(io_error)?;
    }
    zip.start_file(format!("{archive_name}/version"), options)
        .map_err(zip_error)?;
    zip.write_all(b"3\n").map_err(io_error)?;
    let mut inner = zip.finish().map_err(zip_error)?;
    inner.flush().map_err(io_error)?;
    Ok(())
}

/// Writes a C-contiguous float32 tensor to `path`, atomically (temporary file + rename); the
/// archive prefix is the file name without its last extension, as torch does.
pub fn write_tensor(
    path: &Path,
    shape: &[usize],
    data: &[f32],
    requires_grad: bool,
) -> Result<(), TorchFileError> {
    let (Some(file_name), Some(stem)) = (path.file_name(), path.file_stem()) else {
        return Err(TorchFileError::InvalidArgument {
            path: path.to_path_buf(),
            detail: "the path has no file name".to_string(),
        });
    };
    let archive_name = stem.to_string_lossy().into_owned();
    let temp = temp_path(path, &file_name.to_string_lossy());
    let result = write_to_temp(&temp, &archive_name, shape, data, requires_grad).and_then(|()| {
        fs::rename(&temp, path).map_err(|source| TorchFileError::Io {
            path: path.to_path_buf(),
            action: "move the finished file into place",
            source,
        })
    });
    if result.is_err() {
        // Best effort: the temporary file may not exist, or may already be gone.
        let _ = fs::remove_file(&temp);
    }
    result.map_err(|error| match error {
        // Report the target path, not the temporary one.
        TorchFileError::Io { action, source, .. } => TorchFileError::Io {
            path: path.to_path_buf(),
            action,
            source,
        },
        TorchFileError::Zip { action, source, .. } => TorchFileError::Zip {
            path: path.to_path_buf(),
            action,
            source,
        },
        TorchFileError::InvalidArgument { detail, .. } => TorchFileError::InvalidArgument {
            path: path.to_path_buf(),
            detail,
        },
        other => other,
    })
}

fn write_to_temp(
    temp: &Path,
    archive_name: &str,
    shape: &[usize],
    data: &[f32],
    requires_grad: bool,
) -> Result<(), TorchFileError> {
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(temp)
        .map_err(|source| TorchFileError::Io {
            path: temp.to_path_buf(),
            action: "create the file",
            source,
        })?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    write_tensor_to(&mut writer, archive_name, shape, data, requires_grad)?;
    writer.flush().map_err(|source| TorchFileError::Io {
        path: temp.to_path_buf(),
        action: "write the file",
        source,
    })
}

/// A fresh hidden name next to `path`, unique within this process and across processes.
fn temp_path(path: &Path, file_name: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{file_name}.{}.{n}.tmp", std::process::id()))
}
