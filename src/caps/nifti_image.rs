//! CAPS NIfTI images read as the tensors `clinicadl prepare-data` would have made of them
//! (docs/ARCHITECTURE.md, "CAPS NIfTI images"): a session without its `.pt` tensor (or every
//! session, with `--from_nifti`) is read from the NIfTI-1 image its tensor comes from.
//!
//! prepare-data turns an image into a tensor with nibabel and numpy 1.26
//! (`torch.from_numpy(nib.load(f).get_fdata(dtype="float32")).unsqueeze(0).float()`), which this
//! file reproduces value for value:
//! - the voxels keep their on-disk order (no reorientation): the tensor is `[1, d1, …, dn]`
//!   with voxel `(i, j, k)` stored at `i + d1·j + d1·d2·k` (first axis fastest);
//! - scaling (`scl_slope`, `scl_inter`) applies unless the slope is 0 or not finite (then the
//!   intercept is ignored too); a finite slope with a non-finite intercept is an error (nibabel's
//!   `HeaderDataError`); a slope of exactly 1 is not multiplied and an intercept of exactly 0 not
//!   added (`-0.0 + 0.0` would give `+0.0`);
//! - float32 voxels are scaled in float32;
//! - float64 voxels, and every 32- and 64-bit integer type (numpy promotes `int32 · float32` to
//!   float64), are converted and scaled in float64, then rounded once to float32;
//! - 8- and 16-bit integers are converted to float32 exactly, then multiplied and added in
//!   float32: two roundings (computing in float64 and rounding once differs on most voxels),
//!   unless the scaled range of the type overflows float32, where nibabel goes to float64
//!   (`int_scinter_ftype`);
//! - NaN and infinities stay as they are (the load-time transforms deal with them).
//!
//! ClinicaDL: `clinicadl.prepare_data.prepare_data_utils.extract_images`; nibabel 5:
//! `ArrayProxy._get_scaled`, `volumeutils.apply_read_scaling`, `int_scinter_ftype`,
//! `Nifti1Header.get_slope_inter`.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};

use super::transforms::Element;

/// Size of a NIfTI-1 header.
const HEADER_BYTES: usize = 348;

/// Deflate cannot expand data more than this many times (RFC 1951: 258 bytes from 2 bits, with
/// room for block headers): the most a gzip file can hold, decompressed, per byte.
const MAX_INFLATE_RATIO: usize = 1032;

/// How the voxels are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voxel {
    /// `uint8` (NIfTI code 2).
    U8,
    /// `int8` (256).
    I8,
    /// `int16` (4).
    I16,
    /// `uint16` (512).
    U16,
    /// `int32` (8).
    I32,
    /// `uint32` (768).
    U32,
    /// `int64` (1024).
    I64,
    /// `uint64` (1280).
    U64,
    /// `float32` (16).
    F32,
    /// `float64` (64).
    F64,
}

impl Voxel {
    fn from_code(code: i16) -> Result<Voxel, String> {
        Ok(match code {
            2 => Voxel::U8,
            256 => Voxel::I8,
            4 => Voxel::I16,
            512 => Voxel::U16,
            8 => Voxel::I32,
            768 => Voxel::U32,
            1024 => Voxel::I64,
            1280 => Voxel::U64,
            16 => Voxel::F32,
            64 => Voxel::F64,
            1 => return Err("binary (1-bit) voxels".into()),
            32 | 1792 | 2048 => return Err("complex voxels".into()),
            128 | 2304 => return Err("RGB(A) voxels".into()),
            1536 => return Err("float128 voxels".into()),
            other => return Err(format!("an unknown datatype code {other}")),
        })
    }

    /// Bytes per voxel.
    pub fn size(self) -> usize {
        match self {
            Voxel::U8 | Voxel::I8 => 1,
            Voxel::I16 | Voxel::U16 => 2,
            Voxel::I32 | Voxel::U32 | Voxel::F32 => 4,
            Voxel::I64 | Voxel::U64 | Voxel::F64 => 8,
        }
    }

