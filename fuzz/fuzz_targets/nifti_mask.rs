//! An ROI mask of the CAPS `masks/` folder (`.nii` or `.nii.gz`, by the gzip magic), read
//! whole by `load_rois` from a scratch CAPS (it reads a folder), then an ROI cut out of an
//! image of the mask's shape with it, and the ROI's pre-extracted file name.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clinicadl_rs::caps::roi::load_rois;
use clinicadl_rs::caps::transforms::Element;
use clinicadl_rs::maps::json::{MapsJson, parse_maps_json};
use clinicadl_rs_fuzz::scratch_file;
use libfuzzer_sys::fuzz_target;

/// An ROI-mode `maps.json` with one ROI, `x`.
const MAPS_JSON: &str = r#"{
    "architecture": "Conv4_FC3", "network_task": "classification", "mode": "roi",
    "label_code": {"AD": 0, "CN": 1}, "output_size": 2, "input_size": [1, 4, 4, 4],
    "preprocessing_dict": {"preprocessing": "t1-linear", "mode": "roi", "prepare_dl": false,
                           "roi_list": ["x"], "uncropped_roi": false}
}"#;

/// The mask's file name in `masks/tpl-MNI152NLin2009cSym/` (without `.nii` / `.nii.gz`).
const MASK: &str = "tpl-MNI152NLin2009cSym_desc-Crop_res-1x1x1_roi-x_mask";

fn maps() -> &'static MapsJson {
    static MAPS: OnceLock<MapsJson> = OnceLock::new();
    MAPS.get_or_init(|| {
        parse_maps_json(MAPS_JSON, Path::new("maps.json")).expect("valid maps.json")
    })
}

fuzz_target!(|data: &[u8]| {
    // One CAPS per extension, so that each holds a single mask.
    let (caps, extension) = if data.starts_with(&[0x1f, 0x8b]) {
        ("caps-gz", "nii.gz")
    } else {
        ("caps-plain", "nii")
    };
    let mask = scratch_file(
        &format!("{caps}/masks/tpl-MNI152NLin2009cSym/{MASK}.{extension}"),
        data,
    );
    let caps: PathBuf = mask.ancestors().nth(3).expect("the CAPS folder").to_owned();
    let Ok(rois) = load_rois(maps(), &caps) else {
        return;
    };
    let [x, y, z] = rois.masks[0].shape;
    assert_eq!(rois.masks[0].values.len(), x * y * z);
    if x * y * z <= 1 << 16 {
        let image = Element {
            data: vec![1.0; x * y * z],
            shape: vec![1, x, y, z],
        };
        let element = rois
            .cut(&image, 0)
            .expect("an image of the mask's shape cuts");
        assert_eq!(element.data.len(), element.shape.iter().product::<usize>());
    }
    let _ = rois.element_file(
        Path::new("/caps/subjects/sub-01/ses-M000/deeplearning_prepare_data/image_based/t1_linear/sub-01_ses-M000_T1w.pt"),
        0,
    );
});
