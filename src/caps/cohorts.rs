//! Multi-cohort data groups (predict.md §4.3): a CAPS TSV (`cohort`, `path`) maps each cohort to
//! its CAPS folder, and a participants TSV (`cohort`, `diagnoses`, `path`) lists each cohort's
//! participants TSV or split folder. Single-cohort groups are the cohort `single`.
//!
//! ClinicaDL: `load_data_test` (multi-cohort branch) and `CapsDataset.create_caps_dict`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::participants::{Diagnoses, check_unique_sessions, load_participants};
use crate::error::UsageError;
use crate::tsv::{Cell, Table};

/// Cohort name → CAPS root, in TSV order.
pub type CapsMapping = Vec<(String, PathBuf)>;

fn require_tsv_suffix(path: &Path, message: &str) -> Result<()> {
    if path.to_string_lossy().ends_with(".tsv") {
        Ok(())
    } else {
        Err(UsageError::new(format!("{message} (got `{}`)", path.display())).into())
    }
}

/// The CAPS roots of a group: `{single: caps}`, or the cohorts of a multi-cohort CAPS TSV.
pub fn caps_mapping(caps_directory: &Path, multi_cohort: bool) -> Result<CapsMapping> {
    if !multi_cohort {
        return Ok(vec![("single".to_owned(), caps_directory.to_owned())]);
    }
    require_tsv_suffix(
        caps_directory,
        "If multi_cohort is True, the CAPS_DIRECTORY argument should be a path to a TSV file",
    )?;
    mapping_from_table(&Table::read(caps_directory)?, caps_directory)
}

/// The cohorts of a multi-cohort CAPS TSV already in memory; `origin` only names it in messages.
pub fn parse_caps_mapping(bytes: &[u8], origin: &Path) -> Result<CapsMapping> {
    mapping_from_table(&Table::parse(bytes, origin)?, origin)
}

/// The cohorts of a multi-cohort CAPS TSV read from `caps_directory`.
fn mapping_from_table(table: &Table, caps_directory: &Path) -> Result<CapsMapping> {
    let (Some(c), Some(p)) = (table.column_index("cohort"), table.column_index("path")) else {
        bail!(
            "columns of the TSV file used for CAPS location must include ('cohort', 'path'): `{}` has {}",
            caps_directory.display(),
            table.columns.join(", ")
        );
    };
    let mut mapping = Vec::new();
    for (i, row) in table.rows.iter().enumerate() {
        let (Some(cohort), Some(path)) = (row[c].as_text(), row[p].as_text()) else {
            bail!(
                "`{}` line {}: empty `cohort` or `path`",
                caps_directory.display(),
                i + 2
            );
        };
        if mapping.iter().any(|(name, _)| *name == cohort) {
            bail!(
                "`{}` lists the cohort `{cohort}` twice",
                caps_directory.display()
            );
        }
        mapping.push((cohort, PathBuf::from(path)));
    }
    if mapping.is_empty() {
        bail!("`{}` lists no cohort", caps_directory.display());
    }
    Ok(mapping)
}

/// Loads the participants of a multi-cohort group: every cohort whose diagnoses meet the
/// wanted ones, with its `cohort` column set to the cohort name.
pub fn load_multi_cohort_participants(path: &Path, diagnoses: &[String]) -> Result<Table> {
    require_tsv_suffix(
        path,
        "If multi_cohort is given, the TSV_DIRECTORY argument should be a path to a TSV file",
    )?;
    let table = Table::read(path)?;
    let columns = cohort_columns(&table, path)?;
    let wanted: BTreeSet<&str> = diagnoses.iter().map(String::as_str).collect();
    let mut found: BTreeSet<String> = BTreeSet::new();
    let mut merged: Option<Table> = None;
    for (i, row) in table.rows.iter().enumerate() {
        let (cohort, cohort_diagnoses, cohort_path) = cohort_row(row, columns, i, path, &wanted)?;
        if cohort_diagnoses.is_empty() {
            continue;
        }
        found.extend(cohort_diagnoses.iter().cloned());
        let mut part =
            load_participants(Path::new(&cohort_path), Diagnoses::Given(&cohort_diagnoses))?;
        let cohort_column = part.require_column("cohort", path)?;
        for r in &mut part.rows {
            r[cohort_column] = Cell::Str(cohort.clone());
        }
        merged = Some(match merged {
            None => part,
            Some(all) => concat(all, part),
        });
    }
    let wanted_set: BTreeSet<String> = wanted.iter().map(|s| (*s).to_owned()).collect();
    if found != wanted_set {
        bail!(
            "the diagnoses found in the multi cohort dataset {found:?} do not correspond to the diagnoses wanted {wanted_set:?} (`{}`)",
            path.display()
        );
    }
    let merged = merged.unwrap_or_else(|| Table::new(Vec::new()));
    check_unique_sessions(&merged, path)?;
    Ok(merged)
}

