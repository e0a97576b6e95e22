//! The dataset of one prediction (predict.md §6): the sessions of a data group, each with its
//! label and image tensor path, checked all at once before any inference; and the loading of a
//! session's elements (read once, transformed) in the order ClinicaDL numbers them.
//!
//! ClinicaDL: `clinicadl.utils.caps_dataset.data.CapsDataset` (`CapsDatasetImage`,
//! `__getitem__`, `_get_image_path`, `label_fn`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::cohorts::CapsMapping;
use super::elements::Extraction;
use super::paths::{FilePattern, file_pattern, image_tensor_path};
use super::roi::load_rois;
use super::transforms::{Element, Notes, Transforms};
use crate::maps::json::{MapsJson, Mode, Task};
use crate::tsv::{Cell, Table};

/// The target of one session, as the loss and the prediction TSV see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Label {
    /// A class code of `label_code`.
    Class(i64),
    /// A regression target (float32 as in ClinicaDL).
    Value(f32),
    /// No label (`--no_labels`, reconstruction): written as -1.
    Absent,
}

/// One session of the data group.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSample {
    /// `participant_id`.
    pub participant_id: String,
    /// `session_id`.
    pub session_id: String,
    /// `cohort`.
    pub cohort: String,
    /// The label.
    pub label: Label,
    /// The image tensor (`deeplearning_prepare_data/image_based/...pt`).
    pub image_path: PathBuf,
    /// The CAPS root of the session's cohort.
    pub caps_root: PathBuf,
}

/// What the dataset needs to know besides the group.
#[derive(Debug, Clone)]
pub struct DatasetOptions<'a> {
    /// Use labels (not `--no_labels`).
    pub use_labels: bool,
    /// The label column (`--label`, else `maps.json` `label`).
    pub label: Option<&'a str>,
    /// Threads that check the tensor files (their headers only).
    pub threads: usize,
}

/// The sessions of one prediction and how to turn them into network inputs.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Sessions in `data.tsv` order.
    pub sessions: Vec<SessionSample>,
    /// The element mode.
    pub mode: Mode,
    /// How elements are obtained from a session.
    pub extraction: Extraction,
    /// Positions (0-based, within an image) of the elements used: all of them, or the one of
    /// a network of a multi-network MAPS.
    pub selected: Vec<usize>,
    /// Elements per session (`selected.len()`).
    pub elements_per_session: usize,
    /// Shape of one element after the transforms (`input_size`).
    pub element_shape: Vec<usize>,
    /// The evaluation transforms.
    pub transforms: Transforms,
    /// How the CAPS files of this preprocessing are named.
    pub pattern: FilePattern,
}

/// Checks that a CAPS root looks like a CAPS (predict.md §6.1).
pub fn check_caps_directory(caps: &Path) -> Result<()> {
    if !caps.is_dir() {
        bail!("the CAPS directory `{}` is not a folder", caps.display());
    }
    let bids_like = std::fs::read_dir(caps)
        .with_context(|| format!("cannot read the CAPS directory `{}`", caps.display()))?
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("sub-"));
    if bids_like {
        bail!(
            "the CAPS directory `{}` contains at least one folder whose name starts with 'sub-': check that you did not swap BIDS and CAPS folders",
            caps.display()
        );
    }
    Ok(())
}

/// The label of one row (ClinicaDL: `CapsDataset.label_fn`).
fn row_label(cell: &Cell, maps: &MapsJson, column: &str) -> Result<Label, String> {
    match maps.task {
        Task::Classification => {
            let key = cell.py_str();
            maps.label_code
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, code)| Label::Class(*code))
                .ok_or_else(|| {
                    let known: Vec<&str> =
                        maps.label_code.iter().map(|(k, _)| k.as_str()).collect();
                    format!(
                        "value `{key}` of column `{column}` is not a label the model knows ({})",
                        known.join(", ")
                    )
                })
        }
        Task::Regression => match cell.as_f64() {
            Some(v) => Ok(Label::Value(v as f32)),
            None => Err(format!(
                "value `{}` of column `{column}` is not a number",
                cell.py_str()
            )),
        },
        Task::Reconstruction => Ok(Label::Absent),
    }
}

impl SessionSample {
    /// The session's CAPS NIfTI image, the source of its tensor, when there is exactly one.
    pub fn source_nifti(&self, pattern: &FilePattern) -> Option<PathBuf> {
        super::paths::source_nifti(
            &self.caps_root,
            &self.participant_id,
            &self.session_id,
            pattern,
        )
    }
}

