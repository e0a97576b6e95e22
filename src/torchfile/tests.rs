//! Tests of the whole module: round trips through the writer, files written by real PyTorch
//! (fixtures in `tests/fixtures/torchfile/`, made by `scripts/fixtures/make_torchfile_fixtures.py`
//! with torch 2.11.0, each with a JSON of the values torch sees), and hostile or corrupt inputs,
//! which must give a clear error and never a panic. Unit tests of single pieces (float16
//! decoding, view checks) live next to their code.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::writer::{TensorPickle, tensor_pickle};
use super::*;

const ORIGIN: &str = "/maps/bad.pt";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torchfile")
}

fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// The error message of reading `bytes`, which must fail.
fn read_error(bytes: &[u8]) -> String {
    match read_from_bytes(bytes, Path::new(ORIGIN)) {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(error) => {
            let message = error.to_string();
            assert!(message.starts_with(&format!("`{ORIGIN}`: ")), "{message}");
            assert!(!message.ends_with('.'), "{message}");
            message
        }
    }
}

fn assert_contains(message: &str, needle: &str) {
    assert!(message.contains(needle), "`{needle}` not in: {message}");
}

/// A stored zip holding `entries` under `prefix/`.
fn zip_of(prefix: &str, entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    for (name, content) in entries {
        zip.start_file(format!("{prefix}/{name}"), options).unwrap();
        zip.write_all(content).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A 2x3 float32 tensor pickle (storage `0`) that tests then make lie.
fn spec() -> TensorPickle<'static> {
    TensorPickle {
        storage_class: "FloatStorage",
        key: "0",
        location: "cpu",
        storage_numel: 6,
        offset: 0,
        shape: &[2, 3],
        strides: &[3, 1],
        requires_grad: false,
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A one-tensor zip from `spec` with `storage` as `data/0`.
fn tensor_zip(spec: &TensorPickle<'_>, storage: &[u8]) -> Vec<u8> {
    let pickle = tensor_pickle(spec);
    zip_of(
        "archive",
        &[
            ("data.pkl", &pickle),
            ("byteorder", b"little"),
            ("data/0", storage),
            ("version", b"3\n"),
        ],
    )
}

/// A zip whose `data.pkl` is `pickle` and which has no storages.
fn pickle_zip(pickle: &[u8]) -> Vec<u8> {
    zip_of("archive", &[("data.pkl", pickle), ("version", b"3\n")])
}

// ---------------------------------------------------------------------------------------------
// Round trips

#[test]
fn written_tensors_read_back_for_several_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let shapes: [&[usize]; 6] = [&[], &[1], &[7], &[2, 3, 4, 5], &[1, 3, 1, 2], &[0, 3]];
    for (i, shape) in shapes.iter().enumerate() {
        let numel: usize = shape.iter().product();
        let data: Vec<f32> = (0..numel).map(|v| v as f32 * 0.25 - 3.0).collect();
        let path = dir.path().join(format!("tensor_{i}.pt"));
        let requires_grad = i % 2 == 1;
        write_tensor(&path, shape, &data, requires_grad).unwrap();
        let tensor = read_tensor(&path).unwrap();
        assert_eq!(tensor.dtype, DType::F32);
        assert_eq!(tensor.shape, shape.to_vec());
        assert!(tensor.is_c_contiguous());
        assert_eq!(tensor.offset, 0);
        assert_eq!(tensor.requires_grad, requires_grad);
        assert_eq!(tensor.numel(), numel);
        assert_eq!(tensor.to_f32_vec().unwrap(), data);
    }
    // Only the finished files remain: no temporary file is left behind.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), shapes.len(), "{names:?}");
    assert!(
        names
            .iter()
            .all(|name| name.starts_with("tensor_") && name.ends_with(".pt"))
    );
}

#[test]
fn written_file_has_torch_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub-01_ses-M000_output.pth.tar");
    write_tensor(&path, &[2, 2], &[1.0, 2.0, 3.0, 4.0], false).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let mut archive = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.unwrap().to_string())
        .collect();
    let prefix = "sub-01_ses-M000_output.pth";
    for entry in ["data.pkl", "byteorder", "data/0", "version"] {
        assert!(names.contains(&format!("{prefix}/{entry}")), "{names:?}");
    }
    let data = archive.by_name(&format!("{prefix}/data/0")).unwrap();
    assert_eq!(data.compression(), CompressionMethod::Stored);
    // Entry data is 64-byte aligned, as torch writes it.
    assert_eq!(data.data_start().unwrap() % 64, 0);
}

#[test]
fn written_pickle_matches_torch_opcode_for_opcode() {
    // The `small.pt` listing of formats.md §1.2 (a 2x3 float32 tensor, torch 2.11).
    let pickle = tensor_pickle(&spec());
    let mut expected = vec![0x80, 2];
    expected.extend_from_slice(
        b"ctorch._utils\n_rebuild_tensor_v2\nq\x00((X\x07\x00\x00\x00storageq\x01",
    );
    expected.extend_from_slice(
        b"ctorch\nFloatStorage\nq\x02X\x01\x00\x00\x000q\x03X\x03\x00\x00\x00cpuq\x04",
    );
    expected.extend_from_slice(b"K\x06tq\x05QK\x00K\x02K\x03\x86q\x06K\x03K\x01\x86q\x07\x89");
    expected.extend_from_slice(b"ccollections\nOrderedDict\nq\x08)Rq\ttq\nRq\x0b.");
    assert_eq!(pickle, expected);
    assert_eq!(pickle.len(), 154);
}

