//! clinicadl-rs: a faster and safer drop-in reimplementation of ClinicaDL 1.x `clinicadl predict`.
//!
//! Data flows one way, and the modules follow it (docs/ARCHITECTURE.md says more):
//!
//! ```text
//! cli -> maps, caps, networks   the MAPS, the CAPS and the networks, read and checked
//!     -> config                 one checked PredictConfig, nothing written yet
//!     -> plan                   every file the run will write
//!     -> predict                loader and engine: rows, losses, finished elements to a sink
//!     -> metrics, ensemble      pure functions of the rows
//!     -> output                 the writers
//! run                           the driver of the whole sequence
//! ```
//!
//! Shared leaves, importable from anywhere: `error` and `problems` (exit codes), `ui` (the only
//! code that prints), `supervision` (the command/engine contract), `atomic` (folders written
//! whole), `numpy` (numpy-compatible reductions), `tsv` (tables as pandas reads and writes them),
//! `torchfile` (PyTorch files, read without executing pickle code), `rows` (one element's results),
//! `pyrepr` (Python's and pandas' formatting of numbers and strings).

pub mod atomic;
pub mod caps;
pub mod cli;
pub mod config;
pub mod digest;
pub mod ensemble;
pub mod entry;
pub mod error;
pub mod journal;
pub mod maps;
pub mod merge;
pub mod metrics;
pub mod networks;
pub mod numpy;
pub mod output;
pub mod plan;
pub mod predict;
pub mod problems;
pub mod pyrepr;
#[cfg(test)]
pub(crate) mod reference_cases;
pub mod results;
pub mod rows;
pub mod run;
pub mod shards;
pub mod supervision;
#[cfg(test)]
pub(crate) mod tolerance;
pub mod torchfile;
pub mod tsv;
pub mod ui;
