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
    /// every pre-extracted element) found. Every problem is reported at once.
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
        let extraction = match sessions.first() {
            Some(first) if problems.is_empty() => {
                // Patch and slice counts come from the first image's size (image mode needs none).
                let needs_shape = matches!(maps.mode, Mode::Patch | Mode::Slice);
                let image_shape = if needs_shape && first.image_path.is_file() {
                    Some(crate::torchfile::read_tensor(&first.image_path)?.shape)
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
        if problems.is_empty() {
            for session in &sessions {
                let files: Vec<PathBuf> = if extraction.prepare_dl() {
                    selected
                        .iter()
                        .map(|&i| extraction.element_file(&session.image_path, i))
                        .collect()
                } else {
                    vec![session.image_path.clone()]
                };
                let hint = if extraction.prepare_dl() {
                    maps.mode.name()
                } else {
                    "image"
                };
                for file in files.iter().filter(|f| !f.is_file()) {
                    problems.push(format!(
                        "({} | {}): tensor `{}` does not exist (run `clinicadl prepare-data {hint}` on this CAPS)",
                        session.participant_id,
                        session.session_id,
                        file.display()
                    ));
                }
            }
        }
        if !problems.is_empty() {
            let n = problems.len();
            bail!(
                "{n} problem(s) with the sessions of `{}` (CAPS `{}`):\n  * {}",
                data_path.display(),
                caps.iter()
                    .map(|(_, p)| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join("`, `"),
                problems.join("\n  * ")
            );
        }
        if sessions.is_empty() {
            bail!("the data group `{}` has no session", data_path.display());
        }
        let transforms = Transforms::new(
            maps.normalize,
            maps.size_reduction,
            maps.size_reduction_factor,
        )?;
        Ok(Dataset {
            sessions,
            mode: maps.mode,
            elements_per_session: selected.len(),
            extraction,
            selected,
            element_shape: maps.input_size.clone(),
            transforms,
            pattern,
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

/// Reads a tensor file as a C-order float32 element.
fn read_element(path: &Path) -> Result<Element> {
    use crate::torchfile::DType;
    let tensor = crate::torchfile::read_tensor(path)?;
    if !matches!(
        tensor.dtype,
        DType::F16 | DType::BF16 | DType::F32 | DType::F64
    ) {
        bail!(
            "the tensor `{}` holds {} values; CAPS tensors are floating-point images (re-run `clinicadl prepare-data`)",
            path.display(),
            tensor.dtype.name()
        );
    }
    let data = tensor
        .to_f32_vec()
        .with_context(|| format!("cannot decode the tensor `{}`", path.display()))?;
    Ok(Element {
        data,
        shape: tensor.shape.clone(),
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
