//! Elements of an image (predict.md §6.2–§6.4): how many a session yields, their ids, the files
//! of pre-extracted elements (`prepare_dl: true`), and their extraction on the fly from the image
//! tensor. Pure functions: no file is read here.
//!
//! ClinicaDL: `CapsDatasetImage`, `CapsDatasetPatch`, `CapsDatasetSlice`
//! (`clinicadl.utils.caps_dataset.data`) and `extract_patch_tensor` / `extract_slice_tensor`
//! (`clinicadl.prepare_data.prepare_data_utils`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::roi::Rois;
use super::transforms::Element;
use crate::maps::json::{MapsJson, Mode};

/// How the elements of a session are obtained.
#[derive(Debug, Clone, PartialEq)]
pub enum Extraction {
    /// The whole image, id 0.
    Image,
    /// Cubic patches on a regular grid; id `q = (i·n2 + j)·n3 + k`.
    Patch {
        /// `patch_size`.
        size: usize,
        /// `stride_size`.
        stride: usize,
        /// Patches per spatial axis.
        grid: [usize; 3],
        /// Pre-extracted files (`prepare_dl`).
        prepare_dl: bool,
    },
    /// 2D slices along one axis; id = the absolute slice index.
    Slice {
        /// `slice_direction` (0 sagittal, 1 coronal, 2 axial).
        axis: usize,
        /// `slice_mode` rgb: the slice repeated on 3 channels.
        rgb: bool,
        /// Slices discarded at the beginning.
        begin: usize,
        /// Number of slices kept.
        count: usize,
        /// Pre-extracted files (`prepare_dl`).
        prepare_dl: bool,
    },
    /// Regions of interest; id = the index in `roi_list`.
    Roi {
        /// The masks.
        rois: Rois,
        /// Pre-extracted files (`prepare_dl`).
        prepare_dl: bool,
    },
}

fn dict_usize(dict: &serde_json::Map<String, Value>, key: &str) -> Result<usize> {
    dict.get(key)
        .and_then(Value::as_u64)
        .and_then(|v| usize::try_from(v).ok())
        .with_context(|| {
            format!("maps.json `preprocessing_dict.{key}` must be a non-negative integer")
        })
}

/// `discarded_slices` → (begin, end): `b` or `[b]` → (b, b), `[b, e]` → (b, e).
pub fn discarded_slices(value: Option<&Value>) -> Result<(usize, usize)> {
    let as_usize = |v: &Value| v.as_u64().and_then(|n| usize::try_from(n).ok());
    let pair = match value {
        None | Some(Value::Null) => Some((0, 0)),
        Some(Value::Array(list)) => match list.as_slice() {
            [] => Some((0, 0)),
            [b] => as_usize(b).map(|b| (b, b)),
            [b, e] => as_usize(b).zip(as_usize(e)),
            _ => None,
        },
        Some(v) => as_usize(v).map(|b| (b, b)),
    };
    pair.context("maps.json `preprocessing_dict.discarded_slices` must be an integer or a list of one or two integers")
}

