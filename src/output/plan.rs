//! `--dry-run`: what a run would do, printed on stdout from the checked configuration (splits,
//! selection metrics, sessions, elements, and every file it would write, relative to the MAPS).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use crate::config::{GroupAction, PredictConfig};
use crate::maps::json::{Mode, Task};
use crate::maps::layout::results_tsv_name;
use crate::output::saved::SavedNames;

/// Every file a run of `config` writes, relative to the MAPS.
pub fn planned_files(config: &PredictConfig) -> Vec<PathBuf> {
    let group = &config.group;
    let mut files = Vec::new();
    if matches!(config.group_action, GroupAction::Write { .. }) {
        files.push(PathBuf::from(format!("groups/{group}/data.tsv")));
        files.push(PathBuf::from(format!("groups/{group}/maps.json")));
    }
    let level = config.maps.mode.name();
    let labels = config.engine.use_labels;
    for run in &config.runs {
        for metric in &run.selection_metrics {
            let dir = config.layout.results_dir(run.split, metric, group);
            let dir = dir
                .strip_prefix(&config.layout.root)
                .map(PathBuf::from)
                .unwrap_or(dir);
            let mut names = vec![
                "description.log".to_owned(),
                results_tsv_name(group, level, "prediction"),
            ];
            if labels {
                names.push(results_tsv_name(group, level, "metrics"));
            }
            if config.maps.mode != Mode::Image && config.engine.task != Task::Reconstruction {
                names.push(results_tsv_name(group, "image", "prediction"));
                if labels {
                    names.push(results_tsv_name(group, "image", "metrics"));
                }
            }
            for session in &run.dataset.sessions {
                for &position in &run.dataset.selected {
                    let id = run.dataset.extraction.element_id(position);
                    let saved =
                        SavedNames::new(level, &session.participant_id, &session.session_id, id);
                    if config.save.tensor {
                        names.extend([saved.tensor_input.clone(), saved.tensor_output.clone()]);
                    }
                    if config.save.nifti {
                        names.extend([saved.nifti_input.clone(), saved.nifti_output.clone()]);
                    }
                    if config.save.latent {
                        names.push(saved.latent);
                    }
                }
            }
            files.extend(names.into_iter().map(|n| dir.join(n)));
        }
    }
    files
}

/// Prints the plan of a run.
pub fn print_plan<W: Write>(config: &PredictConfig, mut w: W) -> Result<()> {
    let maps = &config.maps;
    writeln!(w, "dry run: everything was checked; nothing was written")?;
    writeln!(
        w,
        "MAPS: {} ({}, {} mode, {})",
        config.layout.root.display(),
        maps.task.name(),
        maps.mode.name(),
        maps.architecture
    )?;
    let action = match &config.group_action {
        GroupAction::Reuse => "existing definition reused",
        GroupAction::Write { replace: false, .. } => "new: its definition would be written",
        GroupAction::Write { replace: true, .. } => "redefined: its definition would be replaced",
    };
    writeln!(w, "data group: {} ({action})", config.group)?;
    for run in &config.runs {
        let dataset = &run.dataset;
        writeln!(
            w,
            "split {}: selection metrics {}; {} sessions of {} participants from `{}`; {} {} element(s) per session, {} in all",
            run.split,
            run.selection_metrics.join(", "),
            dataset.sessions.len(),
            run.group.participant_count(),
            run.caps
                .iter()
                .map(|(_, p)| p.display().to_string())
                .collect::<Vec<_>>()
                .join("`, `"),
            dataset.elements_per_session,
            maps.mode.name(),
            dataset.len()
        )?;
    }
    writeln!(
        w,
        "device: {:?}, batch size {}, reader threads {}",
        config.engine.device, config.engine.batch_size, config.engine.n_proc
    )?;
    writeln!(w, "files it would write (relative to the MAPS):")?;
    for file in planned_files(config) {
        writeln!(w, "  {}", file.display())?;
    }
    Ok(())
}
