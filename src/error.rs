//! Exit codes, documented in one place: 0 success, 1 runtime error, 2 usage error (bad option
//! value or combination, as click reports them in ClinicaDL).

/// Successful run.
pub const EXIT_SUCCESS: i32 = 0;
/// Runtime error: a bad input file, a missing tensor, a failed forward pass…
pub const EXIT_FAILURE: i32 = 1;
/// Usage error: an option is wrong or not allowed with this MAPS.
pub const EXIT_USAGE: i32 = 2;

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