#[test]
fn write_tensor_to_a_buffer_reads_back() {
    let mut buffer = Cursor::new(Vec::new());
    let data: Vec<f32> = (0..24).map(|v| v as f32).collect();
    write_tensor_to(&mut buffer, "latent", &[24], &data, true).unwrap();
    let value = read_from_bytes(buffer.get_ref(), Path::new("latent.pt")).unwrap();
    let Value::Tensor(tensor) = value else {
        panic!("{value:?}")
    };
    assert!(tensor.requires_grad);
    assert_eq!(tensor.to_f32_vec().unwrap(), data);
}

#[test]
fn writer_refuses_bad_arguments_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.pt");
    let error = write_tensor(&path, &[2, 3], &[0.0; 5], false)
        .unwrap_err()
        .to_string();
    assert_contains(&error, "shape [2, 3] holds 6 values but 5 were given");
    assert_contains(&error, &format!("`{}`", path.display()));
    let error = write_tensor(&path, &[usize::MAX, 2], &[], false)
        .unwrap_err()
        .to_string();
    assert_contains(&error, "more elements than memory can address");
    let missing = dir.path().join("no/such/folder/x.pt");
    let error = write_tensor(&missing, &[1], &[0.0], false)
        .unwrap_err()
        .to_string();
    assert_contains(
        &error,
        &format!("`{}`: cannot create the file", missing.display()),
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let error = write_tensor_to(Cursor::new(Vec::new()), "a/b", &[1], &[0.0], false).unwrap_err();
    assert_contains(&error.to_string(), "without separators");
}

#[test]
fn overwriting_an_existing_file_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.pt");
    write_tensor(&path, &[2], &[1.0, 2.0], false).unwrap();
    write_tensor(&path, &[3], &[4.0, 5.0, 6.0], false).unwrap();
    assert_eq!(
        read_tensor(&path).unwrap().to_f32_vec().unwrap(),
        vec![4.0, 5.0, 6.0]
    );
}

// ---------------------------------------------------------------------------------------------
// Files written by real PyTorch

/// Just enough JSON for the fixtures' expectation files (which may hold NaN and Infinity).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Json {
        let mut parser = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let value = parser.value();
        parser.ws();
        assert_eq!(parser.i, parser.s.len(), "trailing JSON");
        value
    }

    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(entries) => &entries.iter().find(|(k, _)| k == key).unwrap().1,
            _ => panic!("not an object: {self:?}"),
        }
    }

    fn entries(&self) -> &[(String, Json)] {
        match self {
            Json::Obj(entries) => entries,
            _ => panic!("not an object"),
        }
    }

    fn usizes(&self) -> Vec<usize> {
        match self {
            Json::Arr(items) => items.iter().map(|v| v.int() as usize).collect(),
            _ => panic!("not an array"),
        }
    }

    fn int(&self) -> i64 {
        match self {
            Json::Int(v) => *v,
            _ => panic!("not an int: {self:?}"),
        }
    }

    fn float(&self) -> f64 {
        match self {
            Json::Int(v) => *v as f64,
            Json::Num(v) => *v,
            _ => panic!("not a number: {self:?}"),
        }
    }

    fn str(&self) -> &str {
        match self {
            Json::Str(v) => v,
            _ => panic!("not a string"),
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.s[self.i..].starts_with(token.as_bytes()) {
            self.i += token.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Json {
        self.ws();
        for (token, value) in [
            ("null", Json::Null),
            ("true", Json::Bool(true)),
            ("false", Json::Bool(false)),
            ("NaN", Json::Num(f64::NAN)),
            ("Infinity", Json::Num(f64::INFINITY)),
            ("-Infinity", Json::Num(f64::NEG_INFINITY)),
        ] {
            if self.eat(token) {
                return value;
            }
        }
        match self.s[self.i] {
            b'"' => Json::Str(self.string()),
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.ws();
                    if self.eat("]") {
                        return Json::Arr(items);
                    }
                    items.push(self.value());
                    self.ws();
                    self.eat(",");
                }
            }
            b'{' => {
                self.i += 1;
                let mut entries = Vec::new();
                loop {
                    self.ws();
                    if self.eat("}") {
                        return Json::Obj(entries);
                    }
                    let key = self.string();
                    self.ws();
                    assert!(self.eat(":"));
                    entries.push((key, self.value()));
                    self.ws();
                    self.eat(",");
                }
            }
            _ => {
                let start = self.i;
                while self.i < self.s.len() && b"+-0123456789.eE".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                if text.contains(['.', 'e', 'E']) {
                    Json::Num(text.parse().unwrap())
                } else {
                    Json::Int(text.parse().unwrap())
                }
            }
        }
    }

    fn string(&mut self) -> String {
        assert!(self.eat("\""));
        let mut out = String::new();
        loop {
            let c = self.s[self.i];
            self.i += 1;
            match c {
                b'"' => return out,
                b'\\' => {
                    let e = self.s[self.i];
                    self.i += 1;
                    match e {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hex = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
                            out.push(
                                char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap(),
                            );
                            self.i += 4;
                        }
                        other => out.push(other as char),
                    }
                }
                other => out.push(other as char),
            }
        }
    }
}

fn expected(stem: &str) -> Json {
    Json::parse(&std::fs::read_to_string(fixture(&format!("{stem}.json"))).unwrap())
}