impl Dataset {
    /// Builds the dataset of a group, checking every session: labels known, image tensor (or
    /// every pre-extracted element) found, readable, floating point and of the expected shape
    /// (headers only). Every problem is reported at once.
    pub fn build(
        data: &Table,
        data_path: &Path,
        caps: &CapsMapping,
        maps: &MapsJson,
        options: &DatasetOptions,
    ) -> Result<Dataset> {
        for (_, root) in caps {
            check_caps_directory(root)?;
        }
        let pattern: FilePattern = file_pattern(&maps.preprocessing)?;
        let p = data.require_column("participant_id", data_path)?;
        let s = data.require_column("session_id", data_path)?;
        let cohort = data.column_index("cohort");
        let label_column = match (options.use_labels, maps.task, options.label) {
            (true, Task::Classification | Task::Regression, Some(label)) => Some((
                label,
                data.column_index(label).with_context(|| {
                    format!(
                        "the data file `{}` has no label column `{label}` (columns: {}); give --label or --no_labels",
                        data_path.display(),
                        data.columns.join(", ")
                    )
                })?,
            )),
            _ => None,
        };
        let mut problems = Vec::new();
        let mut sessions = Vec::with_capacity(data.rows.len());
        for row in &data.rows {
            let participant_id = row[p].py_str();
            let session_id = row[s].py_str();
            let label = match label_column {
                Some((name, i)) => match row_label(&row[i], maps, name) {
                    Ok(l) => l,
                    Err(e) => {
                        problems.push(format!("({participant_id} | {session_id}): {e}"));
                        Label::Absent
                    }
                },
                None => Label::Absent,
            };
            let session_cohort = cohort
                .map(|c| row[c].py_str())
                .unwrap_or_else(|| "single".into());
            let Some((_, root)) = caps.iter().find(|(name, _)| *name == session_cohort) else {
                problems.push(format!(
                    "({participant_id} | {session_id}): cohort `{session_cohort}` has no CAPS (cohorts: {})",
                    caps.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(", ")
                ));
                continue;
            };
            let image_path = match image_tensor_path(root, &participant_id, &session_id, &pattern) {
                Ok(path) => path,
                Err(e) => {
                    problems.push(format!("({participant_id} | {session_id}): {e}"));
                    PathBuf::new()
                }
            };
            sessions.push(SessionSample {
                participant_id,
                session_id,
                cohort: session_cohort,
                label,
                image_path,
                caps_root: root.clone(),
            });
        }
        // Elements are known from the first session when every session was found.
        let extraction_known = problems.is_empty() && !sessions.is_empty();
        let extraction = match sessions.first() {
            Some(first) if extraction_known => {
                // Patch and slice counts come from the first image's size (image mode needs none).
                let needs_shape = matches!(maps.mode, Mode::Patch | Mode::Slice);
                let image_shape = if needs_shape && first.image_path.is_file() {
                    Some(crate::torchfile::read_tensor_header(&first.image_path)?.shape)
                } else {
                    None
                };
                let rois = if maps.mode == Mode::Roi {
                    // The first cohort's masks serve every cohort (as in ClinicaDL).
                    let (cohort, root) = &caps[0];
                    if caps.len() > 1 {
                        crate::ui::warn(&format!(
                            "The equality of masks is not assessed for multi-cohort training. The masks stored in {} (cohort {cohort}) will be used.",
                            root.display()
                        ));
                    }
                    Some(load_rois(maps, root)?)
                } else {
                    None
                };
                Extraction::from_maps(
                    maps,
                    image_shape.as_deref(),
                    |fragment| count_element_files(&first.image_path, fragment),
                    rois,
                )
                .with_context(|| {
                    format!(
                        "cannot count the {} elements of the first session ({} | {})",
                        maps.mode.name(),
                        first.participant_id,
                        first.session_id
                    )
                })?
            }
            _ => Extraction::Image,
        };
        let selected: Vec<usize> = (0..extraction.count()).collect();
        let transforms = Transforms::new(
            maps.normalize,
            maps.size_reduction,
            maps.size_reduction_factor,
        )?;
        let dataset = Dataset {
            sessions,
            mode: maps.mode,
            elements_per_session: selected.len(),
            extraction,
            selected,
            element_shape: maps.input_size.clone(),
            transforms,
            pattern,
        };
        if extraction_known {
            problems.extend(dataset.check_tensor_files(options.threads));
        }
        if !problems.is_empty() {
            bail!(
                "{} with the sessions of `{}` (CAPS `{}`):\n{}",
                crate::ui::count_problems(problems.len()),
                data_path.display(),
                caps.iter()
                    .map(|(_, p)| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join("`, `"),
                crate::ui::bullet_list(&problems)
            );
        }
        if dataset.sessions.is_empty() {
            bail!("the data group `{}` has no session", data_path.display());
        }
        if dataset.extraction.cuts_images() {
            // Elements cut from images: the cut itself is checked on the first session (its
            // image has the shape of every other one).
            dataset.load_session(0)?;
        }
        Ok(dataset)
    }

    /// Every tensor file the run will read: present, readable, floating point, and of the shape
    /// the model expects (after the transforms), or, for elements cut from whole images, of the
    /// first session's shape. Only headers are read, on up to `threads` threads. Returns one
    /// problem per faulty file.
    fn check_tensor_files(&self, threads: usize) -> Vec<String> {
        let cut = self.extraction.cuts_images();
        let mut files = Vec::new();
        for (index, session) in self.sessions.iter().enumerate() {
            if self.extraction.prepare_dl() {
                for &position in &self.selected {
                    let file = self.extraction.element_file(&session.image_path, position);
                    files.push((index, Some(position), file));
                }
            } else {
                files.push((index, None, session.image_path.clone()));
            }
        }
        // A first file that cannot be read is reported below with the others.
        let reference = match (cut, files.first()) {
            (true, Some((_, _, first))) => crate::torchfile::read_tensor_header(first)
                .ok()
                .map(|h| h.shape),
            _ => None,
        };
        let check = |(index, position, file): &(usize, Option<usize>, PathBuf)| -> Option<String> {
            let session = &self.sessions[*index];
            let at = format!("({} | {})", session.participant_id, session.session_id);
            if !file.is_file() {
                let hint = if self.extraction.prepare_dl() {
                    self.mode.name()
                } else {
                    "image"
                };
                return Some(format!(
                    "{at}: tensor `{}` does not exist (run `clinicadl prepare-data {hint}` on this CAPS)",
                    file.display()
                ));
            }
            let header = match crate::torchfile::read_tensor_header(file) {
                Ok(header) => header,
                Err(error) => return Some(format!("{at}: {error}")),
            };
            if let Err(error) = check_dtype(file, header.dtype) {
                return Some(format!("{at}: {error}"));
            }
            let what = match position {
                Some(position) => format!(
                    "{} {} `{}`",
                    self.mode.name(),
                    self.extraction.element_id(*position),
                    file.display()
                ),
                None => format!("tensor `{}`", file.display()),
            };
            if cut {
                return reference
                    .as_ref()
                    .filter(|reference| header.shape != **reference)
                    .map(|reference| format!(
                        "{at}: {what} has shape {:?} but the first session's image has shape {reference:?} ({}s are cut from every image at the same places)",
                        header.shape,
                        self.mode.name()
                    ));
            }
            let transformed = self.transforms.output_shape(&header.shape);
            (transformed != self.element_shape).then(|| {
                format!(
                    "{at}: {what} has shape {:?}{} but the model expects {:?} (maps.json `input_size`)",
                    header.shape,
                    if transformed == header.shape {
                        String::new()
                    } else {
                        format!(" ({transformed:?} after the transforms)")
                    },
                    self.element_shape
                )
            })
        };
        let started = std::time::Instant::now();
        // Large cohorts on network file systems take a while: show it.
        let mut progress = (files.len() >= PROGRESS_FROM_FILES).then(|| {
            crate::ui::Progress::new("checking tensor files", "files", files.len() as u64)
        });
        let problems: Vec<String> = parallel_map(&files, threads, check, progress.as_mut())
            .into_iter()
            .flatten()
            .collect();
        if let Some(progress) = progress {
            progress.finish();
        }
        crate::ui::debug(&format!(
            "tensor files checked: {} in {:.1} ms ({threads} threads)",
            files.len(),
            started.elapsed().as_secs_f64() * 1e3
        ));
        problems
    }

    /// The dataset of one network of a multi-network MAPS: element `index` of every session.
    pub fn restricted_to(&self, index: usize) -> Dataset {
        Dataset {
            selected: vec![index],
            elements_per_session: 1,
            ..self.clone()
        }
    }

    /// Number of elements of the whole dataset.
    pub fn len(&self) -> usize {
        self.sessions.len() * self.elements_per_session
    }

    /// Whether the dataset has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads a session's data once and returns its transformed elements with their
    /// `<mode>_id`, in element order, and what the transforms met.
    pub fn load_session(&self, index: usize) -> Result<(Vec<(usize, Element)>, Notes)> {
        let session = &self.sessions[index];
        let whole = if self.extraction.prepare_dl() {
            None
        } else {
            Some(read_element(&session.image_path)?)
        };
        let mut notes = Notes::default();
        let mut elements = Vec::with_capacity(self.selected.len());
        for &position in &self.selected {
            let (mut element, source) = match &whole {
                Some(image) => (
                    self.extraction.cut(image, position)?,
                    session.image_path.clone(),
                ),
                None => {
                    let file = self.extraction.element_file(&session.image_path, position);
                    (read_element(&file)?, file)
                }
            };
            let raw_shape = element.shape.clone();
            notes |= self.transforms.apply(&mut element);
            if element.shape != self.element_shape {
                bail!(
                    "({} | {}): {} {} of `{}` has shape {:?} ({:?} after the transforms) but the model expects {:?} (maps.json `input_size`)",
                    session.participant_id,
                    session.session_id,
                    self.mode.name(),
                    self.extraction.element_id(position),
                    source.display(),
                    raw_shape,
                    element.shape,
                    self.element_shape
                );
            }
            elements.push((self.extraction.element_id(position), element));
        }
        Ok((elements, notes))
    }
}

/// Checks of at least this many tensor files show their progress.
const PROGRESS_FROM_FILES: usize = 1000;

/// `f` over `items` on up to `threads` threads, results in the order of `items`; `progress`,
/// when given, advances as items are done.
fn parallel_map<T: Sync, U: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> U + Sync,
    progress: Option<&mut crate::ui::Progress>,
) -> Vec<U> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = threads.clamp(1, 16).min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let mut results: Vec<(usize, U)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item)));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    mine
                })
            })
            .collect();
        if let Some(progress) = progress {
            let mut shown = 0;
            while workers.iter().any(|w| !w.is_finished()) {
                std::thread::sleep(std::time::Duration::from_millis(100));
                let now = done.load(Ordering::Relaxed);
                progress.advance((now - shown) as u64);
                shown = now;
            }
            progress.advance((done.load(Ordering::Relaxed) - shown) as u64);
        }
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, u)| u).collect()
}

