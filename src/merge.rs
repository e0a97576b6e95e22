//! `clinicadl-rs merge MAPS DATA_GROUP`: the result sets of a sharded prediction, written from the
//! parts its shards left (`shards.rs`) exactly as one unsharded run writes them: the rows and
//! per-batch losses of the parts, in shard order, go through the same assembly (`results.rs`),
//! so metrics are computed on the whole group (never averaged over shards), the image level is
//! voted on every element, and the saved files are moved in. Every part of every result set is
//! checked first (present, readable, from the same command and inputs, contiguous); a missing
//! or failed shard is named with the SLURM task to run again, and nothing is written. The parts
//! are removed once their result set is in place; running merge again is harmless.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::atomic::StagedFolder;
use crate::caps::cohorts::caps_mapping;
use crate::cli::MergeArgs;
use crate::config::SaveOptions;
use crate::digest::sha256_file;
use crate::error::UsageError;
use crate::maps::group::read_group;
use crate::maps::json::{MapsJson, read_maps_json};
use crate::maps::layout::MapsLayout;
use crate::output::record::{self, RUN_JSON, RunRecord, ShardRecord, relative};
use crate::plan::ResultFiles;
use crate::problems::Problems;
use crate::results::{self, Block, SetContext};
use crate::shards::{Part, losses_from_bits};
use crate::ui;

/// The shards of one result set.
struct Sharded {
    split: u32,
    selection_metric: String,
    /// `split-<k>/best-<m>/.<group>.shards/`.
    dir: PathBuf,
    /// The parts, in shard order (checked).
    parts: Vec<(PathBuf, Part)>,
}

/// What merge did, for `--json` and the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The split.
    pub split: u32,
    /// The selection metric.
    pub selection_metric: String,
    /// The number of shards merged.
    pub shards: u32,
}

/// Runs `clinicadl-rs merge`.
pub fn merge(args: &MergeArgs) -> Result<()> {
    let maps_dir = &args.input_maps_directory;
    if !maps_dir.is_dir() {
        return Err(UsageError::new(format!(
            "invalid value for 'INPUT_MAPS_DIRECTORY': `{}` is not a folder",
            maps_dir.display()
        ))
        .into());
    }
    let group = args.data_group.as_str();
    let _lock = crate::maps::lock::GroupLock::acquire(maps_dir, group)?;
    let layout = MapsLayout::new(maps_dir);
    let maps = read_maps_json(maps_dir)?;
    let sets = find(&layout, group, args)?;
    if sets.is_empty() {
        let merged_before = layout
            .discover_splits()
            .unwrap_or_default()
            .into_iter()
            .any(|split| {
                layout
                    .discover_selection_metrics(split)
                    .unwrap_or_default()
                    .iter()
                    .any(|metric| layout.results_dir(split, metric, group).is_dir())
            });
        if merged_before {
            ui::info(&format!(
                "Nothing to merge: no shards of data group {group} are left (merged already)"
            ));
            if args.json {
                print_summary(&layout, group, &[]);
            }
            return Ok(());
        }
        bail!(
            "no shards of data group `{group}` in the MAPS `{}`: predict with --shard K/N first",
            maps_dir.display()
        );
    }
    let mut summaries = Vec::with_capacity(sets.len());
    for set in &sets {
        summaries.push(write(&layout, &maps, group, set)?);
        ui::info(&format!(
            "Merged {} shards of split {} best-{}",
            set.parts.len(),
            set.split,
            set.selection_metric
        ));
    }
    if args.json {
        print_summary(&layout, group, &summaries);
    }
    Ok(())
}

/// The `--json` document of a merge.
fn print_summary(layout: &MapsLayout, group: &str, results: &[serde_json::Value]) {
    ui::print_json(&serde_json::json!({
        "maps": std::path::absolute(&layout.root)
            .unwrap_or_else(|_| layout.root.clone())
            .display()
            .to_string(),
        "data_group": group,
        "results": results,
    }));
}

/// Every result set with shards (within `-s`/`-sm`), each checked: all its parts present,
/// complete, of the same command and inputs, and contiguous. Every problem is reported at once.
fn find(layout: &MapsLayout, group: &str, args: &MergeArgs) -> Result<Vec<Sharded>> {
    let mut problems = Problems::default();
    let splits = layout
        .discover_splits()
        .with_context(|| format!("cannot list the MAPS `{}`", layout.root.display()))?;
    for split in &args.split {
        if !splits.contains(split) {
            problems.push_usage(format!("split {split} of --split is not in this MAPS"));
        }
    }
    let mut sets = Vec::new();
    for split in splits {
        if !args.split.is_empty() && !args.split.contains(&split) {
            continue;
        }
        for metric in layout.discover_selection_metrics(split).unwrap_or_default() {
            if !args.selection_metrics.is_empty() && !args.selection_metrics.contains(&metric) {
                continue;
            }
            let dir = layout.shards_dir(split, &metric, group);
            if !dir.is_dir() {
                continue;
            }
            match parts(layout, group, split, &metric, &dir) {
                Ok(parts) => sets.push(Sharded {
                    split,
                    selection_metric: metric,
                    dir,
                    parts,
                }),
                Err(found) => found.into_iter().for_each(|p| problems.push(p)),
            }
        }
    }
    problems.check()?;
    Ok(sets)
}

