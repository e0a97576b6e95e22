//! PyTorch `torch.save` files (`.pt`, `.pth.tar`) read and written without executing pickle code
//! (formats.md §1). This file owns the public API: the [`Value`] tree a file decodes to, the
//! entry points [`read`], [`read_tensor`], [`read_tensor_header`] (dtype and shape only, for
//! checking files cheaply), [`read_checkpoint_header`] (the same for checkpoints, values
//! checked against their CRC-32s), [`read_checkpoint_layout`] (where parameters lie in the file),
//! [`read_tensor_f32`] (a tensor's values, straight from the file in
//! the common case) and [`read_checkpoint`] (ClinicaDL's `model.pth.tar`), each with a
//! `_from_bytes` twin for a file already in memory (the fuzz targets' way in), and the
//! re-exported writer. The zip container lives in `archive.rs`, the legacy format in
//! `legacy.rs`, the pickle subset in `pickle.rs`, tensors and their conversions in `tensor.rs`,
//! the writer in `writer.rs`; turning tensors into `tch` tensors is left to the callers.

mod archive;
mod error;
mod legacy;
mod opcodes;
mod pickle;
mod tensor;
mod writer;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek};
use std::path::Path;

pub use error::TorchFileError;
pub(crate) use tensor::gather_view;
pub use tensor::{DType, StoredTensor, TensorHeader};
pub use writer::{write_tensor, write_tensor_to};

/// The first bytes of a zip archive (a local file header).
const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";

/// A decoded pickle object: the plain data a torch file may hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Python `None`.
    None,
    /// Python `bool`.
    Bool(bool),
    /// Python `int` that fits in 64 bits.
    Int(i64),
    /// Python `float`.
    Float(f64),
    /// Python `str`.
    Str(String),
    /// Python `bytes`.
    Bytes(Vec<u8>),
    /// Python `tuple`.
    Tuple(Vec<Value>),
    /// Python `list`.
    List(Vec<Value>),
    /// Python `dict` or `collections.OrderedDict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A tensor rebuilt by `torch._utils._rebuild_tensor_v2` (or `_rebuild_parameter`).
    Tensor(StoredTensor),
}

impl Value {
    /// The Python type name of the value (`dict`, `tensor`, …), for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Tensor(_) => "tensor",
        }
    }

    /// The value stored under the string key `key`, if this is a dict that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(text) if text == key))
                .map(|(_, value)| value),
            _ => None,
        }
    }
}

/// A ClinicaDL checkpoint (`model.pth.tar`): the network's state_dict and its metadata; with
/// `T` = [`TensorHeader`], the headers of its tensors only ([`read_checkpoint_header`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint<T = StoredTensor> {
    /// Parameter and buffer tensors keyed by their PyTorch names, in file order.
    pub state_dict: Vec<(String, T)>,
    /// The `epoch` entry, when present.
    pub epoch: Option<i64>,
    /// The `name` entry (the architecture name), when present.
    pub name: Option<String>,
}

/// A torch file opened for reading: a zip archive (read in place) or a legacy file (read whole).
enum Opened<'p, R = BufReader<File>> {
    Zip(archive::TorchZip<'p, R>),
    Legacy(Vec<u8>),
}

fn io_error(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> TorchFileError {
    move |source| TorchFileError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// The two formats of `torch.save`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Zip,
    Legacy,
}

/// Tells the two formats apart by the first four bytes of a file.
fn format_of(start: &[u8], origin: &Path) -> Result<Format, TorchFileError> {
    if start.is_empty() {
        Err(TorchFileError::malformed(
            origin,
            "file is empty, not a torch file",
        ))
    } else if start.starts_with(&ZIP_MAGIC) {
        Ok(Format::Zip)
    } else if start.starts_with(&legacy::LEGACY_START) {
        Ok(Format::Legacy)
    } else {
        Err(TorchFileError::malformed(
            origin,
            "not a torch file: neither a zip archive nor the legacy pickle format",
        ))
    }
}

/// Opens a torch file: a zip archive is read in place, a legacy file whole.
fn open(path: &Path) -> Result<Opened<'_>, TorchFileError> {
    open_stamped(path).map(|(opened, _)| opened)
}

