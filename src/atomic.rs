//! Folders written whole or not at all, the one scheme for everything a run writes into a MAPS
//! (a result set `split-<k>/best-<m>/<group>/`, a group definition `groups/<group>/`): files
//! are written into a staging folder beside the target (`.<name>.partial-<pid>`) and swapped in
//! by renames once complete; the previous folder stays until then. Leftovers of killed runs
//! (staging folders, or a previous folder moved aside just before a crash) are cleaned up or
//! restored by the next run that writes the same folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A folder being written.
#[derive(Debug)]
pub struct StagedFolder {
    target: PathBuf,
    staging: PathBuf,
    committed: bool,
}

/// Name of the folder, for the staging names.
fn folder_name(target: &Path) -> String {
    target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Removes staging folders of dead processes beside `target` and restores a result set that a
/// killed run had moved aside.
pub fn recover(target: &Path) -> Result<()> {
    let Some(parent) = target.parent() else {
        return Ok(());
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Ok(());
    };
    let name = folder_name(target);
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        for (kind, restore) in [("partial", false), ("old", true)] {
            let prefix = format!(".{name}.{kind}-");
            let Some(pid) = file
                .strip_prefix(&prefix)
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == crate::supervision::run_pid() && kind == "partial" {
                // This run's own staging folder (an adopted one): kept.
                continue;
            }
            if crate::supervision::process_alive(pid) && pid != crate::supervision::run_pid() {
                continue;
            }
            let path = entry.path();
            if restore && !target.exists() {
                std::fs::rename(&path, target).with_context(|| {
                    format!(
                        "cannot restore `{}` to `{}`",
                        path.display(),
                        target.display()
                    )
                })?;
            } else {
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("cannot remove the leftover `{}`", path.display()))?;
            }
        }
    }
    Ok(())
}

/// The staging folders that dead runs left beside `target`, newest first.
pub fn leftovers(target: &Path) -> Vec<PathBuf> {
    let (Some(parent), name) = (target.parent(), folder_name(target)) else {
        return Vec::new();
    };
    let prefix = format!(".{name}.partial-");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            file.strip_prefix(&prefix)
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|pid| {
                    pid == crate::supervision::run_pid() || !crate::supervision::process_alive(pid)
                })
        })
        .map(|entry| {
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (modified, entry.path())
        })
        .collect();
    found.sort();
    found.into_iter().rev().map(|(_, path)| path).collect()
}

impl StagedFolder {
    /// Starts writing the folder `target` (its parent must exist) from what a dead run left in
    /// `leftover` (one of [`leftovers`]): it becomes this run's staging folder; the other
    /// leftovers are removed.
    pub fn adopt(target: &Path, leftover: &Path) -> Result<Self> {
        let parent = target.parent().context("a written folder has a parent")?;
        let staging = parent.join(format!(
            ".{}.partial-{}",
            folder_name(target),
            crate::supervision::run_pid()
        ));
        if leftover != staging {
            if staging.exists() {
                std::fs::remove_dir_all(&staging)
                    .with_context(|| format!("cannot remove `{}`", staging.display()))?;
            }
            std::fs::rename(leftover, &staging)
                .with_context(|| format!("cannot take over `{}`", leftover.display()))?;
        }
        recover(target)?;
        Ok(StagedFolder {
            target: target.to_owned(),
            staging,
            committed: false,
        })
    }

    /// Starts writing the folder `target` (its parent must exist).
    pub fn begin(target: &Path) -> Result<Self> {
        recover(target)?;
        let parent = target.parent().context("a written folder has a parent")?;
        let staging = parent.join(format!(
            ".{}.partial-{}",
            folder_name(target),
            crate::supervision::run_pid()
        ));
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .with_context(|| format!("cannot remove `{}`", staging.display()))?;
        }
        std::fs::create_dir(&staging)
            .with_context(|| format!("cannot create `{}`", staging.display()))?;
        Ok(StagedFolder {
            target: target.to_owned(),
            staging,
            committed: false,
        })
    }

    /// Where to write the file `name` of the set.
    pub fn file(&self, name: &str) -> PathBuf {
        self.staging.join(name)
    }

    /// Swaps the complete folder into place, replacing the previous one.
    pub fn commit(mut self) -> Result<()> {
        let parent = self
            .target
            .parent()
            .context("a written folder has a parent")?;
        if self.target.exists() {
            let old = parent.join(format!(
                ".{}.old-{}",
                folder_name(&self.target),
                crate::supervision::run_pid()
            ));
            std::fs::rename(&self.target, &old).with_context(|| {
                format!("cannot move the previous `{}` aside", self.target.display())
            })?;
            self.move_in()?;
            std::fs::remove_dir_all(&old)
                .with_context(|| format!("cannot remove the previous `{}`", old.display()))?;
        } else {
            self.move_in()?;
        }
        self.committed = true;
        Ok(())
    }

    /// Moves the complete folder into place where there is none; fails when the target exists.
    pub fn commit_new(mut self) -> Result<()> {
        if self.target.exists() {
            anyhow::bail!("`{}` exists already", self.target.display());
        }
        self.move_in()?;
        self.committed = true;
        Ok(())
    }

    fn move_in(&self) -> Result<()> {
        std::fs::rename(&self.staging, &self.target)
            .with_context(|| format!("cannot move the new files into `{}`", self.target.display()))
    }
}

impl Drop for StagedFolder {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_and_drop_discards() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("test");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("old.tsv"), "old").unwrap();
        {
            let set = StagedFolder::begin(&target).unwrap();
            std::fs::write(set.file("new.tsv"), "new").unwrap();
            // dropped without commit: nothing changes
        }
        assert!(target.join("old.tsv").exists());
        let set = StagedFolder::begin(&target).unwrap();
        std::fs::write(set.file("new.tsv"), "new").unwrap();
        set.commit().unwrap();
        assert!(!target.join("old.tsv").exists());
        assert_eq!(
            std::fs::read_to_string(target.join("new.tsv")).unwrap(),
            "new"
        );
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["test"]);
    }

    #[test]
    fn recovers_leftovers_of_dead_runs() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("test");
        // pid 4000000000 does not exist
        std::fs::create_dir(d.path().join(".test.partial-4000000000")).unwrap();
        std::fs::create_dir(d.path().join(".test.old-4000000000")).unwrap();
        std::fs::write(d.path().join(".test.old-4000000000/kept.tsv"), "x").unwrap();
        recover(&target).unwrap();
        assert!(target.join("kept.tsv").exists());
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["test"]);
    }
}
