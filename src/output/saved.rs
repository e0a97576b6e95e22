//! The save options of reconstruction runs: `--save_tensor` (`tensors/`), `--save_nifti`
//! (`nifti_images/`) and `--save_latent_tensor` (`latent_tensors/`), written into a result set's
//! folder from the same forward pass as the TSVs: the engine hands every finished element to a
//! [`Saver`]. Names come from `plan::SavedNames`; a NIfTI image takes the header of the session's
//! CAPS image, which the dataset found (nothing is searched here).
//!
//! ClinicaDL: `MapsManager._compute_output_tensors`, `_compute_output_nifti` and
//! `_compute_latent_tensors`.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::config::SaveOptions;
use crate::maps::json::Mode;
use crate::output::nifti;
use crate::plan::SavedNames;
use crate::predict::engine::{ElementSink, FinishedElement};

/// Writes the save options' files of the elements of one result set.
#[derive(Debug, Clone)]
pub struct Saver {
    /// The result set folder (staging).
    pub dir: PathBuf,
    /// What to save.
    pub save: SaveOptions,
    /// The element mode.
    pub mode: Mode,
}

impl Saver {
    fn folder(&self, name: &str) -> Result<PathBuf> {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        Ok(dir)
    }
}

impl ElementSink for Saver {
    fn wants_latent(&self) -> bool {
        self.save.latent
    }

    /// Writes the files of one element.
    fn element(&mut self, e: &FinishedElement<'_>) -> Result<()> {
        let names = SavedNames::new(
            self.mode,
            &e.session.participant_id,
            &e.session.session_id,
            e.element_id,
        );
        if self.save.tensor {
            self.folder("tensors")?;
            for (name, data) in [
                (&names.tensor_input, e.input),
                (&names.tensor_output, e.output),
            ] {
                crate::torchfile::write_tensor(&self.dir.join(name), e.shape, data, false)?;
            }
        }
        if self.save.nifti {
            self.folder("nifti_images")?;
            let header = match (self.mode, &e.session.source_nifti) {
                (Mode::Image, Some(source)) => nifti::source_header(source)?,
                _ => nifti::identity_header(),
            };
            for (name, data) in [
                (&names.nifti_input, e.input),
                (&names.nifti_output, e.output),
            ] {
                nifti::write_element(&self.dir.join(name), data, e.shape, &header)?;
            }
        }
        if let (true, Some(latent)) = (self.save.latent, e.latent) {
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
