//! The legacy (non-zip) format of `torch.save(..., _use_new_zipfile_serialization=False)` and of
//! torch < 1.6 (docs/ARCHITECTURE.md, "PyTorch files"): five pickles in a row (magic number,
//! protocol 1001, system info, the object, the list of storage keys) followed by each storage as an
//! int64 element count and raw little-endian bytes. The pickles themselves are left to `pickle.rs`.
//! Counterpart in torch: `torch/serialization.py`, `_legacy_load` (and `_legacy_save`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::Value;
use super::error::TorchFileError;
use super::pickle::{Converter, Pickled, Source, Storage, StorageRef, unpickle};
use super::tensor::DType;

/// The magic number 0x1950a86a20f9469cfc6c as the little-endian bytes of its `LONG1` opcode.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The only legacy protocol version torch ever wrote.
const PROTOCOL_VERSION: i64 = 1001;
/// The bytes a legacy file starts with: `PROTO 2`, `LONG1` of 10 bytes.
pub(crate) const LEGACY_START: [u8; 4] = [0x80, 0x02, 0x8a, 0x0a];

/// Reads the object saved in the legacy-format file `bytes` (the whole file).
pub(crate) fn read_legacy(bytes: &[u8], path: &Path) -> Result<Value, TorchFileError> {
    let mut pos = 0;
    let mut next = |part: &str, allow_persistent: bool| -> Result<Pickled, TorchFileError> {
        let start = pos;
        let rest = bytes.get(start..).unwrap_or_default();
        let pickled = unpickle(rest, Source { path, part }, allow_persistent)?;
        pos = start + pickled.end;
        Ok(pickled)
    };

    let magic = next("the legacy magic number pickle", false)?;
    if magic.root_big_int() != Some(&MAGIC[..]) {
        return Err(TorchFileError::malformed(
            path,
            "not a torch file: the legacy format's magic number is missing",
        ));
    }
    let protocol = next("the legacy protocol pickle", false)?;
    match protocol.plain_value(path)? {
        Value::Int(PROTOCOL_VERSION) => {}
        other => {
            return Err(TorchFileError::malformed(
                path,
                format!("legacy protocol version is {other:?}, not {PROTOCOL_VERSION}"),
            ));
        }
    }
    let system = next("the legacy system-info pickle", false)?;
    let system = system.plain_value(path)?;
    if let Some(Value::Bool(false)) = system.get("little_endian") {
        return Err(TorchFileError::malformed(
            path,
            "storages are big-endian (`little_endian` is False), which this reader does not support",
        ));
    }
    let object = next("the legacy object pickle", true)?;
    let keys = next("the legacy storage-key pickle", false)?;
    let keys = match keys.plain_value(path)? {
        Value::List(items) | Value::Tuple(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Str(key) => Ok(key),
                other => Err(TorchFileError::malformed(
                    path,
                    format!("legacy storage key is a {}, not a str", other.type_name()),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        other => {
            return Err(TorchFileError::malformed(
                path,
                format!(
                    "legacy storage keys are a {}, not a list",
                    other.type_name()
                ),
            ));
        }
    };

    // Each storage's element size comes from the object pickle's persistent ids.
    let mut dtypes: HashMap<&str, DType> = HashMap::new();
    for storage in object.storages() {
        dtypes.entry(storage.key.as_str()).or_insert(storage.dtype);
    }
    let mut storages: HashMap<String, Arc<Vec<u8>>> = HashMap::new();
    for key in keys {
        let dtype = *dtypes.get(key.as_str()).ok_or_else(|| {
            TorchFileError::malformed(
                path,
                format!("legacy storage `{key}` is listed but no tensor uses it, so its element size is unknown"),
            )
        })?;
        let count_bytes: [u8; 8] = bytes
            .get(pos..)
            .and_then(|rest| rest.first_chunk::<8>())
            .copied()
            .ok_or_else(|| {
                TorchFileError::malformed(
                    path,
                    format!("file ends before the element count of legacy storage `{key}`"),
                )
            })?;
        pos += 8;
        let count = i64::from_le_bytes(count_bytes);
        let size = usize::try_from(count)
            .ok()
            .and_then(|count| count.checked_mul(dtype.itemsize()))
            .filter(|&size| size <= bytes.len() - pos)
            .ok_or_else(|| {
                TorchFileError::malformed(
                    path,
                    format!(
                        "legacy storage `{key}` claims {count} {dtype} elements, but only {} bytes are left",
                        bytes.len() - pos
                    ),
                )
            })?;
        let data = bytes[pos..pos + size].to_vec();
        pos += size;
        if storages.insert(key.clone(), Arc::new(data)).is_some() {
            return Err(TorchFileError::malformed(
                path,
                format!("legacy storage `{key}` is listed twice"),
            ));
        }
    }

    let resolve = |storage: &StorageRef| -> Result<Storage, TorchFileError> {
        let data = storages.get(&storage.key).ok_or_else(|| {
            TorchFileError::malformed(
                path,
                format!(
                    "legacy storage `{}` is used but missing from the storage list",
                    storage.key
                ),
            )
        })?;
        let enough = storage
            .numel
            .checked_mul(storage.dtype.itemsize())
            .is_some_and(|needed| needed <= data.len());
        if !enough {
            return Err(TorchFileError::malformed(
                path,
                format!(
                    "legacy storage `{}` declares {} elements but holds {} bytes",
                    storage.key,
                    storage.numel,
                    data.len()
                ),
            ));
        }
        Ok(Storage::Read(Arc::clone(data)))
    };
    Converter::new(&object, path, resolve).root()
}
