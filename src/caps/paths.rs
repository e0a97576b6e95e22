//! CAPS file patterns and the resolution of a session's image tensor (docs/ARCHITECTURE.md, "CAPS
//! paths"): the NIfTI file is searched (recursively, case-insensitively) under `subjects/<p>/<s>/`,
//! and the tensor path derived from it in `deeplearning_prepare_data/image_based/<pipeline>/`; when
//! no NIfTI file is found, the `.pt` tensor itself is searched.
//!
//! ClinicaDL: `clinicadl.utils.clinica_utils.clinicadl_file_reader` and
//! `CapsDataset._get_image_path`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::maps::json::Preprocessing;

/// How a preprocessing's files are named in a CAPS.
#[derive(Debug, Clone, PartialEq)]
pub struct FilePattern {
    /// The glob pattern of the NIfTI file (may contain `/`).
    pub pattern: String,
    /// The pipeline sub-folder of `image_based/` (`t1_linear`, …).
    pub folder: String,
}

/// The file pattern of a preprocessing (docs/ARCHITECTURE.md, "CAPS paths"). The pattern stored in
/// `maps.json` (`file_type.pattern`) wins when present.
pub fn file_pattern(pre: &Preprocessing) -> Result<FilePattern> {
    let crop = if pre.use_uncropped_image {
        ""
    } else {
        "_desc-Crop"
    };
    let (folder, computed) = match pre.preprocessing.as_str() {
        "t1-linear" => (
            "t1_linear",
            format!("*space-MNI152NLin2009cSym{crop}_res-1x1x1_T1w.nii.gz"),
        ),
        "flair-linear" => (
            "flair_linear",
            format!("*space-MNI152NLin2009cSym{crop}_res-1x1x1_flair.nii.gz"),
        ),
        "pet-linear" => {
            let (Some(tracer), Some(region)) = (&pre.tracer, &pre.suvr_reference_region) else {
                bail!(
                    "pet-linear preprocessing needs `tracer` and `suvr_reference_region` in `preprocessing_dict` of maps.json"
                );
            };
            (
                "pet_linear",
                format!(
                    "pet_linear/*_trc-{tracer}_space-MNI152NLin2009cSym{crop}_res-1x1x1_suvr-{region}_pet.nii.gz"
                ),
            )
        }
        "custom" => {
            let Some(suffix) = &pre.custom_suffix else {
                bail!(
                    "custom preprocessing needs `custom_suffix` in `preprocessing_dict` of maps.json"
                );
            };
            ("custom", format!("*{suffix}"))
        }
        other => {
            bail!("Extraction of preprocessing {other} is not implemented from CAPS directory.")
        }
    };
    Ok(FilePattern {
        pattern: pre.file_pattern.clone().unwrap_or(computed),
        folder: folder.to_owned(),
    })
}

/// The matcher of one path component of a file pattern: fnmatch's `*`, `?` and `[…]`, case
/// insensitive (braces are literal, as in Python's `glob`). `None` for a pattern globset cannot
/// compile (an unclosed class): it matches nothing.
fn component_matcher(pattern: &str) -> Option<globset::GlobMatcher> {
    let literal_braces = pattern.replace('{', "[{]").replace('}', "[}]");
    globset::GlobBuilder::new(&literal_braces)
        .case_insensitive(true)
        .literal_separator(true)
        .backslash_escape(false)
        .build()
        .ok()
        .map(|glob| glob.compile_matcher())
}

/// A `/`-separated file pattern, compiled once: the matcher of each path component, or `None`
/// for a pattern that matches nothing.
struct Compiled(Option<Vec<globset::GlobMatcher>>);

impl Compiled {
    fn new(pattern: &str) -> Compiled {
        Compiled(
            pattern
                .split('/')
                .filter(|s| !s.is_empty())
                .map(component_matcher)
                .collect(),
        )
    }
}

/// Files under `base` (any depth, following links, hidden entries skipped) whose trailing path
/// components match the `/`-separated `pattern`, sorted.
pub fn find_files(base: &Path, pattern: &str) -> Vec<PathBuf> {
    find_compiled(base, &Compiled::new(pattern))
}

