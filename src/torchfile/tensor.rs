//! Tensors as torch stored them: a dtype, a (possibly strided) view and the raw little-endian
//! bytes of the whole storage. This file owns view validation (a view must stay inside its
//! storage) and the conversions to plain `Vec<f32>` / `Vec<i64>` in C order, including the
//! hand-written float16 and bfloat16 decoding. Reading files is left to the other submodules.

use std::fmt;
use std::sync::Arc;

use super::error::TorchFileError;

/// Views may hold more elements than their storage only through zero or overlapping strides
/// (expanded tensors); beyond this many elements such a view is refused as implausible.
const MAX_EXPANDED_NUMEL: usize = 1 << 28;

/// Element type of a storage, one per torch storage class (`torch.FloatStorage`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// `torch.bool` (`BoolStorage`), one byte, 0 or 1.
    Bool,
    /// `torch.uint8` (`ByteStorage`).
    U8,
    /// `torch.int8` (`CharStorage`).
    I8,
    /// `torch.int16` (`ShortStorage`).
    I16,
    /// `torch.int32` (`IntStorage`).
    I32,
    /// `torch.int64` (`LongStorage`).
    I64,
    /// `torch.float16` (`HalfStorage`).
    F16,
    /// `torch.bfloat16` (`BFloat16Storage`).
    BF16,
    /// `torch.float32` (`FloatStorage`).
    F32,
    /// `torch.float64` (`DoubleStorage`).
    F64,
}

impl DType {
    /// Size of one element in bytes.
    pub fn itemsize(self) -> usize {
        match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::I32 | DType::F32 => 4,
            DType::I64 | DType::F64 => 8,
        }
    }

    /// The dtype's name as torch spells it (`float32`, `int64`, …).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// The dtype of a `torch.<Name>Storage` class, if `class` is one of them.
    pub(crate) fn from_storage_class(class: &str) -> Option<DType> {
        Some(match class {
            "BoolStorage" => DType::Bool,
            "ByteStorage" => DType::U8,
            "CharStorage" => DType::I8,
            "ShortStorage" => DType::I16,
            "IntStorage" => DType::I32,
            "LongStorage" => DType::I64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            _ => return None,
        })
    }

    /// The `torch.<Name>Storage` class name of this dtype.
    pub(crate) fn storage_class(self) -> &'static str {
        match self {
            DType::Bool => "BoolStorage",
            DType::U8 => "ByteStorage",
            DType::I8 => "CharStorage",
            DType::I16 => "ShortStorage",
            DType::I32 => "IntStorage",
            DType::I64 => "LongStorage",
            DType::F16 => "HalfStorage",
            DType::BF16 => "BFloat16Storage",
            DType::F32 => "FloatStorage",
            DType::F64 => "DoubleStorage",
        }
    }

    fn is_floating_point(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A (possibly strided) view into a shared storage, exactly as torch stored it.
#[derive(Clone, PartialEq)]
pub struct StoredTensor {
    /// Element type of the storage.
    pub dtype: DType,
    /// Size of each dimension (empty for a 0-dim scalar).
    pub shape: Vec<usize>,
    /// Stride of each dimension, in elements.
    pub strides: Vec<usize>,
    /// Storage offset of element `[0, …, 0]`, in elements.
    pub offset: usize,
    /// Raw little-endian bytes of the whole storage (shared between views of one storage).
    pub storage: Arc<Vec<u8>>,
    /// Whether torch recorded `requires_grad` (true for saved latent tensors).
    pub requires_grad: bool,
    /// The key of the storage in its file (`data/<key>`), to tell shared storages apart.
    pub(crate) storage_key: String,
}

impl fmt::Debug for StoredTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTensor")
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("strides", &self.strides)
            .field("offset", &self.offset)
            .field("storage_bytes", &self.storage.len())
            .field("requires_grad", &self.requires_grad)
            .finish()
    }
}

/// A checked view: the dimensions that matter (size > 1), merged where memory allows.
struct Layout {
    numel: usize,
    offset: usize,
    /// (size, stride) pairs, outermost first; empty for a single element.
    dims: Vec<(usize, usize)>,
}

