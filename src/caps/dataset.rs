//! The dataset of one prediction (docs/ARCHITECTURE.md, "CAPS paths"): the sessions of a data
//! group, each with its label and image tensor path, checked all at once before any inference; and
//! the loading of a session's elements (read once, transformed) in the order ClinicaDL numbers
//! them.
//!
//! ClinicaDL: `clinicadl.utils.caps_dataset.data.CapsDataset` (`CapsDatasetImage`,
//! `__getitem__`, `_get_image_path`, `label_fn`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rayon::prelude::*;

use super::cohorts::CapsMapping;
use super::elements::Extraction;
use super::nifti_image;
use super::paths::{FilePattern, ImageFinder, file_pattern};
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
    /// The image tensor (`deeplearning_prepare_data/image_based/...pt`), which may not exist.
    pub image_path: PathBuf,
    /// The CAPS root of the session's cohort.
    pub caps_root: PathBuf,
    /// The CAPS NIfTI image the tensor is made from, when there is exactly one.
    pub source_nifti: Option<PathBuf>,
    /// Whether the session is read from [`SessionSample::source_nifti`] (its tensors are
    /// missing, or `--from_nifti`) rather than from prepare-data's tensors.
    pub from_nifti: bool,
}

/// What the dataset needs to know besides the group.
pub struct DatasetOptions<'a> {
    /// Use labels (not `--no_labels`).
    pub use_labels: bool,
    /// The label column (`--label`, else `maps.json` `label`).
    pub label: Option<&'a str>,
    /// Threads that check the sessions' files (their headers only).
    pub threads: usize,
    /// Read every session from its CAPS NIfTI image, even where its tensors exist
    /// (`--from_nifti`).
    pub from_nifti: bool,
    /// Told how the check of the sessions' files goes.
    pub progress: &'a dyn CheckProgress,
}

/// What the check of the sessions' files reports as it goes (the caller shows it; the data
/// layer prints nothing).
pub trait CheckProgress: Sync {
    /// The files of `total` sessions are about to be checked.
    fn start(&self, total: usize);
    /// The files of one more session were checked.
    fn advance(&self);
    /// Every session was checked, on `threads` threads, in `elapsed`.
    fn finish(&self, total: usize, threads: usize, elapsed: std::time::Duration);
}

/// A [`CheckProgress`] that shows nothing.
pub struct Quiet;

impl CheckProgress for Quiet {
    fn start(&self, _: usize) {}
    fn advance(&self) {}
    fn finish(&self, _: usize, _: usize, _: std::time::Duration) {}
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
    /// What building it met that the user should know (warnings, not errors).
    pub warnings: Vec<String>,
}