/// [`open`], with the stamp of the file opened.
fn open_stamped(path: &Path) -> Result<(Opened<'_>, FileStamp), TorchFileError> {
    let mut file = File::open(path).map_err(io_error(path, "read the file"))?;
    let stamp = FileStamp::from(&file.metadata().map_err(io_error(path, "read the file"))?);
    let len = usize::try_from(stamp.len)
        .map_err(|_| TorchFileError::malformed(path, "file is larger than memory can address"))?;
    let mut bytes = Vec::new();
    (&mut file)
        .take(ZIP_MAGIC.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(io_error(path, "read the file"))?;
    match format_of(&bytes, path)? {
        Format::Zip => {
            file.rewind().map_err(io_error(path, "read the file"))?;
            Ok((
                Opened::Zip(archive::TorchZip::open(BufReader::new(file), len, path)?),
                stamp,
            ))
        }
        Format::Legacy => {
            file.read_to_end(&mut bytes)
                .map_err(io_error(path, "read the file"))?;
            Ok((Opened::Legacy(bytes), stamp))
        }
    }
}

/// Reads the object saved in a torch file (zip or legacy format, detected by content).
pub fn read(path: &Path) -> Result<Value, TorchFileError> {
    match open(path)? {
        Opened::Zip(zip) => zip.into_value(),
        Opened::Legacy(bytes) => legacy::read_legacy(&bytes, path),
    }
}

/// Reads the object saved in a torch file already in memory; `origin` only names it in messages.
pub fn read_from_bytes(bytes: &[u8], origin: &Path) -> Result<Value, TorchFileError> {
    match format_of(bytes, origin)? {
        Format::Zip => {
            archive::TorchZip::open(Cursor::new(bytes), bytes.len(), origin)?.into_value()
        }
        Format::Legacy => legacy::read_legacy(bytes, origin),
    }
}

/// [`open`] for a file already in memory (a legacy file is copied).
fn open_bytes<'a>(
    bytes: &'a [u8],
    origin: &'a Path,
) -> Result<Opened<'a, Cursor<&'a [u8]>>, TorchFileError> {
    match format_of(bytes, origin)? {
        Format::Zip => Ok(Opened::Zip(archive::TorchZip::open(
            Cursor::new(bytes),
            bytes.len(),
            origin,
        )?)),
        Format::Legacy => Ok(Opened::Legacy(bytes.to_vec())),
    }
}

fn not_a_tensor(path: &Path, value: &Value) -> TorchFileError {
    TorchFileError::UnexpectedContent {
        path: path.to_path_buf(),
        detail: format!("holds a {}, not a tensor", value.type_name()),
    }
}

/// Reads a file whose top-level object is a single tensor (a CAPS `.pt` or a saved tensor).
pub fn read_tensor(path: &Path) -> Result<StoredTensor, TorchFileError> {
    match read(path)? {
        Value::Tensor(tensor) => Ok(tensor),
        other => Err(not_a_tensor(path, &other)),
    }
}

/// The dtype and shape of the single tensor a file holds, checked against the size of its
/// storage but without reading its values (zip files; legacy files are read whole).
pub fn read_tensor_header(path: &Path) -> Result<TensorHeader, TorchFileError> {
    tensor_header(open(path)?, path)
}

/// [`read_tensor_header`] of a file already in memory; `origin` only names it in messages.
pub fn read_tensor_header_from_bytes(
    bytes: &[u8],
    origin: &Path,
) -> Result<TensorHeader, TorchFileError> {
    tensor_header(open_bytes(bytes, origin)?, origin)
}

fn tensor_header<R: Read + Seek>(
    opened: Opened<'_, R>,
    path: &Path,
) -> Result<TensorHeader, TorchFileError> {
    match opened {
        Opened::Zip(mut zip) => match zip.root_header()? {
            Some(header) => Ok(header),
            None => Err(not_a_tensor(path, &zip.into_value()?)),
        },
        Opened::Legacy(bytes) => match legacy::read_legacy(&bytes, path)? {
            Value::Tensor(tensor) => Ok(tensor.header()),
            other => Err(not_a_tensor(path, &other)),
        },
    }
}

/// The header and the values (C order, converted to float32) of the single tensor a file
/// holds. A float32 tensor filling its storage (what `torch.save` writes) is read from the
/// file straight into the returned buffer; anything else goes through [`read_tensor`].
pub fn read_tensor_f32(path: &Path) -> Result<(TensorHeader, Vec<f32>), TorchFileError> {
    tensor_f32(open(path)?, path)
}

