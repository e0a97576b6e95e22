//! The batch loader: `n_proc` reader threads read and transform sessions ahead of the forward
//! pass, through a bounded channel (memory bounded by a few batches), and batches are assembled
//! in dataset order (ClinicaDL: a `DataLoader` with `shuffle=False`).
//!
//! With `n_proc = 0` sessions are read on the calling thread.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, anyhow};
use crossbeam_channel::{Receiver, bounded};

use crate::caps::dataset::{Dataset, LoadedSession};
use crate::caps::transforms::{Element, Notes};

/// Where an element comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementRef {
    /// Index of the session in the dataset.
    pub session: usize,
    /// `<mode>_id`.
    pub element_id: usize,
}

/// A batch of consecutive elements, C-order data `[B, element_shape…]`.
#[derive(Debug, Default)]
pub struct Batch {
    /// Concatenated element data.
    pub data: Vec<f32>,
    /// Which elements, in order.
    pub elements: Vec<ElementRef>,
    /// The files read for the sessions that start in this batch, with their SHA-256.
    pub read: Vec<(PathBuf, String)>,
}

/// Iterates over the batches of a dataset, calling `consume` for each one in order. Returns
/// what the transforms met.
pub fn for_each_batch(
    dataset: &Dataset,
    batch_size: usize,
    n_proc: usize,
    mut consume: impl FnMut(Batch) -> Result<()>,
) -> Result<Notes> {
    let element_len: usize = dataset.element_shape.iter().product();
    let n_sessions = dataset.sessions.len();
    let mut assembler = Assembler {
        batch_size,
        element_len,
        pending: Batch::default(),
    };
    if n_proc == 0 {
        let mut notes = Notes::default();
        for index in 0..n_sessions {
            let session = dataset.load_session(index)?;
            notes |= session.notes;
            assembler.push(index, session.elements, session.read, &mut consume)?;
        }
        return assembler.flush(&mut consume).map(|_| notes);
    }
    let stop = AtomicBool::new(false);
    // Bounded: readers stay at most about two batches ahead of the forward pass, counting the
    // session each reader holds while it waits to hand it over (with whole images forwarded
    // one at a time, the channels are rendezvous and `n_proc` images wait, read). Reader `r`
    // reads sessions `r`, `r + n_proc`, … into a channel of its own, and sessions are taken
    // from the channels in turn: in dataset order, with no session read past the bound. (With
    // one channel shared by all readers, sessions arriving out of order had to be kept aside
    // until the one before them came: a reader descheduled on a busy machine let the others
    // run ahead without limit, hundreds of megabytes of full-size images.)
    let capacity = (2 * batch_size)
        .div_ceil(dataset.elements_per_session.max(1))
        .saturating_sub(n_proc);
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..n_proc)
        .map(|_| bounded::<Result<LoadedSession>>(capacity.div_ceil(n_proc)))
        .unzip();
    std::thread::scope(|scope| -> Result<Notes> {
        for (reader, sender) in senders.into_iter().enumerate() {
            let stop = &stop;
            scope.spawn(move || {
                for index in (reader..n_sessions).step_by(n_proc) {
                    if stop.load(Ordering::Relaxed)
                        || sender.send(dataset.load_session(index)).is_err()
                    {
                        break;
                    }
                }
            });
        }
        let result = consume_in_order(&receivers, n_sessions, &mut assembler, &mut consume);
        stop.store(true, Ordering::Relaxed);
        // Readers blocked on a full channel see it closed and finish.
        drop(receivers);
        result
    })
}

/// Takes the sessions from the readers' channels in dataset order (session `i` from channel
/// `i mod n`): a session that cannot be read stops the run after every session before it.
fn consume_in_order(
    receivers: &[Receiver<Result<LoadedSession>>],
    n_sessions: usize,
    assembler: &mut Assembler,
    consume: &mut impl FnMut(Batch) -> Result<()>,
) -> Result<Notes> {
    let mut notes = Notes::default();
    for (index, receiver) in (0..n_sessions).zip(receivers.iter().cycle()) {
        let session = receiver
            .recv()
            .map_err(|_| anyhow!("a reader thread stopped unexpectedly"))??;
        notes |= session.notes;
        assembler.push(index, session.elements, session.read, consume)?;
    }
    assembler.flush(consume)?;
    Ok(notes)
}

struct Assembler {
    batch_size: usize,
    element_len: usize,
    pending: Batch,
}

