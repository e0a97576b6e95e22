//! Regions of interest (predict.md §6.5): finding each ROI's mask in the CAPS `masks/` folder,
//! reading it, cutting a region out of an image (mask product, then a crop to the planes the
//! mask touches), and the file names of pre-extracted ROIs.
//!
//! ClinicaDL: `CapsDatasetRoi` (`_get_roi_paths`, `_get_mask_paths_and_tensors`) and
//! `extract_roi_tensor` / `extract_roi_path` (`clinicadl.prepare_data.prepare_data_utils`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::transforms::Element;
use crate::maps::json::MapsJson;

/// One ROI mask, read.
#[derive(Debug, Clone, PartialEq)]
pub struct RoiMask {
    /// The ROI name (an entry of `roi_list`).
    pub name: String,
    /// The mask file.
    pub path: PathBuf,
    /// Mask values, C order `[X, Y, Z]`, float64.
    pub values: Vec<f64>,
    /// `[X, Y, Z]`.
    pub shape: [usize; 3],
    /// Per axis, the indices of the planes holding a non-zero voxel (the cropped region).
    pub keep: [Vec<usize>; 3],
}

/// The ROI settings of `maps.json` with their masks.
#[derive(Debug, Clone, PartialEq)]
pub struct Rois {
    /// Masks in `roi_list` order: those predict finds (with `_desc-Crop_`), which cut ROIs on
    /// the fly and name pre-extracted ones.
    pub masks: Vec<RoiMask>,
    /// Crop to the mask's planes (`uncropped_roi` false).
    pub crop: bool,
    /// The masks `clinicadl prepare-data` cut pre-extracted ROIs of uncropped images with (it
    /// takes masks *without* `_desc-Crop_` then), to cut them the same way from a CAPS image;
    /// `None` when they are [`Rois::masks`]; what is missing when they cannot be found.
    pub prepare_data_masks: Option<Result<Vec<RoiMask>, String>>,
}

/// `roi_list` of `preprocessing_dict`.
pub fn roi_list(maps: &MapsJson) -> Result<Vec<String>> {
    match maps.preprocessing.raw.get("roi_list") {
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .context("maps.json `roi_list` must be a list of ROI names")
            })
            .collect(),
        _ => bail!(
            "Default regions are not available anymore in ClinicaDL. Please define appropriate masks and give a roi_list (maps.json `preprocessing_dict.roi_list` is empty)."
        ),
    }
}

