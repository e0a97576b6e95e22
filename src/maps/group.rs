//! Data groups (docs/ARCHITECTURE.md, "Data groups"): reading a group's definition
//! (`groups/<G>/data.tsv` and
//! `groups/<G>/maps.json`), writing a new one, and the data leakage check against
//! `groups/train+validation.tsv`.
//!
//! A new group is written whole or not at all: its files go to a temporary folder beside the
//! target, renamed into place once complete (1.6.1 writes the folder before any data is
//! checked and leaves it half-made when a run fails).
//!
//! ClinicaDL: `MapsManager._check_data_group`, `_write_data_group`, `get_group_info`,
//! `check_multi_cohort_tsv`, `_check_leakage`.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::layout::{MapsLayout, is_training_group};
use crate::atomic::StagedFolder;
use crate::tsv::{Cell, Table};

/// A data group as predict uses it.
#[derive(Debug, Clone)]
pub struct GroupDefinition {
    /// The group name.
    pub name: String,
    /// `data.tsv`: participant_id, session_id, cohort[, label columns].
    pub data: Table,
    /// `caps_directory` as stored in the group's `maps.json`.
    pub caps_directory: PathBuf,
    /// `multi_cohort` as stored.
    pub multi_cohort: bool,
}

impl GroupDefinition {
    /// Number of distinct participants.
    pub fn participant_count(&self) -> usize {
        let Some(i) = self.data.column_index("participant_id") else {
            return 0;
        };
        self.data
            .column(i)
            .filter_map(Cell::as_text)
            .collect::<BTreeSet<_>>()
            .len()
    }
}

/// Whether `groups/<group>/` exists.
pub fn group_exists(layout: &MapsLayout, group: &str) -> bool {
    layout.group_dir(group).is_dir()
}

/// Reads a group's definition for one split (ClinicaDL: `MapsManager.get_group_info`).
pub fn read_group(layout: &MapsLayout, group: &str, split: u32) -> Result<GroupDefinition> {
    if !layout.group_dir(group).is_dir() {
        bail!(
            "data group `{group}` is not defined: `{}` does not exist",
            layout.group_dir(group).display()
        );
    }
    let dir = layout.group_definition_dir(group, split);
    if !dir.is_dir() {
        bail!(
            "split {split} is not available for data group `{group}` (no `{}`)",
            dir.display()
        );
    }
    let tsv = dir.join("data.tsv");
    let mut data = Table::read(&tsv)?;
    // Training-time data.tsv files start with the unnamed pandas index column.
    if data.columns.first().is_some_and(|c| c.is_empty()) {
        data.columns.remove(0);
        for row in &mut data.rows {
            row.remove(0);
        }
    }
    for column in ["participant_id", "session_id"] {
        data.require_column(column, &tsv)?;
    }
    if data.column_index("cohort").is_none() {
        data.columns.push("cohort".into());
        for row in &mut data.rows {
            row.push(Cell::Str("single".into()));
        }
    }
    let json_path = dir.join("maps.json");
    let text = std::fs::read_to_string(&json_path)
        .with_context(|| format!("cannot read `{}`", json_path.display()))?;
    let json: Value = serde_json::from_str(&text)
        .with_context(|| format!("`{}` is not valid JSON", json_path.display()))?;
    let caps_directory = json
        .get("caps_directory")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .with_context(|| format!("`{}` has no `caps_directory` string", json_path.display()))?;
    let multi_cohort = json
        .get("multi_cohort")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(GroupDefinition {
        name: group.to_owned(),
        data,
        caps_directory,
        multi_cohort,
    })
}

/// The table written as `data.tsv` of a new group: `participant_id, session_id, cohort`, then
/// the training label column if present, then `label` if given, present and different from the
/// training label (1.6.1 duplicates it).
pub fn group_data_table(
    participants: &Table,
    training_label: Option<&str>,
    label: Option<&str>,
) -> Table {
    let mut columns: Vec<String> = vec![
        "participant_id".into(),
        "session_id".into(),
        "cohort".into(),
    ];
    for l in [training_label, label].into_iter().flatten() {
        if participants.column_index(l).is_some() && !columns.iter().any(|c| c == l) {
            columns.push(l.to_owned());
        }
    }
    let indices: Vec<Option<usize>> = columns
        .iter()
        .map(|c| participants.column_index(c))
        .collect();
    let rows = participants
        .rows
        .iter()
        .map(|row| {
            indices
                .iter()
                .map(|i| i.map_or(Cell::Missing, |i| row[i].clone()))
                .collect()
        })
        .collect();
    Table { columns, rows }
}

/// The `caps_directory` string stored for a new group: an absolute, lexically normalised path, so
/// that it resolves to the same folder whatever the working directory of later runs (1.6.1
/// stores relative paths as typed and resolves them against the current directory).
pub fn stored_caps_path(caps: &Path) -> Result<PathBuf> {
    let absolute = if caps.is_absolute() {
        caps.to_owned()
    } else {
        std::env::current_dir()
            .context("cannot read the current directory")?
            .join(caps)
    };
    Ok(normalize_lexically(&absolute))
}

/// Removes `.` components, resolves `..` lexically and drops a trailing `/`.
pub fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

