//! The `clinicadl-rs` command: parses the command line (ClinicaDL's options, `--help`, usage
//! errors) without loading libtorch, which takes 0.3 to 0.5 s to load, then runs a valid command
//! in an engine installed beside it: `clinicadl-rs-engine-cpu` (libtorch without CUDA, faster to
//! start) for `--no-gpu` runs, `clinicadl-rs-engine` otherwise (`CLINICADL_RS_ENGINE` overrides
//! the engine's path). The command stays the engine's parent (see `supervision.rs`): it forwards
//! the signals it receives, exits with the engine's exit code, and turns a death by signal into a
//! clear error, above all SIGBUS (a checkpoint truncated or rewritten while the run maps it).
//!
//! This binary must not use the library crate (that would link libtorch); it compiles `cli.rs`
//! and `supervision.rs` on its own.

#[path = "cli.rs"]
#[allow(dead_code)]
mod cli;
#[path = "error.rs"]
#[allow(dead_code)]
mod error;
#[path = "supervision.rs"]
#[allow(dead_code)]
mod supervision;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};

use nix::sys::signal::Signal;

/// The engine for `cli`: CUDA's libraries are only loaded for runs that may use the GPU.
fn engine_path(cli: &cli::Cli) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CLINICADL_RS_ENGINE") {
        return Some(PathBuf::from(path));
    }
    let name = match &cli.command {
        cli::Command::Predict(args) if args.gpu() => "clinicadl-rs-engine",
        // Runs on the CPU and merges need no CUDA.
        cli::Command::Predict(_) | cli::Command::Merge(_) => "clinicadl-rs-engine-cpu",
    };
    let exe = std::env::current_exe().ok()?;
    Some(exe.with_file_name(name))
}

#[allow(clippy::print_stderr)]
fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match cli::parse(args.iter().cloned()) {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code as u8),
    };
    // libtorch cannot even start in a folder that was deleted (its MKL dies with "Cannot load
    // libtorch_cpu.so"), and relative paths could not be resolved there anyway.
    if let Err(error) = std::env::current_dir() {
        eprintln!(
            "error: cannot use the current folder ({error}): it was probably deleted or moved\nhint: `cd` to an existing folder and run the command again"
        );
        return failure();
    }
    let Some(engine) = engine_path(&cli) else {
        eprintln!("error: cannot locate the clinicadl-rs executable to find its engine beside it");
        return failure();
    };
    let mut command = Command::new(&engine);
    command.args(&args[1..]);
    // glibc returns every large block (an activation of hundreds of MB) to the kernel when freed,
    // so each layer maps fresh pages that fault and are zeroed again: keep freed memory instead
    // (no mmap for large blocks, no trimming). Set before the engine starts, as glibc reads them at start-up;
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
    if tuned && std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // One heap for every thread: what a thread frees can serve any other, where per-thread
        // heaps each keep their own high-water mark (the peak memory of 40 full-size images
        // varied from 0.87 to 1.12 GB between runs with them, 0.80 to 0.90 GB without).
        command.env("MALLOC_ARENA_MAX", "1");
    }
    // libtorch's OpenMP threads spin between parallel regions by default; beside the reader
    // threads, on few cores, that made the forward passes of small networks up to 17 times slower
    // (bench/RESULTS.md). They sleep instead, unless the user chose otherwise.
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        command.env("OMP_WAIT_POLICY", "PASSIVE");
    }
    // Signals that stop a run (Ctrl-C, a scheduler's SIGTERM or SIGUSR1 before its time limit)
    // reach the engine; registered before the engine starts, so that none is lost.
    let forwarded = [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ];
    let mut signals = match signal_hook::iterator::Signals::new(forwarded.map(|s| s as i32)) {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("error: cannot handle signals: {error}");
            return failure();
        }
    };
    // The engine lists the files it maps here (absent: they are not named on SIGBUS).
    // The files the engine reports through (see `supervision`); a run goes on without them.
    let supervision_file = |prefix| tempfile::Builder::new().prefix(prefix).tempfile().ok();
    let mapped = supervision_file(".clinicadl-rs-mapped-");
    let outcome = supervision_file(".clinicadl-rs-outcome-");
    command.env(supervision::FRONT_PID, std::process::id().to_string());
    if let Some(mapped) = &mapped {
        command.env(supervision::MAPPED_FILES, mapped.path());
    }
    if let Some(outcome) = &outcome {
        command.env(supervision::OUTCOME, outcome.path());
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            eprintln!(
                "error: cannot run the engine `{}`: {error}\nhint: clinicadl-rs-engine and clinicadl-rs-engine-cpu must be installed in the same folder as clinicadl-rs (or set CLINICADL_RS_ENGINE)",
                engine.display()
            );
            return failure();
        }
    };
    let engine_pid = nix::unistd::Pid::from_raw(child.id() as i32);
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if let Ok(signal) = Signal::try_from(signal) {
                let _ = nix::sys::signal::kill(engine_pid, signal);
            }
        }
    });
    let status = loop {
        match child.wait() {
            Ok(status) => break status,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                eprintln!("error: lost track of the engine: {error}");
                return failure();
            }
        }
    };
    if status.signal() == Some(Signal::SIGKILL as i32)
        && let Some(code) = outcome
            .as_ref()
            .and_then(|o| supervision::recorded_outcome(o.path()))
    {
        // The engine ended itself once its work was over (see `supervision`).
        return ExitCode::from(code);
    }
    exit_code(status, mapped.as_ref().map(|m| m.path()))
}

/// The exit code of a runtime error.
fn failure() -> ExitCode {
    ExitCode::from(error::EXIT_FAILURE as u8)
}

/// The command's exit code for the engine's `status`: the engine's own code, or, when a signal
/// ended it, an error saying what that means and the shell's code for it (128 + signal), but 1
/// for SIGBUS, a runtime error.
#[allow(clippy::print_stderr)]
fn exit_code(status: ExitStatus, mapped: Option<&Path>) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    let Some(number) = status.signal() else {
        return failure();
    };
    let signal = Signal::try_from(number)
        .map_or_else(|_| format!("signal {number}"), |s| s.as_str().to_owned());
    let whole = "every result set written before it is whole, the one in progress was not written";
    match Signal::try_from(number) {
        Ok(Signal::SIGBUS) => {
            let files = mapped
                .and_then(|m| std::fs::read_to_string(m).ok())
                .unwrap_or_default();
            let mut files: Vec<&str> = files.lines().collect();
            files.dedup();
            let named = if files.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    files
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            eprintln!(
                "error: the run stopped (SIGBUS): a file it reads through a memory map was truncated or rewritten while it ran{named}\nhint: a checkpoint must not change during a prediction (is a training still writing this MAPS?); run the command again once it is complete: {whole}"
            );
            failure()
        }
        Ok(Signal::SIGINT | Signal::SIGPIPE) => ExitCode::from(error::killed_by(number)),
        Ok(Signal::SIGKILL) => {
            eprintln!(
                "error: the run was killed ({signal}), most often by the out-of-memory killer or a job scheduler's limit; {whole}\nhint: with little memory, a smaller --batch_size or --n_proc needs less"
            );
            ExitCode::from(error::killed_by(number))
        }
        _ => {
            eprintln!("error: the run was stopped by {signal}; {whole}");
            ExitCode::from(error::killed_by(number))
        }
    }
}
