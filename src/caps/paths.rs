//! CAPS file patterns and the resolution of a session's image tensor (predict.md §6.1): the
//! NIfTI file is searched (recursively, case-insensitively) under `subjects/<p>/<s>/`, and the
//! tensor path derived from it in `deeplearning_prepare_data/image_based/<pipeline>/`; when no
//! NIfTI file is found, the `.pt` tensor itself is searched.
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

/// The file pattern of a preprocessing (predict.md §6.1 table). The pattern stored in
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

/// fnmatch-style matching of one path component (`*`, `?`), ASCII case-insensitive.
fn component_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Files under `base` (any depth, hidden entries skipped) whose trailing path components match
/// the `/`-separated `pattern`.
pub fn find_files(base: &Path, pattern: &str) -> Vec<PathBuf> {
    let parts: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let mut found = Vec::new();
    let mut stack = vec![base.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(base) {
                let comps: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
                if comps.len() >= parts.len()
                    && parts
                        .iter()
                        .zip(&comps[comps.len() - parts.len()..])
                        .all(|(p, c)| component_matches(p, c))
                {
                    found.push(path);
                }
            }
        }
    }
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

/// The session's CAPS NIfTI image (the source of its tensor), when there is exactly one.
pub fn source_nifti(
    caps: &Path,
    participant: &str,
    session: &str,
    pattern: &FilePattern,
) -> Option<PathBuf> {
    let session_dir = caps.join("subjects").join(participant).join(session);
    pick(find_files(&session_dir, &pattern.pattern))
        .ok()
        .flatten()
}

/// Where a session's image tensor is, or why it cannot be found.
pub fn image_tensor_path(
    caps: &Path,
    participant: &str,
    session: &str,
    pattern: &FilePattern,
) -> Result<PathBuf, String> {
    let session_dir = caps.join("subjects").join(participant).join(session);
    let nifti = pick(find_files(&session_dir, &pattern.pattern));
    if let Ok(Some(file)) = &nifti {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tensor_name = match name.strip_suffix(".nii.gz") {
            Some(stem) => format!("{stem}.pt"),
            None => name.replace(".nii.gz", ".pt"),
        };
        return Ok(session_dir
            .join("deeplearning_prepare_data")
            .join("image_based")
            .join(&pattern.folder)
            .join(tensor_name));
    }
    let pt_pattern = pattern.pattern.replace(".nii.gz", ".pt");
    match pick(find_files(&session_dir, &pt_pattern)) {
        Ok(Some(file)) => Ok(file),
        Ok(None) => Err(format!(
            "no file matching `{}` (nor its `.pt` tensor) under `{}`",
            pattern.pattern,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_case_insensitive() {
        assert!(component_matches(
            "*space-MNI_T1w.nii.gz",
            "sub-1_ses-M000_SPACE-mni_t1w.nii.gz"
        ));
        assert!(!component_matches("*_T1w.nii.gz", "sub-1_T1w.nii"));
        assert!(component_matches("a?c*", "abcdef"));
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
        let p = image_tensor_path(d.path(), "sub-1", "ses-M000", &pat).unwrap();
        assert_eq!(
            p,
            ses.join("deeplearning_prepare_data/image_based/t1_linear/sub-1_ses-M000_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt")
        );
        // Without the NIfTI file, the tensor itself is found.
        std::fs::remove_file(&nii).unwrap();
        assert!(
            image_tensor_path(d.path(), "sub-1", "ses-M000", &pat)
                .unwrap_err()
                .contains("no file matching")
        );
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "").unwrap();
        assert_eq!(
            image_tensor_path(d.path(), "sub-1", "ses-M000", &pat).unwrap(),
            p
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