/// What a tensor file says about its tensor, without its values: enough to check a file's
/// dtype and shape cheaply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorHeader {
    /// Element type of the storage.
    pub dtype: DType,
    /// Size of each dimension (empty for a 0-dim scalar).
    pub shape: Vec<usize>,
    /// Stride of each dimension, in elements.
    pub strides: Vec<usize>,
    /// Storage offset of element `[0, …, 0]`, in elements.
    pub offset: usize,
    /// Whether torch recorded `requires_grad`.
    pub requires_grad: bool,
}

impl TensorHeader {
    /// Number of elements of the view (saturates at `usize::MAX` for an impossible shape).
    pub fn numel(&self) -> usize {
        checked_numel(&self.shape).unwrap_or(usize::MAX)
    }

    /// Whether the view is C-contiguous (row-major, no gaps), ignoring dimensions of size 1.
    pub fn is_c_contiguous(&self) -> bool {
        is_c_contiguous(&self.shape, &self.strides)
    }
}

/// Whether `(shape, strides)` is C-contiguous, ignoring dimensions of size 1.
fn is_c_contiguous(shape: &[usize], strides: &[usize]) -> bool {
    if shape.len() != strides.len() {
        return false;
    }
    if shape.contains(&0) {
        return true;
    }
    let mut expected: usize = 1;
    for (&size, &stride) in shape.iter().zip(strides).rev() {
        if size != 1 && stride != expected {
            return false;
        }
        match expected.checked_mul(size) {
            Some(next) => expected = next,
            None => return false,
        }
    }
    true
}

impl StoredTensor {
    /// The tensor's header (everything but the storage).
    pub fn header(&self) -> TensorHeader {
        TensorHeader {
            dtype: self.dtype,
            shape: self.shape.clone(),
            strides: self.strides.clone(),
            offset: self.offset,
            requires_grad: self.requires_grad,
        }
    }

    /// Number of elements of the view (saturates at `usize::MAX` for an impossible shape).
    pub fn numel(&self) -> usize {
        checked_numel(&self.shape).unwrap_or(usize::MAX)
    }

    /// Whether the view is C-contiguous (row-major, no gaps), ignoring dimensions of size 1.
    pub fn is_c_contiguous(&self) -> bool {
        is_c_contiguous(&self.shape, &self.strides)
    }

    /// The span of this tensor's storage in its file (from `spans`, by storage key) when the
    /// tensor fills it exactly, in C order from its first byte: its values can then be read
    /// straight from the file.
    pub(crate) fn filled_span(
        &self,
        spans: &std::collections::HashMap<String, super::FileSpan>,
    ) -> Option<super::FileSpan> {
        let span = spans.get(&self.storage_key).copied()?;
        let bytes = self.numel().checked_mul(self.dtype.itemsize())?;
        (self.offset == 0 && self.is_c_contiguous() && bytes as u64 == span.len).then_some(span)
    }

    /// The little-endian bytes of the view when it is C-contiguous (no copy), else `None`.
    pub fn contiguous_bytes(&self) -> Option<&[u8]> {
        if !self.is_c_contiguous() {
            return None;
        }
        let itemsize = self.dtype.itemsize();
        let start = self.offset.checked_mul(itemsize)?;
        let end = start.checked_add(self.numel().checked_mul(itemsize)?)?;
        self.storage.get(start..end)
    }

