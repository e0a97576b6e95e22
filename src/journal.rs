//! The journal of a result set being predicted, so that `--resume` can take up a run that was
//! killed (SIGKILL, a node failure, a time limit) where it stopped, with the results of an
//! uninterrupted run.
//!
//! `journal.jsonl` lives in the set's staging folder. Its first line is the run's fingerprint
//! (the options that change the results and the SHA-256 of the inputs); each further line is one
//! finished chunk of one network block: sessions that end on a batch boundary, their rows, the
//! losses of their batches, and the SHA-256 of the files the save options wrote for them, with
//! a checksum of the line itself. Lines are appended and synced to disk as chunks finish. On
//! resume, the lines are read back in order and kept up to the first one that is torn, fails
//! its checksum, or names a saved file that is missing or changed; the rest is predicted again.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::rows::Row;
use crate::shards::Fingerprint;

/// The journal's file name, in a staging folder.
pub const JOURNAL: &str = "journal.jsonl";

/// One finished chunk of a network block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// The network block (0 but for multi-network MAPS).
    pub block: usize,
    /// Its sessions, among the set's: `[first, end)`.
    pub sessions: [usize; 2],
    /// Their rows.
    pub rows: Vec<Row>,
    /// The loss components of their batches, float32 by bits.
    pub batch_losses: Vec<Vec<(String, u32)>>,
    /// SHA-256 of the files the save options wrote for them, by path within the set.
    pub files: BTreeMap<String, String>,
    /// SHA-256 of the files read for them, by path.
    pub read: BTreeMap<String, String>,
}

/// A line of the journal: the chunk and the SHA-256 of its JSON text.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    chunk: Chunk,
    check: String,
}

/// The journal of a set being written.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
}

/// What a journal kept: each block's chunks, in order.
#[derive(Debug, Default)]
pub struct Kept {
    /// Chunks, in the order they were written.
    pub chunks: Vec<Chunk>,
}

impl Kept {
    /// Sessions of `block` already predicted (chunks are contiguous from 0).
    pub fn sessions_done(&self, block: usize) -> usize {
        self.chunks
            .iter()
            .filter(|c| c.block == block)
            .map(|c| c.sessions[1])
            .max()
            .unwrap_or(0)
    }
}

impl Journal {
    /// Starts a journal in `dir` for a run with `fingerprint`.
    pub fn create(dir: &Path, fingerprint: &Fingerprint) -> Result<Journal> {
        let path = dir.join(JOURNAL);
        let mut file = std::fs::File::create(&path)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        let header = serde_json::to_string(fingerprint).context("cannot encode the journal")?;
        writeln!(file, "{header}")
            .and_then(|()| file.sync_data())
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        Ok(Journal { path, file })
    }

    /// Reads the journal a killed run left in `dir`: refused when it was made for another
    /// fingerprint; its valid chunks, and the journal rewritten with them alone, ready for more.
    pub fn resume(dir: &Path, fingerprint: &Fingerprint) -> Result<(Journal, Kept)> {
        let path = dir.join(JOURNAL);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        let mut lines = text.lines();
        let header: Option<Fingerprint> = lines.next().and_then(|l| serde_json::from_str(l).ok());
        match header {
            Some(header) if header == *fingerprint => (),
            Some(header) => bail!(
                "the interrupted run in `{}` was made by another command or from other inputs ({}): run without --resume to start again",
                dir.display(),
                differences(&header, fingerprint)
            ),
            None => bail!(
                "the journal `{}` is damaged: run without --resume to start again",
                path.display()
            ),
        }
        let mut kept = Kept::default();
        for line in lines {
            let Some(chunk) = verified(line, dir) else {
                break;
            };
            kept.chunks.push(chunk);
        }
        let mut journal = Journal::create(dir, fingerprint)?;
        for chunk in &kept.chunks {
            journal.append(chunk)?;
        }
        Ok((journal, kept))
    }

