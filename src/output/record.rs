//! `run.json`, the record of a result set that lets a user check it: which clinicadl-rs,
//! libtorch and device made it, with which command and options, when, from which shards, and the
//! SHA-256 of `maps.json`, the checkpoints, every input file read and every output file of the
//! set, by path relative to the MAPS. Also the document `--json` prints at the end of a run.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

pub use crate::plan::RUN_JSON;

/// What made a result set.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// clinicadl-rs's version.
    pub version: String,
    /// The libtorch linked.
    pub libtorch: String,
    /// The CUDA runtime, when the GPU ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuda: Option<String>,
    /// cuDNN, when the GPU ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cudnn: Option<String>,
    /// The device that ran the network (its name).
    pub device: String,
    /// The command line (of the merge, for merged shards).
    pub command: Vec<String>,
    /// The resolved options.
    pub options: serde_json::Value,
    /// When the prediction started (ISO 8601).
    pub started: String,
    /// When the result set was complete.
    pub finished: String,
    /// The shards merged, when the set was predicted in shards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<Vec<ShardRecord>>,
    /// What makes two runs' results the same (the options that change them, the inputs'
    /// SHA-256): `--resume` keeps a set whose record has the run's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<crate::shards::Fingerprint>,
    /// SHA-256 of every input and output, by path relative to the MAPS.
    pub sha256: BTreeMap<String, String>,
}

/// One shard of a merged result set.
#[derive(Debug, Clone, Serialize)]
pub struct ShardRecord {
    /// K.
    pub shard: u32,
    /// N.
    pub of: u32,
    /// The first of its sessions, and how many.
    pub sessions: [usize; 2],
    /// Where it ran.
    pub host: String,
    /// The SLURM array task, when it was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slurm_task: Option<u32>,
    /// When it started and finished.
    pub started: String,
    /// See `started`.
    pub finished: String,
}

/// The command line as the user typed it (the engine gets the command's arguments).
pub fn command_line() -> Vec<String> {
    std::iter::once("clinicadl-rs".to_owned())
        .chain(std::env::args().skip(1))
        .collect()
}

/// `path` relative to `base`, lexically (`../caps/…` for a file beside the MAPS); both are made
/// absolute first.
pub fn relative(path: &Path, base: &Path) -> String {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    let normal = |p: PathBuf| -> Vec<String> {
        let mut parts: Vec<String> = Vec::new();
        for component in p.components() {
            match component {
                Component::ParentDir => {
                    parts.pop();
                }
                Component::Normal(name) => parts.push(name.to_string_lossy().into_owned()),
                _ => (),
            }
        }
        parts
    };
    let (path, base) = (normal(absolute(path)), normal(absolute(base)));
    let common = path.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut out: Vec<String> = vec!["..".to_owned(); base.len() - common];
    out.extend(path[common..].iter().cloned());
    out.join("/")
}

/// The SHA-256 of every file under `dir` (a result set being written), by path relative to
/// `maps`, `run.json` left out.
pub fn digests_of_folder(
    dir: &Path,
    final_dir: &Path,
    maps: &Path,
) -> Result<BTreeMap<String, String>> {
    let mut digests = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.with_context(|| format!("cannot list `{}`", dir.display()))?;
        if !entry.file_type().is_file() || entry.depth() == 1 && entry.file_name() == RUN_JSON {
            continue;
        }
        let inside = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        digests.insert(
            relative(&final_dir.join(inside), maps),
            crate::digest::sha256_file(entry.path())?,
        );
    }
    Ok(digests)
}

/// Writes `run.json` into a result set being written.
pub fn write(dir: &Path, record: &RunRecord) -> Result<()> {
    let path = dir.join(RUN_JSON);
    let text = serde_json::to_string_pretty(record).context("cannot encode run.json")?;
    std::fs::write(&path, text + "\n").with_context(|| format!("cannot write `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_relative_to_the_maps() {
        assert_eq!(
            relative(Path::new("/a/maps/split-0/x"), Path::new("/a/maps")),
            "split-0/x"
        );
        assert_eq!(
            relative(Path::new("/a/caps/sub-1/t.pt"), Path::new("/a/maps")),
            "../caps/sub-1/t.pt"
        );
        assert_eq!(
            relative(Path::new("/a/maps/../caps/x"), Path::new("/a/maps/")),
            "../caps/x"
        );
    }

    #[test]
    fn digests_name_final_paths_and_leave_the_record_out() {
        let d = tempfile::tempdir().unwrap();
        let staging = d.path().join("maps/split-0/best-loss/.test.partial-1");
        std::fs::create_dir_all(staging.join("tensors")).unwrap();
        std::fs::write(staging.join("a.tsv"), "abc").unwrap();
        std::fs::write(staging.join("tensors/b.pt"), "").unwrap();
        std::fs::write(staging.join(RUN_JSON), "{}").unwrap();
        let digests = digests_of_folder(
            &staging,
            &d.path().join("maps/split-0/best-loss/test"),
            &d.path().join("maps"),
        )
        .unwrap();
        let names: Vec<&String> = digests.keys().collect();
        assert_eq!(
            names,
            [
                "split-0/best-loss/test/a.tsv",
                "split-0/best-loss/test/tensors/b.pt"
            ]
        );
        assert_eq!(
            digests["split-0/best-loss/test/a.tsv"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