/// Compares a tensor read by this module with what torch saw.
fn check_tensor(what: &str, tensor: &StoredTensor, expected: &Json) {
    assert_eq!(tensor.dtype.name(), expected.get("dtype").str(), "{what}");
    assert_eq!(tensor.shape, expected.get("shape").usizes(), "{what}");
    assert_eq!(tensor.strides, expected.get("strides").usizes(), "{what}");
    assert_eq!(tensor.offset as i64, expected.get("offset").int(), "{what}");
    let requires_grad = expected.get("requires_grad") == &Json::Bool(true);
    assert_eq!(tensor.requires_grad, requires_grad, "{what}");
    let Json::Arr(values) = expected.get("values") else {
        panic!("{what}: values")
    };
    let floats = tensor.to_f32_vec().unwrap();
    assert_eq!(floats.len(), values.len(), "{what}");
    for (i, (got, want)) in floats.iter().zip(values).enumerate() {
        let want = want.float() as f32;
        let same = got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan());
        assert!(same, "{what}[{i}]: got {got}, torch says {want}");
    }
    if !expected.get("dtype").str().contains("float") {
        let ints = tensor.to_i64_vec().unwrap();
        let want: Vec<i64> = values.iter().map(Json::int).collect();
        assert_eq!(ints, want, "{what}");
    }
}

#[test]
fn every_torch_written_fixture_matches_its_json() {
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let json_path = entry.unwrap().path();
        if json_path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let stem = json_path.file_stem().unwrap().to_str().unwrap().to_string();
        let expected = expected(&stem);
        let kind = expected.get("kind").str();
        let tensors = expected.get("tensors").entries();
        let file = if kind == "checkpoint" {
            format!("{stem}.pth.tar")
        } else {
            format!("{stem}.pt")
        };
        let path = fixture(&file);
        match kind {
            "tensor" => {
                let tensor = read_tensor(&path).unwrap();
                check_tensor(&file, &tensor, &tensors[0].1);
            }
            "dict" => {
                let value = read(&path).unwrap();
                let Value::Dict(entries) = &value else {
                    panic!("{file}: {value:?}")
                };
                assert_eq!(entries.len(), tensors.len(), "{file}");
                for ((key, value), (want_key, want)) in entries.iter().zip(tensors) {
                    assert_eq!(key, &Value::Str(want_key.clone()), "{file}");
                    let Value::Tensor(tensor) = value else {
                        panic!("{file}: {key:?}")
                    };
                    check_tensor(&format!("{file}:{want_key}"), tensor, want);
                }
            }
            "checkpoint" => {
                let checkpoint = read_checkpoint(&path).unwrap();
                assert_eq!(checkpoint.epoch, Some(expected.get("epoch").int()));
                assert_eq!(checkpoint.name.as_deref(), Some(expected.get("name").str()));
                assert_eq!(checkpoint.state_dict.len(), tensors.len());
                for ((key, tensor), (want_key, want)) in checkpoint.state_dict.iter().zip(tensors) {
                    assert_eq!(key, want_key);
                    check_tensor(&format!("{file}:{key}"), tensor, want);
                }
            }
            other => panic!("unknown kind {other}"),
        }
        checked += 1;
    }
    assert!(checked >= 11, "only {checked} fixtures found");
}

#[test]
fn caps_image_keeps_its_column_major_strides() {
    let tensor = read_tensor(&fixture("caps_image.pt")).unwrap();
    assert_eq!(tensor.shape, vec![1, 5, 4, 3]);
    assert_eq!(tensor.strides, vec![60, 1, 5, 20]);
    assert!(!tensor.is_c_contiguous());
    // Element [0, x, y, z] is storage[x + 5y + 20z] = (x + 5y + 20z) * 0.5 - 3.
    let values = tensor.to_f32_vec().unwrap();
    assert_eq!(values[0], -3.0);
    assert_eq!(values[1], (20.0 * 0.5) - 3.0); // [0, 0, 0, 1]
    assert_eq!(values[3], (5.0 * 0.5) - 3.0); // [0, 0, 1, 0]
    assert_eq!(values[12], 0.5 - 3.0); // [0, 1, 0, 0]
}

#[test]
fn checkpoint_prefix_differs_from_file_name() {
    let bytes = std::fs::read(fixture("model.pth.tar")).unwrap();
    let archive = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
    assert!(
        archive
            .file_names()
            .all(|n| n.unwrap().starts_with("checkpoint.pth/"))
    );
    let checkpoint = read_checkpoint(&fixture("model.pth.tar")).unwrap();
    let keys: Vec<&str> = checkpoint
        .state_dict
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "0.weight",
            "0.bias",
            "1.weight",
            "1.bias",
            "1.running_mean",
            "1.running_var",
            "1.num_batches_tracked",
            "3.weight",
            "3.bias"
        ]
    );
    let (_, tracked) = &checkpoint.state_dict[6];
    assert_eq!(tracked.dtype, DType::I64);
    assert_eq!(tracked.to_i64_vec().unwrap(), vec![1]);
}

#[test]
fn legacy_views_share_one_storage() {
    let value = read(&fixture("legacy.pt")).unwrap();
    let (Some(Value::Tensor(weight)), Some(Value::Tensor(view))) =
        (value.get("weight"), value.get("view"))
    else {
        panic!("{value:?}")
    };
    assert!(Arc::ptr_eq(&weight.storage, &view.storage));
    assert_eq!(view.offset, 4);
}

#[test]
fn bare_state_dict_is_a_checkpoint_without_metadata() {
    // dtypes.pt is a dict of str -> tensor, i.e. a bare state_dict.
    let checkpoint = read_checkpoint(&fixture("dtypes.pt")).unwrap();
    assert_eq!(checkpoint.epoch, None);
    assert_eq!(checkpoint.name, None);
    assert_eq!(checkpoint.state_dict.len(), 9);
}