    /// The values in C order, strides honoured, converted to `f32` from any dtype
    /// (booleans become 0 or 1; float64 and large integers are rounded to nearest).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>, TorchFileError> {
        match self.dtype {
            DType::F32 => self.gather::<4, f32>(f32::from_le_bytes),
            DType::F64 => self.gather::<8, f32>(|b| f64::from_le_bytes(b) as f32),
            DType::F16 => self.gather::<2, f32>(|b| f16_to_f32(u16::from_le_bytes(b))),
            DType::BF16 => self.gather::<2, f32>(|b| bf16_to_f32(u16::from_le_bytes(b))),
            DType::I64 => self.gather::<8, f32>(|b| i64::from_le_bytes(b) as f32),
            DType::I32 => self.gather::<4, f32>(|b| i32::from_le_bytes(b) as f32),
            DType::I16 => self.gather::<2, f32>(|b| f32::from(i16::from_le_bytes(b))),
            DType::I8 => self.gather::<1, f32>(|b| f32::from(i8::from_le_bytes(b))),
            DType::U8 => self.gather::<1, f32>(|b| f32::from(b[0])),
            DType::Bool => self.gather::<1, f32>(|b| if b[0] != 0 { 1.0 } else { 0.0 }),
        }
    }

    /// The values in C order, strides honoured, for integer and boolean dtypes (an error for
    /// floating-point ones, whose values are not integers).
    pub fn to_i64_vec(&self) -> Result<Vec<i64>, TorchFileError> {
        match self.dtype {
            DType::I64 => self.gather::<8, i64>(i64::from_le_bytes),
            DType::I32 => self.gather::<4, i64>(|b| i64::from(i32::from_le_bytes(b))),
            DType::I16 => self.gather::<2, i64>(|b| i64::from(i16::from_le_bytes(b))),
            DType::I8 => self.gather::<1, i64>(|b| i64::from(i8::from_le_bytes(b))),
            DType::U8 => self.gather::<1, i64>(|b| i64::from(b[0])),
            DType::Bool => self.gather::<1, i64>(|b| i64::from(b[0] != 0)),
            dtype => {
                debug_assert!(dtype.is_floating_point());
                Err(TorchFileError::Conversion {
                    dtype: dtype.name(),
                    target: "integers",
                })
            }
        }
    }

    /// Reads every element of the view in C order, decoding each `N`-byte element with `decode`.
    fn gather<const N: usize, T: Copy + Default>(
        &self,
        decode: impl Fn([u8; N]) -> T,
    ) -> Result<Vec<T>, TorchFileError> {
        gather_view(
            &self.storage,
            &self.shape,
            &self.strides,
            self.offset,
            decode,
        )
    }
}

/// The checked, merged layout of a view `(shape, strides, offset)` of `itemsize`-byte elements
/// over `storage_bytes` bytes.
fn layout(
    shape: &[usize],
    strides: &[usize],
    offset: usize,
    storage_bytes: usize,
    itemsize: usize,
) -> Result<Layout, String> {
    check_view(shape, strides, offset, storage_bytes, itemsize)?;
    let numel = checked_numel(shape).unwrap_or(usize::MAX);
    // Merge dimension i into i+1 when stepping over i is the same as stepping over all of
    // i+1: e.g. a C-contiguous view becomes a single run.
    let mut dims: Vec<(usize, usize)> = Vec::with_capacity(shape.len());
    for (&size, &stride) in shape.iter().zip(strides) {
        if size == 1 {
            continue;
        }
        dims.push((size, stride));
    }
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(dims.len());
    for (size, stride) in dims.into_iter().rev() {
        match merged.last_mut() {
            Some((inner_size, inner_stride))
                if inner_stride.checked_mul(*inner_size) == Some(stride) =>
            {
                // Bounded by numel, which check_view computed without overflow.
                *inner_size *= size;
            }
            _ => merged.push((size, stride)),
        }
    }
    merged.reverse();
    Ok(Layout {
        numel,
        offset,
        dims: merged,
    })
}

/// Reads every element of the view `(shape, strides, offset)` (in elements) of `storage` in C
/// order, decoding each `N`-byte element with `decode`: torch's strided tensors, and the
/// column-major volumes of NIfTI files (docs/ARCHITECTURE.md, "CAPS NIfTI images").
pub(crate) fn gather_view<const N: usize, T: Copy + Default>(
    storage: &[u8],
    shape: &[usize],
    strides: &[usize],
    offset: usize,
    decode: impl Fn([u8; N]) -> T,
) -> Result<Vec<T>, TorchFileError> {
    let layout = layout(shape, strides, offset, storage.len(), N)
        .map_err(|detail| TorchFileError::InvalidView { detail })?;
    let mut out: Vec<T> = Vec::new();
    out.try_reserve_exact(layout.numel)
        .map_err(|_| TorchFileError::InvalidView {
            detail: format!("cannot allocate {} elements", layout.numel),
        })?;
    if layout.numel == 0 {
        return Ok(out);
    }
    let (elements, _) = storage.as_chunks::<N>();
    if let Some(contiguous) = transposed_axis(&layout.dims) {
        return gather_transposed(elements, layout, contiguous, decode);
    }
    let mut dims = layout.dims;
    let Some((inner_size, inner_stride)) = dims.pop() else {
        let element = elements.get(layout.offset).ok_or_else(out_of_bounds)?;
        out.push(decode(*element));
        return Ok(out);
    };
    // All indices below are at most the last index check_view proved to be in bounds, so
    // the plain arithmetic cannot overflow; `get` still guards every access.
    let mut counters = vec![0usize; dims.len()];
    let mut base = layout.offset;
    loop {
        if inner_stride == 1 {
            let run = elements
                .get(base..base + inner_size)
                .ok_or_else(out_of_bounds)?;
            out.extend(run.iter().map(|e| decode(*e)));
        } else {
            let mut index = base;
            for _ in 0..inner_size {
                let element = elements.get(index).ok_or_else(out_of_bounds)?;
                out.push(decode(*element));
                index += inner_stride;
            }
        }
        // Advance the odometer over the outer dimensions.
        let mut d = dims.len();
        loop {
            if d == 0 {
                return Ok(out);
            }
            d -= 1;
            let (size, stride) = dims[d];
            counters[d] += 1;
            base += stride;
            if counters[d] < size {
                break;
            }
            counters[d] = 0;
            base -= stride * size;
        }
    }
}

