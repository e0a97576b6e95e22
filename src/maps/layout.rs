//! The MAPS folder layout (docs/ARCHITECTURE.md, "MAPS layout"): the only code that builds paths
//! inside a MAPS, and the discovery of trained splits and selection metrics.
//!
//! ClinicaDL: `MapsManager._get_split_prefix` / `_find_splits` / `_find_selection_metrics`.

use std::path::{Path, PathBuf};

/// Paths inside one MAPS.
#[derive(Debug, Clone)]
pub struct MapsLayout {
    /// The MAPS folder.
    pub root: PathBuf,
    /// `split` or, for legacy MAPS, `fold`.
    pub split_prefix: String,
}

impl MapsLayout {
    /// The layout of the MAPS at `root`; the split prefix is `fold` when any root entry
    /// matches `fold-*`, else `split`.
    pub fn new(root: &Path) -> Self {
        let legacy = std::fs::read_dir(root)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("fold-"))
            })
            .unwrap_or(false);
        MapsLayout {
            root: root.to_owned(),
            split_prefix: if legacy { "fold" } else { "split" }.to_owned(),
        }
    }

    /// `groups/`.
    pub fn groups_dir(&self) -> PathBuf {
        self.root.join("groups")
    }

    /// `groups/<group>/`.
    pub fn group_dir(&self, group: &str) -> PathBuf {
        self.groups_dir().join(group)
    }

    /// The folder holding a group's `data.tsv` and `maps.json` for a split: `groups/<group>/`,
    /// or `groups/<group>/split-<k>/` for the training groups `train` and `validation`.
    pub fn group_definition_dir(&self, group: &str, split: u32) -> PathBuf {
        if is_training_group(group) {
            self.group_dir(group)
                .join(format!("{}-{split}", self.split_prefix))
        } else {
            self.group_dir(group)
        }
    }

    /// `groups/train+validation.tsv` (the leakage check's reference).
    pub fn train_validation_tsv(&self) -> PathBuf {
        self.groups_dir().join("train+validation.tsv")
    }

    /// `split-<k>/`.
    pub fn split_dir(&self, split: u32) -> PathBuf {
        self.root.join(format!("{}-{split}", self.split_prefix))
    }

    /// `split-<k>/best-<metric>/`.
    pub fn metric_dir(&self, split: u32, metric: &str) -> PathBuf {
        self.split_dir(split).join(format!("best-{metric}"))
    }

    /// The checkpoint: `model.pth.tar`, or `network-<n>_model.pth.tar` for multi-network MAPS.
    pub fn checkpoint(&self, split: u32, metric: &str, network: Option<usize>) -> PathBuf {
        let name = match network {
            None => "model.pth.tar".to_owned(),
            Some(n) => format!("network-{n}_model.pth.tar"),
        };
        self.metric_dir(split, metric).join(name)
    }

    /// `split-<k>/best-<metric>/<group>/`: where a group's results go.
    pub fn results_dir(&self, split: u32, metric: &str, group: &str) -> PathBuf {
        self.metric_dir(split, metric).join(group)
    }

    /// `split-<k>/best-<metric>/.<group>.shards/`: where the shards of a sharded prediction
    /// leave their parts until `merge`.
    pub fn shards_dir(&self, split: u32, metric: &str, group: &str) -> PathBuf {
        self.metric_dir(split, metric)
            .join(format!(".{group}.shards"))
    }

    /// `<group>_<level>_level_<kind>.tsv` in the results folder.
    pub fn results_tsv(
        &self,
        split: u32,
        metric: &str,
        group: &str,
        level: &str,
        kind: &str,
    ) -> PathBuf {
        self.results_dir(split, metric, group)
            .join(results_tsv_name(group, level, kind))
    }

    /// The element-level validation predictions that weight soft voting:
    /// `split-<k>/best-<metric>/validation/validation_<level>_level_prediction.tsv`.
    pub fn validation_predictions(&self, split: u32, metric: &str, level: &str) -> PathBuf {
        self.results_tsv(split, metric, "validation", level, "prediction")
    }

    /// The trained splits, in increasing order: every folder `split-<k>` with an integer `k`.
    /// (1.6.1 lists every entry starting with `split-` in directory order and crashes on names
    /// such as `split-0_old`; those are ignored here.)
    pub fn discover_splits(&self) -> std::io::Result<Vec<u32>> {
        let prefix = format!("{}-", self.split_prefix);
        let mut splits: Vec<u32> = std::fs::read_dir(&self.root)?
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix(&prefix)?.parse().ok())
            })
            .collect();
        splits.sort_unstable();
        Ok(splits)
    }

    /// The selection metrics trained for a split: the `best-<metric>` folders, sorted by name.
    pub fn discover_selection_metrics(&self, split: u32) -> std::io::Result<Vec<String>> {
        let mut metrics: Vec<String> = std::fs::read_dir(self.split_dir(split))?
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_owned();
                let rest = name.strip_prefix("best-")?;
                Some(rest.split('-').next().unwrap_or(rest).to_owned())
            })
            .collect();
        metrics.sort();
        metrics.dedup();
        Ok(metrics)
    }
}

/// File name of a results TSV: `<group>_<level>_level_<kind>.tsv` (kind: prediction, metrics).
pub fn results_tsv_name(group: &str, level: &str, kind: &str) -> String {
    format!("{group}_{level}_level_{kind}.tsv")
}

/// `train` and `validation` are defined per split at training time.
pub fn is_training_group(group: &str) -> bool {
    group == "train" || group == "validation"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_clinicadl() {
        let l = MapsLayout {
            root: "/m".into(),
            split_prefix: "split".into(),
        };
        assert_eq!(
            l.checkpoint(1, "BA", None),
            Path::new("/m/split-1/best-BA/model.pth.tar")
        );
        assert_eq!(
            l.checkpoint(0, "loss", Some(3)),
            Path::new("/m/split-0/best-loss/network-3_model.pth.tar")
        );
        assert_eq!(
            l.results_tsv(0, "loss", "test", "image", "prediction"),
            Path::new("/m/split-0/best-loss/test/test_image_level_prediction.tsv")
        );
        assert_eq!(
            l.group_definition_dir("train", 2),
            Path::new("/m/groups/train/split-2")
        );
        assert_eq!(
            l.group_definition_dir("test", 2),
            Path::new("/m/groups/test")
        );
    }

    #[test]
    fn discovery_sorts_and_skips_junk() {
        let d = tempfile::tempdir().unwrap();
        for p in [
            "split-1/best-loss",
            "split-0/best-BA",
            "split-0/best-loss",
            "split-0_old",
            "split-x",
        ] {
            std::fs::create_dir_all(d.path().join(p)).unwrap();
        }
        std::fs::write(d.path().join("split-7"), "").unwrap();
        let l = MapsLayout::new(d.path());
        assert_eq!(l.split_prefix, "split");
        assert_eq!(l.discover_splits().unwrap(), [0, 1]);
        assert_eq!(l.discover_selection_metrics(0).unwrap(), ["BA", "loss"]);
    }

    #[test]
    fn legacy_fold_prefix() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("fold-0/best-loss")).unwrap();
        let l = MapsLayout::new(d.path());
        assert_eq!(l.split_prefix, "fold");
        assert_eq!(l.discover_splits().unwrap(), [0]);
    }
}