#[test]
fn parameter_keeps_requires_grad() {
    let tensor = read_tensor(&fixture("parameter.pt")).unwrap();
    assert!(tensor.requires_grad);
    assert_eq!(tensor.to_f32_vec().unwrap(), vec![1.0, -2.0, 0.25, 8.0]);
}

#[test]
fn gpu_location_is_accepted() {
    let spec = TensorPickle {
        location: "cuda:0",
        ..spec()
    };
    let bytes = tensor_zip(&spec, &f32_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
    let Value::Tensor(t) = read_from_bytes(&bytes, Path::new(ORIGIN)).unwrap() else {
        panic!()
    };
    assert_eq!(t.to_f32_vec().unwrap(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn memo_references_share_one_object_like_python() {
    // d = {}; memo[0] = d; d['a'] = 1; (d, d)  -> both copies hold 'a'.
    let pickle = b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01uh\x00\x86.";
    let value = read_from_bytes(&pickle_zip(pickle), Path::new(ORIGIN)).unwrap();
    let entry = Value::Dict(vec![(Value::Str("a".into()), Value::Int(1))]);
    assert_eq!(value, Value::Tuple(vec![entry.clone(), entry]));
    // Setting a key twice keeps its first position and the last value, as in Python.
    let pickle =
        b"\x80\x02}(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00bK\x02X\x01\x00\x00\x00aK\x03u.";
    let value = read_from_bytes(&pickle_zip(pickle), Path::new(ORIGIN)).unwrap();
    assert_eq!(
        value,
        Value::Dict(vec![
            (Value::Str("a".into()), Value::Int(3)),
            (Value::Str("b".into()), Value::Int(2))
        ])
    );
}

#[test]
fn every_supported_opcode_decodes_to_its_value() {
    let mut pickle = b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00".to_vec(); // PROTO 4, FRAME
    pickle.extend_from_slice(b"(");
    pickle.extend_from_slice(b"N\x88\x89"); // None, True, False
    pickle.extend_from_slice(b"J\xfe\xff\xff\xffK\xffM\x00\x01"); // -2, 255, 256
    pickle.extend_from_slice(b"\x8a\x00\x8a\x01\xff\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80"); // 0, -1, i64::MIN
    pickle.extend_from_slice(b"G\x3f\xf8\x00\x00\x00\x00\x00\x00"); // 1.5 (big-endian)
    pickle.extend_from_slice(b"\x8c\x02\xc3\xa9\x8d\x01\x00\x00\x00\x00\x00\x00\x00i"); // 'é', 'i'
    pickle.extend_from_slice(b"C\x02abB\x01\x00\x00\x00c"); // b'ab', b'c'
    pickle.extend_from_slice(b"K\x01K\x02K\x03\x87"); // (1, 2, 3)
    pickle.extend_from_slice(b"(K\x04l"); // [4]
    pickle.extend_from_slice(b"](K\x05K\x06eK\x07a"); // [5, 6, 7]
    pickle.extend_from_slice(b"(K\x08K\tdr\x00\x01\x00\x00"); // {8: 9}, LONG_BINPUT 256
    // LONG_BINGET 256, MEMOIZE (as memo entry 1), BINGET 1
    pickle.extend_from_slice(b"j\x00\x01\x00\x00\x94h\x01");
    pickle.extend_from_slice(b"t.");
    let value = read_from_bytes(&pickle_zip(&pickle), Path::new(ORIGIN)).unwrap();
    let dict = Value::Dict(vec![(Value::Int(8), Value::Int(9))]);
    assert_eq!(
        value,
        Value::Tuple(vec![
            Value::None,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(-2),
            Value::Int(255),
            Value::Int(256),
            Value::Int(0),
            Value::Int(-1),
            Value::Int(i64::MIN),
            Value::Float(1.5),
            Value::Str("é".into()),
            Value::Str("i".into()),
            Value::Bytes(b"ab".to_vec()),
            Value::Bytes(b"c".to_vec()),
            Value::Tuple(vec![Value::Int(1), Value::Int(2), Value::Int(3)]),
            Value::List(vec![Value::Int(4)]),
            Value::List(vec![Value::Int(5), Value::Int(6), Value::Int(7)]),
            dict.clone(),
            dict.clone(),
            dict,
        ])
    );
}

#[test]
fn big_integers_are_refused_in_data() {
    let pickle = b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.";
    assert_contains(
        &read_error(&pickle_zip(pickle)),
        "9-byte integer, too large for 64 bits",
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile and corrupt inputs

#[test]
fn evil_fixture_is_refused_without_running_anything() {
    let path = fixture("evil.pt");
    let message = read(&path).unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "`{}`: pickle asks for global `os.system`, which is not allowed in a data file",
            path.display()
        )
    );
}

#[test]
fn forbidden_globals_are_refused_by_name() {
    let cases: [(&[u8], &str); 4] = [
        (b"\x80\x02cbuiltins\neval\n)R.", "`builtins.eval`"),
        (
            b"\x80\x04\x8c\x08builtins\x8c\x04exec\x93)R.",
            "`builtins.exec`",
        ),
        (
            b"\x80\x02ctorch._utils\n_rebuild_tensor\n.",
            "`torch._utils._rebuild_tensor`",
        ),
        (b"\x80\x02ctorch\nTensor\n.", "`torch.Tensor`"),
    ];
    for (pickle, needle) in cases {
        let message = read_error(&pickle_zip(pickle));
        assert_contains(&message, &format!("pickle asks for global {needle}"));
    }
}

#[test]
fn unknown_and_unsupported_opcodes_are_named_with_their_offset() {
    let message = read_error(&pickle_zip(b"\x80\x02K\x01\xff."));
    assert_contains(
        &message,
        "unsupported pickle opcode `unknown` (0xff) at byte 4 of entry `archive/data.pkl`",
    );
    let message = read_error(&pickle_zip(b"\x80\x02(i__main__\nX\n."));
    assert_contains(&message, "`INST` (0x69) at byte 3");
    let message = read_error(&pickle_zip(b"\x80\x02N0."));
    assert_contains(&message, "`POP` (0x30) at byte 3");
}

#[test]
fn structural_pickle_errors_are_reported() {
    let cases: [(&[u8], &str); 9] = [
        (b"\x80\x02", "ends without a STOP opcode"),
        (b"\x80\x02.", "pops from an empty stack"),
        (
            b"\x80\x02X\xff\xff\xff\x7fab.",
            "needs 2147483647 more bytes",
        ),
        (b"\x80\x02h\x05.", "memo entry 5 was never stored"),
        (b"\x80\x02K\x01K\x02a.", "APPEND to a int, not a list"),
        (b"\x80\x02(K\x01K\x02K\x03d.", "odd number"),
        (b"\x80\x02\x80\x09.", "unsupported pickle protocol 9"),
        (
            b"\x80\x02]q\x00h\x00a.",
            "deeper than 100 levels (or is cyclic)",
        ),
        (
            b"\x80\x02ccollections\nOrderedDict\nK\x01\x85R.",
            "OrderedDict built from a int",
        ),
    ];
    for (pickle, needle) in cases {
        let message = read_error(&pickle_zip(pickle));
        assert_contains(&message, needle);
    }
}

#[test]
fn exponential_sharing_is_bounded() {
    // t0 = (None, None); t(i+1) = (t(i), t(i)) through the memo, 40 levels: 2^40 leaves.
    let mut pickle = b"\x80\x02N".to_vec();
    for _ in 0..40 {
        pickle.extend_from_slice(b"q\x00h\x00\x86");
    }
    pickle.push(b'.');
    let message = read_error(&pickle_zip(&pickle));
    assert_contains(&message, "expands to more than");
}

#[test]
fn unsupported_storage_types_are_named() {
    let spec = TensorPickle {
        storage_class: "ComplexFloatStorage",
        ..spec()
    };
    let message = read_error(&tensor_zip(&spec, &[0u8; 48]));
    assert_contains(
        &message,
        "storage type `torch.ComplexFloatStorage` is not supported",
    );
}

#[test]
fn storage_shorter_than_numel_is_refused() {
    let message = read_error(&tensor_zip(&spec(), &f32_bytes(&[0.0; 5])));
    assert_contains(
        &message,
        "storage `0` needs 6 float32 elements (24 bytes) but its entry holds 20 bytes",
    );
}

#[test]
fn view_past_the_storage_is_refused() {
    let storage = f32_bytes(&[0.0; 6]);
    let lying = [
        TensorPickle {
            strides: &[4, 1],
            ..spec()
        },
        TensorPickle {
            offset: 1,
            ..spec()
        },
        TensorPickle {
            shape: &[3, 3],
            ..spec()
        },
    ];
    for spec in lying {
        let message = read_error(&tensor_zip(&spec, &storage));
        assert_contains(&message, "but the storage holds 6 elements");
    }
    let negative = TensorPickle {
        strides: &[-3, 1],
        ..spec()
    };
    assert_contains(
        &read_error(&tensor_zip(&negative, &storage)),
        "stride is -3, not a non-negative integer",
    );
    let rank = TensorPickle {
        strides: &[1],
        ..spec()
    };
    assert_contains(
        &read_error(&tensor_zip(&rank, &storage)),
        "has 2 dimensions but strides [1] have 1",
    );
}

#[test]
fn absurd_sizes_are_refused_without_allocating() {
    let storage = f32_bytes(&[0.0; 6]);
    let huge_storage = TensorPickle {
        storage_numel: 1 << 60,
        shape: &[1 << 60],
        strides: &[1],
        ..spec()
    };
    assert_contains(
        &read_error(&tensor_zip(&huge_storage, &storage)),
        "needs 1152921504606846976 float32 elements",
    );
    let huge_view = TensorPickle {
        shape: &[1 << 60, 1 << 60],
        strides: &[0, 0],
        ..spec()
    };
    assert_contains(
        &read_error(&tensor_zip(&huge_view, &storage)),
        "more elements than memory can address",
    );
    let expanded = TensorPickle {
        shape: &[1 << 40],
        strides: &[0],
        ..spec()
    };
    assert_contains(
        &read_error(&tensor_zip(&expanded, &storage)),
        "plausibly expand to",
    );
    let wide_stride = TensorPickle {
        shape: &[3, 3],
        strides: &[i64::MAX, 1],
        ..spec()
    };
    assert_contains(
        &read_error(&tensor_zip(&wide_stride, &storage)),
        "overflows the index range",
    );
}

#[test]
fn missing_storage_entry_is_refused() {
    let pickle = tensor_pickle(&spec());
    let bytes = zip_of("archive", &[("data.pkl", &pickle), ("data/1", &[0u8; 24])]);
    assert_contains(
        &read_error(&bytes),
        "storage `0` has no entry `archive/data/0`",
    );
}

#[test]
fn big_endian_files_are_refused() {
    let pickle = tensor_pickle(&spec());
    let bytes = zip_of(
        "archive",
        &[
            ("data.pkl", &pickle),
            ("byteorder", b"big"),
            ("data/0", &[0u8; 24]),
        ],
    );
    assert_contains(&read_error(&bytes), "storages are big-endian");
}

#[test]
fn compressed_entries_are_refused() {
    let path = fixture("compressed.pt");
    let message = read(&path).unwrap_err().to_string();
    assert_contains(
        &message,
        &format!("`{}`: entry `compressed/", path.display()),
    );
    assert_contains(
        &message,
        "is compressed (Deflated), but torch files store their entries uncompressed",
    );
}

#[test]
fn empty_random_and_foreign_files_are_refused() {
    assert_contains(&read_error(b""), "file is empty, not a torch file");
    let mut state: u32 = 12345;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 16) as u8
        })
        .collect();
    assert_contains(
        &read_error(&random),
        "neither a zip archive nor the legacy pickle format",
    );
    let foreign_zip = zip_of("docs", &[("readme.txt", b"hello")]);
    assert_contains(&read_error(&foreign_zip), "has no `data.pkl` entry");
    let legacy_lookalike = b"\x80\x02\x8a\x0a0123456789.";
    assert_contains(&read_error(legacy_lookalike), "magic number is missing");
}

#[test]
fn truncated_files_fail_cleanly_at_every_length() {
    for name in ["caps_image.pt", "legacy.pt", "model.pth.tar"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for len in 0..bytes.len() {
            let result = read_from_bytes(&bytes[..len], Path::new(ORIGIN));
            let error = result.expect_err("a truncated file must not read");
            assert!(
                error.to_string().starts_with(&format!("`{ORIGIN}`")),
                "{error}"
            );
        }
        assert!(read_from_bytes(&bytes, Path::new(ORIGIN)).is_ok());
    }
    let zip = std::fs::read(fixture("caps_image.pt")).unwrap();
    assert_contains(&read_error(&zip[..zip.len() / 2]), "unreadable zip archive");
}

#[test]
fn corrupted_bytes_never_panic() {
    // Flip every byte of a legacy file (whose pickles are all exposed) and of a zip's pickle.
    for name in ["legacy.pt", "scalar.pt"] {
        let original = std::fs::read(fixture(name)).unwrap();
        for i in 0..original.len() {
            for xor in [0x01u8, 0x80, 0xff] {
                let mut bytes = original.clone();
                bytes[i] ^= xor;
                // Either outcome is fine; a panic or an abort is not.
                let _ = read_from_bytes(&bytes, Path::new(ORIGIN));
            }
        }
    }
}

#[test]
fn corrupted_pickles_never_panic() {
    // Mutate every byte of real torch pickles and wrap each in a valid zip (so that the zip's
    // CRC does not hide the damage): the reader must return, with a value or an error.
    for name in ["model.pth.tar", "protocol4.pt"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
        let names: Vec<String> = archive
            .file_names()
            .map(|n| n.unwrap().to_string())
            .collect();
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        for entry in &names {
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut archive.by_name(entry).unwrap(), &mut content).unwrap();
            let (_, short) = entry.split_once('/').unwrap();
            entries.push((short.to_string(), content));
        }
        let pickle_at = entries.iter().position(|(n, _)| n == "data.pkl").unwrap();
        let original = entries[pickle_at].1.clone();
        for i in 0..original.len() {
            for xor in [0x01u8, 0x80, 0xff] {
                entries[pickle_at].1 = original.clone();
                entries[pickle_at].1[i] ^= xor;
                let refs: Vec<(&str, &[u8])> = entries
                    .iter()
                    .map(|(n, c)| (n.as_str(), c.as_slice()))
                    .collect();
                let _ = read_from_bytes(&zip_of("archive", &refs), Path::new(ORIGIN));
            }
        }
    }
}

