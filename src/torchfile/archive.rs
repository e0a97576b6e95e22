//! The zip container of `torch.save` (formats.md §1.1): finds the archive prefix from the entry
//! ending in `/data.pkl`, checks `byteorder`, runs the pickle and loads each storage from
//! `<prefix>/data/<key>`. Only stored (uncompressed, unencrypted) entries are read, and no
//! allocation is larger than the file itself. The pickle itself is left to `pickle.rs`.
//! Counterpart in torch: `torch/serialization.py`, `_load` with `weights_only=True`
//! (`torch._weights_only_unpickler`) and its `persistent_load`.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::Arc;

use zip::CompressionMethod;
use zip::ZipArchive;

use super::Value;
use super::error::TorchFileError;
use super::pickle::{Converter, Source, StorageRef, unpickle};

type Archive<'a> = ZipArchive<Cursor<&'a [u8]>>;

/// Reads the object saved in the torch zip archive `bytes` (the whole file).
pub(crate) fn read_zip(bytes: &[u8], path: &Path) -> Result<Value, TorchFileError> {
    let mut archive =
        ZipArchive::new(Cursor::new(bytes)).map_err(|source| TorchFileError::Zip {
            path: path.to_path_buf(),
            action: "unreadable",
            source,
        })?;
    let pickle_name = find_pickle(&archive, path)?;
    let prefix = pickle_name
        .strip_suffix("data.pkl")
        .unwrap_or_default()
        .to_string();

    let byteorder_name = format!("{prefix}byteorder");
    if archive.index_for_name(&byteorder_name).is_some() {
        let byteorder = read_entry(&mut archive, &byteorder_name, path, 64)?;
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

    let pickle_bytes = read_entry(&mut archive, &pickle_name, path, bytes.len())?;
    let part = format!("entry `{pickle_name}`");
    let pickled = unpickle(&pickle_bytes, Source { path, part: &part }, true)?;

    let mut cache: HashMap<String, Arc<Vec<u8>>> = HashMap::new();
    let resolve = |storage: &StorageRef| -> Result<Arc<Vec<u8>>, TorchFileError> {
        let needed = storage
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
            })?;
        let data = match cache.get(&storage.key) {
            Some(data) => Arc::clone(data),
            None => {
                let entry = format!("{prefix}data/{}", storage.key);
                if archive.index_for_name(&entry).is_none() {
                    return Err(TorchFileError::malformed(
                        path,
                        format!("storage `{}` has no entry `{entry}`", storage.key),
                    ));
                }
                let data = Arc::new(read_entry(&mut archive, &entry, path, bytes.len())?);
                cache.insert(storage.key.clone(), Arc::clone(&data));
                data
            }
        };
        if data.len() < needed {
            return Err(TorchFileError::malformed(
                path,
                format!(
                    "storage `{}` needs {} {} elements ({needed} bytes) but its entry holds {} bytes",
                    storage.key,
                    storage.numel,
                    storage.dtype,
                    data.len()
                ),
            ));
        }
        Ok(data)
    };
    Converter::new(&pickled, path, resolve).root()
}

/// The name of the entry holding the pickle: the first one ending in `/data.pkl`.
fn find_pickle(archive: &Archive<'_>, path: &Path) -> Result<String, TorchFileError> {
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

/// The bytes of one stored entry, refusing compressed or encrypted entries and entries
/// claiming more than `limit` bytes.
fn read_entry(
    archive: &mut Archive<'_>,
    name: &str,
    path: &Path,
    limit: usize,
) -> Result<Vec<u8>, TorchFileError> {
    let zip_error = |source| TorchFileError::Zip {
        path: path.to_path_buf(),
        action: "unreadable",
        source,
    };
    let index = archive.index_for_name(name).ok_or_else(|| {
        TorchFileError::malformed(path, format!("zip archive has no entry `{name}`"))
    })?;
    let entry = archive.by_index_data(index).map_err(zip_error)?;
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
    let claimed = entry.size();
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
    let reader = archive.by_index(index).map_err(zip_error)?;
    // One byte more than claimed, so that an entry longer than its header says is noticed.
    let limit = claimed.saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut data)
        .map_err(|source| {
            TorchFileError::malformed(path, format!("cannot read entry `{name}`: {source}"))
        })?;
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