fn find_compiled(base: &Path, pattern: &Compiled) -> Vec<PathBuf> {
    let Some(parts) = &pattern.0 else {
        return Vec::new();
    };
    let hidden = |entry: &walkdir::DirEntry| {
        entry.depth() > 0 && entry.file_name().to_string_lossy().starts_with('.')
    };
    let mut found: Vec<PathBuf> = walkdir::WalkDir::new(base)
        .follow_links(true)
        .into_iter()
        .filter_entry(|entry| !hidden(entry))
        .flatten()
        .filter(|entry| entry.file_type().is_file())
        .filter(|entry| {
            let Ok(relative) = entry.path().strip_prefix(base) else {
                return false;
            };
            let components: Vec<&std::ffi::OsStr> = relative.iter().collect();
            components.len() >= parts.len()
                && parts
                    .iter()
                    .zip(&components[components.len() - parts.len()..])
                    .all(|(part, component)| part.is_match(component))
        })
        .map(walkdir::DirEntry::into_path)
        .collect();
    found.sort();
    found
}

/// Among several matches that differ only by a `_run-<n>` entity, the highest run.
fn highest_run(matches: &[PathBuf]) -> Option<PathBuf> {
    let strip_run = |p: &Path| -> (String, Option<u64>) {
        let s = p.to_string_lossy().into_owned();
        match s.find("_run-") {
            Some(i) => {
                let digits: String = s[i + 5..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let rest = &s[i + 5 + digits.len()..];
                (format!("{}{}", &s[..i], rest), digits.parse().ok())
            }
            None => (s, None),
        }
    };
    let keys: Vec<(String, Option<u64>)> = matches.iter().map(|p| strip_run(p)).collect();
    if keys.iter().all(|(k, r)| k == &keys[0].0 && r.is_some()) {
        let best = keys.iter().enumerate().max_by_key(|(_, (_, r))| *r)?.0;
        Some(matches[best].clone())
    } else {
        None
    }
}

/// The single match, the highest run among matches differing by their run, or all matches.
fn pick(matches: Vec<PathBuf>) -> Result<Option<PathBuf>, Vec<PathBuf>> {
    match matches.len() {
        0 => Ok(None),
        1 => Ok(matches.into_iter().next()),
        _ => highest_run(&matches).map(Some).ok_or(matches),
    }
}

/// A session's image files: the prepare-data tensor and the CAPS NIfTI image it is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFiles {
    /// The image tensor (`deeplearning_prepare_data/image_based/<folder>/<name>.pt`), which may
    /// not exist.
    pub tensor: PathBuf,
    /// The CAPS NIfTI image, when there is exactly one (or several runs, the highest taken).
    pub nifti: Option<PathBuf>,
}

/// Finds sessions' image files by a preprocessing's patterns, compiled once for every session
/// of a group.
pub struct ImageFinder<'a> {
    pattern: &'a FilePattern,
    image: Compiled,
    tensor_pattern: String,
    tensor: Compiled,
}

