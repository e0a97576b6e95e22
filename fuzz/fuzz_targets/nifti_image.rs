//! A CAPS NIfTI image read as the tensor `clinicadl prepare-data` would have made of it
//! (`--from_nifti`, or a session without its tensors): header checks, bounded inflate, every
//! voxel type and byte order, scaling, and the column-major to C-order gather. `.nii` or
//! `.nii.gz` is told apart by the gzip magic, as the file name would.

#![no_main]

use clinicadl_rs::caps::nifti_image::image_from_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let gzip = data.starts_with(&[0x1f, 0x8b]);
    let _ = image_from_bytes(data, gzip, std::path::Path::new("image.nii.gz"));
});