impl Assembler {
    fn push(
        &mut self,
        session: usize,
        elements: Vec<(usize, Element)>,
        read: Vec<(PathBuf, String)>,
        consume: &mut impl FnMut(Batch) -> Result<()>,
    ) -> Result<()> {
        // The files of a session go with the batch where it starts.
        self.pending.read.extend(read);
        for (element_id, element) in elements {
            if self.pending.data.is_empty() && self.batch_size == 1 {
                // A batch of one element (whole images on the CPU) is the element: moved.
                self.pending.data = element.data;
            } else {
                if self.pending.data.is_empty() {
                    self.pending
                        .data
                        .reserve_exact(self.batch_size * self.element_len);
                }
                self.pending.data.extend_from_slice(&element.data);
            }
            self.pending.elements.push(ElementRef {
                session,
                element_id,
            });
            if self.pending.elements.len() == self.batch_size {
                let full = std::mem::take(&mut self.pending);
                consume(full)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, consume: &mut impl FnMut(Batch) -> Result<()>) -> Result<()> {
        if !self.pending.elements.is_empty() {
            let last = std::mem::take(&mut self.pending);
            consume(last)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::caps::dataset::{DatasetOptions, Quiet};
    use crate::maps::json::read_maps_json;
    use crate::tsv::Table;
    use std::path::Path;

    /// The dataset of the bundled example's test participants (10 sessions), from `caps`.
    fn example_dataset(caps: &Path) -> Dataset {
        let example =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/image_classification");
        let maps = read_maps_json(&example.join("maps")).unwrap();
        let tsv = example.join("tsv/split/test_baseline.tsv");
        let mut data = Table::read(&tsv).unwrap();
        let diagnosis = data.column_index("diagnosis").unwrap();
        data.rows.retain(|r| r[diagnosis].py_str() != "MCI");
        let caps = vec![("single".to_owned(), caps.to_owned())];
        let options = DatasetOptions {
            use_labels: true,
            label: Some("diagnosis"),
            threads: 2,
            from_nifti: false,
            progress: &Quiet,
        };
        Dataset::build(&data, &tsv, &caps, &maps, &options).unwrap()
    }

    fn example_caps() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/image_classification/caps")
    }

    /// The sessions and data of every batch.
    fn batches(dataset: &Dataset, batch_size: usize, n_proc: usize) -> Vec<(Vec<usize>, Vec<f32>)> {
        let mut seen = Vec::new();
        for_each_batch(dataset, batch_size, n_proc, |batch| {
            seen.push((
                batch.elements.iter().map(|e| e.session).collect(),
                batch.data,
            ));
            Ok(())
        })
        .unwrap();
        seen
    }

    #[test]
    fn batches_follow_the_dataset_order_whatever_the_readers() {
        let dataset = example_dataset(&example_caps());
        let element: usize = dataset.element_shape.iter().product();
        let reference = batches(&dataset, 3, 0);
        // 10 sessions in batches of 3: 3, 3, 3, 1, in data.tsv order.
        let sizes: Vec<usize> = reference.iter().map(|(s, _)| s.len()).collect();
        assert_eq!(sizes, [3, 3, 3, 1]);
        let order: Vec<usize> = reference.iter().flat_map(|(s, _)| s.clone()).collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>());
        assert!(reference.iter().all(|(s, d)| d.len() == s.len() * element));
        for n_proc in [1, 2, 7] {
            assert_eq!(batches(&dataset, 3, n_proc), reference, "{n_proc} readers");
        }
        // Another batch size: the same elements in the same order.
        let whole: Vec<f32> = batches(&dataset, 8, 2)
            .into_iter()
            .flat_map(|(_, d)| d)
            .collect();
        let reference: Vec<f32> = reference.into_iter().flat_map(|(_, d)| d).collect();
        assert_eq!(whole, reference);
    }

    #[test]
    fn a_session_that_cannot_be_read_stops_the_batches_with_its_error() {
        let copy = tempfile::tempdir().unwrap();
        let caps = copy.path().join("caps");
        let status = std::process::Command::new("cp")
            .args([
                "-r",
                example_caps().to_str().unwrap(),
                caps.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(status.success());
        let dataset = example_dataset(&caps);
        // The fifth session's tensor disappears after the checks.
        std::fs::remove_file(&dataset.sessions[4].image_path).unwrap();
        for n_proc in [0, 2] {
            let mut consumed = 0;
            let error = for_each_batch(&dataset, 2, n_proc, |batch| {
                consumed += batch.elements.len();
                Ok(())
            })
            .unwrap_err();
            let missing = dataset.sessions[4].image_path.display().to_string();
            assert!(format!("{error:#}").contains(&missing), "{error:#}");
            assert_eq!(
                consumed, 4,
                "the batches before it went through ({n_proc} readers)"
            );
        }
        // A consumer's error stops the readers too.
        let error = for_each_batch(&example_dataset(&example_caps()), 2, 2, |_| {
            anyhow::bail!("the network failed")
        })
        .unwrap_err();
        assert_eq!(error.to_string(), "the network failed");
    }
}
