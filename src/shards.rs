//! Sharded prediction: which share of a data group a process predicts (`--shard K/N`, or the
//! variables of a SLURM array job), and the part it leaves for `clinicadl-rs merge`.
//!
//! Shares are contiguous runs of sessions, all elements of a session in one shard (soft voting
//! stays whole), cut on batch boundaries: a shard's batches are exactly the batches of the
//! unsharded run, so the merged rows and per-batch losses are the same bytes. A shard writes its
//! part into `split-<k>/best-<m>/.<group>.shards/shard-<K>-of-<N>/` (`part.json` and the save
//! options' files), never where the final results go; the merge checks every part and writes
//! the result set as one run would.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::cli::ShardArg;
use crate::error::UsageError;
use crate::rows::Row;

/// The share of the data group this process predicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// K, from 1.
    pub index: u32,
    /// N.
    pub count: u32,
    /// The SLURM array task it runs as, when `--shard slurm`.
    pub slurm: Option<SlurmTask>,
}

/// A task of a SLURM array job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmTask {
    /// `SLURM_ARRAY_JOB_ID`, when set.
    pub job: Option<String>,
    /// `SLURM_ARRAY_TASK_ID`.
    pub task: u32,
    /// `SLURM_ARRAY_TASK_MIN`: the task of shard 1.
    pub first_task: u32,
}

impl Shard {
    /// The shard of `--shard`; `var` reads the environment (SLURM's variables).
    pub fn resolve(arg: ShardArg, var: impl Fn(&str) -> Option<String>) -> Result<Shard> {
        if let ShardArg::Part { index, count } = arg {
            return Ok(Shard {
                index,
                count,
                slurm: None,
            });
        }
        let number = |name: &str| -> Result<Option<u32>> {
            match var(name) {
                None => Ok(None),
                Some(text) => text.trim().parse().map(Some).map_err(|_| {
                    UsageError::new(format!("--shard slurm: {name} is `{text}`, not a number"))
                        .into()
                }),
            }
        };
        let (Some(task), Some(tasks)) = (
            number("SLURM_ARRAY_TASK_ID")?,
            number("SLURM_ARRAY_TASK_COUNT")?,
        ) else {
            return Err(UsageError::new(
                "--shard slurm needs a SLURM array job (SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT are not set): submit the script with `sbatch --array=1-N`, or give --shard K/N",
            )
            .into());
        };
        let first_task = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let index = task.checked_sub(first_task).map(|k| k + 1);
        match index {
            Some(index) if (1..=tasks).contains(&index) => Ok(Shard {
                index,
                count: tasks,
                slurm: Some(SlurmTask {
                    job: var("SLURM_ARRAY_JOB_ID"),
                    task,
                    first_task,
                }),
            }),
            _ => Err(UsageError::new(format!(
                "--shard slurm: task {task} is not one of the {tasks} tasks from {first_task} (SLURM_ARRAY_TASK_ID, _MIN, _COUNT): arrays of shards must be contiguous, e.g. `--array=1-{tasks}`"
            ))
            .into()),
        }
    }

    /// `shard-<K>-of-<N>`: the part's folder.
    pub fn part_name(&self) -> String {
        part_name(self.index, self.count)
    }

    /// The sessions of this shard among `sessions`, cut on multiples of `granularity` sessions
    /// (see [`granularity`]): shard K of N gets the K-th of N near-equal runs of such units.
    pub fn sessions(&self, sessions: usize, granularity: usize) -> Range<usize> {
        let granularity = granularity.max(1);
        let units = sessions.div_ceil(granularity);
        let (k, n) = (self.index as usize, self.count.max(1) as usize);
        let start = (k - 1) * units / n * granularity;
        let end = (k * units / n * granularity).min(sessions);
        start.min(sessions)..end
    }
}

/// `shard-<K>-of-<N>`.
pub fn part_name(index: u32, count: u32) -> String {
    format!("shard-{index}-of-{count}")
}

/// The smallest number of sessions that ends on a batch boundary: with `elements` elements per
/// session in the batch sequence and batches of `batch_size`, lcm(elements, batch_size) /
/// elements sessions.
pub fn granularity(elements: usize, batch_size: usize) -> usize {
    let (elements, batch_size) = (elements.max(1), batch_size.max(1));
    let gcd = {
        let (mut a, mut b) = (elements, batch_size);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    batch_size / gcd
}

/// What must be the same for the parts of one result set to be merged: the command's options
/// that change the results, and the inputs (by their SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// clinicadl-rs's version.
    pub version: String,
    /// The data group.
    pub group: String,
    /// The split.
    pub split: u32,
    /// The selection metric.
    pub selection_metric: String,
    /// SHA-256 of `maps.json`.
    pub maps_json: String,
    /// SHA-256 of each checkpoint, by path relative to the MAPS.
    pub checkpoints: BTreeMap<String, String>,
    /// SHA-256 of the group's definition (its `data.tsv`, CAPS and multi-cohort flag).
    pub group_definition: String,
    /// `--batch_size`.
    pub batch_size: usize,
    /// Labels used.
    pub use_labels: bool,
    /// `--label`, when given.
    pub label: Option<String>,
    /// `--amp`.
    pub amp: bool,
    /// `cpu` or `cuda`.
    pub device: String,
    /// The save options (`tensor`, `nifti`, `latent`).
    pub save: [bool; 3],
}

