//! The run driver: the whole sequence of `clinicadl-rs predict`, from the command line to the
//! last file. Checks everything (`config::resolve`), computes what it will write (`plan`), then
//! writes the group definition (when new) and, for every split and selection metric, loads the
//! network, runs it over the dataset (`predict`), computes metrics and the image-level vote
//! (`metrics`, `ensemble`), and writes the result set whole (`output`). The only module that
//! knows every step; none of them calls it.
//!
//! ClinicaDL: `MapsManager.predict` and `_test_loader`.

use std::path::Path;

use anyhow::{Context, Result};

use crate::atomic::StagedFolder;
use crate::caps::dataset::CheckProgress;
use crate::cli::PredictArgs;
use crate::config::{Environment, GroupAction, Notice, PredictConfig, SplitRun};
use crate::digest::{sha256_file, sha256_hex};
use crate::journal::{Chunk, JOURNAL, Journal, Kept};
use crate::maps::group::{read_group, write_group};
use crate::output::record::{self, RUN_JSON, RunRecord, relative};
use crate::output::saved::Saver;
use crate::plan::{Plan, ResultSetPlan};
use crate::predict::engine::{ElementSink, EngineOptions, run_inference};
use crate::results::{self, Block, SetContext};
use crate::shards::{Fingerprint, Part, PartBlock, losses_from_bits, losses_to_bits};
use crate::ui;

