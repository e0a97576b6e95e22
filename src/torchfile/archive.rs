//! The zip container of `torch.save` (formats.md §1.1): finds the archive prefix from the entry
//! ending in `/data.pkl`, checks `byteorder`, runs the pickle and loads each storage from
//! `<prefix>/data/<key>`. Only stored (uncompressed, unencrypted) entries are read, and no
//! allocation is larger than the file itself. Storages are read straight from the file (no copy
//! of the whole file first); a tensor file can also be read for its header only (dtype, shape,
//! checked against its storage entry without reading it) or, for the common float32 case,
//! straight into a `Vec<f32>`. The pickle itself is left to `pickle.rs`.
//! Counterpart in torch: `torch/serialization.py`, `_load` with `weights_only=True`
//! (`torch._weights_only_unpickler`) and its `persistent_load`.

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::Path;
use std::sync::Arc;

use zip::CompressionMethod;
use zip::{ZipArchive, ZipReadOptions};

use super::FileSpan;
use super::Value;
use super::error::TorchFileError;
use super::pickle::{Converter, Pickled, Source, Storage, StorageRef, unpickle};
use super::tensor::{DType, TensorHeader};

/// A torch zip archive whose pickle has been run (storages not read yet).
pub(crate) struct TorchZip<'p, R> {
    archive: ZipArchive<R>,
    prefix: String,
    pickled: Pickled,
    /// No entry may claim more bytes than this (the file's size).
    limit: usize,
    path: &'p Path,
}

impl<'p, R: Read + Seek> TorchZip<'p, R> {
    /// Opens the archive of `len` bytes read by `reader`, checks `byteorder` and runs the pickle.
    pub(crate) fn open(reader: R, len: usize, path: &'p Path) -> Result<Self, TorchFileError> {
        let mut archive = ZipArchive::new(reader).map_err(unreadable(path))?;
        let pickle_name = find_pickle(&archive, path)?;
        let prefix = pickle_name
            .strip_suffix("data.pkl")
            .unwrap_or_default()
            .to_string();

        let byteorder_name = format!("{prefix}byteorder");
        if archive.index_for_name(&byteorder_name).is_some() {
            let byteorder = read_entry(&mut archive, &byteorder_name, path, 64, len)?;
            match String::from_utf8_lossy(&byteorder).trim() {
                "little" => {}
                "big" => {
                    return Err(TorchFileError::malformed(
                        path,
                        "storages are big-endian (`byteorder` says `big`), which this reader does not support",
                    ));
                }
                other => {
                    return Err(TorchFileError::malformed(
                        path,
                        format!("entry `{byteorder_name}` says `{other}`, not `little` or `big`"),
                    ));
                }
            }
        }

        let pickle_bytes = read_entry(&mut archive, &pickle_name, path, len, len)?;
        let part = format!("entry `{pickle_name}`");
        let pickled = unpickle(&pickle_bytes, Source { path, part: &part }, true)?;
        Ok(TorchZip {
            archive,
            prefix,
            pickled,
            limit: len,
            path,
        })
    }

    /// The saved object, every storage read from its entry.
    pub(crate) fn into_value(self) -> Result<Value, TorchFileError> {
        let TorchZip {
            mut archive,
            prefix,
            pickled,
            limit,
            path,
        } = self;
        let mut cache: HashMap<String, Arc<Vec<u8>>> = HashMap::new();
        let resolve = |storage: &StorageRef| -> Result<Storage, TorchFileError> {
            let needed = storage_bytes(storage, path)?;
            let data = match cache.get(&storage.key) {
                Some(data) => Arc::clone(data),
                None => {
                    let entry = storage_entry(&archive, &prefix, storage, path)?;
                    let data = Arc::new(read_entry(&mut archive, &entry, path, limit, limit)?);
                    cache.insert(storage.key.clone(), Arc::clone(&data));
                    data
                }
            };
            if data.len() < needed {
                return Err(storage_too_short(storage, needed, data.len() as u64, path));
            }
            Ok(Storage::Read(data))
        };
        Converter::new(&pickled, path, resolve).root()
    }