/// The error of an element index past the end of the storage (which the layout's checks rule
/// out; every access is guarded all the same).
fn out_of_bounds() -> TorchFileError {
    TorchFileError::InvalidView {
        detail: "element index past the end of the storage".to_string(),
    }
}

/// The axis whose elements lie next to each other in the storage when it is not the last one
/// (C order) and the last one's do not: a transposed view, such as prepare-data's tensors and
/// NIfTI volumes, whose first spatial axis is contiguous (Fortran order).
fn transposed_axis(dims: &[(usize, usize)]) -> Option<usize> {
    let (&(_, inner_stride), outer) = dims.split_last()?;
    if inner_stride == 1 {
        return None;
    }
    outer.iter().position(|&(_, stride)| stride == 1)
}

/// Tile edge of [`gather_transposed`]: a tile (4 KB of float32) stays in the L1 cache. Measured
/// on a full-size image in Fortran order: 8 to 64 all within 20% of each other.
const TILE: usize = 32;

/// [`gather_view`] of a transposed view (see [`transposed_axis`]): the elements are copied tile
/// by tile between the contiguous axis and the last one, read into the tile along runs of the
/// storage and written out along runs of the output. Element by element, every read of a
/// full-size image in Fortran order lands on another cache line (consecutive values are 140 KB
/// apart): three times slower (24 ms against 8 ms for one image, on the bench's CPU).
fn gather_transposed<const N: usize, T: Copy + Default>(
    elements: &[[u8; N]],
    layout: Layout,
    contiguous: usize,
    decode: impl Fn([u8; N]) -> T,
) -> Result<Vec<T>, TorchFileError> {
    let dims = &layout.dims;
    let last = dims.len() - 1;
    // The output's strides (C order).
    let mut out_strides = vec![1usize; dims.len()];
    for d in (0..last).rev() {
        out_strides[d] = out_strides[d + 1] * dims[d + 1].0;
    }
    let mut out = vec![T::default(); layout.numel];
    let (rows, row_step) = (dims[contiguous].0, out_strides[contiguous]);
    let (columns, column_stride) = dims[last];
    // The other axes, walked by an odometer.
    let others: Vec<usize> = (0..last).filter(|&d| d != contiguous).collect();
    let mut counters = vec![0usize; others.len()];
    let (mut base, mut out_base) = (layout.offset, 0usize);
    // One tile, column by column (as read); written out row by row.
    let mut tile = [[T::default(); TILE]; TILE];
    loop {
        for row0 in (0..rows).step_by(TILE) {
            let tile_rows = TILE.min(rows - row0);
            for column0 in (0..columns).step_by(TILE) {
                let tile_columns = TILE.min(columns - column0);
                for (c, read) in tile.iter_mut().take(tile_columns).enumerate() {
                    let start = base + (column0 + c) * column_stride + row0;
                    let run = elements
                        .get(start..start + tile_rows)
                        .ok_or_else(out_of_bounds)?;
                    for (value, element) in read.iter_mut().zip(run) {
                        *value = decode(*element);
                    }
                }
                for r in 0..tile_rows {
                    let start = out_base + (row0 + r) * row_step + column0;
                    let row = out
                        .get_mut(start..start + tile_columns)
                        .ok_or_else(out_of_bounds)?;
                    for (slot, read) in row.iter_mut().zip(&tile) {
                        *slot = read[r];
                    }
                }
            }
        }
        let mut k = others.len();
        loop {
            if k == 0 {
                return Ok(out);
            }
            k -= 1;
            let d = others[k];
            let (size, stride) = dims[d];
            counters[k] += 1;
            base += stride;
            out_base += out_strides[d];
            if counters[k] < size {
                break;
            }
            counters[k] = 0;
            base -= stride * size;
            out_base -= out_strides[d] * size;
        }
    }
}

