//! Evaluation transforms applied to every element before the network (predict.md §6.6):
//! NaN removal, MinMax normalisation, size reduction. Pure functions on C-order float32 data.
//!
//! ClinicaDL: `clinicadl.utils.transforms` (`NanRemoval`, `MinMaxNormalization`,
//! `SizeReduction`) and `get_transforms`.

use anyhow::{Result, bail};

/// A C-order float32 array with its shape (channels first, no batch dimension).
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    /// Values in C order.
    pub data: Vec<f32>,
    /// Shape, e.g. `[1, X, Y, Z]`.
    pub shape: Vec<usize>,
}

/// The transforms configured in `maps.json`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transforms {
    /// `normalize`: MinMax.
    pub normalize: bool,
    /// `size_reduction` with its factor.
    pub size_reduction: Option<usize>,
}

impl Transforms {
    /// Checks the size reduction factor (2, 3, 4 or 5).
    pub fn new(normalize: bool, size_reduction: bool, factor: i64) -> Result<Self> {
        let size_reduction = if size_reduction {
            match factor {
                2..=5 => Some(factor as usize),
                _ => bail!("size_reduction_factor must be 2, 3, 4 or 5 (maps.json has {factor})"),
            }
        } else {
            None
        };
        Ok(Transforms {
            normalize,
            size_reduction,
        })
    }

    /// Applies NaN removal, MinMax and size reduction in ClinicaDL's order, noting what the
    /// user should be warned of.
    pub fn apply(&self, element: &mut Element) -> Notes {
        let mut range = extremes(&element.data);
        let nan_removed = range.nan;
        if nan_removed {
            replace_nan(&mut element.data);
            range = extremes(&element.data);
        }
        let constant = self.normalize && !min_max_with(&mut element.data, range.min, range.max);
        if let Some(factor) = self.size_reduction {
            *element = reduce_size(element, factor);
        }
        Notes {
            nan_removed,
            constant_elements: usize::from(constant),
        }
    }

    /// The shape an element of `shape` has after the transforms (size reduction leaves 2D
    /// elements `[C, A, B]` as they are, as [`reduce_size`] does).
    pub fn output_shape(&self, shape: &[usize]) -> Vec<usize> {
        match self.size_reduction {
            Some(factor) if shape.len() == 4 => {
                let mut out = shape.to_vec();
                for (axis, (start, stop, step)) in reduction_slices(factor).iter().enumerate() {
                    if let Some(n) = out.get_mut(axis + 1) {
                        *n = slice_len(*n, *start, *stop, *step);
                    }
                }
                out
            }
            _ => shape.to_vec(),
        }
    }
}

/// The smallest and largest values other than NaN, and whether there is a NaN.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Extremes {
    min: f32,
    max: f32,
    nan: bool,
}

/// Lanes of [`extremes`]: independent minima and maxima the compiler keeps in vector registers
/// (one pass at memory speed; `f32::min` over the slice, which must honour NaN one value after
/// the other, is not vectorised).
const LANES: usize = 16;

/// [`Extremes`] of `data` in one pass. The minimum and maximum of a set do not depend on the
/// order they are taken in, so the lanes give the values a plain loop gives.
fn extremes(data: &[f32]) -> Extremes {
    let (chunks, rest) = data.as_chunks::<LANES>();
    let mut lo = [f32::INFINITY; LANES];
    let mut hi = [f32::NEG_INFINITY; LANES];
    let mut nan = [false; LANES];
    for chunk in chunks {
        for i in 0..LANES {
            let v = chunk[i];
            // Comparisons with NaN are false: NaN never becomes a minimum or a maximum.
            lo[i] = if v < lo[i] { v } else { lo[i] };
            hi[i] = if v > hi[i] { v } else { hi[i] };
            nan[i] |= v.is_nan();
        }
    }
    let mut out = Extremes {
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
        nan: nan.contains(&true),
    };
    for &v in lo.iter().chain(rest) {
        out.min = if v < out.min { v } else { out.min };
    }
    for &v in hi.iter().chain(rest) {
        out.max = if v > out.max { v } else { out.max };
    }
    out.nan |= rest.iter().any(|v| v.is_nan());
    out
}

