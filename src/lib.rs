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

pub mod caps;
pub mod cli;
pub mod config;
pub mod ensemble;
pub mod entry;
pub mod error;
pub mod maps;
pub mod metrics;
pub mod networks;
pub mod output;
pub mod predict;
#[cfg(test)]
pub(crate) mod reference_cases;
pub mod rows;
pub mod supervision;
#[cfg(test)]
pub(crate) mod tolerance;
pub mod torchfile;
pub mod tsv;
pub mod ui;

use anyhow::Result;

/// Runs `clinicadl-rs predict` with parsed arguments (or, with `--dry-run`, prints its plan).
pub fn predict(args: &cli::PredictArgs) -> Result<()> {
    let maps = &args.input_maps_directory;
    if !maps.is_dir() {
        return Err(error::UsageError::new(format!(
            "invalid value for 'INPUT_MAPS_DIRECTORY': `{}` is not a folder",
            maps.display()
        ))
        .into());
    }
    if args.dry_run {
        let config = config::resolve(args)?;
        return output::plan::print_plan(&config, std::io::stdout().lock());
    }
    let _lock = maps::lock::GroupLock::acquire(maps, &args.data_group)?;
    let started = std::time::Instant::now();
    let config = config::resolve(args)?;
    ui::debug(&format!(
        "checks: {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    ));
    predict::execute(&config)
}
