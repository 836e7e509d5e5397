//! Frozen encoders for evaluation: [`FrozenEncoder`] borrows any encoder, dataset and view family
//! (a user's own, or a [`Trainer`]'s); [`FrozenRun`] is a finished run reloaded from its directory —
//! config, dataset, encoder and view family with the weights of its final checkpoint (or of an
//! earlier one it kept).

use anyhow::{Context, Result};
use featdrop_contrastive::assembly::{self, Parts};
use featdrop_contrastive::{Encoder, Trainer};
use featdrop_core::{DeviceChoice, RunConfig, RunDir, ViewFamily, checkpoint};
use featdrop_data::MultiTaskDataset;
use std::path::Path;
use tch::{Device, Tensor, nn::VarStore};

/// An encoder frozen for evaluation, with the dataset it is evaluated on and the view family the
/// probes' training inputs go through (in the published `views` feature mode, docs/PROTOCOL.md §5.1).
///
/// Nothing here is owned: build one over your own [`Encoder`] and [`MultiTaskDataset`] (see
/// [`crate::probe_encoder`]), take one from a [`Trainer`] with [`FrozenEncoder::from_trainer`], or
/// from a reloaded run with [`FrozenRun::frozen`]. The encoder is only ever called under
/// `no_grad` and through [`Encoder::features`] (evaluation mode), so its weights are not changed.
#[derive(Clone, Copy)]
pub struct FrozenEncoder<'a> {
    /// The encoder whose pre-pool features are probed.
    pub encoder: &'a dyn Encoder,
    /// The dataset: training split for fitting, test split (clean inputs) for scoring.
    pub dataset: &'a dyn MultiTaskDataset,
    /// The view family of probe training inputs in `views` mode (the pretraining family).
    pub views: &'a dyn ViewFamily,
    /// Seed the probes' initialisation, shuffling, batches and views derive from.
    pub seed: u64,
}

impl<'a> FrozenEncoder<'a> {
    /// Borrows the parts.
    pub fn new(
        encoder: &'a dyn Encoder,
        dataset: &'a dyn MultiTaskDataset,
        views: &'a dyn ViewFamily,
        seed: u64,
    ) -> Self {
        Self { encoder, dataset, views, seed }
    }

    /// A trainer's encoder (as trained so far), dataset, view family and run seed.
    pub fn from_trainer(trainer: &'a Trainer) -> Self {
        Self::new(trainer.encoder(), trainer.dataset(), trainer.views(), trainer.config().seed)
    }

    /// Flattened pre-pool features `[N, C·h·w]` of normalised inputs `[N, C, H, W]` (no gradient).
    pub fn features(&self, inputs: &Tensor) -> Tensor {
        tch::no_grad(|| self.encoder.features(inputs).flatten(1, -1))
    }
}

/// The files evaluation needs in a run directory, and what makes each.
pub const NEEDED: [(&str, &str); 3] = [
    ("config.json", "featdrop-train, when pretraining starts"),
    ("pretrain.done.json", "featdrop-train, when pretraining finishes"),
    ("checkpoints/latest.json", "featdrop-train, at each checkpoint"),
];

/// A pretrained run with its encoder and view family restored from the last checkpoint, frozen
/// (no parameter requires a gradient; the encoder is used in evaluation mode).
pub struct FrozenRun {
    /// The run's resolved config (its `device` replaced when an override was given).
    pub cfg: RunConfig,
    /// The run directory.
    pub run: RunDir,
    /// Where the dataset, encoder and views live.
    pub device: Device,
    /// The run's dataset.
    pub dataset: Box<dyn MultiTaskDataset>,
    /// The pretrained encoder.
    pub encoder: Box<dyn Encoder>,
    /// The run's view family; a viewmaker family carries its trained parameters.
    pub views: Box<dyn ViewFamily>,
    /// Tag of the checkpoint loaded.
    pub checkpoint: String,
    /// The pretraining epoch of `checkpoint` when it is an earlier one than the run's latest (kept
    /// with `train.keep_epochs`); `None` for the latest.
    pub earlier_epoch: Option<usize>,
    /// Tag of the run's latest checkpoint, if it has one.
    pub latest_checkpoint: Option<String>,
    _enc_vs: VarStore,
}

impl FrozenRun {
    /// Loads the run in `run`, on `device` when given (otherwise the run's own device choice).
    /// A missing or incomplete run directory is an error naming what is missing and what makes it.
    pub fn load(run: &RunDir, device: Option<DeviceChoice>) -> Result<Self> {
        Self::load_with(run, device, None)
    }

    /// As [`FrozenRun::load`], with the encoder's weights taken from `encoder_weights` when given: a
    /// safetensors state dict with torchvision's `resnet18` names (see [`crate::interop`]), e.g.
    /// an encoder trained in PyTorch. Then the run directory needs only its `config.json` (the
    /// dataset, encoder shape, views and seed); a learned view family still comes from the run's
    /// last checkpoint, which must exist.
    pub fn load_with(run: &RunDir, device: Option<DeviceChoice>, encoder_weights: Option<&Path>) -> Result<Self> {
        Self::load_at(run, device, encoder_weights, None)
    }

