//! clinicadl-rs: a faster and safer drop-in reimplementation of ClinicaDL 1.x `clinicadl predict`.
//!
//! Data flows one way, and the modules follow it:
//!
//! ```text
//! MAPS + CAPS + options
//!   -> config     raw CLI args meet maps.json once: one checked PredictConfig, nothing written yet
//!   -> caps       participants TSV + CAPS paths -> dataset of sessions -> transformed elements
//!   -> networks   architecture from maps.json, weights from model.pth.tar (strict), forward pass
//!   -> predict    the engine: prefetching loader, batches on the device, loss
//!   -> rows       plain per-element results
//!   -> metrics    ClinicaDL's metric formulas and confidence intervals
//!   -> output     writers (TSV, description.log), whole result sets swapped in atomically
//! ```
//!
//! `torchfile` reads and writes PyTorch files without executing pickle code; `tsv` reads and
//! writes tables as pandas does; `ui` is the only code that prints.

pub mod atomic;
pub mod caps;
pub mod cli;
pub mod config;
pub mod ensemble;
pub mod entry;
pub mod error;
pub mod maps;
pub mod metrics;
pub mod networks;
pub mod numpy;
pub mod output;
pub mod plan;
pub mod predict;
pub mod problems;
#[cfg(test)]
pub(crate) mod reference_cases;
pub mod rows;
pub mod run;
pub mod supervision;
#[cfg(test)]
pub(crate) mod tolerance;
pub mod torchfile;
pub mod tsv;
pub mod ui;