#[test]
fn legacy_view_metadata_is_refused() {
    let mut bytes = std::fs::read(fixture("legacy.pt")).unwrap();
    // The first persistent id ends with `K\x0c N t`: replace None by an int.
    let at = bytes.windows(3).position(|w| w == b"\x0cNt").unwrap();
    bytes[at + 1] = 0x29; // EMPTY_TUPLE
    assert_contains(&read_error(&bytes), "legacy view metadata");
}

#[test]
fn wrong_top_level_objects_are_named() {
    let path = fixture("dtypes.pt");
    assert_eq!(
        read_tensor(&path).unwrap_err().to_string(),
        format!("`{}`: holds a dict, not a tensor", path.display())
    );
    let path = fixture("scalar.pt");
    assert_contains(
        &read_checkpoint(&path).unwrap_err().to_string(),
        "holds a tensor, not a checkpoint dict",
    );
    let empty_model = b"\x80\x02}(X\x05\x00\x00\x00model}X\x05\x00\x00\x00epochK\x01u.";
    let value = read_from_bytes(&pickle_zip(empty_model), Path::new(ORIGIN)).unwrap();
    let message = checkpoint_from_value(value, Path::new(ORIGIN))
        .unwrap_err()
        .to_string();
    assert_eq!(message, format!("`{ORIGIN}`: checkpoint holds no tensors"));
    let not_tensors = b"\x80\x02}(X\x01\x00\x00\x00aK\x01u.";
    let value = read_from_bytes(&pickle_zip(not_tensors), Path::new(ORIGIN)).unwrap();
    let message = checkpoint_from_value(value, Path::new(ORIGIN))
        .unwrap_err()
        .to_string();
    assert_contains(
        &message,
        "state_dict entry `a` is a int, not a tensor (and there is no `model` entry",
    );
}

