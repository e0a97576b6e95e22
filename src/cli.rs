//! Command-line types, mirroring `clinicadl [-v] predict [OPTIONS] INPUT_MAPS_DIRECTORY DATA_GROUP`
//! of ClinicaDL 1.6.1 (names, short forms, defaults and help texts). Only clap types live here:
//! no file is read, nothing is resolved (that is `config`'s job).
//!
//! ClinicaDL has two multi-letter short options, `-np` and `-sm`, which clap cannot declare;
//! [`normalize_args`] rewrites them to their long forms before parsing.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// Top-level command: `clinicadl-rs [-v] <command>`.
#[derive(Debug, Parser)]
#[command(
    name = "clinicadl-rs",
    version,
    about = "Run ClinicaDL models: a faster and safer drop-in for `clinicadl predict` (ClinicaDL 1.x).",
    after_help = "Exit codes: 0 success, 1 runtime error, 2 usage error.",
    propagate_version = true
)]
pub struct Cli {
    /// Verbose mode: also print debug messages.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Infer the outputs of a trained model on a test set.
    ///
    /// INPUT_MAPS_DIRECTORY is the MAPS folder from where the model used for prediction will be
    /// loaded. DATA_GROUP is the name of the data group used for the prediction.
    #[command(arg_required_else_help = true)]
    Predict(PredictArgs),

    /// Merge the shards of a prediction (`predict --shard`) into the results one run writes.
    ///
    /// Every shard of every result set must be there, complete and from the same command and
    /// checkpoint; a missing or failed shard is named (with the SLURM task to rerun) and nothing
    /// is written. Rerunning merge is harmless.
    #[command(arg_required_else_help = true)]
    Merge(MergeArgs),
}

/// Options of `merge`.
#[derive(Debug, Args, Clone)]
pub struct MergeArgs {
    /// Path to the MAPS folder.
    #[arg(value_name = "INPUT_MAPS_DIRECTORY")]
    pub input_maps_directory: PathBuf,

    /// Name of the data group whose shards are merged.
    #[arg(value_name = "DATA_GROUP", value_parser = data_group_name)]
    pub data_group: String,

    /// Merge only these splits (repeatable; default: every split with shards).
    #[arg(short = 's', long = "split", value_name = "INTEGER", action = ArgAction::Append, allow_negative_numbers = true, value_parser = split_number)]
    pub split: Vec<u32>,

    /// Merge only these selection metrics (also `-sm`; repeatable; default: every one with
    /// shards).
    #[arg(long = "selection_metrics", value_name = "TEXT", action = ArgAction::Append)]
    pub selection_metrics: Vec<String>,

    /// Print one JSON document on stdout at the end: the result sets written, their files and
    /// metrics (errors too, as JSON, with a non-zero exit).
    #[arg(long = "json")]
    pub json: bool,
}

/// Which share of the data group a process predicts (`--shard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    /// `K/N`: the K-th of N shares (1 ≤ K ≤ N).
    Part {
        /// K, from 1.
        index: u32,
        /// N.
        count: u32,
    },
    /// `slurm`: K and N from the variables of a SLURM array job.
    Slurm,
}

/// Options of `predict`, as ClinicaDL 1.6.1 names them.
#[derive(Debug, Args, Clone)]
pub struct PredictArgs {
    /// Path to the MAPS folder.
    #[arg(value_name = "INPUT_MAPS_DIRECTORY")]
    pub input_maps_directory: PathBuf,

    /// Name of the data group (sub-folder of `groups/` and of every `split-*/best-*/`).
    #[arg(value_name = "DATA_GROUP", value_parser = data_group_name)]
    pub data_group: String,

    /// Data using CAPS structure, if different from the one used during network training.
    #[arg(long = "caps_directory", value_name = "PATH", help_heading = "Data")]
    pub caps_directory: Option<PathBuf>,

    /// Path to the file with subjects/sessions to process, if different from the one used
    /// during network training.
    #[arg(long = "participants_tsv", value_name = "PATH", help_heading = "Data")]
    pub participants_tsv: Option<PathBuf>,

    /// Performs multi-cohort interpretation. In this case, caps_directory and participants_tsv
    /// must be paths to TSV files.
    #[arg(long = "multi_cohort", help_heading = "Data")]
    pub multi_cohort: bool,

    /// List of diagnoses used for inference (default: the training diagnoses of the MAPS).
    #[arg(short = 'd', long = "diagnoses", value_name = "TEXT", action = ArgAction::Append, help_heading = "Data")]
    pub diagnoses: Vec<String>,

