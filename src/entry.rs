//! The engine's entry point, shared by its two binaries (started by the `clinicadl-rs` command):
//! `clinicadl-rs-engine`, linked with libtorch and its CUDA library, for GPU runs, and
//! `clinicadl-rs-engine-cpu`, linked with libtorch's CPU library only, for `--no-gpu` runs (it
//! starts in about half the time and needs about 300 MB less memory: CUDA's libraries are not
//! loaded).

use std::process::ExitCode;

use crate::cli::Command;
use crate::{error, ui};

/// The engine's `main`: parses the command line, runs it, and turns the outcome into an exit
/// code (see [`crate::error`]).
pub fn main() -> ExitCode {
    let code = run();
    crate::supervision::end_now(code);
    ExitCode::from(code)
}

/// Parses the command line and runs it; returns the exit code.
fn run() -> u8 {
    if !crate::supervision::follow_the_front() {
        // The command that started this engine is gone: nobody waits for this run.
        return error::EXIT_FAILURE as u8;
    }
    let cli = match crate::cli::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(code) => return code as u8,
    };
    ui::set_verbose(cli.verbose);
    if let Some(ms) = ms_since_process_start() {
        ui::debug(&format!(
            "start-up: {ms} ms (process start to engine ready; {})",
            if cuda_loaded() {
                "libtorch with CUDA"
            } else {
                "libtorch without CUDA"
            }
        ));
    }
    let result = match &cli.command {
        Command::Predict(args) => crate::run::predict(args),
        Command::Merge(args) => crate::merge::merge(args),
    };
    let json = match &cli.command {
        Command::Predict(args) => args.json,
        Command::Merge(args) => args.json,
    };
    match result {
        Ok(()) => error::EXIT_SUCCESS as u8,
        Err(e) => {
            let code = error::exit_code(&e);
            let hint = (code == error::EXIT_USAGE).then_some("see `clinicadl-rs predict --help`");
            ui::print_error(&e, hint);
            if json {
                ui::print_json(&serde_json::json!({
                    "error": ui::error_messages(&e).join(": "),
                    "exit_code": code,
                }));
            }
            code as u8
        }
    }
}

/// Milliseconds since the run started (the `clinicadl-rs` command that started this engine, or
/// this process: loading libtorch is included), from `/proc` (10 ms resolution); `None` where
/// unavailable.
fn ms_since_process_start() -> Option<u64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{}/stat", crate::supervision::run_pid())).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let start_ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // /proc counts in USER_HZ, 100 on Linux.
    let elapsed = uptime - start_ticks / 100.0;
    (elapsed >= 0.0).then(|| (elapsed * 1000.0).round() as u64)
}

/// Whether libtorch's CUDA library is loaded in this process (from `/proc/self/maps`).
fn cuda_loaded() -> bool {
    std::fs::read_to_string("/proc/self/maps").is_ok_and(|maps| maps.contains("libtorch_cuda"))
}
