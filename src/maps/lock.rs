//! A lock per MAPS and data group, so that two runs predicting the same group at once cannot
//! interleave their writes: `MAPS/.clinicadl-rs-<group>.lock` holds the owner's pid (the
//! `clinicadl-rs` command's, see `supervision`), host, start time and command line. A second run fails at once naming the holder; the lock of a process
//! that no longer exists (killed, crashed) is recovered.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct GroupLock {
    path: PathBuf,
}

/// The name of this host.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

impl GroupLock {
    /// Takes the lock of `group` in the MAPS at `maps`.
    pub fn acquire(maps: &Path, group: &str) -> Result<GroupLock> {
        let path = maps.join(format!(".clinicadl-rs-{group}.lock"));
        for _ in 0..3 {
            match create_with_owner(&path) {
                Ok(()) => {
                    remove_stale_drafts(&path);
                    return Ok(GroupLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let field = |name: &str| {
                        text.lines()
                            .find_map(|l| l.strip_prefix(&format!("{name}=")))
                            .unwrap_or("")
                            .to_owned()
                    };
                    let pid: Option<u32> = field("pid").parse().ok();
                    let same_host = field("host") == hostname() || field("host").is_empty();
                    // A lock without a pid that is not being written right now is left over.
                    let old = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age.as_secs() >= 10);
                    match pid {
                        Some(pid) if same_host && !crate::supervision::process_alive(pid) => {
                            // Stale: its owner is gone.
                            let _ = std::fs::remove_file(&path);
                        }
                        None if old => {
                            let _ = std::fs::remove_file(&path);
                        }
                        _ => bail!(
                            "the data group `{group}` of this MAPS is being predicted by another run (pid {}, host {}, started {}: `{}`); wait for it to finish, or delete `{}` if that run is gone",
                            field("pid"),
                            field("host"),
                            field("started"),
                            field("command"),
                            path.display()
                        ),
                    }
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "cannot create the lock file `{}`: the MAPS must be writable",
                            path.display()
                        )
                    });
                }
            }
        }
        bail!("cannot take the lock `{}`", path.display())
    }
}

/// The lock file's text: who holds it.
fn owner() -> String {
    let command: Vec<String> = std::env::args().collect();
    format!(
        "pid={}\nhost={}\nstarted={}\ncommand={}\n",
        crate::supervision::run_pid(),
        hostname(),
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
        command.join(" ")
    )
}

/// Creates the lock file `path` with its owner in it, atomically: the text is written to a file
/// of this process first, which is then linked to `path` (a link fails when `path` exists), so
/// that a run killed at any moment never leaves a lock without its owner. On a file system
/// without hard links, the lock is created empty and then written.
fn create_with_owner(path: &Path) -> std::io::Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}", crate::supervision::run_pid()));
    let draft = PathBuf::from(name);
    std::fs::write(&draft, owner())?;
    let linked = std::fs::hard_link(&draft, path);
    let _ = std::fs::remove_file(&draft);
    match linked {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::Unsupported | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)?;
            let written = file
                .write_all(owner().as_bytes())
                .and_then(|()| file.flush());
            if written.is_err() {
                // A lock without its owner would block every later run.
                let _ = std::fs::remove_file(path);
            }
            written
        }
        other => other,
    }
}

/// Removes the drafts of lock files (`<lock>.<pid>`) that runs killed while creating the lock
/// left behind.
fn remove_stale_drafts(lock: &Path) {
    let (Some(dir), Some(name)) = (lock.parent(), lock.file_name()) else {
        return;
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let pid = file
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| {
            pid != crate::supervision::run_pid() && !crate::supervision::process_alive(pid)
        }) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Drop for GroupLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_and_stale_lock_is_recovered() {
        let d = tempfile::tempdir().unwrap();
        let lock = GroupLock::acquire(d.path(), "test").unwrap();
        let e = GroupLock::acquire(d.path(), "test")
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(GroupLock::acquire(d.path(), "other").is_ok());
        drop(lock);
        assert!(!d.path().join(".clinicadl-rs-test.lock").exists());
        std::fs::write(
            d.path().join(".clinicadl-rs-test.lock"),
            format!("pid=4000000000\nhost={}\n", hostname()),
        )
        .unwrap();
        let _again = GroupLock::acquire(d.path(), "test").unwrap();
    }

    #[test]
    fn the_lock_is_created_with_its_owner_and_drafts_of_dead_runs_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let draft = d.path().join(".clinicadl-rs-test.lock.4000000000");
        std::fs::write(&draft, "pid=4000000000\n").unwrap();
        let lock = GroupLock::acquire(d.path(), "test").unwrap();
        let text = std::fs::read_to_string(d.path().join(".clinicadl-rs-test.lock")).unwrap();
        assert!(
            text.starts_with(&format!("pid={}\nhost=", std::process::id())),
            "{text}"
        );
        assert!(!draft.exists(), "the draft of a dead run is removed");
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        drop(lock);
    }
}