/// NaN → 0, +inf → f32::MAX, −inf → f32::MIN, only when the element holds a NaN
/// (ClinicaDL: `NanRemoval`, i.e. `torch.nan_to_num` guarded by `isnan().any()`).
pub fn remove_nan(data: &mut [f32]) -> bool {
    if !extremes(data).nan {
        return false;
    }
    replace_nan(data);
    true
}

/// The replacements of [`remove_nan`], made unconditionally (the caller found a NaN).
fn replace_nan(data: &mut [f32]) {
    for v in data.iter_mut() {
        if v.is_nan() {
            *v = 0.0;
        } else if *v == f32::INFINITY {
            *v = f32::MAX;
        } else if *v == f32::NEG_INFINITY {
            *v = f32::MIN;
        }
    }
}

/// `(x − min) / (max − min)` in float32, subtraction then division (ClinicaDL:
/// `MinMaxNormalization`). A constant element, which 1.6.1 turns into NaN (0/0) and so into
/// NaN predictions, becomes all zeros here; returns false for it.
pub fn min_max(data: &mut [f32]) -> bool {
    let range = extremes(data);
    min_max_with(data, range.min, range.max)
}

/// [`min_max`] of data whose extremes are known.
fn min_max_with(data: &mut [f32], lo: f32, hi: f32) -> bool {
    let range = hi - lo;
    if !(range > 0.0 && range.is_finite()) {
        data.fill(0.0);
        return false;
    }
    for v in data.iter_mut() {
        *v = (*v - lo) / range;
    }
    true
}

/// What the transforms met, for warnings (ClinicaDL warns once per dataset).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Notes {
    /// NaN values were replaced.
    pub nan_removed: bool,
    /// Elements that were constant (MinMax gave zeros).
    pub constant_elements: usize,
}

impl std::ops::BitOrAssign for Notes {
    fn bitor_assign(&mut self, other: Notes) {
        self.nan_removed |= other.nan_removed;
        self.constant_elements += other.constant_elements;
    }
}

/// Python slices `start:stop:step` of the three spatial axes per factor (predict.md §6.6).
fn reduction_slices(factor: usize) -> [(usize, usize, usize); 3] {
    match factor {
        2 => [(4, 164, 2), (8, 200, 2), (8, 168, 2)],
        3 => [(0, 168, 3), (8, 200, 3), (4, 172, 3)],
        4 => [(4, 164, 4), (8, 200, 4), (8, 168, 4)],
        _ => [(4, 164, 5), (0, 200, 5), (8, 168, 5)],
    }
}

fn slice_len(n: usize, start: usize, stop: usize, step: usize) -> usize {
    let (start, stop) = (start.min(n), stop.min(n));
    if stop <= start {
        0
    } else {
        (stop - start).div_ceil(step)
    }
}

