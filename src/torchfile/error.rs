//! The one error type of the torchfile module. Every variant about a file carries its path and
//! prints it first, in backticks; the two variants without a path come from conversions of a
//! tensor already in memory (`StoredTensor::to_f32_vec` and friends), where the caller adds it.
//! Underlying I/O and zip errors are chained as `source()`, not repeated in the message, so
//! that printing the error chain shows each cause once.

use std::path::PathBuf;

/// Everything that can go wrong while reading or writing a PyTorch file.
#[derive(Debug, thiserror::Error)]
pub enum TorchFileError {
    /// The file could not be read, created, written or renamed.
    #[error("`{}`: cannot {action}", .path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What was being done, e.g. "read the file".
        action: &'static str,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The zip container is unreadable (truncated, corrupt) or could not be written.
    #[error("`{}`: {action} zip archive", .path.display())]
    Zip {
        /// The file concerned.
        path: PathBuf,
        /// What was being done, e.g. "unreadable".
        action: &'static str,
        /// The error reported by the zip library.
        #[source]
        source: zip::result::ZipError,
    },

    /// A zip entry is compressed or encrypted; torch stores every entry as is.
    #[error(
        "`{}`: entry `{entry}` is {method}, but torch files store their entries uncompressed",
        .path.display()
    )]
    CompressedEntry {
        /// The file concerned.
        path: PathBuf,
        /// The zip entry name.
        entry: String,
        /// The compression method (or "encrypted").
        method: String,
    },

    /// The pickle names a global outside the allow-list; it is refused, never called.
    #[error(
        "`{}`: pickle asks for global `{module}.{name}`, which is not allowed in a data file",
        .path.display()
    )]
    ForbiddenGlobal {
        /// The file concerned.
        path: PathBuf,
        /// The module part of the global.
        module: String,
        /// The attribute part of the global.
        name: String,
    },

    /// The pickle uses an opcode this reader does not implement.
    #[error(
        "`{}`: unsupported pickle opcode `{name}` (0x{code:02x}) at byte {offset} of {part}",
        .path.display()
    )]
    UnsupportedOpcode {
        /// The file concerned.
        path: PathBuf,
        /// Which pickle of the file, e.g. "entry `model/data.pkl`".
        part: String,
        /// The opcode's name in Python's `pickletools`, or "unknown".
        name: &'static str,
        /// The opcode byte.
        code: u8,
        /// Byte offset of the opcode within that pickle.
        offset: usize,
    },

    /// The file is not what a torch file must be (a structural or consistency error).
    #[error("`{}`: {detail}", .path.display())]
    Malformed {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong, in words.
        detail: String,
    },

    /// The file is a valid torch file, but does not hold what the caller asked for.
    #[error("`{}`: {detail}", .path.display())]
    UnexpectedContent {
        /// The file concerned.
        path: PathBuf,
        /// What was expected and what was found.
        detail: String,
    },

    /// The arguments given to a writer are inconsistent (e.g. shape and data length differ).
    #[error("`{}`: {detail}", .path.display())]
    InvalidArgument {
        /// The file (or archive name) that was to be written.
        path: PathBuf,
        /// What is wrong, in words.
        detail: String,
    },

    /// An in-memory tensor's shape, strides or offset do not fit its storage.
    #[error("tensor view does not fit its storage: {detail}")]
    InvalidView {
        /// What is wrong, in words.
        detail: String,
    },

    /// An in-memory tensor cannot be converted to the requested element type.
    #[error("cannot read a {dtype} tensor as {target}")]
    Conversion {
        /// The tensor's dtype name (torch spelling).
        dtype: &'static str,
        /// The requested element type.
        target: &'static str,
    },
}

impl TorchFileError {
    /// A `Malformed` error for `path` (shorthand used by the readers).
    pub(crate) fn malformed(path: &std::path::Path, detail: impl Into<String>) -> Self {
        Self::Malformed {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }
}
