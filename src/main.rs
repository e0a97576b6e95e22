//! The `clinicadl-rs` command: parses the command line (ClinicaDL's options, `--help`, usage
//! errors) without loading libtorch, which takes 0.3 to 0.5 s to load, then hands a valid
//! command over to an engine installed beside it by `exec`, so the process, its pid and its exit
//! code stay the same: `clinicadl-rs-engine-cpu` (libtorch without CUDA, faster to start) for
//! `--no-gpu` runs, `clinicadl-rs-engine` otherwise. `CLINICADL_RS_ENGINE` overrides the
//! engine's path.
//!
//! This binary must not use the library crate (that would link libtorch); it compiles `cli.rs`
//! on its own.

#[path = "cli.rs"]
#[allow(dead_code)]
mod cli;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::Parser;

/// The engine for `cli`: CUDA's libraries are only loaded for runs that may use the GPU.
fn engine_path(cli: &cli::Cli) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CLINICADL_RS_ENGINE") {
        return Some(PathBuf::from(path));
    }
    let name = match &cli.command {
        cli::Command::Predict(args) if !args.gpu() => "clinicadl-rs-engine-cpu",
        cli::Command::Predict(_) => "clinicadl-rs-engine",
    };
    let exe = std::env::current_exe().ok()?;
    Some(exe.with_file_name(name))
}

#[allow(clippy::print_stderr)]
fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match cli::Cli::try_parse_from(cli::normalize_args(args.iter().cloned())) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    // libtorch cannot even start in a folder that was deleted (its MKL dies with "Cannot load
    // libtorch_cpu.so"), and relative paths could not be resolved there anyway.
    if let Err(error) = std::env::current_dir() {
        eprintln!(
            "error: cannot use the current folder ({error}): it was probably deleted or moved\nhint: `cd` to an existing folder and run the command again"
        );
        return ExitCode::from(1);
    }
    let Some(engine) = engine_path(&cli) else {
        eprintln!("error: cannot locate the clinicadl-rs executable to find its engine beside it");
        return ExitCode::from(1);
    };
    let mut command = Command::new(&engine);
    command.args(&args[1..]);
    // glibc returns every large block (an activation of hundreds of MB) to the kernel when freed,
    // so each layer maps fresh pages that fault and are zeroed again: keep freed memory instead
    // (no mmap for large blocks, no trimming). Set before exec, as glibc reads them at start-up;
    // a user's own settings, or CLINICADL_RS_MALLOC=default, win.
    let tuned = std::env::var_os("CLINICADL_RS_MALLOC").is_none_or(|v| v != "default");
    if tuned
        && std::env::var_os("MALLOC_MMAP_MAX_").is_none()
        && std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none()
    {
        command
            .env("MALLOC_MMAP_MAX_", "0")
            .env("MALLOC_TRIM_THRESHOLD_", "18446744073709551615");
    }
    let error = command.exec();
    eprintln!(
        "error: cannot run the engine `{}`: {error}\nhint: clinicadl-rs-engine and clinicadl-rs-engine-cpu must be installed in the same folder as clinicadl-rs (or set CLINICADL_RS_ENGINE)",
        engine.display()
    );
    ExitCode::from(1)
}