/// The group `maps.json` text, as Python's `json.dump(indent=4)` writes it (no final newline).
pub fn group_json_text(caps_directory: &Path, multi_cohort: bool) -> String {
    let caps =
        serde_json::to_string(&caps_directory.to_string_lossy()).unwrap_or_else(|_| "\"\"".into());
    let caps = ascii_escape(&caps);
    format!("{{\n    \"caps_directory\": {caps},\n    \"multi_cohort\": {multi_cohort}\n}}")
}

/// Escapes non-ASCII characters as `\uXXXX` (Python's `ensure_ascii`).
fn ascii_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for ch in json.chars() {
        if ch.is_ascii() {
            out.push(ch);
        } else {
            let mut buf = [0u16; 2];
            for unit in ch.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Writes a new group atomically: files in `groups/.<group>.partial-<pid>/`, then one rename.
/// When `replace` is set, an existing definition is swapped out only after the new one is whole.
pub fn write_group(
    layout: &MapsLayout,
    group: &str,
    data: &Table,
    caps_directory: &Path,
    multi_cohort: bool,
    replace: bool,
) -> Result<()> {
    let groups = layout.groups_dir();
    std::fs::create_dir_all(&groups)
        .with_context(|| format!("cannot create `{}`", groups.display()))?;
    let folder = StagedFolder::begin(&layout.group_dir(group))?;
    let tsv = folder.file("data.tsv");
    std::fs::write(&tsv, data.to_tsv_string())
        .with_context(|| format!("cannot write `{}`", tsv.display()))?;
    let json = folder.file("maps.json");
    std::fs::write(&json, group_json_text(caps_directory, multi_cohort))
        .with_context(|| format!("cannot write `{}`", json.display()))?;
    if replace {
        folder.commit()
    } else {
        folder.commit_new()
    }
}

/// The data leakage check (docs/ARCHITECTURE.md, "Data groups"): participants of the new group
/// already seen in training or validation. Returns them sorted (empty: no leak).
pub fn leaking_participants(layout: &MapsLayout, group: &str, data: &Table) -> Result<Vec<String>> {
    if is_training_group(group) {
        return Ok(Vec::new());
    }
    let path = layout.train_validation_tsv();
    let seen = Table::read(&path)?;
    let seen_index = seen.require_column("participant_id", &path)?;
    let seen: BTreeSet<String> = seen.column(seen_index).filter_map(Cell::as_text).collect();
    let Some(index) = data.column_index("participant_id") else {
        return Ok(Vec::new());
    };
    let new: BTreeSet<String> = data.column(index).filter_map(Cell::as_text).collect();
    Ok(new.intersection(&seen).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_json_matches_python() {
        assert_eq!(
            group_json_text(Path::new("/a/caps"), false),
            "{\n    \"caps_directory\": \"/a/caps\",\n    \"multi_cohort\": false\n}"
        );
        assert_eq!(
            group_json_text(Path::new("/é"), true),
            "{\n    \"caps_directory\": \"/\\u00e9\",\n    \"multi_cohort\": true\n}"
        );
    }

    #[test]
    fn lexical_normalisation() {
        assert_eq!(
            normalize_lexically(Path::new("/a/./b/../c/")),
            Path::new("/a/c")
        );
        assert_eq!(normalize_lexically(Path::new("./caps")), Path::new("caps"));
    }

    #[test]
    fn data_table_columns() {
        let p = Table::parse(b"participant_id\tsession_id\tdiagnosis\tage\tcohort\nsub-1\tses-M000\tAD\t70\tsingle\n", Path::new("p")).unwrap();
        let t = group_data_table(&p, Some("diagnosis"), Some("age"));
        assert_eq!(
            t.columns,
            ["participant_id", "session_id", "cohort", "diagnosis", "age"]
        );
        let t = group_data_table(&p, Some("diagnosis"), Some("diagnosis"));
        assert_eq!(t.columns.len(), 4);
    }

    #[test]
    fn writes_group_atomically_and_reads_it_back() {
        let d = tempfile::tempdir().unwrap();
        let layout = MapsLayout {
            root: d.path().to_owned(),
            split_prefix: "split".into(),
        };
        let p = Table::parse(
            b"participant_id\tsession_id\tcohort\tdiagnosis\nsub-1\tses-M000\tsingle\tAD\n",
            Path::new("p"),
        )
        .unwrap();
        write_group(&layout, "test", &p, Path::new("/caps"), false, false).unwrap();
        let g = read_group(&layout, "test", 0).unwrap();
        assert_eq!(g.data, p);
        assert_eq!(g.caps_directory, Path::new("/caps"));
        assert_eq!(g.participant_count(), 1);
        let entries: Vec<_> = std::fs::read_dir(layout.groups_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(entries, ["test"]);
        assert!(
            read_group(&layout, "nope", 0)
                .unwrap_err()
                .to_string()
                .contains("not defined")
        );
    }

    #[test]
    fn set_repr() {
        assert_eq!(
            crate::pyrepr::repr_str_set(&["sub-05".into(), "sub-07".into()]),
            "{'sub-05', 'sub-07'}"
        );
    }
}
