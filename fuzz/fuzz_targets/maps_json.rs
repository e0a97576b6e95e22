//! `maps.json`: the parse with its legacy renames and defaults, then what the file alone
//! drives before any data is read: the network and its loss (`networks::Model::resolve`), the
//! CAPS file pattern, the ROI list, the transforms, and the extraction of elements from a
//! small image (counts, ids, file names, cuts).

#![no_main]

use std::path::Path;

use clinicadl_rs::caps::elements::Extraction;
use clinicadl_rs::caps::transforms::{Element, Transforms};
use clinicadl_rs::caps::{paths, roi};
use clinicadl_rs::maps::json::parse_maps_json;
use clinicadl_rs::networks;
use clinicadl_rs_fuzz as _;
use libfuzzer_sys::fuzz_target;

/// The image the elements are cut from: `[C, X, Y, Z]`, small.
const IMAGE_SHAPE: [usize; 4] = [1, 9, 10, 11];

fuzz_target!(|data: &[u8]| {
    // `read_maps_json` reads the file as UTF-8 text first.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(maps) = parse_maps_json(text, Path::new("/maps/maps.json")) else {
        return;
    };
    let _ = networks::Model::resolve(&maps);
    let _ = paths::file_pattern(&maps.preprocessing);
    let _ = roi::roi_list(&maps);
    let transforms = Transforms::new(
        maps.normalize,
        maps.size_reduction,
        maps.size_reduction_factor,
    );

    let image = Element {
        data: (0..IMAGE_SHAPE.iter().product::<usize>())
            .map(|v| v as f32)
            .collect(),
        shape: IMAGE_SHAPE.to_vec(),
    };
    let tensor = Path::new(
        "/caps/subjects/sub-01/ses-M000/deeplearning_prepare_data/image_based/t1_linear/sub-01_ses-M000_T1w.pt",
    );
    if let Ok(extraction) = Extraction::from_maps(&maps, None, |_| 2, None) {
        for index in 0..extraction.count().min(8) {
            let _ = extraction.element_id(index);
            let _ = extraction.element_file(tensor, index);
        }
    }
    if let Ok(extraction) = Extraction::from_maps(&maps, Some(&IMAGE_SHAPE), |_| 0, None) {
        let _ = extraction.prepare_dl();
        let _ = extraction.cuts_images();
        for index in 0..extraction.count().min(8) {
            let _ = extraction.element_id(index);
            let _ = extraction.element_file(tensor, index);
            if let Ok(mut element) = extraction.cut(&image, index) {
                assert_eq!(element.data.len(), element.shape.iter().product::<usize>());
                if let Ok(transforms) = &transforms {
                    let shape = transforms.output_shape(&element.shape);
                    let _ = transforms.apply(&mut element);
                    assert_eq!(element.shape, shape, "output_shape disagrees with apply");
                }
            }
        }
    }
});