/// Product of the sizes, `None` on overflow.
pub(crate) fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &size| acc.checked_mul(size))
}

/// Checks that a view `(shape, strides, offset)` of `itemsize`-byte elements stays inside a
/// storage of `storage_bytes` bytes: `offset + Σ (size_i − 1)·stride_i < storage numel`, with
/// every step checked for overflow. Returns what is wrong, in words.
pub(crate) fn check_view(
    shape: &[usize],
    strides: &[usize],
    offset: usize,
    storage_bytes: usize,
    itemsize: usize,
) -> Result<(), String> {
    if shape.len() != strides.len() {
        return Err(format!(
            "shape {shape:?} has {} dimensions but strides {strides:?} have {}",
            shape.len(),
            strides.len()
        ));
    }
    let numel = checked_numel(shape)
        .ok_or_else(|| format!("shape {shape:?} holds more elements than memory can address"))?;
    if numel == 0 {
        return Ok(());
    }
    let storage_numel = storage_bytes / itemsize.max(1);
    let mut last = offset;
    for (&size, &stride) in shape.iter().zip(strides) {
        last = (size - 1)
            .checked_mul(stride)
            .and_then(|step| last.checked_add(step))
            .ok_or_else(|| {
                format!("shape {shape:?} with strides {strides:?} overflows the index range")
            })?;
    }
    if last >= storage_numel {
        return Err(format!(
            "shape {shape:?} with strides {strides:?} and offset {offset} reaches element {last}, \
             but the storage holds {storage_numel} elements"
        ));
    }
    if numel > storage_numel && numel > MAX_EXPANDED_NUMEL {
        return Err(format!(
            "shape {shape:?} holds {numel} elements, more than its storage of {storage_numel} \
             elements can plausibly expand to"
        ));
    }
    Ok(())
}

/// Decodes an IEEE 754 binary16 value (torch.float16).
pub(crate) fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let magnitude = match (exponent, mantissa) {
        (0, 0) => 0,
        // Subnormal: mantissa · 2^-24, exact in f32.
        (0, m) => (m as f32 * (1.0 / 16_777_216.0)).to_bits(),
        // Infinity or NaN (payload kept).
        (0x1f, m) => 0x7f80_0000 | (m << 13),
        // Normal: rebias the exponent from 15 to 127.
        (e, m) => ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(sign | magnitude)
}