    /// The saved object with every tensor's header checked against the size of its storage
    /// entry, whose bytes are not read: the tensors' storages are empty (for headers only).
    /// With `spans`, also where each storage's bytes lie in the file, by storage key (an extra
    /// read of each entry's local header).
    pub(crate) fn header_value(
        &mut self,
        spans: bool,
    ) -> Result<(Value, HashMap<String, FileSpan>), TorchFileError> {
        let wanted = spans;
        let path = self.path;
        let limit = self.limit as u64;
        let (archive, prefix) = (&mut self.archive, &self.prefix);
        let mut spans = HashMap::new();
        let resolve = |storage: &StorageRef| -> Result<Storage, TorchFileError> {
            let needed = storage_bytes(storage, path)?;
            let entry = storage_entry(archive, prefix, storage, path)?;
            let size = stored_entry_size(archive, &entry, path)?;
            if size < needed as u64 {
                return Err(storage_too_short(storage, needed, size, path));
            }
            if wanted && !spans.contains_key(&storage.key) {
                let index = archive.index_for_name(&entry).unwrap_or_default();
                let crc32 = archive
                    .by_index_data(index)
                    .map_err(unreadable(path))?
                    .crc32();
                let start = archive
                    .by_index_raw(index)
                    .map_err(unreadable(path))?
                    .data_start()
                    .unwrap_or(u64::MAX);
                if start.checked_add(size).is_none_or(|end| end > limit) {
                    return Err(past_the_end(path, &entry));
                }
                spans.insert(
                    storage.key.clone(),
                    FileSpan {
                        start,
                        len: size,
                        crc32,
                    },
                );
            }
            Ok(Storage::Unread(usize::try_from(size).unwrap_or(usize::MAX)))
        };
        let value = Converter::new(&self.pickled, path, resolve).root()?;
        Ok((value, spans))
    }

    /// The header of the saved tensor (see [`TorchZip::header_value`]); `None` when the saved
    /// object is not a bare tensor.
    pub(crate) fn root_header(&mut self) -> Result<Option<TensorHeader>, TorchFileError> {
        Ok(match self.header_value(false)?.0 {
            Value::Tensor(tensor) => Some(tensor.header()),
            _ => None,
        })
    }

    /// Reads every storage entry through (into a small reused buffer), which checks its CRC-32
    /// where the zip records one: the values are intact, without keeping them.
    pub(crate) fn verify_storages(&mut self) -> Result<(), TorchFileError> {
        let path = self.path;
        let data_prefix = format!("{}data/", self.prefix);
        let entries: Vec<String> = self
            .archive
            .file_names()
            .filter_map(Result::ok)
            .filter(|name| name.starts_with(&data_prefix))
            .map(|name| name.into_owned())
            .collect();
        let mut buffer = vec![0u8; 1 << 20];
        for entry in entries {
            stored_entry_size(&self.archive, &entry, path)?;
            let mut reader = open_entry(&mut self.archive, &entry, path, self.limit)?;
            loop {
                match reader.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(source) if source.kind() == std::io::ErrorKind::InvalidData => {
                        return Err(TorchFileError::malformed(
                            path,
                            format!(
                                "the values of entry `{entry}` are damaged ({source}: their CRC-32 does not match the one the zip records); restore the file from a copy"
                            ),
                        ));
                    }
                    Err(source) => return Err(cannot_read_entry(path, &entry, source)),
                }
            }
        }
        Ok(())
    }

    /// The saved tensor's values when it is a float32 tensor filling its whole storage in C
    /// order (how `torch.save` writes a fresh tensor): read from the file straight into the
    /// returned buffer. `None` for any other content, which [`TorchZip::into_value`] handles.
    pub(crate) fn read_dense_f32(
        &mut self,
    ) -> Result<Option<(TensorHeader, Vec<f32>)>, TorchFileError> {
        let (Value::Tensor(tensor), spans) = self.header_value(true)? else {
            return Ok(None);
        };
        if tensor.dtype != DType::F32 || tensor.filled_span(&spans).is_none() {
            return Ok(None);
        }
        let header = tensor.header();
        let path = self.path;
        let entry = format!("{}data/{}", self.prefix, tensor.storage_key);
        let numel = header.numel();
        let bytes = numel * 4;
        let mut values: Vec<f32> = Vec::new();
        values.try_reserve_exact(numel).map_err(|_| {
            TorchFileError::malformed(
                path,
                format!("cannot allocate {bytes} bytes for entry `{entry}`"),
            )
        })?;
        values.resize(numel, 0.0);
        let mut reader = open_entry(&mut self.archive, &entry, path, self.limit)?;
        let cannot_read = |source| cannot_read_entry(path, &entry, source);
        reader
            .read_exact(bytemuck::cast_slice_mut(&mut values))
            .map_err(cannot_read)?;
        // Reading past the end lets the zip reader check the entry's CRC.
        let mut extra = [0u8; 1];
        if reader.read(&mut extra).map_err(cannot_read)? != 0 {
            return Err(TorchFileError::malformed(
                path,
                format!("entry `{entry}` holds more than the {bytes} bytes its header says"),
            ));
        }
        drop(reader);
        if cfg!(target_endian = "big") {
            for value in &mut values {
                *value = f32::from_bits(u32::from_le(value.to_bits()));
            }
        }
        Ok(Some((header, values)))
    }
}