/// The checked parts of one result set, or its problems.
fn parts(
    layout: &MapsLayout,
    group: &str,
    split: u32,
    metric: &str,
    dir: &Path,
) -> Result<Vec<(PathBuf, Part)>, Vec<String>> {
    let set = format!("split {split} best-{metric}");
    let mut problems = Vec::new();
    let mut found: BTreeMap<u32, (PathBuf, Part)> = BTreeMap::new();
    let mut running = Vec::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|error| vec![format!("cannot read `{}`: {error}", dir.display())])?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('.') {
            // A part being written (its staging folder): a shard still running, or killed.
            if let Some(pid) = name.rsplit('-').next().and_then(|p| p.parse::<u32>().ok())
                && crate::supervision::process_alive(pid)
            {
                running.push(name);
            }
            continue;
        }
        match Part::read(&path) {
            Ok(part) => {
                found.insert(part.shard.index, (path, part));
            }
            Err(error) => problems.push(format!("{set}: {}", ui::one_line(&error))),
        }
    }
    let Some((_, (_, first))) = found.iter().next() else {
        problems.push(format!(
            "{set}: `{}` holds no finished shard{}",
            dir.display(),
            if running.is_empty() {
                String::new()
            } else {
                format!(" ({} still running)", running.len())
            }
        ));
        return Err(problems);
    };
    let count = first.shard.count;
    let fingerprint = first.fingerprint.clone();
    let slurm = found.values().find_map(|(_, p)| p.shard.slurm.clone());
    for (index, (path, part)) in &found {
        if part.shard.count != count {
            problems.push(format!(
                "{set}: `{}` is shard {index} of {}, the others of {count}: shards of two runs are mixed; remove the folder of the run to drop",
                path.display(),
                part.shard.count
            ));
        } else if part.fingerprint != fingerprint {
            problems.push(format!(
                "{set}: shard {index} of {count} was made by another command or from other inputs than shard {} ({}); run it again with the same command",
                first.shard.index,
                crate::journal::differences(&part.fingerprint, &fingerprint)
            ));
        }
    }
    for index in 1..=count {
        if !found.contains_key(&index) {
            let rerun = match &slurm {
                Some(task) => format!(
                    "SLURM array task {}{}",
                    task.first_task + index - 1,
                    task.job
                        .as_ref()
                        .map(|job| format!(" of job {job}"))
                        .unwrap_or_default()
                ),
                None => format!("`--shard {index}/{count}`"),
            };
            problems.push(format!(
                "{set}: shard {index} of {count} is missing (not finished, or failed): run it again ({rerun})"
            ));
        }
    }
    // Contiguous sessions from the first to the group's last.
    let sessions = read_group(layout, group, split)
        .map(|g| g.data.rows.len())
        .map_err(|error| vec![ui::one_line(&error)])?;
    if problems.is_empty() {
        let mut next = 0;
        for (index, (_, part)) in &found {
            if part.first_session != next {
                problems.push(format!(
                    "{set}: shard {index} of {count} starts at session {}, not {next}",
                    part.first_session
                ));
            }
            next = part.first_session + part.sessions;
        }
        if next != sessions {
            problems.push(format!(
                "{set}: the shards hold {next} sessions, the data group {sessions}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(found.into_values().collect())
    } else {
        Err(problems)
    }
}

/// Writes the result set of `set` from its parts, moves the saved files in, and removes the
/// parts.
fn write(
    layout: &MapsLayout,
    maps: &MapsJson,
    group: &str,
    set: &Sharded,
) -> Result<serde_json::Value> {
    let (_, first) = set.parts.first().context("a sharded set without parts")?;
    let fingerprint = &first.fingerprint;
    let definition = read_group(layout, group, set.split)?;
    let caps = caps_mapping(&definition.caps_directory, definition.multi_cohort)?;
    let save = SaveOptions {
        tensor: fingerprint.save[0],
        nifti: fingerprint.save[1],
        latent: fingerprint.save[2],
    };
    let files = ResultFiles::new(group, maps, fingerprint.use_labels, save);
    let blocks: Vec<Block> = (0..first.blocks.len())
        .map(|b| {
            let mut block = Block::default();
            for (_, part) in &set.parts {
                if let Some(part_block) = part.blocks.get(b) {
                    block.rows.extend(part_block.rows.iter().cloned());
                    block
                        .batch_losses
                        .extend(losses_from_bits(&part_block.batch_losses));
                }
            }
            block
        })
        .collect();
    let started = set
        .parts
        .iter()
        .filter_map(|(_, p)| chrono::DateTime::parse_from_rfc3339(&p.started).ok())
        .min()
        .map(|t| t.with_timezone(&chrono::Local))
        .unwrap_or_else(chrono::Local::now);
    let context = SetContext {
        group,
        layout,
        maps,
        split: set.split,
        selection_metric: &set.selection_metric,
        files: &files,
        caps: &caps,
        participants: definition.participant_count(),
        sessions: definition.data.rows.len(),
        started,
    };
    let target = layout.results_dir(set.split, &set.selection_metric, group);
    let folder = StagedFolder::begin(&target)?;
    let written = results::write(&context, &blocks, &folder)?;
    for (dir, _) in &set.parts {
        move_saved_files(dir, &folder.file(""))?;
    }
    // The record: the shards' inputs, the merge's outputs.
    let mut sha256: BTreeMap<String, String> = BTreeMap::new();
    sha256.insert("maps.json".to_owned(), fingerprint.maps_json.clone());
    sha256.extend(fingerprint.checkpoints.clone());
    let definition_dir = layout.group_definition_dir(group, set.split);
    for name in ["data.tsv", "maps.json"] {
        let path = definition_dir.join(name);
        if path.is_file() {
            sha256.insert(relative(&path, &layout.root), sha256_file(&path)?);
        }
    }
    for (_, part) in &set.parts {
        sha256.extend(part.read.clone());
    }
    if let Some(path) = &written.validation {
        sha256.insert(relative(path, &layout.root), sha256_file(path)?);
    }
    let outputs = record::digests_of_folder(&folder.file(""), &target, &layout.root)?;
    let mut files: Vec<String> = outputs.keys().cloned().collect();
    files.push(relative(&target.join(RUN_JSON), &layout.root));
    sha256.extend(outputs);
    let mut devices: Vec<&str> = set.parts.iter().map(|(_, p)| p.device.as_str()).collect();
    devices.dedup();
    let record = RunRecord {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        libtorch: env!("CLINICADL_RS_LIBTORCH_VERSION").to_owned(),
        cuda: None,
        cudnn: None,
        device: devices.join(", "),
        command: record::command_line(),
        options: serde_json::json!({
            "data_group": group,
            "split": set.split,
            "selection_metric": set.selection_metric,
            "batch_size": fingerprint.batch_size,
            "use_labels": fingerprint.use_labels,
            "label": fingerprint.label,
            "amp": fingerprint.amp,
            "device": fingerprint.device,
            "save_tensor": fingerprint.save[0],
            "save_nifti": fingerprint.save[1],
            "save_latent_tensor": fingerprint.save[2],
        }),
        started: started.to_rfc3339(),
        finished: chrono::Local::now().to_rfc3339(),
        fingerprint: Some(fingerprint.clone()),
        shards: Some(
            set.parts
                .iter()
                .map(|(_, p)| ShardRecord {
                    shard: p.shard.index,
                    of: p.shard.count,
                    sessions: [p.first_session, p.sessions],
                    host: p.host.clone(),
                    slurm_task: p.shard.slurm.as_ref().map(|t| t.task),
                    started: p.started.clone(),
                    finished: p.finished.clone(),
                })
                .collect(),
        ),
        sha256,
    };
    record::write(&folder.file(""), &record)?;
    folder.commit()?;
    std::fs::remove_dir_all(&set.dir)
        .with_context(|| format!("cannot remove the merged shards `{}`", set.dir.display()))?;
    Ok(serde_json::json!({
        "split": set.split,
        "selection_metric": set.selection_metric,
        "files": files,
        "metrics": written.metrics,
        "shards": set.parts.len(),
    }))
}

/// Links (or copies) the saved files of a part (`tensors/`, `nifti_images/`, `latent_tensors/`)
/// into the result set being written; the part keeps them until the set is in place.
fn move_saved_files(part: &Path, into: &Path) -> Result<()> {
    for folder in ["tensors", "nifti_images", "latent_tensors"] {
        let from = part.join(folder);
        let Ok(entries) = std::fs::read_dir(&from) else {
            continue;
        };
        let to = into.join(folder);
        std::fs::create_dir_all(&to)
            .with_context(|| format!("cannot create `{}`", to.display()))?;
        for entry in entries.flatten() {
            let target = to.join(entry.file_name());
            if std::fs::hard_link(entry.path(), &target).is_err() {
                std::fs::copy(entry.path(), &target)
                    .with_context(|| format!("cannot write `{}`", target.display()))?;
            }
        }
    }
    Ok(())
}
