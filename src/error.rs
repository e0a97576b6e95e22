//! Exit codes, documented in one place: 0 success, 1 runtime error, 2 usage error (bad option
//! value or combination, as click reports them in ClinicaDL); the command adds 128 + N when
//! signal N stopped its engine (`main.rs`). Compiled into the library and, by path, into the
//! command, so that both binaries turn errors into exit codes by the same rules.

/// Successful run.
pub const EXIT_SUCCESS: i32 = 0;
/// Runtime error: a bad input file, a missing tensor, a failed forward pass…
pub const EXIT_FAILURE: i32 = 1;
/// Usage error: an option is wrong or not allowed with this MAPS.
pub const EXIT_USAGE: i32 = 2;

/// The exit code of a run that signal `number` stopped, as a shell reports it: 128 + N.
pub fn killed_by(number: i32) -> u8 {
    (128 + number).clamp(0, 255) as u8
}

/// An error in how the command was called; exits with status 2.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    message: String,
}

impl UsageError {
    /// A usage error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        UsageError {
            message: message.into(),
        }
    }
}

/// The exit code of a command line clap could not parse, after printing clap's message: 0 for
/// `--help` and `--version` (printed on stdout), 2 for a usage error (on stderr).
pub fn clap_exit(error: &clap::Error) -> i32 {
    let _ = error.print();
    if error.use_stderr() {
        EXIT_USAGE
    } else {
        EXIT_SUCCESS
    }
}

/// The exit code for an error: 2 when a [`UsageError`] is in its chain, else 1.
pub fn exit_code(error: &anyhow::Error) -> i32 {
    if error
        .chain()
        .any(|e| e.downcast_ref::<UsageError>().is_some())
    {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}
