//! The `clinicadl-rs-engine` binary (started by `clinicadl-rs`): parse the command line, run the
//! library (linked with libtorch), turn the outcome into an
//! exit code (see `clinicadl_rs::error`).

use std::process::ExitCode;

use clap::Parser;
use clinicadl_rs::cli::{Cli, Command, normalize_args};
use clinicadl_rs::{error, ui};

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(normalize_args(std::env::args_os())) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    ui::set_verbose(cli.verbose);
    let result = match &cli.command {
        Command::Predict(args) => clinicadl_rs::predict(args),
    };
    match result {
        Ok(()) => ExitCode::from(error::EXIT_SUCCESS as u8),
        Err(e) => {
            let code = error::exit_code(&e);
            let hint = (code == error::EXIT_USAGE).then_some("see `clinicadl-rs predict --help`");
            ui::print_error(&e, hint);
            ExitCode::from(code as u8)
        }
    }
}
