//! Result sets written whole or not at all. The files of one `split-<k>/best-<m>/<group>/` folder
//! are written into a staging folder beside it (`.<group>.partial-<pid>`) and swapped in by
//! renames once complete; the previous results stay until then. Leftovers of killed runs
//! (staging folders, or a previous result set moved aside just before a crash) are cleaned up
//! or restored by the next run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A result folder being written.
#[derive(Debug)]
pub struct ResultSet {
    target: PathBuf,
    staging: PathBuf,
    committed: bool,
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
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
            if process_alive(pid) && pid != std::process::id() {
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

impl ResultSet {
    /// Starts a result set for `target` (its parent must exist).
    pub fn begin(target: &Path) -> Result<Self> {
        recover(target)?;
        let parent = target.parent().context("a result folder has no parent")?;
        let staging = parent.join(format!(
            ".{}.partial-{}",
            folder_name(target),
            std::process::id()
        ));
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .with_context(|| format!("cannot remove `{}`", staging.display()))?;
        }
        std::fs::create_dir(&staging)
            .with_context(|| format!("cannot create `{}`", staging.display()))?;
        Ok(ResultSet {
            target: target.to_owned(),
            staging,
            committed: false,
        })
    }

    /// Where to write the file `name` of the set.
    pub fn file(&self, name: &str) -> PathBuf {
        self.staging.join(name)
    }

    /// The final folder.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Swaps the complete set into place, replacing the previous one.
    pub fn commit(mut self) -> Result<()> {
        let parent = self
            .target
            .parent()
            .context("a result folder has no parent")?;
        if self.target.exists() {
            let old = parent.join(format!(
                ".{}.old-{}",
                folder_name(&self.target),
                std::process::id()
            ));
            std::fs::rename(&self.target, &old).with_context(|| {
                format!(
                    "cannot move the previous results `{}` aside",
                    self.target.display()
                )
            })?;
            std::fs::rename(&self.staging, &self.target).with_context(|| {
                format!(
                    "cannot move the new results into `{}`",
                    self.target.display()
                )
            })?;
            std::fs::remove_dir_all(&old).with_context(|| {
                format!("cannot remove the previous results `{}`", old.display())
            })?;
        } else {
            std::fs::rename(&self.staging, &self.target).with_context(|| {
                format!(
                    "cannot move the new results into `{}`",
                    self.target.display()
                )
            })?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for ResultSet {
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
            let set = ResultSet::begin(&target).unwrap();
            std::fs::write(set.file("new.tsv"), "new").unwrap();
            // dropped without commit: nothing changes
        }
        assert!(target.join("old.tsv").exists());
        let set = ResultSet::begin(&target).unwrap();
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
