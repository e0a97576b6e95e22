//! Test harness: copies a case (a reference case, found by `reference_dir`, or the example bundled
//! in `examples/`) to a temporary folder, rewrites its `/REFERENCE_CASE` placeholder, removes
//! what `clinicadl predict` wrote, and runs the real binary (`compare` compares the results).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The compiled binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_clinicadl-rs"))
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub use crate::reference_cases::reference_dir;

/// A case copied into a temporary folder.
pub struct Case {
    /// Keeps the folder alive.
    pub _tmp: tempfile::TempDir,
    /// The copy.
    pub dir: PathBuf,
    /// The original (for expected outputs).
    pub source: PathBuf,
    /// The predict arguments of `cmd.txt`, placeholder replaced.
    pub args: Vec<String>,
}

/// Copies the folder `from` to `to` (made writable; `logs` folders left out).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "logs" {
                copy_tree(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            let mut perms = std::fs::metadata(&target).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&target, perms).unwrap();
        }
    }
}

fn rewrite_placeholder(dir: &Path, replacement: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rewrite_placeholder(&path, replacement);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "tsv" | "txt" | "log")
        ) {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.contains("/REFERENCE_CASE") {
                std::fs::write(&path, text.replace("/REFERENCE_CASE", replacement)).unwrap();
            }
        }
    }
}

/// Every `split-*/best-*/<group>/` results folder of a MAPS.
pub fn results_dirs(maps: &Path, group: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for split in std::fs::read_dir(maps).unwrap().flatten() {
        if !split.file_name().to_string_lossy().starts_with("split-") || !split.path().is_dir() {
            continue;
        }
        for metric in std::fs::read_dir(split.path()).unwrap().flatten() {
            let dir = metric.path().join(group);
            if metric.file_name().to_string_lossy().starts_with("best-") && dir.is_dir() {
                dirs.push(dir);
            }
        }
    }
    dirs.sort();
    dirs
}

impl Case {
    /// Copies `source` (a case folder) and puts its MAPS in the state before `predict` of `group`.
    pub fn prepare(source: &Path, group: &str) -> Case {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("case");
        copy_tree(source, &dir);
        let dir_text = dir.to_string_lossy().into_owned();
        rewrite_placeholder(&dir, &dir_text);
        let maps = dir.join("maps");
        let _ = std::fs::remove_dir_all(maps.join("groups").join(group));
        for results in results_dirs(&maps, group) {
            std::fs::remove_dir_all(results).unwrap();
        }
        let cmd = std::fs::read_to_string(dir.join("cmd.txt")).unwrap();
        let line = cmd
            .lines()
            .find(|l| l.starts_with("clinicadl predict"))
            .expect("cmd.txt has a predict line");
        let args = line.split_whitespace().skip(2).map(str::to_owned).collect();
        Case {
            _tmp: tmp,
            dir,
            source: source.to_owned(),
            args,
        }
    }

    /// The batch size of the case's command (`--batch_size`, else 8).
    pub fn settings(&self) -> crate::compare::Settings {
        let batch_size = self
            .args
            .iter()
            .position(|a| a == "--batch_size")
            .and_then(|i| self.args.get(i + 1)?.parse().ok())
            .unwrap_or(8);
        crate::compare::Settings { batch_size }
    }

    /// The copied MAPS.
    pub fn maps(&self) -> PathBuf {
        self.dir.join("maps")
    }

    /// Runs `clinicadl-rs predict` with the case's arguments followed by `extra`.
    pub fn predict(&self, extra: &[&str]) -> Output {
        let mut cmd = Command::new(binary());
        cmd.arg("predict")
            .args(&self.args)
            .args(extra)
            .current_dir(&self.dir);
        cmd.output().unwrap()
    }
}

/// The example with a data group `long` of `n` sessions (each a link to one session's tensor,
/// every third one CN, the others AD), for runs that last long enough to be interrupted; with
/// the arguments of `predict` on it (split 0, no reader threads) followed by `extra`.
pub fn long_case(n: usize, extra: &[&str]) -> (Case, Vec<String>) {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    let source = case.dir.join("caps/subjects/sub-T001/ses-M000/deeplearning_prepare_data/image_based/t1_linear/sub-T001_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt");
    let mut tsv = String::from("participant_id\tsession_id\tdiagnosis\n");
    for i in 0..n {
        let p = format!("sub-L{i:05}");
        let dir = case.dir.join(format!(
            "long/subjects/{p}/ses-M000/deeplearning_prepare_data/image_based/t1_linear"
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(
            &source,
            dir.join(format!(
                "{p}_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt"
            )),
        )
        .unwrap();
        let diagnosis = if i % 3 == 0 { "CN" } else { "AD" };
        tsv.push_str(&format!("{p}\tses-M000\t{diagnosis}\n"));
    }
    std::fs::write(case.dir.join("long.tsv"), tsv).unwrap();
    let mut args: Vec<String> = [
        "predict",
        case.maps().to_str().unwrap(),
        "long",
        "--caps_directory",
        case.dir.join("long").to_str().unwrap(),
        "--participants_tsv",
        case.dir.join("long.tsv").to_str().unwrap(),
        "--no-gpu",
        "-s",
        "0",
        "-np",
        "0",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    (case, args)
}

/// Splits the example's test participants (`tsv/split/test_baseline.tsv` of the case folder
/// `dir`) by diagnosis into `tsv/ad.tsv` and `tsv/cn.tsv` (MCI rows in neither), the two cohorts
/// of the multi-cohort tests.
pub fn write_diagnosis_tsvs(dir: &Path) {
    let all = std::fs::read_to_string(dir.join("tsv/split/test_baseline.tsv")).unwrap();
    let header = all.lines().next().unwrap();
    let pick = |dx: &str| -> String {
        let rows: Vec<&str> = all
            .lines()
            .skip(1)
            .filter(|l| l.split('\t').nth(2) == Some(dx))
            .collect();
        format!("{header}\n{}\n", rows.join("\n"))
    };
    std::fs::write(dir.join("tsv/ad.tsv"), pick("AD")).unwrap();
    std::fs::write(dir.join("tsv/cn.tsv"), pick("CN")).unwrap();
}

/// Runs the binary with arbitrary arguments in `cwd`.
pub fn run(args: &[&str], cwd: &Path) -> Output {
    Command::new(binary())
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// The text of stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A hash of every file (path and content) under `dir`, to prove a tree unchanged.
pub fn tree_digest(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.push((
                    path.strip_prefix(dir).unwrap().to_owned(),
                    b"<dir>".to_vec(),
                ));
                stack.push(path);
            } else {
                out.push((
                    path.strip_prefix(dir).unwrap().to_owned(),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// An executable shell script `engine.sh` in `dir` with `body` after its `#!/bin/sh` line: a
/// stand-in engine for the command (`CLINICADL_RS_ENGINE`).
pub fn stand_in_engine(dir: &Path, body: &str) -> PathBuf {
    let engine = dir.join("engine.sh");
    std::fs::write(&engine, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&engine, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    engine
}

/// The volume of a NIfTI file as float32, read by the nifti crate (C order, `[X, Y, Z…]`).
pub fn read_nifti_f32(path: &Path) -> ndarray::ArrayD<f32> {
    use nifti::{IntoNdArray, NiftiObject};
    nifti::ReaderOptions::new()
        .read_file(path)
        .unwrap()
        .into_volume()
        .into_ndarray::<f32>()
        .unwrap()
}
