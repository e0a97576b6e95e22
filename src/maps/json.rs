//! `maps.json`: read, completed with ClinicaDL's retro-compatibility renames and template
//! defaults (docs/ARCHITECTURE.md, "maps.json"), and turned into the typed [`MapsJson`] that the
//! rest of predict uses. Unknown keys are kept (in `raw`) and ignored; every key predict needs is
//! checked here, so a malformed file fails before anything is written.
//!
//! ClinicaDL: `clinicadl.utils.maps_manager.maps_manager_utils.read_json` and
//! `MapsManager._check_args` / `add_default_values`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// Errors about `maps.json`.
#[derive(Debug, thiserror::Error)]
pub enum MapsJsonError {
    /// The file is absent.
    #[error("MAPS was not found at `{maps}`: it has no `maps.json`")]
    Missing {
        /// The MAPS folder.
        maps: PathBuf,
    },
    /// The file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Invalid JSON.
    #[error("`{path}` is not valid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A key is missing or has the wrong type or value.
    #[error("`{path}`: key `{key}` {problem}")]
    Key {
        /// The file.
        path: PathBuf,
        /// The key (dotted for nested keys).
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// The network task (`network_task`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Classification: softmax probabilities, classification metrics.
    Classification,
    /// Regression: one output value.
    Regression,
    /// Reconstruction: the network outputs an image.
    Reconstruction,
}

impl Task {
    /// The name used in `maps.json`.
    pub fn name(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
            Task::Reconstruction => "reconstruction",
        }
    }
}

/// The element mode (`mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Whole images.
    Image,
    /// 3D patches.
    Patch,
    /// Regions of interest.
    Roi,
    /// 2D slices.
    Slice,
}

impl Mode {
    /// The name used in `maps.json`, file names and id columns (`<mode>_id`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Image => "image",
            Mode::Patch => "patch",
            Mode::Roi => "roi",
            Mode::Slice => "slice",
        }
    }
}

/// The `preprocessing_dict` entries predict needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessing {
    /// `preprocessing`: t1-linear, flair-linear, pet-linear, custom…
    pub preprocessing: String,
    /// `use_uncropped_image`.
    pub use_uncropped_image: bool,
    /// `prepare_dl`: elements were pre-extracted by `clinicadl prepare-data`.
    pub prepare_dl: bool,
    /// `file_type.pattern`, when stored.
    pub file_pattern: Option<String>,
    /// `tracer` (pet-linear).
    pub tracer: Option<String>,
    /// `suvr_reference_region` (pet-linear).
    pub suvr_reference_region: Option<String>,
    /// `custom_suffix` (custom).
    pub custom_suffix: Option<String>,
    /// The whole completed dictionary, for mode-specific keys.
    pub raw: Map<String, Value>,
}

/// The typed content of a completed `maps.json`.
#[derive(Debug, Clone)]
pub struct MapsJson {
    /// The file it came from.
    pub path: PathBuf,
    /// The completed JSON object (renames and defaults applied).
    pub raw: Map<String, Value>,
    /// `network_task`.
    pub task: Task,
    /// `architecture`: the ClinicaDL class name.
    pub architecture: String,
    /// `mode`.
    pub mode: Mode,
    /// `multi_network`.
    pub multi_network: bool,
    /// `num_networks` (elements per image at training time).
    pub num_networks: usize,
    /// `input_size`, without the batch dimension.
    pub input_size: Vec<usize>,
    /// `output_size` for classification/regression (number of outputs).
    pub output_size: Option<usize>,
    /// `label`.
    pub label: Option<String>,
    /// `label_code` (classification), in file order.
    pub label_code: Vec<(String, i64)>,
    /// `selection_threshold`.
    pub selection_threshold: Option<f64>,
    /// `loss` (null → task default).
    pub loss: Option<String>,
    /// `diagnoses` (the default of `--diagnoses`).
    pub diagnoses: Vec<String>,
    /// `normalize` (MinMax).
    pub normalize: bool,
    /// `size_reduction`.
    pub size_reduction: bool,
    /// `size_reduction_factor`.
    pub size_reduction_factor: i64,
    /// `dropout`.
    pub dropout: f64,
    /// `amp` of training (used by 1.6.1 for the save options only).
    pub amp: bool,
    /// `preprocessing_dict`.
    pub preprocessing: Preprocessing,
}

