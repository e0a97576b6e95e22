//! The inference step: the loader reads and transforms the sessions' elements ahead of the
//! network (`loader.rs`), the engine runs the network over them in batches and gives the rows,
//! the losses and every finished element to a sink (`engine.rs`), the measures of a
//! reconstruction that its row holds (`measures.rs`, `ssim.rs`). Nothing here writes a file.
//!
//! ClinicaDL: `TaskManager.test` and the `DataLoader` of `MapsManager._test_loader`.

pub mod engine;
pub mod loader;
pub mod measures;
pub mod ssim;