/// The error of a zip archive (or one of its entries) that cannot be read.
fn unreadable(path: &Path) -> impl Fn(zip::result::ZipError) -> TorchFileError + '_ {
    move |source| TorchFileError::Zip {
        path: path.to_path_buf(),
        action: "unreadable",
        source,
    }
}

/// The error of an entry whose data would end past the end of the file.
fn past_the_end(path: &Path, entry: &str) -> TorchFileError {
    TorchFileError::malformed(
        path,
        format!("entry `{entry}` ends past the end of the file"),
    )
}

/// The error of an entry whose bytes cannot be read.
fn cannot_read_entry(path: &Path, entry: &str, source: std::io::Error) -> TorchFileError {
    TorchFileError::malformed(path, format!("cannot read entry `{entry}`: {source}"))
}

/// Bytes a storage declares (`numel × itemsize`), refusing impossible counts.
fn storage_bytes(storage: &StorageRef, path: &Path) -> Result<usize, TorchFileError> {
    storage
        .numel
        .checked_mul(storage.dtype.itemsize())
        .ok_or_else(|| {
            TorchFileError::malformed(
                path,
                format!(
                    "storage `{}` declares an impossible {} elements",
                    storage.key, storage.numel
                ),
            )
        })
}

fn storage_too_short(
    storage: &StorageRef,
    needed: usize,
    held: u64,
    path: &Path,
) -> TorchFileError {
    TorchFileError::malformed(
        path,
        format!(
            "storage `{}` needs {} {} elements ({needed} bytes) but its entry holds {held} bytes",
            storage.key, storage.numel, storage.dtype
        ),
    )
}

/// The name of a storage's entry, which must exist.
fn storage_entry<R: Read + Seek>(
    archive: &ZipArchive<R>,
    prefix: &str,
    storage: &StorageRef,
    path: &Path,
) -> Result<String, TorchFileError> {
    let entry = format!("{prefix}data/{}", storage.key);
    if archive.index_for_name(&entry).is_none() {
        return Err(TorchFileError::malformed(
            path,
            format!("storage `{}` has no entry `{entry}`", storage.key),
        ));
    }
    Ok(entry)
}

/// The name of the entry holding the pickle: the first one ending in `/data.pkl`.
fn find_pickle<R: Read + Seek>(
    archive: &ZipArchive<R>,
    path: &Path,
) -> Result<String, TorchFileError> {
    archive
        .file_names()
        .filter_map(Result::ok)
        .find(|name| name.ends_with("/data.pkl") || *name == "data.pkl")
        .map(|name| name.into_owned())
        .ok_or_else(|| {
            TorchFileError::malformed(
                path,
                "zip archive has no `data.pkl` entry, so it is not a torch file",
            )
        })
}