/// What one network gave over the shard's sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartBlock {
    /// The rows, in dataset order.
    pub rows: Vec<Row>,
    /// Each batch's loss components, their float32 values by bits.
    pub batch_losses: Vec<Vec<(String, u32)>>,
}

/// `part.json`: a shard's results for one result set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// The shard.
    pub shard: Shard,
    /// The first of its sessions, in the group's order.
    pub first_session: usize,
    /// How many sessions it predicted.
    pub sessions: usize,
    /// What the parts of a result set share.
    pub fingerprint: Fingerprint,
    /// One block per network.
    pub blocks: Vec<PartBlock>,
    /// The files read, by path relative to the MAPS, with their SHA-256.
    pub read: BTreeMap<String, String>,
    /// When the shard started and finished (ISO 8601).
    pub started: String,
    /// See `started`.
    pub finished: String,
    /// The host it ran on.
    pub host: String,
    /// The device that ran the network.
    pub device: String,
}

/// The file of a part.
pub const PART_FILE: &str = "part.json";

impl Part {
    /// Reads `part.json` from a part's folder.
    pub fn read(dir: &Path) -> Result<Part> {
        let path = dir.join(PART_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("`{}` is not a shard's part.json", path.display()))
    }

    /// Writes `part.json` into a part's folder.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(PART_FILE);
        let text = serde_json::to_string(self).context("cannot encode a shard's part")?;
        std::fs::write(&path, text).with_context(|| format!("cannot write `{}`", path.display()))
    }
}

/// Loss components by their float32 bits (exact, NaN included).
pub fn losses_to_bits(losses: &[Vec<(String, f32)>]) -> Vec<Vec<(String, u32)>> {
    losses
        .iter()
        .map(|batch| {
            batch
                .iter()
                .map(|(k, v)| (k.clone(), v.to_bits()))
                .collect()
        })
        .collect()
}

/// The inverse of [`losses_to_bits`].
pub fn losses_from_bits(losses: &[Vec<(String, u32)>]) -> Vec<Vec<(String, f32)>> {
    losses
        .iter()
        .map(|batch| {
            batch
                .iter()
                .map(|(k, v)| (k.clone(), f32::from_bits(*v)))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn slurm_shards_come_from_the_array_variables() {
        let shard = Shard::resolve(
            ShardArg::Slurm,
            env(&[
                ("SLURM_ARRAY_TASK_ID", "3"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
                ("SLURM_ARRAY_JOB_ID", "777"),
            ]),
        )
        .unwrap();
        assert_eq!((shard.index, shard.count), (3, 4));
        assert_eq!(shard.slurm.as_ref().unwrap().job.as_deref(), Some("777"));
        // Arrays from 0.
        let shard = Shard::resolve(
            ShardArg::Slurm,
            env(&[
                ("SLURM_ARRAY_TASK_ID", "0"),
                ("SLURM_ARRAY_TASK_COUNT", "2"),
            ]),
        )
        .unwrap();
        assert_eq!((shard.index, shard.count), (1, 2));
        let error = Shard::resolve(ShardArg::Slurm, env(&[])).unwrap_err();
        assert_eq!(crate::error::exit_code(&error), crate::error::EXIT_USAGE);
        assert!(error.to_string().contains("needs a SLURM array job"));
        let error = Shard::resolve(
            ShardArg::Slurm,
            env(&[
                ("SLURM_ARRAY_TASK_ID", "9"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ]),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("task 9 is not one of the 4 tasks"),
            "{error}"
        );
    }

    #[test]
    fn shares_are_contiguous_cover_everything_and_end_on_batch_boundaries() {
        for (sessions, granularity) in [(10, 1), (10, 8), (11, 3), (2, 4), (0, 2), (1000, 7)] {
            for count in 1..=5u32 {
                let mut next = 0;
                for index in 1..=count {
                    let shard = Shard {
                        index,
                        count,
                        slurm: None,
                    };
                    let range = shard.sessions(sessions, granularity);
                    assert_eq!(
                        range.start, next,
                        "{sessions} {granularity} {index}/{count}"
                    );
                    assert!(range.start == range.end || range.start.is_multiple_of(granularity));
                    assert!(range.end == sessions || range.end.is_multiple_of(granularity));
                    next = range.end;
                }
                assert_eq!(next, sessions);
            }
        }
        // 4 patches per session, batches of 6: 3 sessions make 2 batches.
        assert_eq!(granularity(4, 6), 3);
        assert_eq!(granularity(1, 8), 8);
        assert_eq!(granularity(8, 8), 1);
    }
}