/// [`read_tensor_f32`] of a file already in memory; `origin` only names it in messages.
pub fn read_tensor_f32_from_bytes(
    bytes: &[u8],
    origin: &Path,
) -> Result<(TensorHeader, Vec<f32>), TorchFileError> {
    tensor_f32(open_bytes(bytes, origin)?, origin)
}

fn tensor_f32<R: Read + Seek>(
    opened: Opened<'_, R>,
    path: &Path,
) -> Result<(TensorHeader, Vec<f32>), TorchFileError> {
    let tensor = match opened {
        Opened::Zip(mut zip) => {
            if let Some(dense) = zip.read_dense_f32()? {
                return Ok(dense);
            }
            zip.into_value()?
        }
        Opened::Legacy(bytes) => legacy::read_legacy(&bytes, path)?,
    };
    match tensor {
        Value::Tensor(tensor) => Ok((tensor.header(), tensor.to_f32_vec()?)),
        other => Err(not_a_tensor(path, &other)),
    }
}

/// Reads a ClinicaDL checkpoint (`{model: state_dict, epoch, name}`) or a bare state_dict.
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint, TorchFileError> {
    let value = read(path)?;
    checkpoint_from_value(value, path)
}

/// [`read_checkpoint`] of a file already in memory; `origin` only names it in messages.
pub fn read_checkpoint_from_bytes(
    bytes: &[u8],
    origin: &Path,
) -> Result<Checkpoint, TorchFileError> {
    checkpoint_from_value(read_from_bytes(bytes, origin)?, origin)
}

/// Where the values of a tensor lie in its file: a stored zip entry holding exactly them, in C
/// order, little-endian, so that they can be read straight into their destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpan {
    /// Offset of the first byte in the file.
    pub start: u64,
    /// Number of bytes.
    pub len: u64,
    /// The entry's CRC-32 as the zip records it (0 when `torch.save` did not compute it).
    pub crc32: u32,
}

/// What tells whether a file changed between two moments without reading it: its device, inode,
/// size and last modification and status-change times (all of which a write or a replacement
/// changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    device: u64,
    inode: u64,
    /// Size in bytes.
    pub len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileStamp {
    /// The stamp of the file at `path` now.
    pub fn of(path: &Path) -> std::io::Result<Self> {
        std::fs::metadata(path).map(|metadata| FileStamp::from(&metadata))
    }
}