    /// numpy's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            Voxel::U8 => "uint8",
            Voxel::I8 => "int8",
            Voxel::I16 => "int16",
            Voxel::U16 => "uint16",
            Voxel::I32 => "int32",
            Voxel::U32 => "uint32",
            Voxel::I64 => "int64",
            Voxel::U64 => "uint64",
            Voxel::F32 => "float32",
            Voxel::F64 => "float64",
        }
    }

    /// The range of an 8- or 16-bit integer type (converted to float32 exactly), else `None`.
    fn small_int_range(self) -> Option<(f32, f32)> {
        match self {
            Voxel::U8 => Some((0.0, 255.0)),
            Voxel::I8 => Some((-128.0, 127.0)),
            Voxel::I16 => Some((-32768.0, 32767.0)),
            Voxel::U16 => Some((0.0, 65535.0)),
            _ => None,
        }
    }
}

/// What the header of a CAPS NIfTI image says: enough to check it up front and to read it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageHeader {
    /// The shape of the tensor prepare-data makes of it: `[1, d1, …, dn]`.
    pub shape: Vec<usize>,
    /// The voxel type.
    pub voxel: Voxel,
    /// Whether the voxels are big-endian.
    pub big_endian: bool,
    /// `(scl_slope, scl_inter)` when they scale the voxels.
    pub scaling: Option<(f32, f32)>,
    /// Where the voxels start (`vox_offset`).
    data_offset: usize,
}

impl ImageHeader {
    /// Bytes of the decompressed file the voxels need (header, extensions and voxels).
    fn needed_bytes(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(self.voxel.size(), |bytes, &size| bytes.checked_mul(size))?
            .checked_add(self.data_offset)
    }
}

/// Whether nibabel would decompress the file (by its name, as nibabel decides).
fn is_gzip(path: &Path) -> bool {
    path.to_string_lossy().to_ascii_lowercase().ends_with(".gz")
}

/// Parses the first [`HEADER_BYTES`] of a (decompressed) NIfTI-1 file.
fn parse_header(bytes: &[u8]) -> Result<ImageHeader, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "it holds {} bytes, fewer than a NIfTI-1 header ({HEADER_BYTES})",
            bytes.len()
        ));
    }
    let nifti2 = [i32::from_le_bytes, i32::from_be_bytes]
        .iter()
        .any(|read| read([bytes[0], bytes[1], bytes[2], bytes[3]]) == 540);
    if nifti2 {
        return Err(
            "it is a NIfTI-2 file; CAPS images are NIfTI-1 (convert it with nibabel or FSL)".into(),
        );
    }
    let header = nifti::NiftiHeader::from_reader(&bytes[..HEADER_BYTES])
        .map_err(|error| format!("it is not a NIfTI-1 file ({error})"))?;
    if header.sizeof_hdr != HEADER_BYTES as i32 {
        return Err(format!(
            "it is not a NIfTI-1 file (sizeof_hdr = {}, not {HEADER_BYTES})",
            header.sizeof_hdr
        ));
    }
    if &header.magic != b"n+1\0" {
        return Err(
            "its header belongs to a two-file image (`.hdr` with `.img`); CAPS images are single `.nii` or `.nii.gz` files"
                .into(),
        );
    }
    let voxel = Voxel::from_code(header.datatype).map_err(|what| {
        format!("it holds {what}, which prepare-data cannot turn into a float32 tensor")
    })?;
    let rank = usize::from(header.dim[0]);
    if !(1..=7).contains(&rank) {
        return Err(format!(
            "its header is damaged: dim[0] = {} (the number of dimensions must be 1 to 7)",
            header.dim[0] as i16
        ));
    }
    let mut shape = vec![1usize];
    for &size in &header.dim[1..=rank] {
        let size = size as i16;
        if size <= 0 {
            return Err(format!(
                "its header is damaged: dimensions {:?} (each must be at least 1)",
                header.dim[1..=rank]
                    .iter()
                    .map(|&d| d as i16)
                    .collect::<Vec<_>>()
            ));
        }
        shape.push(size as usize);
    }
    let offset = header.vox_offset;
    if !offset.is_finite() || offset < HEADER_BYTES as f32 || offset > u32::MAX as f32 {
        return Err(format!(
            "its header is damaged: vox_offset = {offset} (the voxels of a `.nii` file start at 352 or after)"
        ));
    }
    // nibabel reads the offset as `int(vox_offset)`.
    let data_offset = offset.trunc() as usize;
    let (slope, inter) = (header.scl_slope, header.scl_inter);
    let scaling = if slope == 0.0 || !slope.is_finite() {
        None
    } else if !inter.is_finite() {
        return Err(format!(
            "its header is damaged: scl_slope {slope} with scl_inter {inter} (nibabel refuses it: \"Valid slope but invalid intercept\")"
        ));
    } else if slope == 1.0 && inter == 0.0 {
        None
    } else {
        Some((slope, inter))
    };
    Ok(ImageHeader {
        shape,
        voxel,
        big_endian: header.endianness == nifti::Endianness::Big,
        scaling,
        data_offset,
    })
}