/// The size of entry `name` (from the central directory), refusing compressed or encrypted
/// entries, and stored ones whose compressed size (the bytes read) is not their size.
fn stored_entry_size<R: Read + Seek>(
    archive: &ZipArchive<R>,
    name: &str,
    path: &Path,
) -> Result<u64, TorchFileError> {
    let index = archive.index_for_name(name).ok_or_else(|| {
        TorchFileError::malformed(path, format!("zip archive has no entry `{name}`"))
    })?;
    let entry = archive.by_index_data(index).map_err(unreadable(path))?;
    if entry.encrypted() {
        return Err(TorchFileError::CompressedEntry {
            path: path.to_path_buf(),
            entry: name.to_string(),
            method: "encrypted".to_string(),
        });
    }
    if entry.compression() != CompressionMethod::Stored {
        return Err(TorchFileError::CompressedEntry {
            path: path.to_path_buf(),
            entry: name.to_string(),
            method: format!("compressed ({})", entry.compression()),
        });
    }
    if entry.compressed_size() != entry.size() {
        return Err(TorchFileError::malformed(
            path,
            format!(
                "entry `{name}` is stored (not compressed) but says it holds {} bytes in the file and {} once read",
                entry.compressed_size(),
                entry.size()
            ),
        ));
    }
    Ok(entry.size())
}

/// A reader of entry `name` that checks its CRC-32 at the end, unless the zip records none (a
/// CRC of 0: `torch.save` with `compute_crc32=False`, which `torch.load` reads), refusing an
/// entry whose data would end past `file_len`, the archive's size (even an empty one, as
/// `torch.load` does).
fn open_entry<'a, R: Read + Seek>(
    archive: &'a mut ZipArchive<R>,
    name: &str,
    path: &Path,
    file_len: usize,
) -> Result<zip::read::ZipFile<'a, R>, TorchFileError> {
    let index = archive.index_for_name(name).ok_or_else(|| {
        TorchFileError::malformed(path, format!("zip archive has no entry `{name}`"))
    })?;
    let crc32 = archive
        .by_index_data(index)
        .map_err(unreadable(path))?
        .crc32();
    let entry = archive
        .by_index_with_options(index, ZipReadOptions::new().ignore_crc32(crc32 == 0))
        .map_err(unreadable(path))?;
    let end = entry
        .data_start()
        .and_then(|start| start.checked_add(entry.compressed_size()));
    if end.is_none_or(|end| end > file_len as u64) {
        return Err(past_the_end(path, name));
    }
    Ok(entry)
}

/// The bytes of one stored entry of an archive of `file_len` bytes, refusing compressed or
/// encrypted entries and entries claiming more than `limit` bytes.
fn read_entry<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    name: &str,
    path: &Path,
    limit: usize,
    file_len: usize,
) -> Result<Vec<u8>, TorchFileError> {
    let claimed = stored_entry_size(archive, name, path)?;
    let size = usize::try_from(claimed)
        .ok()
        .filter(|&size| size <= limit)
        .ok_or_else(|| {
            TorchFileError::malformed(
                path,
                format!("entry `{name}` claims {claimed} bytes, more than the {limit} expected"),
            )
        })?;
    let mut data = Vec::new();
    data.try_reserve_exact(size).map_err(|_| {
        TorchFileError::malformed(
            path,
            format!("cannot allocate {size} bytes for entry `{name}`"),
        )
    })?;
    let reader = open_entry(archive, name, path, file_len)?;
    // One byte more than claimed, so that an entry longer than its header says is noticed.
    let limit = claimed.saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut data)
        .map_err(|source| cannot_read_entry(path, name, source))?;
    if data.len() != size {
        return Err(TorchFileError::malformed(
            path,
            format!(
                "entry `{name}` holds {} bytes, not the {size} its header says",
                data.len()
            ),
        ));
    }
    Ok(data)
}