const PATH_SUFFIXES: &[&str] = &["tsv", "dir", "directory", "path", "json", "location"];

/// Reads and completes `<maps>/maps.json`.
pub fn read_maps_json(maps: &Path) -> Result<MapsJson, MapsJsonError> {
    let path = maps.join("maps.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MapsJsonError::Missing {
                maps: maps.to_owned(),
            });
        }
        Err(source) => return Err(MapsJsonError::Io { path, source }),
    };
    parse_maps_json(&text, &path)
}

/// Parses and completes the text of a `maps.json`; `path` is used in messages.
pub fn parse_maps_json(text: &str, path: &Path) -> Result<MapsJson, MapsJsonError> {
    let value: Value = serde_json::from_str(text).map_err(|source| MapsJsonError::Json {
        path: path.to_owned(),
        source,
    })?;
    let Value::Object(mut raw) = value else {
        return Err(key_error(path, "(top level)", "must be a JSON object"));
    };
    complete(&mut raw, path)?;
    typed(raw, path)
}

fn key_error(path: &Path, key: &str, problem: impl Into<String>) -> MapsJsonError {
    MapsJsonError::Key {
        path: path.to_owned(),
        key: key.to_owned(),
        problem: problem.into(),
    }
}

/// Applies the renames and defaults ClinicaDL applies (docs/ARCHITECTURE.md, "maps.json").
fn complete(raw: &mut Map<String, Value>, path: &Path) -> Result<(), MapsJsonError> {
    for (old, new) in [
        ("model", "architecture"),
        ("multi", "multi_network"),
        ("minmaxnormalization", "normalize"),
        ("num_workers", "n_proc"),
    ] {
        if let Some(v) = raw.remove(old) {
            raw.entry(new).or_insert(v);
        }
    }
    raw.entry("optimizer").or_insert(json!("Adam"));
    raw.entry("loss").or_insert(Value::Null);
    if let Some(use_cpu) = raw.remove("use_cpu") {
        raw.entry("gpu")
            .or_insert(json!(!use_cpu.as_bool().unwrap_or(false)));
    }
    if let Some(nd) = raw.remove("nondeterministic") {
        raw.entry("deterministic")
            .or_insert(json!(!nd.as_bool().unwrap_or(false)));
    }
    if !raw.contains_key("preprocessing_dict") {
        let mode = raw.get("mode").cloned().unwrap_or(Value::Null);
        let mut dict = Map::new();
        dict.insert("mode".into(), mode);
        for key in [
            "preprocessing",
            "use_uncropped_image",
            "tracer",
            "suvr_reference_region",
            "patch_size",
            "stride_size",
            "slice_direction",
            "slice_mode",
            "discarded_slices",
            "roi_list",
            "uncropped_roi",
            "roi_custom_suffix",
            "roi_custom_template",
            "roi_custom_mask_pattern",
            // 1.6.1 forgets these two (a missing comma); moving them is the evident intent.
            "prepare_dl",
            "custom_suffix",
        ] {
            if let Some(v) = raw.remove(key) {
                dict.insert(key.into(), v);
            }
        }
        raw.insert("preprocessing_dict".into(), Value::Object(dict));
    }
    let mode = raw.get("mode").and_then(Value::as_str).map(str::to_owned);
    if let Some(Value::Object(dict)) = raw.get_mut("preprocessing_dict") {
        dict.entry("use_uncropped_image").or_insert(json!(false));
        if !dict.contains_key("prepare_dl") {
            // 1.6.1 defaults it for non-image modes only (image mode then crashes); false is
            // the only sensible value in image mode too.
            dict.insert("prepare_dl".into(), json!(false));
        }
        if dict.get("mode").and_then(Value::as_str) == Some("slice")
            || mode.as_deref() == Some("slice")
        {
            dict.entry("slice_mode").or_insert(json!("rgb"));
        }
    }

    let task = raw
        .get("network_task")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            key_error(
                path,
                "network_task",
                "is missing (expected classification, regression or reconstruction)",
            )
        })?
        .to_owned();
    let mut defaults: Vec<(&str, Value)> = vec![
        ("architecture", json!("default")),
        ("multi_network", json!(false)),
        ("ssda_network", json!(false)),
        ("dropout", json!(0.0)),
        ("latent_space_size", json!(128)),
        ("feature_size", json!(1024)),
        ("n_conv", json!(4)),
        ("io_layer_channels", json!(8)),
        ("recons_weight", json!(1)),
        ("kl_weight", json!(1)),
        ("normalization", json!("batch")),
        ("gpu", json!(true)),
        ("n_proc", json!(2)),
        ("batch_size", json!(8)),
        ("evaluation_steps", json!(0)),
        ("fully_sharded_data_parallel", json!(false)),
        ("amp", json!(false)),
        ("seed", json!(0)),
        ("deterministic", json!(false)),
        ("compensation", json!("memory")),
        ("track_exp", json!("")),
        ("transfer_path", json!(false)),
        ("transfer_selection_metric", json!("loss")),
        ("nb_unfrozen_layer", json!(0)),
        ("use_extracted_features", json!(false)),
        ("multi_cohort", json!(false)),
        ("diagnoses", json!(["AD", "CN"])),
        ("baseline", json!(false)),
        ("valid_longitudinal", json!(false)),
        ("normalize", json!(true)),
        ("data_augmentation", json!(false)),
        ("sampler", json!("random")),
        ("size_reduction", json!(false)),
        ("size_reduction_factor", json!(2)),
        ("n_splits", json!(0)),
        ("split", json!([])),
        ("optimizer", json!("Adam")),
        ("epochs", json!(20)),
        ("learning_rate", json!(1e-4)),
        ("emissions_calculator", json!(false)),
    ];
    match task.as_str() {
        "classification" => defaults.extend([
            ("selection_metrics", json!(["loss"])),
            ("label", json!("diagnosis")),
            ("label_code", json!({})),
            ("selection_threshold", json!(0.0)),
            ("loss", json!("CrossEntropyLoss")),
        ]),
        "regression" => defaults.extend([
            ("selection_metrics", json!(["loss"])),
            ("label", json!("age")),
            ("loss", json!("MSELoss")),
        ]),
        "reconstruction" => defaults.extend([
            ("selection_metrics", json!(["loss"])),
            ("loss", json!("MSELoss")),
        ]),
        other => {
            return Err(key_error(
                path,
                "network_task",
                format!(
                    "has the invalid value `{other}`: choose in ['classification', 'regression', 'reconstruction']"
                ),
            ));
        }
    }
    for (key, value) in defaults {
        match raw.get(key) {
            // `loss: null` was added above for old MAPS; the task default then applies.
            Some(Value::Null) if key == "loss" => {
                raw.insert(key.into(), value);
            }
            Some(_) => {}
            None => {
                raw.insert(key.into(), value);
            }
        }
    }
    Ok(())
}

