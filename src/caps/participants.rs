//! The participants TSV of a new data group (docs/ARCHITECTURE.md, "Data groups"): a `.tsv` file,
//! or a split folder whose parent holds `train_baseline.tsv` / `labels_baseline.tsv`; rows filtered
//! on the
//! `diagnosis` column (every row without labels when there is none); the `cohort` column set to
//! `single`.
//!
//! ClinicaDL: `clinicadl.utils.maps_manager.maps_manager_utils` `load_data_test` /
//! `load_data_test_single`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::pyrepr::repr_str_list;
use crate::tsv::{Cell, Table};

/// The diagnoses whose rows a new data group keeps, and where they come from.
#[derive(Debug, Clone, Copy)]
pub enum Diagnoses<'a> {
    /// Given on the command line (`--diagnoses`) or by a multi-cohort TSV: the participants TSV
    /// must have a `diagnosis` column to filter on.
    Given(&'a [String]),
    /// The MAPS's training diagnoses (the default): without labels, a participants TSV without
    /// a `diagnosis` column keeps every row (ClinicaDL 1.6.1 refuses it).
    Training {
        /// The diagnoses.
        diagnoses: &'a [String],
        /// Whether labels are used (`--use_labels`, the default).
        use_labels: bool,
    },
}

impl Diagnoses<'_> {
    /// The diagnoses kept.
    pub fn wanted(&self) -> &[String] {
        match *self {
            Diagnoses::Given(d) | Diagnoses::Training { diagnoses: d, .. } => d,
        }
    }
}

/// Loads and filters the participants of a new (single-cohort) data group.
pub fn load_participants(path: &Path, diagnoses: Diagnoses<'_>) -> Result<Table> {
    let (tsv_path, mut table) = if path.to_string_lossy().ends_with(".tsv") {
        let table = Table::read(path)?;
        if table.column_index("cohort").is_some() && table.column_index("path").is_some() {
            bail!(
                "`{}` is a multi-cohort TSV (it has the columns `cohort` and `path`): add --multi_cohort to use it",
                path.display()
            );
        }
        (path.to_owned(), table)
    } else {
        let parent = path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        let train = parent.join("train_baseline.tsv");
        let labels = parent.join("labels_baseline.tsv");
        let chosen = if train.is_file() {
            train
        } else if labels.is_file() {
            labels
        } else {
            bail!(
                "there is no train_baseline.tsv nor labels_baseline.tsv in `{}` (a --participants_tsv that does not end in .tsv is read as a split folder, whose parent holds these files)",
                parent.display()
            );
        };
        (chosen.clone(), Table::read(&chosen)?)
    };
    for column in ["participant_id", "session_id"] {
        table.require_column(column, &tsv_path)?;
    }
    match (table.column_index("diagnosis"), diagnoses) {
        (Some(diagnosis), _) => {
            let wanted: BTreeSet<&str> = diagnoses.wanted().iter().map(String::as_str).collect();
            table.rows.retain(
                |row| matches!(&row[diagnosis], Cell::Str(s) if wanted.contains(s.as_str())),
            );
            if table.rows.is_empty() {
                bail!(
                    "diagnoses wanted {} were not found in TSV file `{}`",
                    repr_str_list(diagnoses.wanted()),
                    tsv_path.display()
                );
            }
        }
        (
            None,
            Diagnoses::Training {
                use_labels: false, ..
            },
        ) => {
            // Without labels and without a diagnosis to filter on, every session is predicted.
        }
        (None, Diagnoses::Given(wanted)) => bail!(
            "the TSV file `{}` has no `diagnosis` column, so its rows cannot be kept by diagnosis ({} asked); give no --diagnoses to keep every row (with --no_labels), or add the column",
            tsv_path.display(),
            repr_str_list(wanted)
        ),
        (None, Diagnoses::Training { .. }) => bail!(
            "'diagnosis' column must be present in TSV file `{}` (rows are kept when their diagnosis is one of --diagnoses, by default the MAPS's training diagnoses); with --no_labels, a TSV without it keeps every row",
            tsv_path.display()
        ),
    }
    match table.column_index("cohort") {
        Some(c) => table
            .rows
            .iter_mut()
            .for_each(|r| r[c] = Cell::Str("single".into())),
        None => {
            table.columns.push("cohort".into());
            table
                .rows
                .iter_mut()
                .for_each(|r| r.push(Cell::Str("single".into())));
        }
    }
    check_unique_sessions(&table, &tsv_path)?;
    Ok(table)
}

/// Refuses a table that lists the same participant/session twice (its results would be
/// indistinguishable).
pub fn check_unique_sessions(table: &Table, path: &Path) -> Result<()> {
    let p = table.require_column("participant_id", path)?;
    let s = table.require_column("session_id", path)?;
    let mut seen = BTreeSet::new();
    let mut duplicates = Vec::new();
    for row in &table.rows {
        let key = (row[p].py_str(), row[s].py_str());
        if !seen.insert(key.clone()) {
            duplicates.push(format!("{} {}", key.0, key.1));
        }
    }
    if !duplicates.is_empty() {
        bail!(
            "`{}` lists these participant/sessions more than once: {}",
            path.display(),
            duplicates.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSV: &str = "participant_id\tsession_id\tdiagnosis\tage\nsub-1\tses-M000\tAD\t70\nsub-2\tses-M000\tMCI\t71\nsub-3\tses-M000\tCN\t72\n";

    #[test]
    fn filters_on_diagnosis_and_sets_cohort() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p.tsv");
        std::fs::write(&p, TSV).unwrap();
        let t = load_participants(&p, Diagnoses::Given(&["AD".into(), "CN".into()])).unwrap();
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.columns.last().unwrap(), "cohort");
        assert_eq!(t.rows[1][0], Cell::Str("sub-3".into()));
        let e = load_participants(&p, Diagnoses::Given(&["XX".into()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("['XX']"), "{e}");
    }

    #[test]
    fn split_folder_reads_parent_baseline() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("labels_baseline.tsv"), TSV).unwrap();
        let t = load_participants(&d.path().join("split-0"), Diagnoses::Given(&["MCI".into()]))
            .unwrap();
        assert_eq!(t.rows.len(), 1);
        let e = load_participants(
            &d.path().join("x/split-0"),
            Diagnoses::Given(&["AD".into()]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("train_baseline.tsv"), "{e}");
    }

    #[test]
    fn refuses_missing_diagnosis_and_duplicates() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p.tsv");
        std::fs::write(&p, "participant_id\tsession_id\nsub-1\tses-M000\n").unwrap();
        let ad = ["AD".to_owned()];
        let training = |use_labels| Diagnoses::Training {
            diagnoses: &ad,
            use_labels,
        };
        let e = load_participants(&p, training(true))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'diagnosis' column") && e.contains("--no_labels"),
            "{e}"
        );
        let e = load_participants(&p, Diagnoses::Given(&["AD".into()]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("has no `diagnosis` column") && e.contains("['AD']"),
            "{e}"
        );
        // Without labels nor --diagnoses, every row is kept.
        let t = load_participants(&p, training(false)).unwrap();
        assert_eq!(t.rows.len(), 1);
        assert_eq!(t.columns, ["participant_id", "session_id", "cohort"]);
        std::fs::write(
            &p,
            "participant_id\tsession_id\tdiagnosis\nsub-1\tses-M000\tAD\nsub-1\tses-M000\tAD\n",
        )
        .unwrap();
        assert!(
            load_participants(&p, Diagnoses::Given(&["AD".into()]))
                .unwrap_err()
                .to_string()
                .contains("more than once")
        );
    }
}
