//! The save options of reconstruction runs (predict.md §10): `--save_tensor` (`tensors/`),
//! `--save_nifti` (`nifti_images/`) and `--save_latent_tensor` (`latent_tensors/`), written into
//! a result set's folder from the same forward pass as the TSVs.
//!
//! File names are ClinicaDL's, except NIfTI images outside image mode, which carry the element
//! (`<p>_<s>_<mode>-<id>_…`) instead of overwriting one another (predict.md §0.8).

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::caps::dataset::SessionSample;
use crate::caps::paths::FilePattern;
use crate::output::nifti;

/// Which save options are on, and where the files go.
#[derive(Debug, Clone)]
pub struct Saver {
    /// The result set folder (staging).
    pub dir: PathBuf,
    /// `--save_tensor`.
    pub tensor: bool,
    /// `--save_nifti`.
    pub nifti: bool,
    /// `--save_latent_tensor`.
    pub latent: bool,
    /// The element mode name (`image`, `patch`…).
    pub mode: &'static str,
    /// How CAPS NIfTI images are named (for the NIfTI header of `--save_nifti`).
    pub pattern: FilePattern,
}

/// One element's tensors to save.
#[derive(Debug)]
pub struct SavedElement<'a> {
    /// The session.
    pub session: &'a SessionSample,
    /// `<mode>_id`.
    pub element_id: usize,
    /// The transformed input, C order.
    pub input: &'a [f32],
    /// The reconstruction, C order, same shape as the input.
    pub output: &'a [f32],
    /// Shape of one element (`[C, …]`).
    pub shape: &'a [usize],
    /// The latent vector (VAEs).
    pub latent: Option<&'a [f32]>,
}

impl Saver {
    /// Whether anything is saved.
    pub fn any(&self) -> bool {
        self.tensor || self.nifti || self.latent
    }

    fn folder(&self, name: &str) -> Result<PathBuf> {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        Ok(dir)
    }

    /// Writes the files of one element.
    pub fn save(&self, e: &SavedElement) -> Result<()> {
        let names = SavedNames::new(
            self.mode,
            &e.session.participant_id,
            &e.session.session_id,
            e.element_id,
        );
        if self.tensor {
            self.folder("tensors")?;
            for (name, data) in [
                (&names.tensor_input, e.input),
                (&names.tensor_output, e.output),
            ] {
                crate::torchfile::write_tensor(&self.dir.join(name), e.shape, data, false)?;
            }
        }
        if self.nifti {
            self.folder("nifti_images")?;
            let header = match (self.mode, e.session.source_nifti(&self.pattern)) {
                ("image", Some(source)) => nifti::source_header(&source)?,
                _ => nifti::identity_header(),
            };
            for (name, data) in [
                (&names.nifti_input, e.input),
                (&names.nifti_output, e.output),
            ] {
                nifti::write_element(&self.dir.join(name), data, e.shape, &header)?;
            }
        }
        if let (true, Some(latent)) = (self.latent, e.latent) {
            self.folder("latent_tensors")?;
            crate::torchfile::write_tensor(
                &self.dir.join(&names.latent),
                &[latent.len()],
                latent,
                true,
            )?;
        }
        Ok(())
    }
}

/// The files the save options write for one element, relative to its results folder.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedNames {
    /// `tensors/<p>_<s>_<mode>-<id>_input.pt`.
    pub tensor_input: String,
    /// `tensors/<p>_<s>_<mode>-<id>_output.pt`.
    pub tensor_output: String,
    /// `nifti_images/<p>_<s>_image_input.nii.gz` (other modes: `<p>_<s>_<mode>-<id>_input.nii.gz`).
    pub nifti_input: String,
    /// The NIfTI output, named likewise.
    pub nifti_output: String,
    /// `latent_tensors/<p>_<s>_<mode>-<id>_latent.pt`.
    pub latent: String,
}

impl SavedNames {
    /// The names for element `element_id` of a session, in `mode`.
    pub fn new(mode: &str, participant: &str, session: &str, element_id: usize) -> Self {
        let stem = format!("{participant}_{session}");
        let element = format!("{stem}_{mode}-{element_id}");
        let nifti = if mode == "image" {
            format!("{stem}_image")
        } else {
            element.clone()
        };
        SavedNames {
            tensor_input: format!("tensors/{element}_input.pt"),
            tensor_output: format!("tensors/{element}_output.pt"),
            nifti_input: format!("nifti_images/{nifti}_input.nii.gz"),
            nifti_output: format!("nifti_images/{nifti}_output.nii.gz"),
            latent: format!("latent_tensors/{element}_latent.pt"),
        }
    }
}