/// What is wrong with the CAPS image at `path`, as an error naming it.
fn in_image(path: &Path, why: String) -> anyhow::Error {
    anyhow::anyhow!("the CAPS image `{}`: {why}", path.display())
}

/// The header's bytes of a file read from `reader` (decompressing only the first bytes when
/// `gzip`).
fn header_bytes(reader: impl Read, gzip: bool) -> std::io::Result<Vec<u8>> {
    let mut start = Vec::with_capacity(HEADER_BYTES);
    let limit = HEADER_BYTES as u64;
    if gzip {
        flate2::read::MultiGzDecoder::new(reader)
            .take(limit)
            .read_to_end(&mut start)?;
    } else {
        reader.take(limit).read_to_end(&mut start)?;
    }
    Ok(start)
}

/// Reads the header of a CAPS NIfTI image (decompressing only its first bytes).
pub fn read_header(path: &Path) -> Result<ImageHeader> {
    let unreadable = || format!("cannot read the CAPS image `{}`", path.display());
    let file = std::fs::File::open(path).with_context(unreadable)?;
    let start =
        header_bytes(std::io::BufReader::new(file), is_gzip(path)).with_context(unreadable)?;
    parse_header(&start).map_err(|why| in_image(path, why))
}

/// Reads a CAPS NIfTI image as prepare-data's tensor `[1, d1, …, dn]` (C order), with the
/// SHA-256 of the file's bytes (read once).
pub fn read_image(path: &Path) -> Result<(Element, String)> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the CAPS image `{}`", path.display()))?;
    let digest = crate::digest::sha256_hex(&bytes);
    Ok((image_from_bytes(&bytes, is_gzip(path), path)?, digest))
}

/// [`read_image`] of a file already in memory (`gzip`: whether it is to be decompressed);
/// `path` only names it in messages.
pub fn image_from_bytes(bytes: &[u8], gzip: bool, path: &Path) -> Result<Element> {
    let fail = |why: String| in_image(path, why);
    // The header first: with gzip, it says how much to inflate (and allocate) at most.
    let start =
        header_bytes(bytes, gzip).map_err(|e| fail(format!("cannot decompress it ({e})")))?;
    let header = parse_header(&start).map_err(fail)?;
    if !gzip {
        return convert(&header, bytes).map_err(fail);
    }
    let needed = header
        .needed_bytes()
        .ok_or_else(|| fail(format!("its dimensions {:?} are too large", header.shape)))?;
    let inflated = match inflate_whole(bytes, needed) {
        Some(data) => data,
        None => inflate_streaming(bytes, needed).map_err(fail)?,
    };
    convert(&header, &inflated).map_err(fail)
}

/// Inflates a file made of one gzip member at once (libdeflate, on the whole buffer: about twice
/// as fast as streaming), when its trailer's size (ISIZE) covers the `needed` bytes and is one the
/// file can hold. `None` for anything else (several members, a member over 4 GiB, damage): the
/// streaming decoder then takes it, and names what is wrong.
fn inflate_whole(bytes: &[u8], needed: usize) -> Option<Vec<u8>> {
    let trailer: [u8; 4] = bytes.get(bytes.len().checked_sub(4)?..)?.try_into().ok()?;
    let size = usize::try_from(u32::from_le_bytes(trailer)).ok()?;
    if size < needed || size > bytes.len().saturating_mul(MAX_INFLATE_RATIO) {
        return None;
    }
    let mut data = Vec::new();
    data.try_reserve_exact(size).ok()?;
    data.resize(size, 0);
    let written = libdeflater::Decompressor::new()
        .gzip_decompress(bytes, &mut data)
        .ok()?;
    (written == size).then_some(data)
}

/// Inflates the first `needed` bytes of a gzip stream of one or more members, allocating no more
/// than the file can hold (a hostile header cannot make it allocate what it claims).
fn inflate_streaming(bytes: &[u8], needed: usize) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    data.try_reserve_exact(needed.min(bytes.len().saturating_mul(MAX_INFLATE_RATIO)))
        .map_err(|_| format!("cannot allocate {needed} bytes for it"))?;
    flate2::bufread::MultiGzDecoder::new(bytes)
        .take(needed as u64)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot decompress it ({e})"))?;
    Ok(data)
}