impl Extraction {
    /// The extraction of `maps.json`; `image_shape` is the shape of the first session's image
    /// tensor (`[C, X, Y, Z]`), or `None` when only pre-extracted elements exist, in which case
    /// `count_files` counts the first session's element files matching a name fragment.
    pub fn from_maps(
        maps: &MapsJson,
        image_shape: Option<&[usize]>,
        count_files: impl Fn(&str) -> usize,
        rois: Option<Rois>,
    ) -> Result<Extraction> {
        let dict = &maps.preprocessing.raw;
        let prepare_dl = maps.preprocessing.prepare_dl;
        let spatial = |shape: &[usize]| -> Result<[usize; 3]> {
            match shape {
                [_, x, y, z] => Ok([*x, *y, *z]),
                other => bail!("the image tensor has shape {other:?}, expected [C, X, Y, Z]"),
            }
        };
        Ok(match maps.mode {
            Mode::Image => Extraction::Image,
            Mode::Patch => {
                let size = dict_usize(dict, "patch_size")?;
                let stride = dict_usize(dict, "stride_size")?;
                if size == 0 || stride == 0 {
                    bail!("maps.json `patch_size` and `stride_size` must be positive");
                }
                let grid = match image_shape {
                    Some(shape) => {
                        let dims = spatial(shape)?;
                        let mut grid = [0; 3];
                        for (g, d) in grid.iter_mut().zip(dims) {
                            *g = if d >= size {
                                (d - size) / stride + 1
                            } else {
                                0
                            };
                        }
                        grid
                    }
                    None => {
                        let n = count_files(&format!("_patchsize-{size}_stride-{stride}_patch-"));
                        if n == 0 {
                            bail!(
                                "no image tensor nor pre-extracted patch found for the first session"
                            );
                        }
                        [n, 1, 1]
                    }
                };
                if grid.contains(&0) {
                    bail!("the images are smaller than the patch size {size}");
                }
                Extraction::Patch {
                    size,
                    stride,
                    grid,
                    prepare_dl,
                }
            }
            Mode::Slice => {
                let axis = dict_usize(dict, "slice_direction")?;
                if axis > 2 {
                    bail!("maps.json `preprocessing_dict.slice_direction` must be 0, 1 or 2");
                }
                let rgb = match dict
                    .get("slice_mode")
                    .and_then(Value::as_str)
                    .unwrap_or("rgb")
                {
                    "rgb" => true,
                    "single" => false,
                    other => bail!(
                        "maps.json `preprocessing_dict.slice_mode` is `{other}`: expected rgb or single"
                    ),
                };
                let (begin, end) = discarded_slices(dict.get("discarded_slices"))?;
                let count = match (dict.get("num_slices").and_then(Value::as_u64), image_shape) {
                    (Some(n), _) => usize::try_from(n)?,
                    (None, Some(shape)) => {
                        let size = spatial(shape)?[axis];
                        let discarded = begin.saturating_add(end);
                        size.checked_sub(discarded).filter(|&n| n > 0).with_context(|| {
                            format!("discarding {begin} + {end} slices leaves none of the {size} slices of axis {axis}")
                        })?
                    }
                    (None, None) => {
                        let n = count_files(&format!("_axis-{}_channel-", axis_name(axis)));
                        if n == 0 {
                            bail!(
                                "no image tensor nor pre-extracted slice found for the first session"
                            );
                        }
                        n
                    }
                };
                // Slice ids are `begin + index`, for every index below `count`.
                if begin.checked_add(count).is_none() {
                    bail!(
                        "maps.json `preprocessing_dict.discarded_slices` ({begin}) and `num_slices` ({count}) are too large"
                    );
                }
                Extraction::Slice {
                    axis,
                    rgb,
                    begin,
                    count,
                    prepare_dl,
                }
            }
            Mode::Roi => Extraction::Roi {
                rois: rois.context("ROI mode needs its masks")?,
                prepare_dl,
            },
        })
    }

    /// Elements per image.
    pub fn count(&self) -> usize {
        match self {
            Extraction::Image => 1,
            Extraction::Patch { grid, .. } => grid.iter().product(),
            Extraction::Slice { count, .. } => *count,
            Extraction::Roi { rois, .. } => rois.masks.len(),
        }
    }

    /// The `<mode>_id` of the element at `index` (0-based position within the image).
    pub fn element_id(&self, index: usize) -> usize {
        match self {
            Extraction::Slice { begin, .. } => index + begin,
            _ => index,
        }
    }

    /// Whether elements are read from pre-extracted files.
    pub fn prepare_dl(&self) -> bool {
        match self {
            Extraction::Image => false,
            Extraction::Patch { prepare_dl, .. }
            | Extraction::Slice { prepare_dl, .. }
            | Extraction::Roi { prepare_dl, .. } => *prepare_dl,
        }
    }

    /// Whether elements are cut from each whole image as it is read (patches, slices or ROIs
    /// not pre-extracted).
    pub fn cuts_images(&self) -> bool {
        !matches!(self, Extraction::Image) && !self.prepare_dl()
    }

    /// The pre-extracted file of element `index` of the session whose image tensor is `image`.
    pub fn element_file(&self, image: &Path, index: usize) -> PathBuf {
        let (folder, fragment) = match self {
            Extraction::Image => return image.to_owned(),
            Extraction::Roi { rois, .. } => return rois.element_file(image, index),
            Extraction::Patch { size, stride, .. } => (
                "patch_based",
                format!("_patchsize-{size}_stride-{stride}_patch-{index}"),
            ),
            Extraction::Slice {
                axis, rgb, begin, ..
            } => (
                "slice_based",
                format!(
                    "_axis-{}_channel-{}_slice-{}",
                    axis_name(*axis),
                    if *rgb { "rgb" } else { "single" },
                    index + begin
                ),
            ),
        };
        let dir = image
            .parent()
            .map(|p| PathBuf::from(p.to_string_lossy().replace("image_based", folder)))
            .unwrap_or_default();
        let name = image
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (prefix, suffix) = name
            .rsplit_once('_')
            .map_or((name.as_str(), ""), |(p, _)| (p, &name[p.len()..]));
        dir.join(format!("{prefix}{fragment}{suffix}"))
    }