#[test]
fn missing_file_names_its_path() {
    let path = Path::new("/definitely/not/here.pt");
    let message = read(path).unwrap_err().to_string();
    assert_eq!(message, "`/definitely/not/here.pt`: cannot read the file");
    let error = read(path).unwrap_err();
    let cause = std::error::Error::source(&error).unwrap().to_string();
    assert_contains(&cause, "No such file");
}

/// Every single-tensor fixture (dense, strided, offset, legacy, float16…) gives the same header
/// and values through the header reader and the float32 reader as through `read_tensor`.
#[test]
fn header_and_f32_readers_agree_with_the_full_reader() {
    let mut dense = 0;
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("pt") {
            continue;
        }
        let Ok(Value::Tensor(full)) = read(&path) else {
            // Not a single tensor: both readers must refuse it the same way.
            if let Ok(value) = read(&path) {
                let want = format!("holds a {}, not a tensor", value.type_name());
                assert_contains(&read_tensor_header(&path).unwrap_err().to_string(), &want);
                assert_contains(&read_tensor_f32(&path).unwrap_err().to_string(), &want);
            }
            continue;
        };
        let header = read_tensor_header(&path).unwrap();
        assert_eq!(header, full.header(), "{}", path.display());
        let (header_too, values) = read_tensor_f32(&path).unwrap();
        assert_eq!(header_too, header, "{}", path.display());
        let want = full.to_f32_vec().unwrap();
        assert_eq!(values.len(), want.len(), "{}", path.display());
        for (got, want) in values.iter().zip(&want) {
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{}: {got} != {want}",
                path.display()
            );
        }
        if full.dtype == DType::F32 && full.is_c_contiguous() && full.offset == 0 {
            dense += 1;
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} tensor fixtures");
    assert!(dense >= 1, "no dense float32 fixture took the fast path");
}