    /// Set this option to use labels and compute metrics [default].
    #[arg(
        long = "use_labels",
        overrides_with = "no_labels",
        help_heading = "Data"
    )]
    pub use_labels: bool,

    /// Predict without labels: `true_label` is -1 and no metrics are written.
    #[arg(
        long = "no_labels",
        overrides_with = "use_labels",
        help_heading = "Data"
    )]
    pub no_labels: bool,

    /// Target label used for training (if NETWORK_TASK in [`regression`, `classification`]).
    #[arg(long = "label", value_name = "TEXT", help_heading = "Data")]
    pub label: Option<String>,

    /// Skip the data leakage check.
    #[arg(long = "skip_leak_check", help_heading = "Data")]
    pub skip_leak_check: bool,

    /// Read every session from its CAPS NIfTI image, as `clinicadl prepare-data` would have
    /// converted it, even where its `.pt` tensors exist (sessions without tensors are always
    /// read from their image).
    #[arg(long = "from_nifti", help_heading = "Data")]
    pub from_nifti: bool,

    /// Save the reconstruction output in the MAPS in Pytorch tensor format.
    #[arg(long = "save_tensor", help_heading = "Outputs")]
    pub save_tensor: bool,

    /// Save the output map(s) in the MAPS in NIfTI format.
    #[arg(long = "save_nifti", help_heading = "Outputs")]
    pub save_nifti: bool,

    /// Save the latent representation of the image.
    #[arg(long = "save_latent_tensor", help_heading = "Outputs")]
    pub save_latent_tensor: bool,

    /// Load the model selected on the metrics given (also `-sm`; repeatable) [default: loss].
    #[arg(long = "selection_metrics", value_name = "TEXT", action = ArgAction::Append, help_heading = "Model selection")]
    pub selection_metrics: Vec<String>,

    /// Make inference on the list of given splits (repeatable; default: every trained split).
    #[arg(short = 's', long = "split", value_name = "INTEGER", action = ArgAction::Append, allow_negative_numbers = true, value_parser = split_number, help_heading = "Model selection")]
    pub split: Vec<u32>,

    /// Use GPU acceleration [default].
    #[arg(
        long = "gpu",
        overrides_with = "no_gpu",
        help_heading = "Computational resources"
    )]
    pub gpu: bool,

    /// Run on the CPU.
    #[arg(
        long = "no-gpu",
        overrides_with = "gpu",
        help_heading = "Computational resources"
    )]
    pub no_gpu: bool,

    /// Enables automatic mixed precision (float16 autocast) during inference; needs --gpu.
    #[arg(
        long = "amp",
        overrides_with = "no_amp",
        help_heading = "Computational resources"
    )]
    pub amp: bool,

    /// Disables automatic mixed precision [default].
    #[arg(
        long = "no-amp",
        overrides_with = "amp",
        help_heading = "Computational resources"
    )]
    pub no_amp: bool,

    /// Number of reader threads that prepare the next batches (also `-np`).
    #[arg(long = "n_proc", value_name = "INTEGER", default_value_t = 2, allow_negative_numbers = true, value_parser = reader_threads, help_heading = "Computational resources")]
    pub n_proc: u32,

    /// Batch size for data loading.
    #[arg(long = "batch_size", value_name = "INTEGER", default_value_t = 8, allow_negative_numbers = true, value_parser = batch_size, help_heading = "Computational resources")]
    pub batch_size: u32,

    /// Check everything a run needs and print what it would do (splits, selection metrics,
    /// sessions, files written), without writing anything.
    #[arg(long = "dry-run")]
    pub dry_run: bool,

    /// Overwrite the results of DATA_GROUP (and redefine it when --caps_directory or
    /// --participants_tsv is given).
    #[arg(short = 'o', long = "overwrite")]
    pub overwrite: bool,

    /// Predict the K-th of N contiguous shares of the data group's sessions (`K/N`, or `slurm`
    /// in a SLURM array job: K and N from its variables); `clinicadl-rs merge` then writes the
    /// results. Nothing is sharded unless asked.
    #[arg(long = "shard", value_name = "K/N|slurm", value_parser = shard_arg, help_heading = "Clusters")]
    pub shard: Option<ShardArg>,

    /// Resume a run that was killed: keep its finished result sets and, in an unfinished one,
    /// its finished sessions whose recorded outputs are intact; predict only the rest.
    #[arg(long = "resume", help_heading = "Clusters")]
    pub resume: bool,

    /// Print one JSON document on stdout at the end: the result sets written, their files and
    /// metrics (errors too, as JSON, with a non-zero exit). Logs stay on stderr.
    #[arg(long = "json", help_heading = "Clusters")]
    pub json: bool,
}

impl PredictArgs {
    /// Whether labels are used (`--use_labels`, the default, unless `--no_labels`).
    pub fn use_labels(&self) -> bool {
        !self.no_labels
    }

    /// Whether the GPU is requested (`--gpu`, the default, unless `--no-gpu`).
    pub fn gpu(&self) -> bool {
        !self.no_gpu
    }
}