    /// Cuts element `index` out of a whole image `[C, X, Y, Z]` (C-order data).
    pub fn cut(&self, image: &Element, index: usize) -> Result<Element> {
        let [c, x, y, z] = match image.shape.as_slice() {
            [c, x, y, z] => [*c, *x, *y, *z],
            other => bail!("the image tensor has shape {other:?}, expected [C, X, Y, Z]"),
        };
        match self {
            Extraction::Image => Ok(image.clone()),
            Extraction::Roi { rois, .. } => rois.cut(image, index),
            Extraction::Patch {
                size, stride, grid, ..
            } => {
                if c != 1 {
                    bail!(
                        "patch mode needs single-channel images, the image tensor has {c} channels"
                    );
                }
                let (i, j, k) = (
                    index / (grid[1] * grid[2]),
                    (index / grid[2]) % grid[1],
                    index % grid[2],
                );
                let (x0, y0, z0) = (i * stride, j * stride, k * stride);
                if x0 + size > x || y0 + size > y || z0 + size > z {
                    bail!(
                        "patch {index} does not fit in an image of shape {:?}",
                        image.shape
                    );
                }
                let mut data = Vec::with_capacity(size * size * size);
                for a in x0..x0 + size {
                    for b in y0..y0 + size {
                        let start = (a * y + b) * z + z0;
                        data.extend_from_slice(&image.data[start..start + size]);
                    }
                }
                Ok(Element {
                    data,
                    shape: vec![1, *size, *size, *size],
                })
            }
            Extraction::Slice {
                axis, rgb, begin, ..
            } => {
                let t = index + begin;
                let dims = [x, y, z];
                if t >= dims[*axis] {
                    bail!("slice {t} is outside an image of shape {:?}", image.shape);
                }
                let (a, b) = match axis {
                    0 => (y, z),
                    1 => (x, z),
                    _ => (x, y),
                };
                let mut plane = Vec::with_capacity(c * a * b);
                for ch in 0..c {
                    let base = ch * x * y * z;
                    match axis {
                        0 => plane.extend_from_slice(
                            &image.data[base + t * y * z..base + (t + 1) * y * z],
                        ),
                        1 => {
                            for i in 0..x {
                                let start = base + (i * y + t) * z;
                                plane.extend_from_slice(&image.data[start..start + z]);
                            }
                        }
                        _ => {
                            for i in 0..x {
                                for j in 0..y {
                                    plane.push(image.data[base + (i * y + j) * z + t]);
                                }
                            }
                        }
                    }
                }
                if *rgb {
                    let mut data = Vec::with_capacity(3 * plane.len());
                    for _ in 0..3 {
                        data.extend_from_slice(&plane);
                    }
                    Ok(Element {
                        data,
                        shape: vec![3 * c, a, b],
                    })
                } else {
                    Ok(Element {
                        data: plane,
                        shape: vec![c, a, b],
                    })
                }
            }
        }
    }
}

