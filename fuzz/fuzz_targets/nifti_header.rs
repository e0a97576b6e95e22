//! The header of a CAPS NIfTI image (`.nii` or `.nii.gz`, told apart by the gzip magic as
//! the file name would), read by `source_header` for `--save_nifti`, then an element written
//! with it (both through scratch files: these functions take paths).

#![no_main]

use clinicadl_rs::output::nifti::{source_header, write_element};
use clinicadl_rs_fuzz::{scratch_dir, scratch_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let name = if data.starts_with(&[0x1f, 0x8b]) {
        "image.nii.gz"
    } else {
        "image.nii"
    };
    let path = scratch_file(name, data);
    let Ok(header) = source_header(&path) else {
        return;
    };
    let values: Vec<f32> = (0..24).map(|v| v as f32).collect();
    let _ = write_element(
        &scratch_dir().join("output.nii.gz"),
        &values,
        &[1, 2, 3, 4],
        &header,
    );
});