/// Crops and subsamples the spatial axes (ClinicaDL: `SizeReduction`).
pub fn reduce_size(element: &Element, factor: usize) -> Element {
    let slices = reduction_slices(factor);
    let shape = &element.shape;
    if shape.len() != 4 {
        return element.clone(); // 2D elements: 1.6.1 would fail; leave them as they are
    }
    let (c, x, y, z) = (shape[0], shape[1], shape[2], shape[3]);
    let (sx, sy, sz) = (slices[0], slices[1], slices[2]);
    let (nx, ny, nz) = (
        slice_len(x, sx.0, sx.1, sx.2),
        slice_len(y, sy.0, sy.1, sy.2),
        slice_len(z, sz.0, sz.1, sz.2),
    );
    let mut data = Vec::with_capacity(c * nx * ny * nz);
    for ch in 0..c {
        for i in 0..nx {
            for j in 0..ny {
                let base = ((ch * x + sx.0 + i * sx.2) * y + sy.0 + j * sy.2) * z + sz.0;
                data.extend((0..nz).map(|k| element.data[base + k * sz.2]));
            }
        }
    }
    Element {
        data,
        shape: vec![c, nx, ny, nz],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_removal_only_with_nan() {
        let mut a = vec![1.0, f32::INFINITY];
        assert!(!remove_nan(&mut a));
        assert_eq!(a[1], f32::INFINITY);
        let mut b = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        assert!(remove_nan(&mut b));
        assert_eq!(b, vec![0.0, f32::MAX, f32::MIN]);
    }

    #[test]
    fn extremes_in_lanes_are_those_of_a_plain_loop() {
        for n in [0usize, 1, 15, 16, 17, 40, 1000] {
            for nan_at in [None, Some(0), Some(n / 2), Some(n.saturating_sub(1))] {
                let mut data: Vec<f32> = (0..n)
                    .map(|i| ((i * 7919 % 1013) as f32 - 500.0) * 0.37)
                    .collect();
                if let (Some(at), true) = (nan_at, n > 0) {
                    data[at] = f32::NAN;
                }
                let got = extremes(&data);
                let plain = data.iter().filter(|v| !v.is_nan());
                assert_eq!(got.min, plain.clone().fold(f32::INFINITY, |a, &b| a.min(b)));
                assert_eq!(got.max, plain.fold(f32::NEG_INFINITY, |a, &b| a.max(b)));
                assert_eq!(got.nan, data.iter().any(|v| v.is_nan()), "{n} {nan_at:?}");
            }
        }
    }

    #[test]
    fn min_max_subtract_then_divide() {
        let mut a = vec![2.0f32, 4.0, 3.0];
        min_max(&mut a);
        assert_eq!(a, vec![0.0, 1.0, 0.5]);
        let mut c = vec![1.0f32, 1.0];
        assert!(!min_max(&mut c));
        assert_eq!(c, vec![0.0, 0.0]);
    }

    #[test]
    fn size_reduction_shapes_match_spec() {
        for (factor, expected) in [
            (2, [80, 96, 80]),
            (3, [56, 64, 56]),
            (4, [40, 48, 40]),
            (5, [32, 40, 32]),
        ] {
            let t = Transforms::new(false, true, factor).unwrap();
            assert_eq!(
                t.output_shape(&[1, 169, 208, 179]),
                [1, expected[0], expected[1], expected[2]]
            );
        }
        assert!(Transforms::new(true, true, 7).is_err());
    }

    /// Found by the `maps_json` fuzz target: with `size_reduction`, `output_shape` (which the
    /// up-front check of tensor files uses) reduced 2D slices that `apply` leaves as they are.
    #[test]
    fn output_shape_is_the_shape_apply_gives() {
        for factor in 2..=5 {
            let t = Transforms::new(true, true, factor).unwrap();
            for shape in [
                vec![1, 10, 11],
                vec![3, 30, 40],
                vec![1, 9, 10, 11],
                vec![2, 20, 30, 25],
            ] {
                let mut element = Element {
                    data: vec![1.0; shape.iter().product()],
                    shape: shape.clone(),
                };
                let expected = t.output_shape(&shape);
                t.apply(&mut element);
                assert_eq!(element.shape, expected, "factor {factor}, shape {shape:?}");
                assert_eq!(element.data.len(), expected.iter().product::<usize>());
            }
        }
    }

    #[test]
    fn size_reduction_picks_the_right_voxels() {
        let (x, y, z) = (169usize, 208usize, 179usize);
        let data: Vec<f32> = (0..x * y * z).map(|i| i as f32).collect();
        let e = reduce_size(
            &Element {
                data,
                shape: vec![1, x, y, z],
            },
            5,
        );
        assert_eq!(e.shape, [1, 32, 40, 32]);
        // element [0, 1, 2, 3] = voxel (4 + 5, 0 + 10, 8 + 15)
        let idx = (40 + 2) * 32 + 3;
        assert_eq!(e.data[idx], ((9 * y + 10) * z + 23) as f32);
    }
}