fn get<'a>(
    raw: &'a Map<String, Value>,
    key: &str,
    path: &Path,
) -> Result<&'a Value, MapsJsonError> {
    raw.get(key)
        .ok_or_else(|| key_error(path, key, "is missing"))
}

fn get_bool(raw: &Map<String, Value>, key: &str, path: &Path) -> Result<bool, MapsJsonError> {
    get(raw, key, path)?
        .as_bool()
        .ok_or_else(|| key_error(path, key, "must be true or false"))
}

fn get_str(raw: &Map<String, Value>, key: &str, path: &Path) -> Result<String, MapsJsonError> {
    get(raw, key, path)?
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| key_error(path, key, "must be a string"))
}

fn opt_str(
    raw: &Map<String, Value>,
    key: &str,
    path: &Path,
) -> Result<Option<String>, MapsJsonError> {
    match raw.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(key_error(path, key, "must be a string or null")),
    }
}

/// Whether ClinicaDL decodes this key as a path.
pub fn is_path_key(key: &str) -> bool {
    PATH_SUFFIXES.iter().any(|s| key.ends_with(s))
}

fn usize_list(value: &Value, key: &str, path: &Path) -> Result<Vec<usize>, MapsJsonError> {
    let list = value
        .as_array()
        .ok_or_else(|| key_error(path, key, "must be a list of positive integers"))?;
    list.iter()
        .map(|v| {
            v.as_u64()
                .filter(|&n| n > 0)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    key_error(
                        path,
                        key,
                        format!("must be a list of positive integers, found {v}"),
                    )
                })
        })
        .collect()
}