/// Checks that a CAPS root looks like a CAPS (docs/ARCHITECTURE.md, "CAPS paths").
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
        let finder = ImageFinder::new(&pattern);
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
        let mut warnings = Vec::new();
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
            sessions.push(SessionSample {
                participant_id,
                session_id,
                cohort: session_cohort,
                label,
                // Found below.
                image_path: PathBuf::new(),
                caps_root: root.clone(),
                source_nifti: None,
                from_nifti: options.from_nifti,
            });
        }
        // Each session's files, searched in its folder on a pool of threads (the searches wait
        // on the file system: a large cohort on a network file system takes a while).
        let found = map_on_pool(options.threads, sessions.len(), |index| {
            let session = &sessions[index];
            finder.files(
                &session.caps_root,
                &session.participant_id,
                &session.session_id,
            )
        });
        for (session, files) in sessions.iter_mut().zip(found) {
            match files {
                Ok(files) => {
                    session.image_path = files.tensor;
                    session.source_nifti = files.nifti;
                }
                Err(e) => problems.push(format!(
                    "({} | {}): {e}",
                    session.participant_id, session.session_id
                )),
            }
        }
        // Elements are known from the first session with an image (the first session, as in
        // ClinicaDL, unless it only has pre-extracted elements); sessions whose files were not
        // found are reported above, and the files of the others are still checked.
        let found = |session: &&SessionSample| !session.image_path.as_os_str().is_empty();
        let first_found = sessions.iter().find(found);
        let extraction_known = first_found.is_some();
        let mut reference = None;
        let extraction = match first_found {
            Some(first) => {
                // Patch and slice counts come from an image's size, and elements cut from
                // images are cut from images of that size (image mode needs none).
                if maps.mode != Mode::Image {
                    reference =
                        first_image_shape(sessions.iter().filter(found), options.from_nifti)?;
                }
                let rois = if maps.mode == Mode::Roi {
                    // The first cohort's masks serve every cohort (as in ClinicaDL).
                    let (cohort, root) = &caps[0];
                    if caps.len() > 1 {
                        warnings.push(format!(
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
                    reference.as_deref(),
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
            None => Extraction::Image,
        };
        let selected: Vec<usize> = (0..extraction.count()).collect();
        let transforms = Transforms::new(
            maps.normalize,
            maps.size_reduction,
            maps.size_reduction_factor,
        )?;
        let mut dataset = Dataset {
            sessions,
            mode: maps.mode,
            elements_per_session: selected.len(),
            extraction,
            selected,
            element_shape: maps.input_size.clone(),
            transforms,
            pattern,
            warnings,
        };
        if extraction_known {
            problems.extend(dataset.check_files(
                reference.as_deref(),
                options.from_nifti,
                options.threads,
                options.progress,
            ));
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
        // Elements cut from images: the cut itself is checked on the first session cut (its
        // image has the shape of every other one).
        if dataset.mode != Mode::Image
            && let Some(index) = (0..dataset.sessions.len()).find(|&i| dataset.cuts(i))
        {
            dataset.load_session(index)?;
        }
        Ok(dataset)
    }

    /// How many sessions are read from prepare-data's tensors and how many from CAPS NIfTI
    /// images.
    pub fn sources(&self) -> Sources {
        let nifti = self.sessions.iter().filter(|s| s.from_nifti).count();
        Sources {
            tensors: self.sessions.len() - nifti,
            nifti,
        }
    }

    /// Whether session `index`'s elements are cut from its whole image as it is read.
    fn cuts(&self, index: usize) -> bool {
        self.mode != Mode::Image
            && (self.sessions[index].from_nifti || self.extraction.cuts_images())
    }

    /// The tensor files session `index` reads when it is read from tensors.
    fn tensor_files(&self, index: usize) -> Vec<(Option<usize>, PathBuf)> {
        let session = &self.sessions[index];
        if self.extraction.prepare_dl() {
            self.selected
                .iter()
                .map(|&position| {
                    let file = self.extraction.element_file(&session.image_path, position);
                    (Some(position), file)
                })
                .collect()
        } else {
            vec![(None, session.image_path.clone())]
        }
    }

    /// Decides where each session is read from (its tensors when they are all there and
    /// `--from_nifti` is not given, else its CAPS NIfTI image) and checks every file the run
    /// will read: present, readable, of a type that converts to float32, and of the shape the
    /// model expects (after the transforms), or, for elements cut from whole images, of the
    /// `reference` image shape. Only headers are read, on up to `threads` threads. Returns one
    /// problem per faulty file.
    fn check_files(
        &mut self,
        reference: Option<&[usize]>,
        force_nifti: bool,
        threads: usize,
        progress: &dyn CheckProgress,
    ) -> Vec<String> {
        let started = std::time::Instant::now();
        let total = self.sessions.len();
        progress.start(total);
        let this = &*self;
        let outcomes = map_on_pool(threads, total, |index| {
            let outcome = this.check_session(index, reference, force_nifti);
            progress.advance();
            outcome
        });
        progress.finish(total, pool_threads(threads), started.elapsed());
        let mut problems = Vec::new();
        for (session, (from_nifti, found)) in self.sessions.iter_mut().zip(outcomes) {
            session.from_nifti = from_nifti;
            problems.extend(found);
        }
        problems
    }

    /// Where session `index` is read from (`true`: its CAPS NIfTI image) and what is wrong
    /// with the files it reads.
    fn check_session(
        &self,
        index: usize,
        reference: Option<&[usize]>,
        force_nifti: bool,
    ) -> (bool, Vec<String>) {
        let session = &self.sessions[index];
        if session.image_path.as_os_str().is_empty() {
            // Not found: already reported.
            return (false, Vec::new());
        }
        let at = format!("({} | {})", session.participant_id, session.session_id);
        let files = self.tensor_files(index);
        let tensors_there = files.iter().all(|(_, file)| file.is_file());
        match &session.source_nifti {
            Some(image) if force_nifti || !tensors_there => (
                true,
                self.check_image(&at, image, reference)
                    .into_iter()
                    .collect(),
            ),
            None if force_nifti => (
                false,
                vec![format!(
                    "{at}: --from_nifti: no CAPS image matching `{}` under `{}`",
                    self.pattern.pattern,
                    session
                        .caps_root
                        .join("subjects")
                        .join(&session.participant_id)
                        .join(&session.session_id)
                        .display()
                )],
            ),
            _ => (
                false,
                files
                    .iter()
                    .filter_map(|(position, file)| {
                        self.check_tensor(&at, *position, file, reference)
                    })
                    .collect(),
            ),
        }
    }

    /// What is wrong with a session's CAPS NIfTI image, read in place of its tensors.
    fn check_image(&self, at: &str, image: &Path, reference: Option<&[usize]>) -> Option<String> {
        let header = match nifti_image::read_header(image) {
            Ok(header) => header,
            Err(error) => return Some(format!("{at}: {error:#}")),
        };
        let what = format!("the CAPS image `{}`", image.display());
        if self.mode != Mode::Image {
            return self.off_reference(at, &what, &header.shape, " (as a tensor)", reference);
        }
        self.misshaped(at, &what, &header.shape)
    }

    /// What is wrong with one tensor file (the image tensor, or the element at `position`).
    fn check_tensor(
        &self,
        at: &str,
        position: Option<usize>,
        file: &Path,
        reference: Option<&[usize]>,
    ) -> Option<String> {
        if !file.is_file() {
            let hint = if self.extraction.prepare_dl() {
                self.mode.name()
            } else {
                "image"
            };
            return Some(format!(
                "{at}: tensor `{}` does not exist and no CAPS image matching `{}` was found to read instead (run `clinicadl prepare-data {hint}` on this CAPS, or put the image back)",
                file.display(),
                self.pattern.pattern
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
                self.extraction.element_id(position),
                file.display()
            ),
            None => format!("tensor `{}`", file.display()),
        };
        if self.extraction.cuts_images() {
            return self.off_reference(at, &what, &header.shape, "", reference);
        }
        self.misshaped(at, &what, &header.shape)
    }

    /// Whether an image of shape `shape` (`note` saying how it is seen) differs from the
    /// `reference` image that elements are cut from, in words.
    fn off_reference(
        &self,
        at: &str,
        what: &str,
        shape: &[usize],
        note: &str,
        reference: Option<&[usize]>,
    ) -> Option<String> {
        reference
            .filter(|reference| shape != *reference)
            .map(|reference| format!(
                "{at}: {what} has shape {shape:?}{note} but the first session's image has shape {reference:?} ({}s are cut from every image at the same places)",
                self.mode.name()
            ))
    }

    /// Whether an element of shape `shape` misses the model's input shape after the
    /// transforms, in words.
    fn misshaped(&self, at: &str, what: &str, shape: &[usize]) -> Option<String> {
        let transformed = self.transforms.output_shape(shape);
        (transformed != self.element_shape).then(|| {
            format!(
                "{at}: {what} has shape {shape:?}{} but the model expects {:?} (maps.json `input_size`)",
                if transformed == shape {
                    String::new()
                } else {
                    format!(" ({transformed:?} after the transforms)")
                },
                self.element_shape
            )
        })
    }

    /// The dataset of one network of a multi-network MAPS: element `index` of every session.
    pub fn restricted_to(&self, index: usize) -> Dataset {
        Dataset {
            selected: vec![index],
            elements_per_session: 1,
            ..self.clone()
        }
    }

    /// The dataset of some of the sessions (a shard's, or those a resumed run has left).
    pub fn with_sessions(&self, range: std::ops::Range<usize>) -> Dataset {
        Dataset {
            sessions: self.sessions[range].to_vec(),
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
    /// `<mode>_id`, in element order, what the transforms met, and the files read with their
    /// SHA-256 (of the bytes read, not read again).
    pub fn load_session(&self, index: usize) -> Result<LoadedSession> {
        let session = &self.sessions[index];
        let mut read = Vec::new();
        // The whole image, when elements are cut from it (or are it).
        let (mut whole, source) = match (&session.source_nifti, session.from_nifti) {
            (Some(image), true) => {
                let (element, digest) = nifti_image::read_image(image)?;
                read.push((image.clone(), digest));
                (Some(element), image)
            }
            _ if self.extraction.prepare_dl() => (None, &session.image_path),
            _ => {
                let (element, digest) = read_element(&session.image_path)?;
                read.push((session.image_path.clone(), digest));
                (Some(element), &session.image_path)
            }
        };
        let mut notes = Notes::default();
        let mut elements = Vec::with_capacity(self.selected.len());
        for &position in &self.selected {
            let (mut element, source) = match &mut whole {
                // The image itself: moved, not copied.
                Some(_) if self.mode == Mode::Image => (
                    whole.take().context("one image per session")?,
                    source.clone(),
                ),
                Some(image) => (
                    self.extraction.cut(image, position).with_context(|| {
                        format!(
                            "({} | {}): cannot cut {} {} from `{}`",
                            session.participant_id,
                            session.session_id,
                            self.mode.name(),
                            self.extraction.element_id(position),
                            source.display()
                        )
                    })?,
                    source.clone(),
                ),
                None => {
                    let file = self.extraction.element_file(&session.image_path, position);
                    let (element, digest) = read_element(&file)?;
                    read.push((file.clone(), digest));
                    (element, file)
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
        Ok(LoadedSession {
            elements,
            notes,
            read,
        })
    }
}

/// Threads of the pool that searches and checks the sessions' files (given `threads`).
fn pool_threads(threads: usize) -> usize {
    threads.clamp(1, 16)
}

/// `f` of every index below `n`, in order, computed on a pool of [`pool_threads`] threads: the
/// searches and header reads of the sessions' files wait on the file system more than on the
/// CPU. On this thread when no pool can be had.
fn map_on_pool<R: Send>(threads: usize, n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    match rayon::ThreadPoolBuilder::new()
        .num_threads(pool_threads(threads))
        .build()
    {
        Ok(pool) => pool.install(|| (0..n).into_par_iter().map(&f).collect()),
        Err(_) => (0..n).map(f).collect(),
    }
}

/// How many sessions are read from each kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sources {
    /// From prepare-data's `.pt` tensors.
    pub tensors: usize,
    /// From CAPS NIfTI images.
    pub nifti: usize,
}

/// The shape (as a tensor, `[C, X, Y, Z]`) of the first session's image that can be read, from
/// the source it is read from: its image tensor (unless `--from_nifti`), else its CAPS image.
/// `None` when no session has one (only pre-extracted elements).
fn first_image_shape<'a>(
    sessions: impl Iterator<Item = &'a SessionSample>,
    force_nifti: bool,
) -> Result<Option<Vec<usize>>> {
    for session in sessions {
        if !force_nifti && session.image_path.is_file() {
            return Ok(Some(
                crate::torchfile::read_tensor_header(&session.image_path)?.shape,
            ));
        }
        if let Some(image) = &session.source_nifti {
            return Ok(Some(nifti_image::read_header(image)?.shape));
        }
    }
    Ok(None)
}

/// A session read and transformed.
#[derive(Debug)]
pub struct LoadedSession {
    /// Its elements with their `<mode>_id`, in element order.
    pub elements: Vec<(usize, Element)>,
    /// What the transforms met.
    pub notes: Notes,
    /// The files read, with the SHA-256 of their bytes.
    pub read: Vec<(PathBuf, String)>,
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

/// Reads a tensor file as a C-order float32 element, with the SHA-256 of its bytes (read once:
/// the digest costs no second read).
fn read_element(path: &Path) -> Result<(Element, String)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let digest = crate::digest::sha256_hex(&bytes);
    let (header, data) = crate::torchfile::read_tensor_f32_from_bytes(&bytes, path)?;
    check_dtype(path, header.dtype)?;
    Ok((
        Element {
            data,
            shape: header.shape,
        },
        digest,
    ))
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