/// The header reader checks the storage entry's size without reading it.
#[test]
fn header_reader_refuses_short_storages_and_bad_views() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.pt");
    std::fs::write(&short, tensor_zip(&spec(), &f32_bytes(&[0.0; 5]))).unwrap();
    for message in [
        read_tensor_header(&short).unwrap_err().to_string(),
        read_tensor_f32(&short).unwrap_err().to_string(),
    ] {
        assert_contains(
            &message,
            "storage `0` needs 6 float32 elements (24 bytes) but its entry holds 20 bytes",
        );
    }
    let past = dir.path().join("past.pt");
    let lying = TensorPickle {
        offset: 4,
        ..spec()
    };
    std::fs::write(&past, tensor_zip(&lying, &f32_bytes(&[0.0; 6]))).unwrap();
    let message = read_tensor_header(&past).unwrap_err().to_string();
    assert_contains(
        &message,
        "reaches element 9, but the storage holds 6 elements",
    );
    assert_eq!(message, read(&past).unwrap_err().to_string());
    let good = dir.path().join("good.pt");
    std::fs::write(
        &good,
        tensor_zip(&spec(), &f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
    )
    .unwrap();
    let header = read_tensor_header(&good).unwrap();
    assert_eq!(
        (header.dtype, header.shape.clone()),
        (DType::F32, vec![2, 3])
    );
    let (_, values) = read_tensor_f32(&good).unwrap();
    assert_eq!(values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    // Every truncation of a good file fails cleanly in both readers.
    let bytes = std::fs::read(&good).unwrap();
    for len in 0..bytes.len() {
        std::fs::write(&short, &bytes[..len]).unwrap();
        assert!(read_tensor_header(&short).is_err(), "length {len}");
        assert!(read_tensor_f32(&short).is_err(), "length {len}");
    }
}

/// A checkpoint's headers are those of its full reading; a storage entry too short for its
/// tensor is refused without reading it.
#[test]
fn checkpoint_headers_match_the_full_reading() {
    for name in ["model.pth.tar", "legacy.pt"] {
        let path = fixture(name);
        let full = read_checkpoint(&path).unwrap();
        let (headers, stamp) = read_checkpoint_header(&path).unwrap();
        assert_eq!(stamp, FileStamp::of(&path).unwrap(), "{name}");
        assert_eq!(
            (headers.epoch, &headers.name),
            (full.epoch, &full.name),
            "{name}"
        );
        let want: Vec<(String, TensorHeader)> = full
            .state_dict
            .iter()
            .map(|(key, tensor)| (key.clone(), tensor.header()))
            .collect();
        assert_eq!(headers.state_dict, want, "{name}");
    }
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.pth.tar");
    std::fs::write(&short, tensor_zip(&spec(), &f32_bytes(&[0.0; 5]))).unwrap();
    assert_contains(
        &read_checkpoint_header(&short).unwrap_err().to_string(),
        "storage `0` needs 6 float32 elements (24 bytes) but its entry holds 20 bytes",
    );
}

/// A file's stamp stays while nothing touches it, and changes when it is written in place or
/// replaced by another file (same size, same content).
#[test]
fn file_stamps_change_with_writes_and_replacements() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.pth.tar");
    std::fs::write(&path, b"0123456789").unwrap();
    let first = FileStamp::of(&path).unwrap();
    assert_eq!(first.len, 10);
    assert_eq!(FileStamp::of(&path).unwrap(), first);
    // Replaced by a file of the same content (a new inode).
    let other = dir.path().join("other");
    std::fs::write(&other, b"0123456789").unwrap();
    std::fs::rename(&other, &path).unwrap();
    let replaced = FileStamp::of(&path).unwrap();
    assert_ne!(replaced, first);
    // Written in place with the same size (its times change; wait out coarse timestamps).
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, b"9"))
        .unwrap();
    assert_ne!(FileStamp::of(&path).unwrap(), replaced);
}

