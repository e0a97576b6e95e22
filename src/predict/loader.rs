//! The batch loader: `n_proc` reader threads read and transform sessions ahead of the forward
//! pass, through a bounded channel (memory bounded by a few batches), and batches are assembled
//! in dataset order (ClinicaDL: a `DataLoader` with `shuffle=False`).
//!
//! With `n_proc = 0` sessions are read on the calling thread.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Result, anyhow};
use crossbeam_channel::{Receiver, bounded};

use crate::caps::dataset::Dataset;
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
#[derive(Debug)]
pub struct Batch {
    /// Concatenated element data.
    pub data: Vec<f32>,
    /// Which elements, in order.
    pub elements: Vec<ElementRef>,
}

type Loaded = (usize, Result<(Vec<(usize, Element)>, Notes)>);

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
        pending: Batch {
            data: Vec::new(),
            elements: Vec::new(),
        },
    };
    let mut notes = Notes::default();
    if n_proc == 0 {
        for index in 0..n_sessions {
            let (elements, nan) = dataset.load_session(index)?;
            notes |= nan;
            assembler.push(index, elements, &mut consume)?;
        }
        return assembler.flush(&mut consume).map(|_| notes);
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    // Bounded: readers stay at most about two batches ahead of the forward pass.
    let capacity = (2 * batch_size)
        .div_ceil(dataset.elements_per_session.max(1))
        .max(n_proc);
    let (sender, receiver) = bounded::<Loaded>(capacity);
    std::thread::scope(|scope| -> Result<Notes> {
        for _ in 0..n_proc {
            let sender = sender.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= n_sessions {
                        break;
                    }
                    if sender.send((index, dataset.load_session(index))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let result = consume_in_order(
            &receiver,
            n_sessions,
            &mut assembler,
            &mut consume,
            &mut notes,
        );
        stop.store(true, Ordering::Relaxed);
        // Drain so that blocked readers can finish.
        for _ in receiver.iter() {}
        result.map(|_| notes)
    })
}

fn consume_in_order(
    receiver: &Receiver<Loaded>,
    n_sessions: usize,
    assembler: &mut Assembler,
    consume: &mut impl FnMut(Batch) -> Result<()>,
    notes: &mut Notes,
) -> Result<()> {
    let mut waiting: BTreeMap<usize, Vec<(usize, Element)>> = BTreeMap::new();
    let mut expected = 0;
    while expected < n_sessions {
        let (index, loaded) = receiver
            .recv()
            .map_err(|_| anyhow!("a reader thread stopped unexpectedly"))?;
        let (elements, nan) = loaded?;
        *notes |= nan;
        waiting.insert(index, elements);
        while let Some(elements) = waiting.remove(&expected) {
            assembler.push(expected, elements, consume)?;
            expected += 1;
        }
    }
    assembler.flush(consume)
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
        consume: &mut impl FnMut(Batch) -> Result<()>,
    ) -> Result<()> {
        for (element_id, element) in elements {
            if self.pending.data.is_empty() {
                self.pending
                    .data
                    .reserve_exact(self.batch_size * self.element_len);
            }
            self.pending.data.extend_from_slice(&element.data);
            self.pending.elements.push(ElementRef {
                session,
                element_id,
            });
            if self.pending.elements.len() == self.batch_size {
                let full = std::mem::replace(
                    &mut self.pending,
                    Batch {
                        data: Vec::new(),
                        elements: Vec::new(),
                    },
                );
                consume(full)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, consume: &mut impl FnMut(Batch) -> Result<()>) -> Result<()> {
        if !self.pending.elements.is_empty() {
            let last = std::mem::replace(
                &mut self.pending,
                Batch {
                    data: Vec::new(),
                    elements: Vec::new(),
                },
            );
            consume(last)?;
        }
        Ok(())
    }
}