    /// As [`FrozenRun::load_with`], from the checkpoint of pretraining epoch `epoch` when given
    /// (encoder and learned views alike; `featdrop-eval probe --epoch N`) instead of the latest.
    /// A missing checkpoint is an error listing the ones the run has; earlier ones are kept only
    /// for the epochs of `train.keep_epochs`.
    pub fn load_at(
        run: &RunDir,
        device: Option<DeviceChoice>,
        encoder_weights: Option<&Path>,
        epoch: Option<usize>,
    ) -> Result<Self> {
        anyhow::ensure!(
            epoch.is_none() || encoder_weights.is_none(),
            "--epoch picks one of the run's checkpoints, --encoder-weights replaces its encoder: give one of them"
        );
        run.require(if encoder_weights.is_some() { &NEEDED[..1] } else { &NEEDED })?;
        let mut cfg = RunConfig::from_file(&run.config())?;
        if let Some(d) = device {
            cfg.device = d;
        }
        let device = cfg.device.resolve()?;
        let Parts { dataset, enc_vs, encoder, views } = assembly::assemble(&cfg, device)?;
        let dir = run.checkpoints();
        let latest_checkpoint = checkpoint::latest(&dir)?;
        let latest = match epoch {
            Some(e) => Some(crate::interop::checkpoint_tag(run, Some(e))?),
            None => latest_checkpoint.clone(),
        };
        let earlier_epoch = epoch.filter(|_| latest != latest_checkpoint);
        // The view family's learned parameters come from the run's checkpoint; the encoder's too,
        // unless a torchvision-named weights file replaces them.
        let (encoder_vars, mut targets): (Vec<_>, Vec<_>) = assembly::model_tensors(&enc_vs, views.as_ref())
            .into_iter()
            .partition(|(n, _)| n.starts_with(assembly::ENCODER_PREFIX));
        let tag = match encoder_weights {
            Some(file) => {
                crate::interop::load_torchvision_weights(&enc_vs, file)?;
                format!("encoder-weights:{}", file.display())
            }
            None => {
                targets.extend(encoder_vars.iter().map(|(n, t)| (n.clone(), t.shallow_clone())));
                latest.clone().with_context(|| format!("{} names no checkpoint", dir.display()))?
            }
        };
        if !targets.is_empty() {
            let ckpt = latest.with_context(|| {
                format!(
                    "view mode `{}` learns its views, whose weights come from a featdrop checkpoint; {} has none",
                    cfg.view_mode,
                    dir.display()
                )
            })?;
            let (tensors, _state): (_, serde_json::Value) = checkpoint::load(&dir, &ckpt)?;
            let loaded: Vec<(String, Tensor)> = tensors.into_iter().map(|(n, t)| (n, t.to_device(device))).collect();
            checkpoint::restore_into(&loaded, &targets)
                .with_context(|| format!("restoring {} from {}", ckpt, dir.display()))?;
        }
        targets.extend(encoder_vars);
        for (_, t) in targets {
            // Shallow clones share the variable, so this freezes the viewmaker's parameters too.
            let _ = t.set_requires_grad(false);
        }
        tracing::info!(run = %run.root().display(), checkpoint = %tag, "loaded frozen run");
        Ok(Self {
            cfg,
            run: run.clone(),
            device,
            dataset,
            encoder,
            views,
            checkpoint: tag,
            earlier_epoch,
            latest_checkpoint,
            _enc_vs: enc_vs,
        })
    }

    /// Whether the run's views are learned (a viewmaker), as opposed to a fixed family.
    pub fn has_viewmaker(&self) -> bool {
        !self.views.trainable().is_empty()
    }

    /// The run's encoder, dataset, view family and seed, for the evaluation functions.
    pub fn frozen(&self) -> FrozenEncoder<'_> {
        FrozenEncoder::new(self.encoder.as_ref(), self.dataset.as_ref(), self.views.as_ref(), self.cfg.seed)
    }

    /// Flattened pre-pool features `[N, C·h·w]` of normalised inputs (no gradient).
    pub fn features(&self, inputs: &Tensor) -> Tensor {
        self.frozen().features(inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_incomplete_runs_say_what_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let err = |d: &std::path::Path| FrozenRun::load(&RunDir::at(d), None).err().unwrap().to_string();
        let e = err(&tmp.path().join("nope"));
        assert!(e.contains("does not exist"), "{e}");
        std::fs::write(tmp.path().join("config.json"), "{}").unwrap();
        let e = err(tmp.path());
        assert!(e.contains("pretrain.done.json (made by featdrop-train, when pretraining finishes)"), "{e}");
        assert!(e.contains("checkpoints/latest.json"), "{e}");
        assert!(!e.contains("config.json"), "{e}");
    }
}