/// The voxels of a decompressed file as prepare-data's float32 tensor, in C order.
fn convert(header: &ImageHeader, file: &[u8]) -> Result<Element, String> {
    let needed = header
        .needed_bytes()
        .ok_or_else(|| format!("its dimensions {:?} are too large", header.shape))?;
    if file.len() < needed {
        return Err(format!(
            "it is truncated: its header describes {:?} {} voxels from byte {}, {needed} bytes in all, but it holds {}",
            &header.shape[1..],
            header.voxel.name(),
            header.data_offset,
            file.len()
        ));
    }
    let voxels = &file[header.data_offset..needed];
    // Column-major: the first axis is the fastest.
    let shape = &header.shape;
    let mut strides = vec![0usize; shape.len()];
    let mut step = 1usize;
    for (stride, &size) in strides.iter_mut().zip(shape).skip(1) {
        *stride = step;
        step *= size;
    }
    strides[0] = step;
    let data = decode(header, voxels, shape, &strides).map_err(|e| e.to_string())?;
    Ok(Element {
        data,
        shape: shape.clone(),
    })
}

/// Decodes and scales every voxel as nibabel does (see the module's rules), gathering them in
/// C order.
fn decode(
    header: &ImageHeader,
    voxels: &[u8],
    shape: &[usize],
    strides: &[usize],
) -> Result<Vec<f32>, crate::torchfile::TorchFileError> {
    use crate::torchfile::gather_view;
    let big = header.big_endian;
    // float64 arithmetic (float64 voxels, 32- and 64-bit integers).
    let wide = |value: f64| -> f32 {
        let mut value = value;
        if let Some((slope, inter)) = header.scaling {
            if slope != 1.0 {
                value *= f64::from(slope);
            }
            if inter != 0.0 {
                value += f64::from(inter);
            }
        }
        value as f32
    };
    // float32 arithmetic (float32 voxels, 8- and 16-bit integers that stay finite).
    let narrow = |value: f32| -> f32 {
        let mut value = value;
        if let Some((slope, inter)) = header.scaling {
            if slope != 1.0 {
                value *= slope;
            }
            if inter != 0.0 {
                value += inter;
            }
        }
        value
    };
    // nibabel's `int_scinter_ftype`: float32 unless scaling the type's range overflows it.
    let small_in_f32 = header
        .voxel
        .small_int_range()
        .is_some_and(|(low, high)| narrow(low).is_finite() && narrow(high).is_finite());
    macro_rules! ints {
        ($n:literal, $t:ty) => {
            if small_in_f32 {
                gather_view::<$n, f32>(voxels, shape, strides, 0, |b| {
                    let raw = if big {
                        <$t>::from_be_bytes(b)
                    } else {
                        <$t>::from_le_bytes(b)
                    };
                    narrow(raw as f32)
                })
            } else {
                gather_view::<$n, f32>(voxels, shape, strides, 0, |b| {
                    let raw = if big {
                        <$t>::from_be_bytes(b)
                    } else {
                        <$t>::from_le_bytes(b)
                    };
                    wide(raw as f64)
                })
            }
        };
    }
    match header.voxel {
        Voxel::U8 => ints!(1, u8),
        Voxel::I8 => ints!(1, i8),
        Voxel::I16 => ints!(2, i16),
        Voxel::U16 => ints!(2, u16),
        Voxel::I32 => ints!(4, i32),
        Voxel::U32 => ints!(4, u32),
        Voxel::I64 => ints!(8, i64),
        Voxel::U64 => ints!(8, u64),
        Voxel::F32 => gather_view::<4, f32>(voxels, shape, strides, 0, |b| {
            narrow(if big {
                f32::from_be_bytes(b)
            } else {
                f32::from_le_bytes(b)
            })
        }),
        Voxel::F64 => gather_view::<8, f32>(voxels, shape, strides, 0, |b| {
            wide(if big {
                f64::from_be_bytes(b)
            } else {
                f64::from_le_bytes(b)
            })
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::paths::{ImageFinder, file_pattern};
    use serde_json::Value;
    use std::path::PathBuf;

    /// The images and the tensors `clinicadl prepare-data` 1.6.1 made of them
    /// (tests/fixtures/nifti, scripts/fixtures/make_nifti_fixtures.py).
    fn cases() -> (PathBuf, Vec<Value>) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nifti");
        let text = std::fs::read_to_string(root.join("cases.json")).unwrap();
        let Value::Array(cases) = serde_json::from_str(&text).unwrap() else {
            panic!("cases.json holds a list")
        };
        (root, cases)
    }

    fn text<'a>(case: &'a Value, key: &str) -> &'a str {
        case[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} of {case}"))
    }

    #[test]
    fn images_convert_to_the_tensors_prepare_data_wrote_bit_for_bit() {
        let (root, cases) = cases();
        let mut compared = 0;
        for case in &cases {
            let name = text(case, "name");
            let caps = root.join(text(case, "caps"));
            let image = caps.join(text(case, "nifti"));
            let Some(tensor) = case["tensor"].as_str() else {
                continue;
            };
            let stored = crate::torchfile::read_tensor(&caps.join(tensor)).unwrap();
            let expected = stored.to_f32_vec().unwrap();
            let header = read_header(&image).unwrap();
            assert_eq!(header.shape, stored.shape, "{name}: shape");
            let (converted, digest) = read_image(&image).unwrap();
            assert_eq!(converted.shape, stored.shape, "{name}: shape");
            assert_eq!(
                digest,
                crate::digest::sha256_file(&image).unwrap(),
                "{name}: digest"
            );
            let bits = |values: &[f32]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&converted.data), bits(&expected), "{name}: values");
            compared += 1;
        }
        assert!(compared >= 25, "only {compared} cases compared");
    }

    #[test]
    fn every_preprocessing_finds_the_image_and_the_tensor_prepare_data_made_of_it() {
        let (root, cases) = cases();
        for case in &cases {
            let name = text(case, "name");
            let caps = root.join(text(case, "caps"));
            let Value::Object(dict) = &case["preprocessing"] else {
                panic!("{name}: preprocessing")
            };
            // With the pattern maps.json stores, and with the pattern computed from the rest.
            let mut computed = dict.clone();
            computed.remove("file_type");
            for dict in [dict, &computed] {
                let pre = crate::maps::json::preprocessing(dict, Path::new("maps.json"))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let pattern = file_pattern(&pre).unwrap();
                let files = ImageFinder::new(&pattern)
                    .files(&caps, text(case, "participant"), text(case, "session"))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(files.nifti, Some(caps.join(text(case, "nifti"))), "{name}");
                if let Some(tensor) = case["tensor"].as_str() {
                    assert_eq!(files.tensor, caps.join(tensor), "{name}");
                }
            }
        }
    }

    /// A little-endian single-file NIfTI-1 header (`n+1`), its 4 extension bytes, then `data`.
    fn file(dims: &[i16], datatype: i16, vox_offset: f32, data: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; 352];
        bytes[0..4].copy_from_slice(&348i32.to_le_bytes());
        bytes[40..42].copy_from_slice(&(dims.len() as i16).to_le_bytes());
        for (i, d) in dims.iter().enumerate() {
            bytes[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
        }
        bytes[70..72].copy_from_slice(&datatype.to_le_bytes());
        bytes[108..112].copy_from_slice(&vox_offset.to_le_bytes());
        bytes[112..116].copy_from_slice(&1f32.to_le_bytes());
        bytes[344..348].copy_from_slice(b"n+1\0");
        bytes.extend_from_slice(data);
        bytes
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn refusal(bytes: &[u8], gzip: bool) -> String {
        format!(
            "{:#}",
            image_from_bytes(bytes, gzip, Path::new("x.nii.gz")).unwrap_err()
        )
    }

    #[test]
    fn voxels_are_read_in_their_on_disk_order_as_a_c_order_tensor() {
        // 2 x 3 x 1 int16: voxel (i, j) at i + 2 j on disk.
        let raw: Vec<u8> = [0i16, 1, 10, 11, 20, 21]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let bytes = file(&[2, 3, 1], 4, 352.0, &raw);
        for (input, gz) in [(bytes.clone(), false), (gzip(&bytes), true)] {
            let image = image_from_bytes(&input, gz, Path::new("x")).unwrap();
            assert_eq!(image.shape, [1, 2, 3, 1]);
            // C order over [i, j]: (0,0) (0,1) (0,2) (1,0) …
            assert_eq!(image.data, [0.0, 10.0, 20.0, 1.0, 11.0, 21.0]);
        }
    }

    /// One gzip member is inflated whole; several members (and a member whose trailer lies)
    /// go through the streaming decoder: the same voxels either way.
    #[test]
    fn every_gzip_layout_gives_the_same_voxels() {
        let raw: Vec<u8> = (0..60i16).flat_map(|v| v.to_le_bytes()).collect();
        let bytes = file(&[3, 4, 5], 4, 352.0, &raw);
        let expected = image_from_bytes(&bytes, false, Path::new("x")).unwrap();
        let one = gzip(&bytes);
        assert!(inflate_whole(&one, bytes.len()).is_some());
        let mut two = gzip(&bytes[..200]);
        two.extend(gzip(&bytes[200..]));
        assert!(inflate_whole(&two, bytes.len()).is_none());
        let mut lying = one.clone();
        let n = lying.len();
        lying[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(inflate_whole(&lying, bytes.len()).is_none());
        for input in [one, two] {
            assert_eq!(
                image_from_bytes(&input, true, Path::new("x")).unwrap(),
                expected
            );
        }
    }

    #[test]
    fn damaged_and_unsupported_headers_are_refused_in_words() {
        let float = |n: usize| vec![0u8; 4 * n];
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (file(&[2, 2, 2], 16, 352.0, &float(4)), "it is truncated"),
            (file(&[2, 2, 2], 32, 352.0, &float(16)), "complex voxels"),
            (file(&[2, 2, 2], 128, 352.0, &float(8)), "RGB(A) voxels"),
            (
                file(&[2, 2, 2], 77, 352.0, &float(8)),
                "unknown datatype code 77",
            ),
            (
                file(&[2, -2, 2], 16, 352.0, &float(8)),
                "each must be at least 1",
            ),
            (file(&[], 16, 352.0, &float(1)), "dim[0] = 0"),
            (file(&[2, 2, 2], 16, 100.0, &float(8)), "vox_offset = 100"),
            (
                file(&[2, 2, 2], 16, f32::NAN, &float(8)),
                "vox_offset = NaN",
            ),
            (b"short".to_vec(), "fewer than a NIfTI-1 header"),
        ];
        for (bytes, needle) in &cases {
            for (input, gz) in [(bytes.clone(), false), (gzip(bytes), true)] {
                let message = refusal(&input, gz);
                assert!(
                    message.contains(needle) && message.contains("x.nii.gz"),
                    "{needle}: {message}"
                );
            }
        }
        let mut two_files = file(&[2, 2, 2], 16, 352.0, &float(8));
        two_files[344..348].copy_from_slice(b"ni1\0");
        assert!(refusal(&two_files, false).contains("two-file image"));
        let mut nifti2 = file(&[2, 2, 2], 16, 352.0, &float(8));
        nifti2[0..4].copy_from_slice(&540i32.to_le_bytes());
        assert!(refusal(&nifti2, false).contains("NIfTI-2"));
        assert!(refusal(b"not gzip at all, but long enough", true).contains("cannot decompress"));
    }

    /// A header that claims a huge volume in a small file allocates what the file can hold at
    /// most, not what the header claims.
    #[test]
    fn a_hostile_volume_size_does_not_allocate_it() {
        let bytes = gzip(&file(&[32767, 32767, 32767], 64, 352.0, &[0; 64]));
        let message = refusal(&bytes, true);
        assert!(message.contains("it is truncated"), "{message}");
        let header = parse_header(&file(&[32767, 32767, 32767], 64, 352.0, &[])).unwrap();
        assert_eq!(header.shape, [1, 32767, 32767, 32767]);
    }

    #[test]
    fn a_valid_slope_with_an_invalid_intercept_is_refused_as_nibabel_refuses_it() {
        let (root, cases) = cases();
        let case = cases
            .iter()
            .find(|c| c["name"] == "error_nan_inter")
            .unwrap();
        let image = root.join(text(case, "caps")).join(text(case, "nifti"));
        for error in [
            read_header(&image).unwrap_err(),
            read_image(&image).unwrap_err(),
        ] {
            let message = format!("{error:#}");
            assert!(
                message.contains("Valid slope but invalid intercept")
                    && message.contains(&image.display().to_string()),
                "{message}"
            );
        }
    }
}
