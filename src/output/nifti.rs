//! NIfTI writer of `--save_nifti` (docs/ARCHITECTURE.md, "Save options"): channel 0 of an element
//! as a gzipped single-file NIfTI-1 float32 volume, first axis fastest. Unlike ClinicaDL 1.6.1,
//! which always writes an identity affine, the header (affine, voxel sizes, units) is copied from
//! the session's CAPS NIfTI image when there is one, so that the saved image stays in the image's
//! space; without a source image the header is ClinicaDL's (identity, sform aligned).

use std::path::Path;

use anyhow::{Context, Result, bail};
use nifti::writer::WriterOptions;
use nifti::{NiftiHeader, NiftiType};

/// ClinicaDL's header: identity affine, `qform_code` 0, `sform_code` 2, unit voxels.
pub fn identity_header() -> NiftiHeader {
    NiftiHeader {
        qform_code: 0,
        sform_code: 2,
        pixdim: [1.0; 8],
        ..NiftiHeader::default()
    }
}

/// The header of a CAPS source image, made fit for a float32 copy (no scaling, no display range).
pub fn source_header(path: &Path) -> Result<NiftiHeader> {
    let header = NiftiHeader::from_file(path)
        .with_context(|| format!("cannot read the NIfTI header of `{}`", path.display()))?;
    Ok(NiftiHeader {
        cal_min: 0.0,
        cal_max: 0.0,
        glmin: 0,
        glmax: 0,
        intent_code: 0,
        descrip: b"clinicadl-rs predict --save_nifti"
            .iter()
            .copied()
            .chain(std::iter::repeat(0))
            .take(80)
            .collect(),
        ..header
    })
}

/// Writes channel 0 of a C-order element (`[C, X, Y, Z]` or `[C, A, B]`) to `path` (`.nii.gz`),
/// atomically (a temporary file in the same folder, then a rename).
pub fn write_element(
    path: &Path,
    data: &[f32],
    shape: &[usize],
    header: &NiftiHeader,
) -> Result<()> {
    let spatial = shape.get(1..).unwrap_or(&[]);
    let count: usize = spatial.iter().product();
    if spatial.is_empty() || data.len() < count {
        bail!("cannot save an element of shape {shape:?} as NIfTI");
    }
    let volume = ndarray::ArrayView::from_shape(ndarray::IxDyn(spatial), &data[..count])
        .context("element shape does not match its data")?;
    let dir = path.parent().context("a NIfTI path has no folder")?;
    let temporary = tempfile::Builder::new()
        .prefix(".partial-")
        .suffix(".nii.gz")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in `{}`", dir.display()))?;
    WriterOptions::new(temporary.path())
        .reference_header(header)
        .write_nifti_with_type(&volume, NiftiType::Float32)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    temporary
        .persist(path)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_voxel_order_and_header() {
        let d = tempfile::tempdir().unwrap();
        let (x, y, z) = (3usize, 4usize, 5usize);
        let data: Vec<f32> = (0..x * y * z).map(|v| v as f32).collect();
        let mut header = identity_header();
        header.srow_x = [2.0, 0.0, 0.0, -10.0];
        header.pixdim = [1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let path = d.path().join("a_image_output.nii.gz");
        write_element(&path, &data, &[1, x, y, z], &header).unwrap();
        let object = nifti::ReaderOptions::new().read_file(&path).unwrap();
        use nifti::{IntoNdArray, NiftiObject};
        let h = object.header().clone();
        assert_eq!(h.dim[..4], [3, 3, 4, 5]);
        assert_eq!(h.datatype, NiftiType::Float32 as i16);
        assert_eq!(h.srow_x, [2.0, 0.0, 0.0, -10.0]);
        assert_eq!((h.scl_slope, h.scl_inter), (1.0, 0.0));
        let volume = object.into_volume().into_ndarray::<f32>().unwrap();
        // voxel (i, j, k) = element [0, i, j, k]
        assert_eq!(volume[[2, 1, 3]], ((2 * y + 1) * z + 3) as f32);
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left");
    }
}