    /// Appends a finished chunk and syncs it to disk.
    pub fn append(&mut self, chunk: &Chunk) -> Result<()> {
        let text = serde_json::to_string(chunk).context("cannot encode the journal")?;
        let line = serde_json::to_string(&Line {
            chunk: chunk.clone(),
            check: crate::digest::sha256_hex(text.as_bytes()),
        })
        .context("cannot encode the journal")?;
        writeln!(self.file, "{line}")
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("cannot write `{}`", self.path.display()))
    }
}

/// A journal line's chunk, when the line is whole, its checksum right and its files intact.
fn verified(line: &str, dir: &Path) -> Option<Chunk> {
    let line: Line = serde_json::from_str(line).ok()?;
    let text = serde_json::to_string(&line.chunk).ok()?;
    if crate::digest::sha256_hex(text.as_bytes()) != line.check {
        return None;
    }
    for (file, digest) in &line.chunk.files {
        if crate::digest::sha256_file(&dir.join(file)).ok()? != *digest {
            return None;
        }
    }
    Some(line.chunk)
}

/// The fields two fingerprints differ in.
pub fn differences(a: &Fingerprint, b: &Fingerprint) -> String {
    let (a, b) = (
        serde_json::to_value(a).unwrap_or_default(),
        serde_json::to_value(b).unwrap_or_default(),
    );
    let mut fields = Vec::new();
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for (key, value) in a {
            if b.get(key) != Some(value) {
                fields.push(format!("`{key}` differs"));
            }
        }
    }
    fields.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::RowValues;

    fn fingerprint(batch_size: usize) -> Fingerprint {
        Fingerprint {
            version: "0".into(),
            group: "test".into(),
            split: 0,
            selection_metric: "loss".into(),
            maps_json: "a".into(),
            checkpoints: BTreeMap::new(),
            group_definition: "b".into(),
            batch_size,
            use_labels: true,
            label: None,
            amp: false,
            device: "cpu".into(),
            save: [false; 3],
        }
    }

    fn chunk(first: usize, file: Option<(&str, &str)>) -> Chunk {
        Chunk {
            block: 0,
            sessions: [first, first + 2],
            rows: vec![Row {
                participant_id: format!("sub-{first}"),
                session_id: "ses-M000".into(),
                element_id: 0,
                values: RowValues::Regression {
                    true_label: Some(1.5),
                    predicted_label: f64::NAN,
                },
            }],
            batch_losses: vec![vec![("loss".into(), 1.5f32.to_bits())]],
            files: file
                .map(|(name, digest)| [(name.to_owned(), digest.to_owned())].into())
                .unwrap_or_default(),
            read: BTreeMap::new(),
        }
    }

    #[test]
    fn chunks_come_back_until_the_first_damaged_one() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("saved.pt"), "abc").unwrap();
        let abc = crate::digest::sha256_hex(b"abc");
        let mut journal = Journal::create(d.path(), &fingerprint(8)).unwrap();
        journal.append(&chunk(0, Some(("saved.pt", &abc)))).unwrap();
        journal.append(&chunk(2, None)).unwrap();
        journal
            .append(&chunk(4, Some(("missing.pt", &abc))))
            .unwrap();
        journal.append(&chunk(6, None)).unwrap();
        drop(journal);
        // A torn last line, as a kill in the middle of a write leaves.
        let path = d.path().join(JOURNAL);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"chunk\":{\"blo");
        std::fs::write(&path, text).unwrap();
        let (mut journal, kept) = Journal::resume(d.path(), &fingerprint(8)).unwrap();
        // The chunk whose saved file is missing and everything after it are predicted again.
        assert_eq!(kept.chunks.len(), 2);
        assert_eq!(kept.sessions_done(0), 4);
        assert_eq!(
            format!("{:?}", kept.chunks[1]),
            format!("{:?}", chunk(2, None))
        );
        journal.append(&chunk(4, None)).unwrap();
        let (_, kept) = Journal::resume(d.path(), &fingerprint(8)).unwrap();
        assert_eq!(kept.sessions_done(0), 6);
        // Another batch size: refused, naming what differs.
        let error = Journal::resume(d.path(), &fingerprint(4))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`batch_size` differs") && error.contains("without --resume"),
            "{error}"
        );
    }
}