fn typed(raw: Map<String, Value>, path: &Path) -> Result<MapsJson, MapsJsonError> {
    let task = match get_str(&raw, "network_task", path)?.as_str() {
        "classification" => Task::Classification,
        "regression" => Task::Regression,
        _ => Task::Reconstruction,
    };
    let architecture = get_str(&raw, "architecture", path)?;
    let architecture = match (architecture.as_str(), task) {
        ("default", Task::Reconstruction) => "AE_Conv5_FC3".to_owned(),
        ("default", _) => "Conv5_FC3".to_owned(),
        _ => architecture,
    };
    let mode = match get_str(&raw, "mode", path)?.as_str() {
        "image" => Mode::Image,
        "patch" => Mode::Patch,
        "roi" => Mode::Roi,
        "slice" => Mode::Slice,
        other => {
            return Err(key_error(
                path,
                "mode",
                format!(
                    "has the unknown value `{other}`: Mode {other} is not implemented (choose image, patch, roi or slice)"
                ),
            ));
        }
    };
    let num_networks = match raw.get("num_networks") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .filter(|&n| n > 0)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| key_error(path, "num_networks", "must be a positive integer"))?,
    };
    let input_size = usize_list(get(&raw, "input_size", path)?, "input_size", path)?;
    let output_size = match (task, raw.get("output_size")) {
        (Task::Reconstruction, _) => None,
        (_, Some(v)) => Some(
            v.as_u64()
                .filter(|&n| n > 0)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| key_error(path, "output_size", "must be a positive integer"))?,
        ),
        (_, None) => return Err(key_error(path, "output_size", "is missing")),
    };
    let label = match task {
        Task::Reconstruction => None,
        _ => opt_str(&raw, "label", path)?,
    };
    let label_code = match (task, raw.get("label_code")) {
        (Task::Classification, Some(Value::Object(map))) => map
            .iter()
            .map(|(k, v)| {
                v.as_i64().map(|code| (k.clone(), code)).ok_or_else(|| {
                    key_error(path, &format!("label_code.{k}"), "must be an integer")
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        (Task::Classification, _) => {
            return Err(key_error(
                path,
                "label_code",
                "must be an object mapping labels to output nodes",
            ));
        }
        _ => Vec::new(),
    };
    let selection_threshold = raw.get("selection_threshold").and_then(Value::as_f64);
    let loss = opt_str(&raw, "loss", path)?;
    let diagnoses = match get(&raw, "diagnoses", path)? {
        Value::Array(list) => list
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| key_error(path, "diagnoses", "must be a list of strings"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::String(s) => vec![s.clone()],
        _ => return Err(key_error(path, "diagnoses", "must be a list of strings")),
    };
    let normalize = get_bool(&raw, "normalize", path)?;
    let size_reduction = get_bool(&raw, "size_reduction", path)?;
    let size_reduction_factor = get(&raw, "size_reduction_factor", path)?
        .as_i64()
        .ok_or_else(|| key_error(path, "size_reduction_factor", "must be an integer"))?;
    let dropout = get(&raw, "dropout", path)?
        .as_f64()
        .ok_or_else(|| key_error(path, "dropout", "must be a number"))?;
    let amp = get_bool(&raw, "amp", path)?;
    let multi_network = get_bool(&raw, "multi_network", path)?;
    let preprocessing = match raw.get("preprocessing_dict") {
        Some(Value::Object(dict)) => preprocessing(dict, path)?,
        _ => return Err(key_error(path, "preprocessing_dict", "must be an object")),
    };
    Ok(MapsJson {
        path: path.to_owned(),
        task,
        architecture,
        mode,
        multi_network,
        num_networks,
        input_size,
        output_size,
        label,
        label_code,
        selection_threshold,
        loss,
        diagnoses,
        normalize,
        size_reduction,
        size_reduction_factor,
        dropout,
        amp,
        preprocessing,
        raw,
    })
}

pub(crate) fn preprocessing(
    dict: &Map<String, Value>,
    path: &Path,
) -> Result<Preprocessing, MapsJsonError> {
    let sub = |k: &str| format!("preprocessing_dict.{k}");
    let preprocessing = dict
        .get("preprocessing")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            key_error(
                path,
                &sub("preprocessing"),
                "is missing (e.g. \"t1-linear\")",
            )
        })?
        .to_owned();
    let flag = |k: &str| -> Result<bool, MapsJsonError> {
        match dict.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| key_error(path, &sub(k), "must be true or false")),
        }
    };
    let text = |k: &str| {
        dict.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let file_pattern = dict
        .get("file_type")
        .and_then(|f| f.get("pattern"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Preprocessing {
        use_uncropped_image: flag("use_uncropped_image")?,
        prepare_dl: flag("prepare_dl")?,
        file_pattern,
        tracer: text("tracer"),
        suvr_reference_region: text("suvr_reference_region"),
        custom_suffix: text("custom_suffix"),
        preprocessing,
        raw: dict.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Value {
        json!({
            "architecture": "Conv5_FC3", "network_task": "classification", "mode": "image",
            "label_code": {"AD": 0, "CN": 1}, "output_size": 2, "input_size": [1, 17, 21, 19],
            "preprocessing_dict": {"preprocessing": "t1-linear", "mode": "image", "prepare_dl": false},
        })
    }

    fn parse(v: &Value) -> Result<MapsJson, MapsJsonError> {
        parse_maps_json(&v.to_string(), Path::new("/m/maps.json"))
    }

    #[test]
    fn defaults_are_added() {
        let m = parse(&minimal()).unwrap();
        assert_eq!(m.task, Task::Classification);
        assert_eq!(m.label.as_deref(), Some("diagnosis"));
        assert_eq!(m.loss.as_deref(), Some("CrossEntropyLoss"));
        assert_eq!(m.diagnoses, ["AD", "CN"]);
        assert!(m.normalize);
        assert_eq!(m.num_networks, 1);
        assert_eq!(m.label_code, [("AD".to_owned(), 0), ("CN".to_owned(), 1)]);
    }

    #[test]
    fn old_names_are_renamed() {
        let mut v = minimal();
        let o = v.as_object_mut().unwrap();
        let arch = o.remove("architecture").unwrap();
        o.insert("model".into(), arch);
        o.insert("minmaxnormalization".into(), json!(false));
        o.remove("preprocessing_dict");
        o.insert("preprocessing".into(), json!("t1-linear"));
        let m = parse(&v).unwrap();
        assert_eq!(m.architecture, "Conv5_FC3");
        assert!(!m.normalize);
        assert_eq!(m.preprocessing.preprocessing, "t1-linear");
        assert!(!m.preprocessing.prepare_dl);
    }

    #[test]
    fn errors_name_the_key() {
        let mut v = minimal();
        v["network_task"] = json!("segmentation");
        let e = parse(&v).unwrap_err().to_string();
        assert!(
            e.contains("network_task") && e.contains("segmentation"),
            "{e}"
        );
        let mut v = minimal();
        v["input_size"] = json!([1, -3]);
        assert!(parse(&v).unwrap_err().to_string().contains("input_size"));
        let mut v = minimal();
        v["mode"] = json!("voxel");
        assert!(
            parse(&v)
                .unwrap_err()
                .to_string()
                .contains("Mode voxel is not implemented")
        );
        assert!(
            parse_maps_json("{", Path::new("/m/maps.json"))
                .unwrap_err()
                .to_string()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn path_decoding() {
        assert!(is_path_key("caps_directory") && is_path_key("tsv_path") && !is_path_key("label"));
    }
}