/// A row of a multi-cohort participants TSV: the cohort, those of its diagnoses that are wanted
/// (empty: the cohort is not used) and the path of its participants TSV or split folder.
pub type CohortEntry = (String, Vec<String>, String);

/// The rows of a multi-cohort participants TSV already in memory, with the wanted `diagnoses`
/// of each (nothing else is read); `origin` only names it in messages.
pub fn parse_cohort_list(
    bytes: &[u8],
    origin: &Path,
    diagnoses: &[String],
) -> Result<Vec<CohortEntry>> {
    let table = Table::parse(bytes, origin)?;
    let columns = cohort_columns(&table, origin)?;
    let wanted: BTreeSet<&str> = diagnoses.iter().map(String::as_str).collect();
    (table.rows.iter().enumerate())
        .map(|(i, row)| cohort_row(row, columns, i, origin, &wanted))
        .collect()
}

/// The columns `cohort`, `diagnoses` and `path` of a multi-cohort participants TSV.
fn cohort_columns(table: &Table, path: &Path) -> Result<(usize, usize, usize)> {
    let (Some(c), Some(d), Some(p)) = (
        table.column_index("cohort"),
        table.column_index("diagnoses"),
        table.column_index("path"),
    ) else {
        bail!(
            "columns of the TSV file used for labels location must include ('cohort', 'diagnoses', 'path'): `{}` has {}",
            path.display(),
            table.columns.join(", ")
        );
    };
    Ok((c, d, p))
}

/// Row `i` of a multi-cohort participants TSV, its diagnoses kept when `wanted`.
fn cohort_row(
    row: &[Cell],
    (c, d, p): (usize, usize, usize),
    i: usize,
    path: &Path,
    wanted: &BTreeSet<&str>,
) -> Result<CohortEntry> {
    let (Some(cohort), Some(cohort_diagnoses), Some(cohort_path)) =
        (row[c].as_text(), row[d].as_text(), row[p].as_text())
    else {
        bail!(
            "`{}` line {}: empty `cohort`, `diagnoses` or `path`",
            path.display(),
            i + 2
        );
    };
    let cohort_diagnoses: Vec<String> = cohort_diagnoses
        .replace(' ', "")
        .split(',')
        .filter(|s| wanted.contains(s))
        .map(str::to_owned)
        .collect();
    Ok((cohort, cohort_diagnoses, cohort_path))
}

/// pandas `concat`: columns aligned by name (union, first table's order first), missing cells.
fn concat(mut a: Table, b: Table) -> Table {
    for column in &b.columns {
        if a.column_index(column).is_none() {
            a.columns.push(column.clone());
            for row in &mut a.rows {
                row.push(Cell::Missing);
            }
        }
    }
    let indices: Vec<Option<usize>> = a.columns.iter().map(|c| b.column_index(c)).collect();
    for row in b.rows {
        a.rows.push(
            indices
                .iter()
                .map(|i| i.map_or(Cell::Missing, |i| row[i].clone()))
                .collect(),
        );
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_cohorts_and_caps() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.tsv");
        let b = d.path().join("b.tsv");
        std::fs::write(
            &a,
            "participant_id\tsession_id\tdiagnosis\nsub-1\tses-M000\tAD\nsub-2\tses-M000\tMCI\n",
        )
        .unwrap();
        std::fs::write(
            &b,
            "participant_id\tsession_id\tdiagnosis\tage\nsub-3\tses-M000\tCN\t70\n",
        )
        .unwrap();
        let list = d.path().join("list.tsv");
        std::fs::write(
            &list,
            format!(
                "cohort\tdiagnoses\tpath\nA\tAD, MCI\t{}\nB\tCN\t{}\n",
                a.display(),
                b.display()
            ),
        )
        .unwrap();
        let t = load_multi_cohort_participants(&list, &["AD".into(), "CN".into()]).unwrap();
        assert_eq!(t.rows.len(), 2);
        let cohort = t.column_index("cohort").unwrap();
        assert_eq!(t.rows[0][cohort], Cell::Str("A".into()));
        assert_eq!(t.rows[1][cohort], Cell::Str("B".into()));
        assert_eq!(t.rows[0][t.column_index("age").unwrap()], Cell::Missing);
        let e = load_multi_cohort_participants(&list, &["AD".into(), "XX".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("do not correspond"), "{e}");
        let caps = d.path().join("caps.tsv");
        std::fs::write(&caps, "cohort\tpath\nA\t/caps/a\nB\t/caps/b\n").unwrap();
        assert_eq!(
            caps_mapping(&caps, true).unwrap(),
            vec![
                ("A".into(), PathBuf::from("/caps/a")),
                ("B".into(), PathBuf::from("/caps/b"))
            ]
        );
        assert!(caps_mapping(Path::new("/caps"), true).is_err());
    }
}