/// `sag`, `cor` or `axi`.
pub fn axis_name(axis: usize) -> &'static str {
    match axis {
        0 => "sag",
        1 => "cor",
        _ => "axi",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image(x: usize, y: usize, z: usize) -> Element {
        Element {
            data: (0..x * y * z).map(|v| v as f32).collect(),
            shape: vec![1, x, y, z],
        }
    }

    #[test]
    fn patches_in_c_order() {
        let e = Extraction::Patch {
            size: 2,
            stride: 2,
            grid: [2, 1, 2],
            prepare_dl: false,
        };
        let img = image(4, 3, 5);
        assert_eq!(e.count(), 4);
        // patch 3 = (i=1, j=0, k=1): voxels x 2..4, y 0..2, z 2..4
        let p = e.cut(&img, 3).unwrap();
        assert_eq!(p.shape, [1, 2, 2, 2]);
        let v = |a: usize, b: usize, c: usize| ((a * 3 + b) * 5 + c) as f32;
        assert_eq!(
            p.data,
            vec![
                v(2, 0, 2),
                v(2, 0, 3),
                v(2, 1, 2),
                v(2, 1, 3),
                v(3, 0, 2),
                v(3, 0, 3),
                v(3, 1, 2),
                v(3, 1, 3)
            ]
        );
    }

    #[test]
    fn overlapping_patch_grid() {
        let mut maps = crate::maps::json::parse_maps_json(
            &json!({"network_task": "classification", "mode": "patch", "label_code": {}, "output_size": 2,
                "input_size": [1, 12, 12, 12], "architecture": "Conv5_FC3",
                "preprocessing_dict": {"preprocessing": "t1-linear", "mode": "patch", "patch_size": 12, "stride_size": 8, "prepare_dl": false}})
            .to_string(),
            Path::new("m.json"),
        )
        .unwrap();
        let e = Extraction::from_maps(&maps, Some(&[1, 36, 37, 19]), |_| 0, None).unwrap();
        // floor((36-12)/8)+1 = 4, floor((37-12)/8)+1 = 4, floor((19-12)/8)+1 = 1
        assert_eq!(
            e,
            Extraction::Patch {
                size: 12,
                stride: 8,
                grid: [4, 4, 1],
                prepare_dl: false
            }
        );
        maps.preprocessing
            .raw
            .insert("patch_size".into(), json!(40));
        assert!(Extraction::from_maps(&maps, Some(&[1, 36, 37, 19]), |_| 0, None).is_err());
    }

    #[test]
    fn slices_along_each_axis() {
        let img = image(2, 3, 4);
        let v = |a: usize, b: usize, c: usize| ((a * 3 + b) * 4 + c) as f32;
        let s0 = Extraction::Slice {
            axis: 0,
            rgb: false,
            begin: 1,
            count: 1,
            prepare_dl: false,
        };
        let e = s0.cut(&img, 0).unwrap();
        assert_eq!(e.shape, [1, 3, 4]);
        assert_eq!(e.data[5], v(1, 1, 1));
        let s1 = Extraction::Slice {
            axis: 1,
            rgb: true,
            begin: 0,
            count: 3,
            prepare_dl: false,
        };
        let e = s1.cut(&img, 2).unwrap();
        assert_eq!(e.shape, [3, 2, 4]);
        assert_eq!(e.data[4 + 3], v(1, 2, 3));
        assert_eq!(&e.data[..8], &e.data[16..]);
        let s2 = Extraction::Slice {
            axis: 2,
            rgb: false,
            begin: 0,
            count: 4,
            prepare_dl: false,
        };
        let e = s2.cut(&img, 3).unwrap();
        assert_eq!(e.shape, [1, 2, 3]);
        assert_eq!(
            e.data,
            vec![
                v(0, 0, 3),
                v(0, 1, 3),
                v(0, 2, 3),
                v(1, 0, 3),
                v(1, 1, 3),
                v(1, 2, 3)
            ]
        );
        assert_eq!(s0.element_id(0), 1);
    }

    #[test]
    fn pre_extracted_file_names() {
        let image = Path::new(
            "/c/sub-00/ses-M000/deeplearning_prepare_data/image_based/t1_linear/sub-00_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt",
        );
        let p = Extraction::Patch {
            size: 16,
            stride: 16,
            grid: [1, 1, 4],
            prepare_dl: true,
        };
        assert_eq!(
            p.element_file(image, 3),
            Path::new(
                "/c/sub-00/ses-M000/deeplearning_prepare_data/patch_based/t1_linear/sub-00_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_patchsize-16_stride-16_patch-3_T1w.pt"
            )
        );
        let s = Extraction::Slice {
            axis: 2,
            rgb: false,
            begin: 8,
            count: 4,
            prepare_dl: true,
        };
        assert!(s
            .element_file(image, 2)
            .ends_with("slice_based/t1_linear/sub-00_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_axis-axi_channel-single_slice-10_T1w.pt"));
    }

    /// Found with the `maps_json` fuzz target (a hand-made input, kept in
    /// `fuzz/regressions/maps_json/`): `discarded_slices` near `u64::MAX` overflowed the sum of
    /// both ends and the slice ids (`begin + index`); such a maps.json is refused.
    #[test]
    fn huge_discarded_slices_are_refused() {
        let mut maps = crate::maps::json::parse_maps_json(
            &json!({"network_task": "classification", "mode": "slice", "label_code": {}, "output_size": 2,
                "input_size": [1, 10, 11], "architecture": "Conv5_FC3",
                "preprocessing_dict": {"preprocessing": "t1-linear", "mode": "slice", "slice_direction": 0,
                    "discarded_slices": [u64::MAX, 1], "prepare_dl": false}})
            .to_string(),
            Path::new("m.json"),
        )
        .unwrap();
        let message = Extraction::from_maps(&maps, Some(&[1, 9, 10, 11]), |_| 0, None)
            .unwrap_err()
            .to_string();
        assert!(message.contains("leaves none of the 9 slices"), "{message}");
        maps.preprocessing.raw.insert("num_slices".into(), json!(3));
        for shape in [Some(&[1usize, 9, 10, 11][..]), None] {
            let message = Extraction::from_maps(&maps, shape, |_| 2, None)
                .unwrap_err()
                .to_string();
            assert!(message.contains("are too large"), "{message}");
        }
    }

    #[test]
    fn discarded_slices_forms() {
        assert_eq!(discarded_slices(Some(&json!(20))).unwrap(), (20, 20));
        assert_eq!(discarded_slices(Some(&json!([20]))).unwrap(), (20, 20));
        assert_eq!(discarded_slices(Some(&json!([8, 10]))).unwrap(), (8, 10));
        assert!(discarded_slices(Some(&json!([1, 2, 3]))).is_err());
    }
}
