//! `--dry-run`: what a run would do, printed from the checked configuration and its plan
//! (splits, selection metrics, sessions, elements, and every file it would write, relative to the
//! MAPS: the list the run itself writes, `plan.rs`).

use std::io::Write;

use anyhow::Result;

use crate::config::{GroupAction, PredictConfig};
use crate::plan::Plan;

/// Prints the plan of a run.
pub fn print_plan<W: Write>(config: &PredictConfig, plan: &Plan, mut w: W) -> Result<()> {
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
        let sources = dataset.sources();
        writeln!(
            w,
            "split {}: selection metrics {}; {} sessions of {} participants from `{}` ({} read from prepare-data tensors, {} from CAPS NIfTI images); {} {} element(s) per session, {} in all",
            run.split,
            run.selection_metrics.join(", "),
            dataset.sessions.len(),
            run.group.participant_count(),
            run.caps
                .iter()
                .map(|(_, p)| p.display().to_string())
                .collect::<Vec<_>>()
                .join("`, `"),
            sources.tensors,
            sources.nifti,
            dataset.elements_per_session,
            maps.mode.name(),
            dataset.len()
        )?;
    }
    writeln!(
        w,
        "device: {:?}, batch size {}, reader threads {}",
        config.device, config.batch_size, config.n_proc
    )?;
    writeln!(w, "files it would write (relative to the MAPS):")?;
    for file in plan.files(config) {
        writeln!(w, "  {}", file.display())?;
    }
    Ok(())
}
