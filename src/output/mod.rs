//! Writers: the only code that creates files in a result set (prediction and metrics TSVs,
//! `description.log`, the save options' tensors and NIfTI images), each testable against an
//! in-memory buffer or a temporary folder, and the `--dry-run` printer. They receive resolved
//! paths and rows, and search nothing.

pub mod description;
pub mod dry_run;
pub mod metrics;
pub mod nifti;
pub mod prediction;
pub mod record;
pub mod saved;