/// Most reader threads `--n_proc` may ask for.
const MAX_READER_THREADS: u32 = 256;

/// An integer option's value, or why it is not one.
fn integer(value: &str) -> Result<i64, String> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("`{value}` is not an integer"))
}

/// `--batch_size`: a positive integer.
fn batch_size(value: &str) -> Result<u32, String> {
    match integer(value)? {
        n if n >= 1 => u32::try_from(n).map_err(|_| format!("{n} is too large")),
        n => Err(format!(
            "the batch size is a number of elements, at least 1, not {n}"
        )),
    }
}

/// `--n_proc`: 0 (read on the main thread) to 256 reader threads.
fn reader_threads(value: &str) -> Result<u32, String> {
    match integer(value)? {
        n if (0..=i64::from(MAX_READER_THREADS)).contains(&n) => Ok(n as u32),
        n => Err(format!(
            "the number of reader threads is 0 (read on the main thread) to {MAX_READER_THREADS}, not {n}"
        )),
    }
}

/// `--split`: a split number, 0 or more.
fn split_number(value: &str) -> Result<u32, String> {
    match integer(value)? {
        n if n >= 0 => u32::try_from(n).map_err(|_| format!("{n} is too large")),
        n => Err(format!("splits are numbered from 0 (`split-0/`), not {n}")),
    }
}

/// `--shard`: `K/N` (1 ≤ K ≤ N) or `slurm`.
fn shard_arg(value: &str) -> Result<ShardArg, String> {
    if value == "slurm" {
        return Ok(ShardArg::Slurm);
    }
    let form = "give `K/N` (the K-th of N shares, 1 ≤ K ≤ N) or `slurm`";
    let Some((k, n)) = value.split_once('/') else {
        return Err(format!("`{value}` is not a shard: {form}"));
    };
    match (k.trim().parse::<u32>(), n.trim().parse::<u32>()) {
        (Ok(index), Ok(count)) if (1..=count).contains(&index) => {
            Ok(ShardArg::Part { index, count })
        }
        _ => Err(format!("`{value}` is not a shard: {form}")),
    }
}

/// `DATA_GROUP`: one plain folder name (it names `groups/<DATA_GROUP>/` and
/// `split-*/best-*/<DATA_GROUP>/`), so that no run can write outside those folders.
fn data_group_name(value: &str) -> Result<String, String> {
    let problem = if value.is_empty() {
        Some("it is empty")
    } else if value.contains('/') || value.contains('\\') {
        Some("it contains a path separator")
    } else if value.starts_with('.') {
        Some(
            "it starts with `.` (`.` and `..` are not folders of their own; hidden names are kept for clinicadl-rs's own files)",
        )
    } else if value.starts_with('-') {
        Some("it starts with `-`, which reads as an option")
    } else if value.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(format!(
            "a data group is named by one plain folder name, and {problem}"
        )),
        None => Ok(value.to_owned()),
    }
}

/// Parses a command line as both binaries do (ClinicaDL's two-letter options rewritten first);
/// on `--help`, `--version` or a usage error, clap's message is printed and the exit code
/// returned (see `error.rs`).
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Cli, i32> {
    Cli::try_parse_from(normalize_args(args)).map_err(|error| crate::error::clap_exit(&error))
}