impl From<&std::fs::Metadata> for FileStamp {
    fn from(metadata: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            device: metadata.dev(),
            inode: metadata.ino(),
            len: metadata.len(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

/// Reads what a checkpoint holds (keys, dtypes, shapes, metadata) with every tensor checked
/// against the size of its storage, and checks that the values are intact (each storage entry
/// read through, nothing kept, its CRC-32 compared where the zip records one; legacy files,
/// which have none, are read whole): everything a full reading checks, without its memory. The
/// stamp is the file's as it was opened: while the file keeps it, its values are the ones checked.
pub fn read_checkpoint_header(
    path: &Path,
) -> Result<(Checkpoint<TensorHeader>, FileStamp), TorchFileError> {
    let (layout, stamp) = checkpoint_layout(path, true)?;
    Ok((headers_of(layout), stamp))
}

/// [`read_checkpoint_header`] of a file already in memory; `origin` only names it in messages.
pub fn read_checkpoint_header_from_bytes(
    bytes: &[u8],
    origin: &Path,
) -> Result<Checkpoint<TensorHeader>, TorchFileError> {
    Ok(headers_of(layout_of(
        open_bytes(bytes, origin)?,
        origin,
        true,
    )?))
}

/// A checkpoint layout without its spans.
fn headers_of(layout: Checkpoint<(TensorHeader, Option<FileSpan>)>) -> Checkpoint<TensorHeader> {
    Checkpoint {
        state_dict: layout
            .state_dict
            .into_iter()
            .map(|(key, (header, _))| (key, header))
            .collect(),
        epoch: layout.epoch,
        name: layout.name,
    }
}

/// What a checkpoint holds (keys, dtypes, shapes, metadata; values not read) with, for each
/// tensor that alone fills a whole storage entry in C order (how `torch.save` writes a
/// state_dict), where its values lie in the file; and the file's stamp as it was opened.
pub fn read_checkpoint_layout(path: &Path) -> Result<CheckpointLayout, TorchFileError> {
    checkpoint_layout(path, false)
}

/// [`read_checkpoint_layout`] of a file already in memory (spans are offsets in `bytes`).
pub fn read_checkpoint_layout_from_bytes(
    bytes: &[u8],
    origin: &Path,
) -> Result<Checkpoint<(TensorHeader, Option<FileSpan>)>, TorchFileError> {
    layout_of(open_bytes(bytes, origin)?, origin, false)
}

/// What [`read_checkpoint_layout`] finds: each tensor's header and, when it fills a whole entry,
/// where its values lie; and the stamp of the file read.
pub type CheckpointLayout = (Checkpoint<(TensorHeader, Option<FileSpan>)>, FileStamp);

/// With `verify` (checking a checkpoint: its values are read through, where they lie is not
/// wanted), the spans are not looked up and come back `None`; without it, they are.
fn checkpoint_layout(path: &Path, verify: bool) -> Result<CheckpointLayout, TorchFileError> {
    let (opened, stamp) = open_stamped(path)?;
    Ok((layout_of(opened, path, verify)?, stamp))
}

/// The layout of an opened checkpoint (see [`checkpoint_layout`]).
fn layout_of<R: Read + Seek>(
    opened: Opened<'_, R>,
    path: &Path,
    verify: bool,
) -> Result<Checkpoint<(TensorHeader, Option<FileSpan>)>, TorchFileError> {
    let (value, spans) = match opened {
        Opened::Zip(mut zip) => {
            if verify {
                zip.verify_storages()?;
            }
            zip.header_value(!verify)?
        }
        Opened::Legacy(bytes) => (legacy::read_legacy(&bytes, path)?, Default::default()),
    };
    let checkpoint = checkpoint_from_value(value, path)?;
    let mut users: std::collections::HashMap<&str, usize> = Default::default();
    for (_, tensor) in &checkpoint.state_dict {
        *users.entry(tensor.storage_key.as_str()).or_default() += 1;
    }
    let state_dict = checkpoint
        .state_dict
        .iter()
        .map(|(key, tensor)| {
            let span = tensor
                .filled_span(&spans)
                .filter(|_| users.get(tensor.storage_key.as_str()) == Some(&1));
            (key.clone(), (tensor.header(), span))
        })
        .collect();
    Ok(Checkpoint {
        state_dict,
        epoch: checkpoint.epoch,
        name: checkpoint.name,
    })
}

fn checkpoint_from_value(value: Value, path: &Path) -> Result<Checkpoint, TorchFileError> {
    let unexpected = |detail: String| TorchFileError::UnexpectedContent {
        path: path.to_path_buf(),
        detail,
    };
    let Value::Dict(entries) = value else {
        return Err(unexpected(format!(
            "holds a {}, not a checkpoint dict",
            value.type_name()
        )));
    };
    let is_checkpoint = entries
        .iter()
        .any(|(key, _)| matches!(key, Value::Str(text) if text == "model"));
    let (state_entries, epoch, name) = if is_checkpoint {
        let mut model = None;
        let mut epoch = None;
        let mut name = None;
        for (key, value) in entries {
            match (key, value) {
                (Value::Str(key), Value::Dict(state)) if key == "model" => model = Some(state),
                (Value::Str(key), other) if key == "model" => {
                    return Err(unexpected(format!(
                        "checkpoint entry `model` is a {}, not a state_dict",
                        other.type_name()
                    )));
                }
                (Value::Str(key), Value::Int(value)) if key == "epoch" => epoch = Some(value),
                (Value::Str(key), Value::Str(value)) if key == "name" => name = Some(value),
                _ => {}
            }
        }
        (model.unwrap_or_default(), epoch, name)
    } else {
        (entries, None, None)
    };

    let mut state_dict = Vec::with_capacity(state_entries.len());
    for (key, value) in state_entries {
        let Value::Str(key) = key else {
            return Err(unexpected(format!(
                "state_dict has a {} key, not a parameter name",
                key.type_name()
            )));
        };
        let Value::Tensor(tensor) = value else {
            return Err(unexpected(format!(
                "state_dict entry `{key}` is a {}, not a tensor{}",
                value.type_name(),
                if is_checkpoint {
                    ""
                } else {
                    " (and there is no `model` entry, so this is no ClinicaDL checkpoint)"
                }
            )));
        };
        state_dict.push((key, tensor));
    }
    if state_dict.is_empty() {
        return Err(unexpected("checkpoint holds no tensors".to_string()));
    }
    Ok(Checkpoint {
        state_dict,
        epoch,
        name,
    })
}
