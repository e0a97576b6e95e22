//! Writers: the only code that creates files in the MAPS (prediction and metrics TSVs,
//! `description.log`), each testable against an in-memory buffer, and the atomic result sets
//! they are written into.

pub mod description;
pub mod dry_run;
pub mod nifti;
pub mod prediction;
pub mod pyrepr;
pub mod results;
pub mod saved;