impl<'a> ImageFinder<'a> {
    /// The finder of `pattern`'s images and of their `.pt` tensors.
    pub fn new(pattern: &'a FilePattern) -> ImageFinder<'a> {
        let tensor_pattern = pattern.pattern.replace(".nii.gz", ".pt");
        ImageFinder {
            pattern,
            image: Compiled::new(&pattern.pattern),
            tensor: Compiled::new(&tensor_pattern),
            tensor_pattern,
        }
    }

    /// Where a session's image tensor and CAPS image are, or why neither can be found.
    pub fn files(
        &self,
        caps: &Path,
        participant: &str,
        session: &str,
    ) -> Result<ImageFiles, String> {
        let session_dir = caps.join("subjects").join(participant).join(session);
        // prepare-data's own outputs are not images (a `.nii` image's tensor keeps its name, which
        // makes ClinicaDL see two images and fail).
        let images: Vec<PathBuf> = find_compiled(&session_dir, &self.image)
            .into_iter()
            .filter(|file| {
                !file
                    .strip_prefix(&session_dir)
                    .is_ok_and(|inside| inside.starts_with("deeplearning_prepare_data"))
            })
            .collect();
        let nifti = pick(images);
        if let Ok(Some(file)) = &nifti {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // prepare-data's own renaming: a `.nii` image keeps its name.
            let tensor_name = match name.strip_suffix(".nii.gz") {
                Some(stem) => format!("{stem}.pt"),
                None => name.replace(".nii.gz", ".pt"),
            };
            return Ok(ImageFiles {
                tensor: session_dir
                    .join("deeplearning_prepare_data")
                    .join("image_based")
                    .join(&self.pattern.folder)
                    .join(tensor_name),
                nifti: Some(file.clone()),
            });
        }
        let pt_pattern = &self.tensor_pattern;
        match pick(find_compiled(&session_dir, &self.tensor)) {
            Ok(Some(file)) => Ok(ImageFiles {
                tensor: file,
                nifti: None,
            }),
            Ok(None) => Err(format!(
                "neither a CAPS image matching `{}` nor a tensor matching `{pt_pattern}` under `{}`",
                self.pattern.pattern,
                session_dir.display()
            )),
            Err(many) => Err(format!(
                "more than 1 file found under `{}`: {}",
                session_dir.display(),
                many.iter()
                    .map(|p| format!("`{}`", p.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_case_insensitive() {
        let matches =
            |pattern: &str, name: &str| component_matcher(pattern).unwrap().is_match(name);
        assert!(matches(
            "*space-MNI_T1w.nii.gz",
            "sub-1_ses-M000_SPACE-mni_t1w.nii.gz"
        ));
        assert!(!matches("*_T1w.nii.gz", "sub-1_T1w.nii"));
        assert!(matches("a?c*", "abcdef"));
        assert!(matches("*[0-9]_x", "run2_x"));
        // Python's glob takes braces literally.
        assert!(matches("a{b,c}", "a{b,c}") && !matches("a{b,c}", "ab"));
    }

    #[test]
    fn finds_files_by_their_trailing_components_skipping_hidden_ones() {
        let d = tempfile::tempdir().unwrap();
        for file in [
            "t1_linear/a_T1w.nii.gz",
            ".hidden/b_T1w.nii.gz",
            "x/t1_linear/c_T1w.nii.gz",
            "t1_linear/d_T1w.nii",
        ] {
            let path = d.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "").unwrap();
        }
        let found = find_files(d.path(), "t1_linear/*_T1w.nii.gz");
        assert_eq!(
            found,
            [
                d.path().join("t1_linear/a_T1w.nii.gz"),
                d.path().join("x/t1_linear/c_T1w.nii.gz")
            ]
        );
        assert!(find_files(d.path(), "[unclosed").is_empty());
    }

    #[test]
    fn resolves_tensor_from_nifti_or_pt() {
        let d = tempfile::tempdir().unwrap();
        let ses = d.path().join("subjects/sub-1/ses-M000");
        let nii = ses.join(
            "t1_linear/sub-1_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz",
        );
        std::fs::create_dir_all(nii.parent().unwrap()).unwrap();
        std::fs::write(&nii, "").unwrap();
        let pat = FilePattern {
            pattern: "*space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz".into(),
            folder: "t1_linear".into(),
        };
        let files = ImageFinder::new(&pat)
            .files(d.path(), "sub-1", "ses-M000")
            .unwrap();
        assert_eq!(files.nifti.as_deref(), Some(nii.as_path()));
        let p = files.tensor;
        assert_eq!(
            p,
            ses.join("deeplearning_prepare_data/image_based/t1_linear/sub-1_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt")
        );
        // Without the NIfTI file, the tensor itself is found.
        std::fs::remove_file(&nii).unwrap();
        assert!(
            ImageFinder::new(&pat)
                .files(d.path(), "sub-1", "ses-M000")
                .unwrap_err()
                .contains("neither a CAPS image matching")
        );
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "").unwrap();
        assert_eq!(
            ImageFinder::new(&pat)
                .files(d.path(), "sub-1", "ses-M000")
                .unwrap(),
            ImageFiles {
                tensor: p,
                nifti: None
            }
        );
    }

    #[test]
    fn highest_run_wins() {
        let m = vec![
            PathBuf::from("/a/x_run-01_T1w.nii.gz"),
            PathBuf::from("/a/x_run-02_T1w.nii.gz"),
        ];
        assert_eq!(
            highest_run(&m),
            Some(PathBuf::from("/a/x_run-02_T1w.nii.gz"))
        );
        let m = vec![
            PathBuf::from("/a/x_T1w.nii.gz"),
            PathBuf::from("/a/y_T1w.nii.gz"),
        ];
        assert_eq!(highest_run(&m), None);
    }
}