/// Runs `clinicadl-rs predict` with parsed arguments (or, with `--dry-run`, prints its plan).
pub fn predict(args: &PredictArgs) -> Result<()> {
    let maps = &args.input_maps_directory;
    if !maps.is_dir() {
        return Err(crate::error::UsageError::new(format!(
            "invalid value for 'INPUT_MAPS_DIRECTORY': `{}` is not a folder",
            maps.display()
        ))
        .into());
    }
    let progress = FileCheckProgress::default();
    let environment = Environment {
        cuda_available: args.gpu() && tch::Cuda::is_available(),
        file_check: &progress,
        variable: &|name| std::env::var(name).ok(),
    };
    if args.dry_run {
        let config = crate::config::resolve(args, &environment)?;
        print_notices(&config);
        let plan = Plan::of(&config);
        return crate::output::dry_run::print_plan(&config, &plan, std::io::stdout().lock());
    }
    // Shards of a group run at once: each holds a lock of its own.
    let shard = args
        .shard
        .map(|arg| crate::shards::Shard::resolve(arg, |name| std::env::var(name).ok()))
        .transpose()?;
    let lock_name = match &shard {
        Some(shard) => format!("{}.{}", args.data_group, shard.part_name()),
        None => args.data_group.clone(),
    };
    let _lock = crate::maps::lock::GroupLock::acquire(maps, &lock_name)?;
    let started = std::time::Instant::now();
    let config = crate::config::resolve(args, &environment)?;
    ui::debug(&format!(
        "checks: {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    ));
    print_notices(&config);
    execute(&config, &Plan::of(&config))
}

fn print_notices(config: &PredictConfig) {
    for notice in &config.notices {
        match notice {
            Notice::Info(message) => ui::info(message),
            Notice::Warning(message) => ui::warn(message),
        }
    }
}

/// The progress of the up-front check of the sessions' files: a bar (or plain lines) from
/// [`CHECK_PROGRESS_FROM_SESSIONS`] sessions, as large cohorts on network file systems take a
/// while, and a debug line with the time it took.
#[derive(Default)]
struct FileCheckProgress {
    bar: std::sync::Mutex<Option<ui::Progress>>,
}

/// Checks of at least this many sessions show their progress.
const CHECK_PROGRESS_FROM_SESSIONS: usize = 500;

impl CheckProgress for FileCheckProgress {
    fn start(&self, total: usize) {
        if total >= CHECK_PROGRESS_FROM_SESSIONS
            && let Ok(mut bar) = self.bar.lock()
        {
            *bar = Some(ui::Progress::new(
                "checking the sessions' files",
                "sessions",
                total as u64,
            ));
        }
    }

    fn advance(&self) {
        if let Ok(mut bar) = self.bar.lock()
            && let Some(bar) = bar.as_mut()
        {
            bar.advance(1);
        }
    }

    fn finish(&self, total: usize, threads: usize, elapsed: std::time::Duration) {
        if let Some(bar) = self.bar.lock().ok().and_then(|mut bar| bar.take()) {
            bar.finish();
        }
        ui::debug(&format!(
            "files of {total} sessions checked in {:.1} ms ({threads} threads)",
            elapsed.as_secs_f64() * 1e3
        ));
    }
}

/// Runs the prediction described by `config`, writing what `plan` lists.
pub fn execute(config: &PredictConfig, plan: &Plan) -> Result<()> {
    if let GroupAction::Write {
        definition,
        replace,
    } = &config.group_action
    {
        let written = write_group(
            &config.layout,
            &config.group,
            &definition.data,
            &definition.caps_directory,
            definition.multi_cohort,
            *replace,
        );
        if let Err(error) = written {
            // The shards of an array start at once: one defines the group, the others find the
            // same definition.
            let same = !*replace
                && read_group(&config.layout, &config.group, 0).is_ok_and(|current| {
                    current.data == definition.data
                        && current.caps_directory == definition.caps_directory
                        && current.multi_cohort == definition.multi_cohort
                });
            if !same {
                return Err(error);
            }
            ui::info(&format!(
                "Data group {} was defined by another run with the same data",
                config.group
            ));
        }
        ui::info(&format!(
            "Path of json file: {}",
            config
                .layout
                .group_dir(&config.group)
                .join("maps.json")
                .display()
        ));
    }
    let engine = EngineOptions::of(config);
    if engine.device != tch::Device::Cpu {
        ui::info(&format!("Working on {:?}", engine.device));
        // Every batch has the same shape: let cuDNN pick its fastest algorithms once.
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let mut announced = None;
    let mut summaries = Vec::with_capacity(plan.result_sets.len());
    for set in &plan.result_sets {
        if announced != Some(set.split) {
            ui::info(&format!("Prediction of split {}", set.split));
            announced = Some(set.split);
        }
        summaries.push(predict_one(config, &engine, &config.runs[set.run], set)?);
    }
    if config.json {
        ui::print_json(&serde_json::json!({
            "maps": std::path::absolute(&config.layout.root)
                .unwrap_or_else(|_| config.layout.root.clone())
                .display()
                .to_string(),
            "data_group": config.group,
            "shard": config.shard.as_ref().map(|s| format!("{}/{}", s.index, s.count)),
            "results": summaries,
        }));
    }
    Ok(())
}

/// Predicts one result set (or a shard's part of it); returns its summary for `--json`.
fn predict_one(
    config: &PredictConfig,
    engine: &EngineOptions,
    run: &SplitRun,
    set: &ResultSetPlan,
) -> Result<serde_json::Value> {
    let layout = &config.layout;
    let maps = &config.maps;
    let metric = set.selection_metric.as_str();
    // The folder's parent: `best-<metric>/`, or the shards' folder in it.
    let parent = set.dir.parent().context("a result folder has a parent")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create `{}`", parent.display()))?;
    let fingerprint = fingerprint(config, run, metric)?;
    if config.resume
        && let Some(summary) = finished_before(config, set, &fingerprint)
    {
        ui::info(&format!(
            "split {} best-{metric}: finished by the interrupted run, kept",
            run.split
        ));
        return Ok(summary);
    }
    let started = chrono::Local::now();
    let (folder, mut journal, kept) = start(config, set, &fingerprint)?;
    // One network for all elements, or (multi-network MAPS) one per element.
    let networks: Vec<Option<usize>> = if maps.multi_network {
        (0..run.dataset.extraction.count()).map(Some).collect()
    } else {
        vec![None]
    };
    // The sessions of this set: all of them, or a shard's.
    let sessions = set.sessions.clone();
    let run_dataset = run.dataset.with_sessions(sessions.clone());
    let mut blocks = Vec::with_capacity(networks.len());
    // What the set read, by path relative to the MAPS, with its SHA-256.
    let mut read = std::collections::BTreeMap::new();
    let mut notes = crate::caps::transforms::Notes::default();
    for (index, network) in networks.iter().enumerate() {
        let mut block = kept_block(&kept, index);
        let done = kept.sessions_done(index);
        let label = match network {
            Some(n) => format!("split {} best-{metric} network {n}", run.split),
            None => format!("split {} best-{metric}", run.split),
        };
        if done > 0 {
            ui::info(&format!(
                "{label}: {done} of {} sessions predicted by the interrupted run (journal), {} left",
                sessions.len(),
                sessions.len() - done
            ));
        }
        if done < sessions.len() {
            let checkpoint = layout.checkpoint(run.split, metric, *network);
            let checkpoint_abs =
                std::path::absolute(&checkpoint).unwrap_or_else(|_| checkpoint.clone());
            ui::info(&format!(
                "Loading model trained for split {} selected according to best validation {metric} at path {}.",
                run.split,
                checkpoint_abs.display()
            ));
            let model = crate::networks::load_network(
                &config.model.spec,
                &checkpoint,
                engine.device,
                run.checkpoints.get(&checkpoint),
            )?;
            let left = run_dataset.with_sessions(done..sessions.len());
            let dataset = match network {
                Some(n) => left.restricted_to(*n),
                None => left,
            };
            let unit = format!("{}s", maps.mode.name()).replace("patchs", "patches");
            let mut progress = ui::Progress::new(&label, &unit, dataset.len() as u64);
            let mut sink = JournalSink {
                saver: Saver {
                    dir: folder.file(""),
                    save: config.save,
                    mode: maps.mode,
                },
                journal: &mut journal,
                block: index,
                first_session: done,
                committed: 0,
                elements_per_session: dataset.elements_per_session.max(1),
                granularity: crate::plan::granularity(config),
                sessions: dataset.sessions.len(),
                pending: Chunk {
                    block: index,
                    sessions: [done, done],
                    rows: Vec::new(),
                    batch_losses: Vec::new(),
                    files: Default::default(),
                    read: Default::default(),
                },
                pending_files: Vec::new(),
                last_commit: std::time::Instant::now(),
            };
            let output = run_inference(&dataset, &model, engine, &mut sink, &mut progress)?;
            progress.finish();
            ui::debug(&format!(
                "forward passes: {:.3} s for {} elements",
                output.forward_time.as_secs_f64(),
                dataset.len()
            ));
            notes |= output.notes;
            for (path, digest) in output.read {
                read.insert(relative(&path, &layout.root), digest);
            }
            block.rows.extend(output.rows);
            block.batch_losses.extend(output.batch_losses);
        }
        log_loss(config, metric, &block);
        blocks.push(block);
    }
    // Files read before the interruption are recorded by the journal's chunks' runs: their
    // digests are those of the run that read them, kept in the record of the resumed part.
    if notes.nan_removed {
        ui::warn("NaN values were found in your images and will be removed.");
    }
    if notes.constant_elements > 0 {
        ui::warn(&format!(
            "{} constant {} element(s) could not be MinMax-normalised and were set to 0 (ClinicaDL 1.6.1 turns them into NaN)",
            notes.constant_elements,
            config.maps.mode.name()
        ));
    }
    for chunk in &kept.chunks {
        for (path, digest) in &chunk.read {
            read.insert(relative(Path::new(path), &layout.root), digest.clone());
        }
    }
    if set.part {
        let shard = config.shard.clone().context("a part without a shard")?;
        let part = Part {
            shard,
            first_session: sessions.start,
            sessions: sessions.len(),
            fingerprint,
            blocks: blocks
                .into_iter()
                .map(|block| PartBlock {
                    rows: block.rows,
                    batch_losses: losses_to_bits(&block.batch_losses),
                })
                .collect(),
            read,
            started: started.to_rfc3339(),
            finished: chrono::Local::now().to_rfc3339(),
            host: crate::maps::lock::hostname(),
            device: device_name(engine.device),
        };
        part.write(&folder.file(""))?;
        std::fs::remove_file(folder.file(JOURNAL)).ok();
        folder.commit()?;
        return Ok(serde_json::json!({
            "split": run.split,
            "selection_metric": metric,
            "files": [relative(&set.dir.join(crate::shards::PART_FILE), &layout.root)],
        }));
    }
    let context = SetContext {
        group: &config.group,
        layout,
        maps,
        split: run.split,
        selection_metric: metric,
        files: &set.files,
        caps: &run.caps,
        participants: run.group.participant_count(),
        sessions: run.group.data.rows.len(),
        started,
    };
    std::fs::remove_file(folder.file(JOURNAL))
        .with_context(|| format!("cannot remove `{}`", folder.file(JOURNAL).display()))?;
    let written = results::write(&context, &blocks, &folder)?;
    let mut sha256 = inputs(config, run, &fingerprint, read)?;
    if let Some(path) = &written.validation {
        sha256.insert(relative(path, &layout.root), sha256_file(path)?);
    }
    let outputs = record::digests_of_folder(&folder.file(""), &set.dir, &layout.root)?;
    let files: Vec<String> = outputs.keys().cloned().collect();
    sha256.extend(outputs);
    let record = RunRecord {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        libtorch: env!("CLINICADL_RS_LIBTORCH_VERSION").to_owned(),
        cuda: (engine.device != tch::Device::Cpu).then(|| tch::utils::version_cudart().to_string()),
        cudnn: (engine.device != tch::Device::Cpu).then(|| tch::utils::version_cudnn().to_string()),
        device: device_name(engine.device),
        command: record::command_line(),
        options: options(config, run.split, metric),
        started: started.to_rfc3339(),
        finished: chrono::Local::now().to_rfc3339(),
        shards: None,
        fingerprint: Some(fingerprint),
        sha256,
    };
    record::write(&folder.file(""), &record)?;
    folder.commit()?;
    let mut files = files;
    files.push(relative(&set.dir.join(RUN_JSON), &layout.root));
    Ok(serde_json::json!({
        "split": run.split,
        "selection_metric": metric,
        "files": files,
        "metrics": written.metrics,
    }))
}

/// The staging folder of a set and its journal: a fresh one, or, with `--resume`, the one a
/// killed run left, with what its journal kept.
fn start(
    config: &PredictConfig,
    set: &ResultSetPlan,
    fingerprint: &Fingerprint,
) -> Result<(StagedFolder, Journal, Kept)> {
    if config.resume {
        let leftover = crate::atomic::leftovers(&set.dir)
            .into_iter()
            .find(|dir| dir.join(JOURNAL).is_file());
        if let Some(leftover) = leftover {
            // Refused before anything is taken over when the journal is another run's.
            let folder = StagedFolder::adopt(&set.dir, &leftover)?;
            let (journal, kept) = Journal::resume(&folder.file(""), fingerprint)?;
            return Ok((folder, journal, kept));
        }
        ui::info(&format!(
            "split {} best-{}: nothing to resume, predicted whole",
            set.split, set.selection_metric
        ));
    }
    let folder = StagedFolder::begin(&set.dir)?;
    let journal = Journal::create(&folder.file(""), fingerprint)?;
    Ok((folder, journal, Kept::default()))
}

/// With `--resume`, the summary of a set the interrupted run finished with the same
/// fingerprint (its `run.json`, or its shard's `part.json`), which is kept as it is.
fn finished_before(
    config: &PredictConfig,
    set: &ResultSetPlan,
    fingerprint: &Fingerprint,
) -> Option<serde_json::Value> {
    let root = &config.layout.root;
    if set.part {
        let part = Part::read(&set.dir).ok()?;
        return (part.fingerprint == *fingerprint).then(|| {
            serde_json::json!({
                "split": set.split,
                "selection_metric": set.selection_metric,
                "files": [relative(&set.dir.join(crate::shards::PART_FILE), root)],
            })
        });
    }
    let text = std::fs::read_to_string(set.dir.join(RUN_JSON)).ok()?;
    let record: serde_json::Value = serde_json::from_str(&text).ok()?;
    let recorded: Fingerprint = serde_json::from_value(record.get("fingerprint")?.clone()).ok()?;
    (recorded == *fingerprint).then(|| {
        let files: Vec<String> = record["sha256"]
            .as_object()
            .map(|digests| {
                digests
                    .keys()
                    .filter(|k| k.starts_with(&relative(&set.dir, root)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        serde_json::json!({
            "split": set.split,
            "selection_metric": set.selection_metric,
            "files": files,
        })
    })
}

/// What the journal kept of a network block.
fn kept_block(kept: &Kept, block: usize) -> Block {
    let mut out = Block::default();
    for chunk in kept.chunks.iter().filter(|c| c.block == block) {
        out.rows.extend(chunk.rows.iter().cloned());
        out.batch_losses
            .extend(losses_from_bits(&chunk.batch_losses));
    }
    out
}

/// The engine's sink of a set being predicted: the save options' files (`Saver`), then, at every
/// chunk of sessions that ends on a batch boundary, a line of the journal.
struct JournalSink<'a> {
    saver: Saver,
    journal: &'a mut Journal,
    block: usize,
    /// The first session of the dataset run, among the set's.
    first_session: usize,
    /// Sessions of the dataset already in the journal.
    committed: usize,
    elements_per_session: usize,
    granularity: usize,
    /// Sessions of the dataset run.
    sessions: usize,
    pending: Chunk,
    /// Files of the pending chunk, within the set.
    pending_files: Vec<String>,
    /// When the last chunk went to the journal.
    last_commit: std::time::Instant,
}

/// How often, at most, a chunk goes to the journal: what a killed run can lose.
const JOURNAL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl ElementSink for JournalSink<'_> {
    fn wants_elements(&self) -> bool {
        self.saver.save.any()
    }

    fn wants_latent(&self) -> bool {
        self.saver.wants_latent()
    }

    fn element(&mut self, element: &crate::predict::engine::FinishedElement<'_>) -> Result<()> {
        self.saver.element(element)?;
        let names = crate::plan::SavedNames::new(
            self.saver.mode,
            &element.session.participant_id,
            &element.session.session_id,
            element.element_id,
        );
        let save = self.saver.save;
        if save.tensor {
            self.pending_files
                .extend([names.tensor_input.clone(), names.tensor_output.clone()]);
        }
        if save.nifti {
            self.pending_files
                .extend([names.nifti_input.clone(), names.nifti_output.clone()]);
        }
        if save.latent && element.latent.is_some() {
            self.pending_files.push(names.latent);
        }
        Ok(())
    }

    fn batch(&mut self, batch: &crate::predict::engine::FinishedBatch<'_>) -> Result<()> {
        self.pending.rows.extend(batch.rows.iter().cloned());
        if !batch.losses.is_empty() {
            self.pending
                .batch_losses
                .extend(losses_to_bits(&[batch.losses.to_vec()]));
        }
        self.pending.read.extend(
            batch
                .read
                .iter()
                .map(|(path, digest)| (path.display().to_string(), digest.clone())),
        );
        let whole = batch
            .elements_done
            .is_multiple_of(self.elements_per_session);
        let sessions = batch.elements_done / self.elements_per_session;
        let aligned = whole && sessions.is_multiple_of(self.granularity);
        // A chunk ends on a batch boundary at the end of a session, at most every second (a
        // synced write per batch would slow small networks down), and at the end.
        let due = self.last_commit.elapsed() >= JOURNAL_INTERVAL;
        if !(whole && sessions == self.sessions || aligned && due) {
            return Ok(());
        }
        self.last_commit = std::time::Instant::now();
        let mut chunk = std::mem::replace(
            &mut self.pending,
            Chunk {
                block: self.block,
                sessions: [0, 0],
                rows: Vec::new(),
                batch_losses: Vec::new(),
                files: Default::default(),
                read: Default::default(),
            },
        );
        chunk.sessions = [
            self.first_session + self.committed,
            self.first_session + sessions,
        ];
        for file in self.pending_files.drain(..) {
            let digest = sha256_file(&self.saver.dir.join(&file))?;
            chunk.files.insert(file, digest);
        }
        self.journal.append(&chunk)?;
        self.committed = sessions;
        Ok(())
    }
}

/// The SHA-256 of a set's inputs: `maps.json`, its checkpoints, the group's definition files,
/// and `read` (the tensor files read, by path relative to the MAPS).
fn inputs(
    config: &PredictConfig,
    run: &SplitRun,
    fingerprint: &Fingerprint,
    read: std::collections::BTreeMap<String, String>,
) -> Result<std::collections::BTreeMap<String, String>> {
    let layout = &config.layout;
    let mut sha256 = read;
    sha256.insert("maps.json".to_owned(), fingerprint.maps_json.clone());
    sha256.extend(fingerprint.checkpoints.clone());
    let definition = layout.group_definition_dir(&config.group, run.split);
    for name in ["data.tsv", "maps.json"] {
        let path = definition.join(name);
        if path.is_file() {
            sha256.insert(relative(&path, &layout.root), sha256_file(&path)?);
        }
    }
    Ok(sha256)
}

/// The resolved options of a result set, for `run.json`.
fn options(config: &PredictConfig, split: u32, metric: &str) -> serde_json::Value {
    serde_json::json!({
        "maps": std::path::absolute(&config.layout.root)
            .unwrap_or_else(|_| config.layout.root.clone())
            .display()
            .to_string(),
        "data_group": config.group,
        "split": split,
        "selection_metric": metric,
        "batch_size": config.batch_size,
        "n_proc": config.n_proc,
        "use_labels": config.use_labels,
        "label": config.label,
        "amp": config.amp,
        "device": match config.device {
            crate::config::Device::Cpu => "cpu",
            crate::config::Device::Cuda => "cuda",
        },
        "save_tensor": config.save.tensor,
        "save_nifti": config.save.nifti,
        "save_latent_tensor": config.save.latent,
        "shard": config.shard.as_ref().map(|s| format!("{}/{}", s.index, s.count)),
        "resume": config.resume,
        "from_nifti": config.from_nifti,
    })
}

/// The name of the device that ran the network: the CPU's model, or the GPU's.
pub fn device_name(device: tch::Device) -> String {
    let line = |path: &Path, key: &str| -> Option<String> {
        let text = std::fs::read_to_string(path).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
    };
    match device {
        tch::Device::Cpu => format!(
            "cpu: {}",
            line(Path::new("/proc/cpuinfo"), "model name").unwrap_or_else(|| "unknown".to_owned())
        ),
        _ => {
            let gpu = std::fs::read_dir("/proc/driver/nvidia/gpus")
                .ok()
                .and_then(|mut gpus| gpus.next())
                .and_then(|gpu| gpu.ok())
                .and_then(|gpu| line(&gpu.path().join("information"), "Model"));
            format!("cuda:0: {}", gpu.unwrap_or_else(|| "unknown".to_owned()))
        }
    }
}

/// What the parts of a result set must share: the options that change its results and the
/// SHA-256 of its inputs (`maps.json`, the checkpoints, the group's definition).
fn fingerprint(config: &PredictConfig, run: &SplitRun, metric: &str) -> Result<Fingerprint> {
    let layout = &config.layout;
    let relative = |path: &std::path::Path| -> String {
        path.strip_prefix(&layout.root)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let maps_json = layout.root.join("maps.json");
    let mut checkpoints = std::collections::BTreeMap::new();
    for path in run.checkpoints.keys() {
        if path.starts_with(layout.metric_dir(run.split, metric)) {
            checkpoints.insert(relative(path), sha256_file(path)?);
        }
    }
    let definition = format!(
        "{}\n{}\n{}",
        run.group.data.to_tsv_string(),
        run.group.caps_directory.display(),
        run.group.multi_cohort
    );
    Ok(Fingerprint {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        group: config.group.clone(),
        split: run.split,
        selection_metric: metric.to_owned(),
        maps_json: sha256_file(&maps_json)?,
        checkpoints,
        group_definition: sha256_hex(definition.as_bytes()),
        batch_size: config.batch_size,
        use_labels: config.use_labels,
        label: config.label.clone(),
        amp: config.amp,
        device: match config.device {
            crate::config::Device::Cpu => "cpu",
            crate::config::Device::Cuda => "cuda",
        }
        .to_owned(),
        save: [config.save.tensor, config.save.nifti, config.save.latent],
    })
}

/// ClinicaDL's log line of a block's loss (its first component).
fn log_loss(config: &PredictConfig, metric: &str, block: &Block) {
    if let Some((_, loss)) = results::loss_totals(&block.batch_losses).first() {
        ui::info(&format!(
            "{} level {} loss is {} for model selected on {metric}",
            config.maps.mode.name(),
            config.group,
            crate::pyrepr::repr_f64(f64::from(*loss))
        ));
    }
}