/// Decodes a bfloat16 value (the upper half of an f32).
pub(crate) fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tensor(shape: &[usize], strides: &[usize], offset: usize, values: &[f32]) -> StoredTensor {
        StoredTensor {
            dtype: DType::F32,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            offset,
            storage: Arc::new(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            requires_grad: false,
            storage_key: String::new(),
        }
    }

    #[test]
    fn f16_decoding_matches_known_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc100), -2.5);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc049), -3.140625);
    }

    #[test]
    fn gather_honours_strides_and_offset() {
        // 4x6 storage 0..24, view = m[1:, 1:5].t(): shape (4, 3), strides (1, 6), offset 7.
        let values: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let t = tensor(&[4, 3], &[1, 6], 7, &values);
        assert!(!t.is_c_contiguous());
        assert_eq!(
            t.to_f32_vec().unwrap(),
            vec![7., 13., 19., 8., 14., 20., 9., 15., 21., 10., 16., 22.]
        );
        let c = tensor(&[2, 1, 3], &[3, 99, 1], 0, &values[..6]);
        assert!(c.is_c_contiguous());
        assert_eq!(c.to_f32_vec().unwrap(), values[..6].to_vec());
        let scalar = tensor(&[], &[], 5, &values);
        assert_eq!(scalar.to_f32_vec().unwrap(), vec![5.0]);
        let expanded = tensor(&[3, 2], &[0, 1], 1, &values[..3]);
        assert_eq!(expanded.to_f32_vec().unwrap(), vec![1., 2., 1., 2., 1., 2.]);
    }

    #[test]
    fn views_past_the_storage_are_refused() {
        let values = [0f32; 6];
        let cases = [
            (vec![2, 3], vec![3, 1], 1, "reaches element 6"),
            (vec![2, 3], vec![4, 1], 0, "reaches element 6"),
            (vec![1usize << 40, 2], vec![1 << 40, 1], 0, "overflows"),
            (
                vec![1usize << 40, 1 << 40],
                vec![1, 1],
                0,
                "more elements than memory",
            ),
            (vec![1usize << 30], vec![0], 0, "plausibly"),
            (vec![2], vec![1, 1], 0, "dimensions"),
        ];
        for (shape, strides, offset, needle) in cases {
            let t = tensor(&shape, &strides, offset, &values);
            let message = t.to_f32_vec().unwrap_err().to_string();
            assert!(message.contains(needle), "{message}");
        }
    }

    #[test]
    fn integers_convert_and_floats_do_not() {
        let t = StoredTensor {
            dtype: DType::I64,
            shape: vec![3],
            strides: vec![1],
            offset: 0,
            storage: Arc::new(
                [-1i64, 0, 1 << 40]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            requires_grad: false,
            storage_key: String::new(),
        };
        assert_eq!(t.to_i64_vec().unwrap(), vec![-1, 0, 1 << 40]);
        assert_eq!(
            t.to_f32_vec().unwrap(),
            vec![-1.0, 0.0, (1u64 << 40) as f32]
        );
        let f = tensor(&[1], &[1], 0, &[1.0]);
        assert_eq!(
            f.to_i64_vec().unwrap_err().to_string(),
            "cannot read a float32 tensor as integers"
        );
    }

    /// Element by element, as [`gather_view`] read every view before the tiled path.
    fn naive(storage: &[u8], shape: &[usize], strides: &[usize], offset: usize) -> Vec<u32> {
        let numel: usize = shape.iter().product();
        (0..numel)
            .map(|mut flat| {
                let mut index = offset;
                for (&size, &stride) in shape.iter().zip(strides).rev() {
                    index += (flat % size) * stride;
                    flat /= size;
                }
                u32::from_le_bytes(storage[index * 4..index * 4 + 4].try_into().unwrap())
            })
            .collect()
    }

    #[test]
    fn transposed_views_read_tile_by_tile_as_element_by_element() {
        // Fortran order (prepare-data's tensors, NIfTI volumes), other permutations, sizes
        // around the tile edge, an offset, a stepped axis.
        let cases: &[(&[usize], &[usize], usize)] = &[
            (&[1, 69, 40, 33], &[69, 1, 69, 2760], 0),
            (&[70, 33], &[1, 70], 0),
            (&[2, 3, 65, 31], &[1, 2 * 65 * 31, 2, 2 * 65], 0),
            (&[5, 64, 7], &[64 * 7, 1, 64], 3),
            (&[4, 33, 33], &[1, 4, 4 * 33 * 2], 1),
            (&[32, 32], &[1, 32], 0),
            (&[1, 1], &[1, 1], 0),
        ];
        for &(shape, strides, offset) in cases {
            let last: usize = offset
                + shape
                    .iter()
                    .zip(strides)
                    .map(|(&n, &s)| (n - 1) * s)
                    .sum::<usize>();
            let storage: Vec<u8> = (0..=last as u32).flat_map(u32::to_le_bytes).collect();
            let got = gather_view::<4, u32>(&storage, shape, strides, offset, u32::from_le_bytes)
                .unwrap();
            assert_eq!(
                got,
                naive(&storage, shape, strides, offset),
                "{shape:?} {strides:?}"
            );
            assert_eq!(
                transposed_axis(
                    &layout(shape, strides, offset, storage.len(), 4)
                        .unwrap()
                        .dims
                )
                .is_some(),
                shape.len() > 1
                    && strides[shape.len() - 1] != 1
                    && shape.iter().product::<usize>() > 1,
                "{shape:?} {strides:?}"
            );
        }
    }
}