/// Whether a CAPS tensor of this dtype can be read (floating point), else what to do.
fn check_dtype(path: &Path, dtype: crate::torchfile::DType) -> Result<()> {
    use crate::torchfile::DType;
    if !matches!(dtype, DType::F16 | DType::BF16 | DType::F32 | DType::F64) {
        bail!(
            "the tensor `{}` holds {} values; CAPS tensors are floating-point images (re-run `clinicadl prepare-data`)",
            path.display(),
            dtype.name()
        );
    }
    Ok(())
}

/// Reads a tensor file as a C-order float32 element.
fn read_element(path: &Path) -> Result<Element> {
    let (header, data) = crate::torchfile::read_tensor_f32(path)?;
    check_dtype(path, header.dtype)?;
    Ok(Element {
        data,
        shape: header.shape,
    })
}

/// Files of the pre-extracted element folders of a session whose names contain `fragment`.
fn count_element_files(image: &Path, fragment: &str) -> usize {
    let Some(dir) = image.parent() else { return 0 };
    ["patch_based", "slice_based"]
        .iter()
        .map(|kind| PathBuf::from(dir.to_string_lossy().replace("image_based", kind)))
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| e.file_name().to_string_lossy().contains(fragment))
        .count()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parallel_map_keeps_the_order_of_its_items() {
        let items: Vec<usize> = (0..1000).collect();
        for threads in [0, 1, 3, 64] {
            let squares = parallel_map(&items, threads, |&i| i * i, None);
            assert_eq!(squares, items.iter().map(|i| i * i).collect::<Vec<_>>());
        }
        assert!(parallel_map(&[] as &[usize], 4, |&i| i, None).is_empty());
        let mut progress = crate::ui::Progress::new("test", "items", 1000);
        let doubled = parallel_map(&items, 2, |&i| 2 * i, Some(&mut progress));
        assert_eq!(doubled[999], 1998);
        assert_eq!(progress.done(), 1000);
    }
}