/// Where the masks are and how their names look: (`masks/tpl-<template>`, pattern).
fn mask_location(maps: &MapsJson, caps: &Path) -> Result<(PathBuf, String)> {
    let dict = &maps.preprocessing.raw;
    let text = |k: &str| {
        dict.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (template, pattern) = match maps.preprocessing.preprocessing.as_str() {
        "t1-linear" | "pet-linear" | "flair-linear" => ("MNI152NLin2009cSym".to_owned(), "res-1x1x1".to_owned()),
        "custom" => (
            text("roi_custom_template").context("Please provide a name for the template when preprocessing is `custom` (maps.json `roi_custom_template`).")?,
            text("roi_custom_mask_pattern").context("Please provide a pattern for the masks when preprocessing is `custom` (maps.json `roi_custom_mask_pattern`).")?,
        ),
        other => bail!("Template of preprocessing {other} is not defined."),
    };
    Ok((caps.join("masks").join(format!("tpl-{template}")), pattern))
}

/// Checks a mask's header before its volume is read, refusing what the nifti crate would trust
/// too far: a `bitpix` that disagrees with the datatype (the crate then panics decoding it) and
/// a volume larger than the whole file once decompressed (the crate reserves what the header
/// claims before reading).
fn check_mask_header(path: &Path) -> Result<()> {
    let unreadable = || format!("cannot read the ROI mask `{}`", path.display());
    let header = nifti::NiftiHeader::from_file(path).with_context(unreadable)?;
    let datatype = header.data_type().with_context(unreadable)?;
    let voxel_bytes = datatype.size_of();
    if usize::try_from(header.bitpix).ok() != Some(8 * voxel_bytes) {
        bail!(
            "the ROI mask `{}` is damaged: its header says {} bits per voxel, but its datatype {datatype:?} has {}",
            path.display(),
            header.bitpix,
            8 * voxel_bytes
        );
    }
    let dims = header.dim().with_context(unreadable)?;
    let too_large = |held: String| {
        anyhow::anyhow!(
            "the ROI mask `{}` is damaged: its header describes a {dims:?} volume of {datatype:?}, larger than the whole file ({held})",
            path.display()
        )
    };
    let claimed = dims
        .iter()
        .try_fold(voxel_bytes, |bytes, &size| {
            bytes.checked_mul(usize::from(size))
        })
        .and_then(|bytes| u64::try_from(bytes).ok())
        .ok_or_else(|| too_large("more bytes than memory can address".to_owned()))?;
    // The file's size, decompressed as the nifti crate does it (by the name's `.gz`) and only
    // as far as the volume's size, which it must reach (the header comes on top).
    let file = std::fs::File::open(path).with_context(unreadable)?;
    let held = if path.to_string_lossy().ends_with(".gz") {
        let decoder = flate2::bufread::GzDecoder::new(std::io::BufReader::new(file));
        std::io::copy(
            &mut std::io::Read::take(decoder, claimed),
            &mut std::io::sink(),
        )
    } else {
        file.metadata().map(|metadata| metadata.len())
    }
    .with_context(unreadable)?;
    if held < claimed {
        return Err(too_large(format!("{held} bytes")));
    }
    Ok(())
}

/// Reads a mask as float64 `[X, Y, Z]` (C order) with its cropped region.
fn read_mask(name: &str, path: &Path) -> Result<RoiMask> {
    use nifti::{IntoNdArray, NiftiObject};
    check_mask_header(path)?;
    let object = nifti::ReaderOptions::new()
        .read_file(path)
        .with_context(|| format!("cannot read the ROI mask `{}`", path.display()))?;
    let volume = object
        .into_volume()
        .into_ndarray::<f64>()
        .with_context(|| format!("cannot decode the ROI mask `{}`", path.display()))?;
    let dims = volume.shape().to_vec();
    let shape = match dims.as_slice() {
        [x, y, z] => [*x, *y, *z],
        [1, x, y, z] => [*x, *y, *z],
        other => bail!(
            "the ROI mask `{}` has shape {other:?}, expected a 3D volume",
            path.display()
        ),
    };
    let volume = if dims.len() == 4 {
        volume.index_axis_move(ndarray::Axis(0), 0)
    } else {
        volume
    };
    let values: Vec<f64> = volume.iter().copied().collect();
    // `iter()` walks the logical order (C order over [X, Y, Z]) whatever the memory layout.
    let mut keep: [Vec<usize>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for (axis, kept) in keep.iter_mut().enumerate() {
        for plane in 0..shape[axis] {
            let any = volume
                .index_axis(ndarray::Axis(axis), plane)
                .iter()
                .any(|&v| v != 0.0);
            if any {
                kept.push(plane);
            }
        }
    }
    if keep.iter().any(Vec::is_empty) {
        bail!(
            "the ROI mask `{}` is empty (no non-zero voxel)",
            path.display()
        );
    }
    Ok(RoiMask {
        name: name.to_owned(),
        path: path.to_owned(),
        values,
        shape,
        keep,
    })
}

/// Finds and reads the mask of every ROI of `maps.json` in the CAPS `caps`: predict's masks
/// (with `_desc-Crop_`, whatever the images), and for pre-extracted ROIs of uncropped images
/// the masks prepare-data cut them with (without `_desc-Crop_`).
pub fn load_rois(maps: &MapsJson, caps: &Path) -> Result<Rois> {
    let (folder, pattern) = mask_location(maps, caps)?;
    let entries: Vec<String> = std::fs::read_dir(&folder)
        .with_context(|| format!("cannot read the ROI mask folder `{}`", folder.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let names = roi_list(maps)?;
    let masks = find_masks(&folder, &entries, &pattern, &names, true)?;
    let pre = &maps.preprocessing;
    let prepare_data_masks = (pre.prepare_dl && pre.use_uncropped_image).then(|| {
        find_masks(&folder, &entries, &pattern, &names, false).map_err(|e| format!("{e:#}"))
    });
    let uncropped = maps
        .preprocessing
        .raw
        .get("uncropped_roi")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Rois {
        masks,
        crop: !uncropped,
        prepare_data_masks,
    })
}

/// The mask of each ROI of `names` in `folder` (whose file names are `entries`): the smallest
/// name matching `*<pattern>*_roi-<name>_mask.nii*` that contains `_desc-Crop_` (`crop`) or
/// does not (prepare-data's `find_mask_path` with an uncropped input).
fn find_masks(
    folder: &Path,
    entries: &[String],
    pattern: &str,
    names: &[String],
    crop: bool,
) -> Result<Vec<RoiMask>> {
    let mut masks = Vec::new();
    for name in names {
        let suffix = format!("_roi-{name}_mask.nii");
        let mut candidates: Vec<&String> = entries
            .iter()
            .filter(|f| {
                f.contains("_desc-Crop_") == crop
                    && f.find(pattern)
                        .zip(f.rfind(&suffix))
                        .is_some_and(|(p, s)| p < s)
                    && f.rfind(&suffix)
                        .is_some_and(|s| !f[s + suffix.len()..].contains('/'))
            })
            .collect();
        candidates.sort();
        let Some(file) = candidates.first() else {
            bail!(
                "The mask should follow the pattern *{pattern}*_roi-{name}_mask.nii*. and {} '_desc-Crop_' string: none found in `{}`",
                if crop { "contain" } else { "not contain" },
                folder.display()
            );
        };
        masks.push(read_mask(name, &folder.join(file))?);
    }
    Ok(masks)
}

impl Rois {
    /// Cuts ROI `index` out of an image `[C, X, Y, Z]`: image × mask (computed in float64, cast
    /// back to float32), cropped to the mask's planes unless `uncropped_roi`.
    pub fn cut(&self, image: &Element, index: usize) -> Result<Element> {
        let masks = match &self.prepare_data_masks {
            None => &self.masks,
            Some(Ok(masks)) => masks,
            Some(Err(missing)) => bail!(
                "the pre-extracted ROIs of uncropped images were cut by prepare-data with masks without '_desc-Crop_', which are needed to cut them from the CAPS image: {missing}"
            ),
        };
        let mask = masks.get(index).context("ROI index out of range")?;
        let [c, x, y, z] = match image.shape.as_slice() {
            [c, x, y, z] => [*c, *x, *y, *z],
            other => bail!("the image tensor has shape {other:?}, expected [C, X, Y, Z]"),
        };
        if [x, y, z] != mask.shape {
            bail!(
                "the ROI mask `{}` has shape {:?} but the image has {:?}",
                mask.path.display(),
                mask.shape,
                [x, y, z]
            );
        }
        let full: [Vec<usize>; 3] = [(0..x).collect(), (0..y).collect(), (0..z).collect()];
        let keep = if self.crop { &mask.keep } else { &full };
        let mut data = Vec::with_capacity(c * keep[0].len() * keep[1].len() * keep[2].len());
        for ch in 0..c {
            for &i in &keep[0] {
                for &j in &keep[1] {
                    for &k in &keep[2] {
                        let voxel = (i * y + j) * z + k;
                        data.push(
                            (f64::from(image.data[ch * x * y * z + voxel]) * mask.values[voxel])
                                as f32,
                        );
                    }
                }
            }
        }
        Ok(Element {
            data,
            shape: vec![c, keep[0].len(), keep[1].len(), keep[2].len()],
        })
    }

    /// The pre-extracted file of ROI `index` for the session whose image tensor is `image`.
    pub fn element_file(&self, image: &Path, index: usize) -> PathBuf {
        let dir = image
            .parent()
            .map(|p| PathBuf::from(p.to_string_lossy().replace("image_based", "roi_based")))
            .unwrap_or_default();
        let name = image
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parts: Vec<&str> = name.split('_').collect();
        let prefix = if parts.len() > 2 && parts[..3].join("_").ends_with("_T1w") {
            parts[..3].join("_")
        } else {
            parts[..parts.len().min(2)].join("_")
        };
        let input_suffix = parts
            .last()
            .map(|p| p.split('.').next().unwrap_or(p))
            .unwrap_or("");
        let pattern = self
            .masks
            .get(index)
            .map(|m| output_pattern(m, self.crop))
            .unwrap_or_default();
        dir.join(format!("{prefix}_{pattern}_{input_suffix}.pt"))
    }
}

/// `space-<tpl>_<descriptors>_roi-<r>` from the mask name (predict.md §6.5).
fn output_pattern(mask: &RoiMask, crop: bool) -> String {
    let file = mask
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parts: Vec<&str> = file.split('_').collect();
    let template = parts
        .first()
        .and_then(|p| p.strip_prefix("tpl-"))
        .unwrap_or("");
    let mut descriptors: Vec<String> = if parts.len() > 3 {
        parts[1..parts.len() - 2]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    } else {
        Vec::new()
    };
    let had_crop = descriptors.iter().any(|d| d == "desc-Crop");
    descriptors.retain(|d| d != "desc-Crop");
    if had_crop {
        descriptors.insert(
            0,
            if crop {
                "desc-CropRoi"
            } else {
                "desc-CropImage"
            }
            .to_owned(),
        );
    } else if crop {
        descriptors.insert(0, "desc-CropRoi".to_owned());
    }
    if descriptors.is_empty() {
        format!("space-{template}_roi-{}", mask.name)
    } else {
        format!(
            "space-{template}_{}_roi-{}",
            descriptors.join("_"),
            mask.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(name: &str, file: &str) -> RoiMask {
        RoiMask {
            name: name.into(),
            path: PathBuf::from(file),
            values: Vec::new(),
            shape: [0; 3],
            keep: Default::default(),
        }
    }

    #[test]
    fn pre_extracted_names_follow_clinicadl() {
        let rois = Rois {
            masks: vec![mask(
                "boxA",
                "/m/tpl-MNI152NLin2009cSym_desc-Crop_res-1x1x1_roi-boxA_mask.nii.gz",
            )],
            crop: true,
            prepare_data_masks: None,
        };
        let image = Path::new(
            "/c/s/deeplearning_prepare_data/image_based/t1_linear/sub-00_ses-M000_T1w_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt",
        );
        assert_eq!(
            rois.element_file(image, 0),
            Path::new(
                "/c/s/deeplearning_prepare_data/roi_based/t1_linear/sub-00_ses-M000_T1w_space-MNI152NLin2009cSym_desc-CropRoi_res-1x1x1_roi-boxA_T1w.pt"
            )
        );
        let image = Path::new(
            "/c/image_based/t1_linear/sub-00_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt",
        );
        assert!(rois.element_file(image, 0).ends_with("roi_based/t1_linear/sub-00_ses-M000_space-MNI152NLin2009cSym_desc-CropRoi_res-1x1x1_roi-boxA_T1w.pt"));
        let uncropped = Rois {
            crop: false,
            ..rois
        };
        assert!(
            uncropped
                .element_file(image, 0)
                .to_string_lossy()
                .contains("_desc-CropImage_res-1x1x1_roi-boxA_")
        );
    }

    #[test]
    fn cut_multiplies_and_crops_to_the_mask_planes() {
        let (x, y, z) = (3usize, 4usize, 5usize);
        let mut values = vec![0.0; x * y * z];
        // two voxels: (1, 1, 2) and (1, 3, 2) → planes x {1}, y {1, 3} (2 removed: separated parts), z {2}
        values[(y + 1) * z + 2] = 1.0;
        values[(y + 3) * z + 2] = 0.5;
        let m = RoiMask {
            name: "a".into(),
            path: PathBuf::from("m"),
            values,
            shape: [x, y, z],
            keep: [vec![1], vec![1, 3], vec![2]],
        };
        let image = Element {
            data: (0..x * y * z).map(|v| v as f32).collect(),
            shape: vec![1, x, y, z],
        };
        let rois = Rois {
            masks: vec![m],
            crop: true,
            prepare_data_masks: None,
        };
        let e = rois.cut(&image, 0).unwrap();
        assert_eq!(e.shape, [1, 1, 2, 1]);
        assert_eq!(
            e.data,
            vec![((y + 1) * z + 2) as f32, ((y + 3) * z + 2) as f32 * 0.5]
        );
        let full = Rois {
            crop: false,
            ..rois
        }
        .cut(&image, 0)
        .unwrap();
        assert_eq!(full.shape, [1, 3, 4, 5]);
    }

    #[test]
    fn masks_are_found_and_read_in_voxel_order() {
        let d = tempfile::tempdir().unwrap();
        let folder = d.path().join("masks/tpl-MNI152NLin2009cSym");
        std::fs::create_dir_all(&folder).unwrap();
        let (x, y, z) = (4usize, 5usize, 6usize);
        let mut data = vec![0.0f32; x * y * z];
        data[(2 * y + 1) * z + 3] = 1.0; // voxel (2, 1, 3)
        data[(3 * y + 1) * z + 4] = 1.0; // voxel (3, 1, 4)
        let header = crate::output::nifti::identity_header();
        let file = folder.join("tpl-MNI152NLin2009cSym_desc-Crop_res-1x1x1_roi-left_mask.nii.gz");
        crate::output::nifti::write_element(&file, &data, &[1, x, y, z], &header).unwrap();
        // A decoy without `_desc-Crop_` is ignored.
        std::fs::copy(
            &file,
            folder.join("tpl-MNI152NLin2009cSym_res-1x1x1_roi-left_mask.nii.gz"),
        )
        .unwrap();
        let maps = crate::maps::json::parse_maps_json(
            &serde_json::json!({"network_task": "classification", "mode": "roi", "label_code": {}, "output_size": 2,
                "input_size": [1, 2, 1, 2], "architecture": "Conv5_FC3",
                "preprocessing_dict": {"preprocessing": "t1-linear", "mode": "roi", "roi_list": ["left"], "prepare_dl": false}})
            .to_string(),
            Path::new("m.json"),
        )
        .unwrap();
        let rois = load_rois(&maps, d.path()).unwrap();
        let m = &rois.masks[0];
        assert_eq!(m.path, file);
        assert_eq!(m.shape, [x, y, z]);
        assert_eq!(m.keep, [vec![2, 3], vec![1], vec![3, 4]]);
        assert_eq!(m.values[(2 * y + 1) * z + 3], 1.0);
        assert_eq!(rois.prepare_data_masks, None);
        // Pre-extracted ROIs of uncropped images: prepare-data cut them with the mask without
        // `_desc-Crop_` (here of another size), which cuts them from the image; the names still
        // come from predict's mask.
        let uncropped_mask = folder.join("tpl-MNI152NLin2009cSym_res-1x1x1_roi-left_mask.nii.gz");
        let mut bigger = vec![0.0f32; (x + 1) * y * z];
        bigger[(4 * y + 2) * z + 1] = 1.0; // voxel (4, 2, 1)
        crate::output::nifti::write_element(&uncropped_mask, &bigger, &[1, x + 1, y, z], &header)
            .unwrap();
        let mut pre_extracted = maps.clone();
        pre_extracted.preprocessing.prepare_dl = true;
        pre_extracted.preprocessing.use_uncropped_image = true;
        let rois = load_rois(&pre_extracted, d.path()).unwrap();
        assert_eq!(rois.masks[0].path, file);
        let Some(Ok(cut_masks)) = &rois.prepare_data_masks else {
            panic!("{:?}", rois.prepare_data_masks)
        };
        assert_eq!(cut_masks[0].path, uncropped_mask);
        let image = Element {
            data: (0..(x + 1) * y * z).map(|v| v as f32).collect(),
            shape: vec![1, x + 1, y, z],
        };
        let cut = rois.cut(&image, 0).unwrap();
        assert_eq!(
            (cut.shape, cut.data),
            (vec![1, 1, 1, 1], vec![((4 * y + 2) * z + 1) as f32])
        );
        std::fs::remove_file(&uncropped_mask).unwrap();
        let rois = load_rois(&pre_extracted, d.path()).unwrap();
        let message = rois.cut(&image, 0).unwrap_err().to_string();
        assert!(
            message.contains("masks without '_desc-Crop_'") && message.contains("not contain"),
            "{message}"
        );
        let mut missing = maps.clone();
        missing
            .preprocessing
            .raw
            .insert("roi_list".into(), serde_json::json!(["right"]));
        assert!(
            load_rois(&missing, d.path())
                .unwrap_err()
                .to_string()
                .contains("_roi-right_mask.nii")
        );
    }

    /// Found by the `nifti_mask` fuzz target: a mask whose `bitpix` disagrees with its
    /// datatype made the nifti crate panic. Its reader also reserves whatever volume the
    /// header claims before reading (up to terabytes for a tiny file). Both are refused first.
    #[test]
    fn damaged_mask_headers_are_refused_before_reading() {
        use std::io::Read;
        let d = tempfile::tempdir().unwrap();
        let written = d.path().join("written.nii.gz");
        let header = crate::output::nifti::identity_header();
        crate::output::nifti::write_element(&written, &[1.0; 24], &[1, 2, 3, 4], &header).unwrap();
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&written).unwrap())
            .read_to_end(&mut bytes)
            .unwrap();
        let mask = d.path().join("mask.nii");
        std::fs::write(&mask, &bytes).unwrap();
        assert_eq!(read_mask("x", &mask).unwrap().shape, [2, 3, 4]);

        let mut wrong_bitpix = bytes.clone();
        wrong_bitpix[72..74].copy_from_slice(&8i16.to_le_bytes());
        std::fs::write(&mask, &wrong_bitpix).unwrap();
        let message = read_mask("x", &mask).unwrap_err().to_string();
        assert!(
            message.contains(
                "is damaged: its header says 8 bits per voxel, but its datatype Float32 has 32"
            ),
            "{message}"
        );

        let mut huge = bytes;
        huge[42..48].copy_from_slice(&[0xff, 0x7f, 0xff, 0x7f, 0xff, 0x7f]);
        for (name, content) in [
            ("mask.nii", huge.clone()),
            ("mask.nii.gz", {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut encoder, &huge).unwrap();
                encoder.finish().unwrap()
            }),
        ] {
            let mask = d.path().join(name);
            std::fs::write(&mask, content).unwrap();
            let message = read_mask("x", &mask).unwrap_err().to_string();
            assert!(
                message.contains("its header describes a [32767, 32767, 32767] volume of Float32, larger than the whole file (448 bytes)"),
                "{message}"
            );
        }
    }
}