/// Rewrites ClinicaDL's two-letter short options (`-np`, `-sm`) to their long forms, so that
/// `clinicadl-rs predict ... -np 4 -sm BA` parses exactly as `clinicadl predict` does.
pub fn normalize_args<I: IntoIterator<Item = OsString>>(args: I) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut after_double_dash = false;
    for arg in args {
        if after_double_dash {
            out.push(arg);
            continue;
        }
        let rewritten = match arg.to_str() {
            Some("--") => {
                after_double_dash = true;
                None
            }
            Some("-np") => Some("--n_proc".to_owned()),
            Some("-sm") => Some("--selection_metrics".to_owned()),
            Some(s) if s.starts_with("-np=") => Some(format!("--n_proc={}", &s[4..])),
            Some(s) if s.starts_with("-sm=") => Some(format!("--selection_metrics={}", &s[4..])),
            _ => None,
        };
        out.push(rewritten.map(OsString::from).unwrap_or(arg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> PredictArgs {
        let argv = normalize_args(args.iter().map(OsString::from));
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Predict(p) => p,
            Command::Merge(_) => panic!("not predict"),
        }
    }

    #[test]
    fn defaults_match_clinicadl() {
        let p = parse(&["clinicadl-rs", "predict", "maps", "test"]);
        assert_eq!(p.batch_size, 8);
        assert_eq!(p.n_proc, 2);
        assert!(p.gpu());
        assert!(!p.amp);
        assert!(p.use_labels());
        assert!(p.selection_metrics.is_empty());
        assert!(p.split.is_empty());
    }

    #[test]
    fn short_forms_and_repeats() {
        let p = parse(&[
            "clinicadl-rs",
            "predict",
            "maps",
            "test",
            "-sm",
            "loss",
            "-sm",
            "BA",
            "-np",
            "4",
            "-s",
            "1",
            "-s",
            "0",
            "--no-gpu",
            "-d",
            "AD",
            "--no_labels",
            "-o",
        ]);
        assert_eq!(p.selection_metrics, ["loss", "BA"]);
        assert_eq!(p.n_proc, 4);
        assert_eq!(p.split, [1, 0]);
        assert!(!p.gpu());
        assert_eq!(p.diagnoses, ["AD"]);
        assert!(!p.use_labels());
        assert!(p.overwrite);
    }

    #[test]
    fn last_flag_of_a_pair_wins() {
        let p = parse(&[
            "clinicadl-rs",
            "predict",
            "m",
            "g",
            "--no-gpu",
            "--gpu",
            "--amp",
            "--no-amp",
        ]);
        assert!(p.gpu());
        assert!(!p.amp);
    }

    #[test]
    fn bad_integer_is_a_usage_error() {
        let argv =
            normalize_args(["clinicadl-rs", "predict", "m", "g", "-s", "x"].map(OsString::from));
        let err = Cli::try_parse_from(argv).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    /// The usage error of a command line, as clap prints it.
    fn usage_error(args: &[&str]) -> String {
        let argv = normalize_args(args.iter().map(OsString::from));
        let err = Cli::try_parse_from(argv).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        err.to_string()
    }

    #[test]
    fn negative_and_zero_values_say_which_option_and_why() {
        let e = usage_error(&["c", "predict", "m", "g", "--batch_size", "-3"]);
        assert!(
            e.contains("'--batch_size <INTEGER>'") && e.contains("at least 1, not -3"),
            "{e}"
        );
        let e = usage_error(&["c", "predict", "m", "g", "--batch_size", "0"]);
        assert!(e.contains("at least 1, not 0"), "{e}");
        let e = usage_error(&["c", "predict", "m", "g", "-np", "-1"]);
        assert!(
            e.contains("'--n_proc <INTEGER>'")
                && e.contains("0 (read on the main thread) to 256, not -1"),
            "{e}"
        );
        let e = usage_error(&["c", "predict", "m", "g", "-s", "-2"]);
        assert!(e.contains("numbered from 0"), "{e}");
        let e = usage_error(&["c", "predict", "m", "g", "--batch_size", "x"]);
        assert!(e.contains("`x` is not an integer"), "{e}");
    }

    #[test]
    fn a_data_group_is_one_plain_folder_name() {
        for (group, why) in [
            ("", "it is empty"),
            ("../x", "path separator"),
            ("a/b", "path separator"),
            ("..", "starts with `.`"),
            (".hidden", "starts with `.`"),
        ] {
            let e = usage_error(&["c", "predict", "m", "--", group]);
            assert!(
                e.contains("<DATA_GROUP>") && e.contains(why),
                "{group}: {e}"
            );
        }
        let e = usage_error(&["c", "predict", "m", "--", "-x"]);
        assert!(e.contains("starts with `-`"), "{e}");
        assert_eq!(
            parse(&["c", "predict", "m", "test-AD_2"]).data_group,
            "test-AD_2"
        );
    }

    #[test]
    fn shards_are_k_of_n_or_slurm() {
        let p = parse(&["c", "predict", "m", "g", "--shard", "2/3"]);
        assert_eq!(p.shard, Some(ShardArg::Part { index: 2, count: 3 }));
        let p = parse(&["c", "predict", "m", "g", "--shard", "slurm"]);
        assert_eq!(p.shard, Some(ShardArg::Slurm));
        for bad in ["0/3", "4/3", "2", "a/b", "1/0"] {
            let e = usage_error(&["c", "predict", "m", "g", "--shard", bad]);
            assert!(e.contains("is not a shard: give `K/N`"), "{bad}: {e}");
        }
        let Ok(Cli {
            command: Command::Merge(m),
            ..
        }) = Cli::try_parse_from(normalize_args(
            ["c", "merge", "maps", "g", "-s", "1", "-sm", "BA", "--json"].map(OsString::from),
        ))
        else {
            panic!("merge does not parse");
        };
        assert_eq!(
            (m.split, m.selection_metrics, m.json),
            (vec![1], vec!["BA".to_owned()], true)
        );
    }

    #[test]
    fn double_dash_stops_rewriting() {
        let argv = normalize_args(["a", "--", "-np"].map(OsString::from));
        assert_eq!(argv[2], OsString::from("-np"));
    }
}