/// The error message of a reading, if it failed.
fn message<T>(result: &Result<T, TorchFileError>) -> Option<String> {
    result.as_ref().err().map(ToString::to_string)
}

/// The `_from_bytes` twins (the fuzz targets' way in) read every fixture as the path readers
/// do, and fail with the same messages.
#[test]
fn bytes_readers_agree_with_path_readers() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "pt" || extension == "tar")
        })
        .collect();
    paths.sort();
    assert!(paths.len() > 10);
    for path in paths {
        let bytes = std::fs::read(&path).unwrap();
        let header = read_tensor_header_from_bytes(&bytes, &path);
        let file_header = read_tensor_header(&path);
        assert_eq!(header.as_ref().ok(), file_header.as_ref().ok());
        assert_eq!(message(&header), message(&file_header));
        let f32 = read_tensor_f32_from_bytes(&bytes, &path);
        let file_f32 = read_tensor_f32(&path);
        assert_eq!(f32.as_ref().ok(), file_f32.as_ref().ok());
        assert_eq!(message(&f32), message(&file_f32));
        let checkpoint = read_checkpoint_from_bytes(&bytes, &path);
        let file_checkpoint = read_checkpoint(&path);
        assert_eq!(checkpoint.as_ref().ok(), file_checkpoint.as_ref().ok());
        assert_eq!(message(&checkpoint), message(&file_checkpoint));
        let checked = read_checkpoint_header_from_bytes(&bytes, &path);
        let file_checked = read_checkpoint_header(&path);
        assert_eq!(
            checked.as_ref().ok(),
            file_checked.as_ref().ok().map(|(c, _)| c)
        );
        assert_eq!(message(&checked), message(&file_checked));
        let layout = read_checkpoint_layout_from_bytes(&bytes, &path);
        let file_layout = read_checkpoint_layout(&path);
        assert_eq!(
            layout.as_ref().ok(),
            file_layout.as_ref().ok().map(|(l, _)| l)
        );
        assert_eq!(message(&layout), message(&file_layout));
    }
}

/// Offset of the central-directory header (`PK\1\2`) of entry `name` in a zip.
fn central_header(zip: &[u8], name: &str) -> usize {
    (0..zip.len() - 46)
        .find(|&i| {
            let len = usize::from(u16::from_le_bytes([zip[i + 28], zip[i + 29]]));
            zip[i..i + 4] == *b"PK\x01\x02"
                && zip.get(i + 46..i + 46 + len) == Some(name.as_bytes())
        })
        .unwrap()
}

/// Offset of the local header (`PK\3\4`) of entry `name` in a zip.
fn local_header(zip: &[u8], name: &str) -> usize {
    (0..zip.len() - 30)
        .find(|&i| {
            let len = usize::from(u16::from_le_bytes([zip[i + 26], zip[i + 27]]));
            zip[i..i + 4] == *b"PK\x03\x04"
                && zip.get(i + 30..i + 30 + len) == Some(name.as_bytes())
        })
        .unwrap()
}

/// Found by the `torch_checkpoint` fuzz target: a stored entry whose central directory says
/// 0 bytes in the file but 24 once read. Without CRC-32s, the up-front check read it through
/// (0 bytes, no error) and the layout mapped 24 bytes of whatever followed, while the full
/// reading refused it; now every reader refuses it.
#[test]
fn stored_entry_whose_sizes_differ_is_refused_by_every_reader() {
    let mut bytes = std::fs::read(fixture("model_no_crc32.pth.tar")).unwrap();
    let entry = "model_no_crc32.pth/data/7";
    let header = central_header(&bytes, entry);
    assert_eq!(
        &bytes[header + 20..header + 28],
        &[24, 0, 0, 0, 24, 0, 0, 0]
    );
    bytes[header + 20..header + 24].copy_from_slice(&0u32.to_le_bytes());
    let origin = Path::new(ORIGIN);
    let expected = format!(
        "entry `{entry}` is stored (not compressed) but says it holds 0 bytes in the file and 24 once read"
    );
    assert_contains(&read_error(&bytes), &expected);
    let errors = [
        read_checkpoint_from_bytes(&bytes, origin).map(|_| ()),
        read_checkpoint_header_from_bytes(&bytes, origin).map(|_| ()),
        read_checkpoint_layout_from_bytes(&bytes, origin).map(|_| ()),
    ];
    for error in errors {
        assert_contains(&error.unwrap_err().to_string(), &expected);
    }
}

/// Found by the `torch_tensor` fuzz target: an empty storage entry whose local header puts
/// its data past the end of the file. The full reading read its 0 bytes while the float32
/// reader refused it (its span ends past the end); now both refuse it, as `torch.load` does
/// (the header reader, which reads no local header, still gives the header).
#[test]
fn empty_entry_starting_past_the_end_is_refused_by_every_reader() {
    let mut bytes = std::fs::read(fixture("empty.pt")).unwrap();
    let header = local_header(&bytes, "empty/data/0");
    bytes[header + 28..header + 30].copy_from_slice(&u16::MAX.to_le_bytes());
    let origin = Path::new(ORIGIN);
    let expected = "entry `empty/data/0` ends past the end of the file";
    assert_contains(&read_error(&bytes), expected);
    let error = read_tensor_f32_from_bytes(&bytes, origin).unwrap_err();
    assert_contains(&error.to_string(), expected);
}
