//! The run-directory layout of docs/PROTOCOL.md §8:
//! `runs/<experiment>/<dataset>/<view-mode>/seed-<n>/`.

use crate::view_mode::ViewMode;
use std::path::{Path, PathBuf};

/// The checkpoint tag of pretraining epoch `epoch`: `epoch-0042`.
pub fn epoch_tag(epoch: usize) -> String {
    format!("epoch-{epoch:04}")
}

/// The pretraining epoch a checkpoint tag names (`epoch-0042` → 42); `None` for another tag.
pub fn tag_epoch(tag: &str) -> Option<usize> {
    tag.strip_prefix("epoch-")?.parse().ok()
}

/// One run's directory and the files in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory for a grid cell under `runs_root`.
    pub fn for_cell(runs_root: &Path, experiment: &str, dataset: &str, mode: impl Into<ViewMode>, seed: u64) -> Self {
        let root = runs_root.join(experiment).join(dataset).join(mode.into().dir_name()).join(format!("seed-{seed}"));
        Self { root }
    }

    /// An existing directory used as a run directory.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The full resolved config of the run.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// One JSON record per step / epoch.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// Checkpoints (weights as safetensors, trainer state as JSON).
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// Linear-probe accuracy per task.
    pub fn probe(&self) -> PathBuf {
        self.root.join("probe.json")
    }

    /// Label-destruction rates per task and view family.
    pub fn destruction(&self) -> PathBuf {
        self.root.join("destruction.json")
    }

    /// Finished tasks of a label-destruction analysis still under way: `destruction.json` is
    /// written only whole, once every requested task is measured.
    pub fn destruction_partial(&self) -> PathBuf {
        self.root.join("destruction.partial.json")
    }

    /// The training sessions of the run (featdrop-train's attempts record): their time and
    /// images, summed into `pretrain.done.json`.
    pub fn attempts(&self) -> PathBuf {
        self.root.join("attempts.json")
    }

    /// View grids saved during training.
    pub fn views(&self) -> PathBuf {
        self.root.join("views")
    }

    /// The device the run was trained on ([`crate::trained_on`]).
    pub fn trained_on(&self) -> PathBuf {
        self.root.join("trained_on.json")
    }

    /// Written last by pretraining: its presence marks the pretraining as finished.
    pub fn done_marker(&self) -> PathBuf {
        self.root.join("pretrain.done.json")
    }

    /// Checks that the files `needed` (names relative to the run directory) exist, and says which
    /// are missing and what makes them.
    pub fn require(&self, needed: &[(&str, &str)]) -> anyhow::Result<()> {
        if !self.root.is_dir() {
            anyhow::bail!("run directory {} does not exist", self.root.display());
        }
        let missing: Vec<String> = needed
            .iter()
            .filter(|(name, _)| !self.root.join(name).exists())
            .map(|(name, made_by)| format!("{name} (made by {made_by})"))
            .collect();
        if !missing.is_empty() {
            anyhow::bail!("run directory {} is incomplete; missing: {}", self.root.display(), missing.join(", "));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_design() {
        let d = RunDir::for_cell(Path::new("runs"), "small", "photos+digits", ViewMode::dropout(0.5), 2);
        assert_eq!(d.root(), Path::new("runs/small/photos+digits/dropout-0.5/seed-2"));
        assert_eq!(d.probe(), Path::new("runs/small/photos+digits/dropout-0.5/seed-2/probe.json"));
    }

    #[test]
    fn require_names_what_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let d = RunDir::at(tmp.path().join("nope"));
        assert!(d.require(&[]).unwrap_err().to_string().contains("does not exist"));
        let d = RunDir::at(tmp.path());
        std::fs::write(d.config(), "{}").unwrap();
        let e = d.require(&[("config.json", "featdrop-train"), ("checkpoints", "featdrop-train")]).unwrap_err();
        assert!(e.to_string().contains("missing: checkpoints (made by featdrop-train)"), "{e}");
    }
}
