//! The contrastive trainer (§4): pairs from a multi-task dataset, views from any
//! [`ViewFamily`], an [`Encoder`] trained with SGD on the SimCLR objective and — when the family
//! has trainable parameters (the viewmaker) — those trained with Adam to *maximise* the same loss.
//!
//! Every random draw is seeded from (run seed, stream, global step), so an interrupted run resumed
//! from its checkpoint ends bit-identical (on CPU) to an uninterrupted one.

use crate::assembly::{self, Parts};
use crate::encoder::Encoder;
use crate::optim::{Adam, Sgd};
use crate::views;
use anyhow::{Context, Result};
use featdrop_core::config::ChannelsLast;
use featdrop_core::io::{JsonLines, remove_stale_temps, write_json_atomic};
use featdrop_core::layout::tag_epoch;
use featdrop_core::lock::DirLock;
use featdrop_core::trained_on::TrainedOn;
use featdrop_core::{RunConfig, RunDir, Seeds, ViewFamily, checkpoint};
use featdrop_data::MultiTaskDataset;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tch::{Device, Tensor, nn::VarStore};

/// What a finished (or stopped) training run reports; also `pretrain.done.json`.
///
/// The costs are the run's, over every attempt (`attempts`: each process that trained it, killed
/// ones included), not only the last process's.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Epochs completed in total.
    pub epochs: usize,
    /// Optimisation steps in total.
    pub steps: u64,
    /// Mean encoder loss of the run's first epoch (None if unknown: a run resumed from a
    /// checkpoint of an older version whose log lost it).
    pub first_epoch_loss: Option<f64>,
    /// Mean encoder loss of the last epoch.
    pub last_epoch_loss: f64,
    /// kNN accuracy per task after the last epoch.
    pub knn: BTreeMap<String, f64>,
    /// Training wall time over every attempt, seconds.
    pub seconds: f64,
    /// Training throughput over every attempt: images processed (pairs count as two, redone
    /// epochs count again) per second of `seconds`.
    pub images_per_s: f64,
    /// The device used.
    pub device: String,
    /// The training sessions, oldest first (absent in files of older versions).
    #[serde(default)]
    pub attempts: Vec<Attempt>,
}

#[derive(Serialize, Deserialize)]
struct TrainerState {
    epochs_done: usize,
    step: u64,
    last_epoch_loss: f64,
    /// The run's first epoch's mean loss, carried from checkpoint to checkpoint (absent in
    /// checkpoints of older versions).
    #[serde(default)]
    first_epoch_loss: Option<f64>,
    /// The `metrics.jsonl` record of epoch `epochs_done`, to put back if a kill tore it from the
    /// log (absent in checkpoints of older versions).
    #[serde(default)]
    epoch_record: Option<serde_json::Value>,
}

/// A contrastive pretraining run.
pub struct Trainer {
    cfg: RunConfig,
    run: RunDir,
    device: Device,
    seeds: Seeds,
    dataset: Box<dyn MultiTaskDataset>,
    enc_vs: VarStore,
    encoder: Box<dyn Encoder>,
    views: Box<dyn ViewFamily>,
    clean: Box<dyn ViewFamily>,
    sgd: Sgd,
    adam: Option<Adam>,
    // `train.channels_last` as resolved for this run (what its `config.json` records).
    channels_last: bool,
    epochs_done: usize,
    last_epoch_loss: f64,
    first_epoch_loss: Option<f64>,
    // Built at the start of `run` for a trainable view family (viewmaker modes) unless
    // `train.destruction.batch` is 0.
    destruction: Option<destruction::DestructionMonitor>,
    classifier_cache: Option<std::path::PathBuf>,
    // The run's TensorBoard event file, written anew from `metrics.jsonl` when the trainer starts
    // (`train.tensorboard`), then appended to beside it.
    events: Option<crate::tensorboard::EventFile>,
    // Held while the trainer lives: no other trainer writes this run directory meanwhile.
    _lock: DirLock,
}

impl Trainer {
    /// A run of `cfg` in `run`, building dataset, encoder and views from the config. Resumes from
    /// the run's last checkpoint when there is one.
    ///
    /// Before anything is built: the run directory is locked (a second trainer on it is refused,
    /// naming this one's pid), checked to belong to `cfg`, and the config's memory needs are
    /// checked against this machine's available memory.
    pub fn from_config(cfg: RunConfig, run: RunDir) -> Result<Self> {
        Self::from_config_with(cfg, run, ResumeOptions::default())
    }

    /// [`Trainer::from_config`], with what a resume may do (a run trained on one device kind is
    /// resumed on another only with [`ResumeOptions::allow_device_change`]).
    pub fn from_config_with(cfg: RunConfig, run: RunDir, opts: ResumeOptions) -> Result<Self> {
        let lock = run_dir::claim(&cfg, &run)?;
        let origin = run.config().display().to_string();
        featdrop_core::memory::check(&cfg, &origin)?;
        let device = cfg.device.resolve()?;
        run_dir::check_device(&run, device, opts.allow_device_change)?;
        // Before the parts are built: the viewmaker is built in the layout that runs.
        let cfg = run_dir::resolve_layout(cfg, &run, device)?;
        // Before the dataset is built on the device: refused if it cannot fit, said otherwise.
        featdrop_core::memory::check_device(&cfg, &origin, device)?;
        let Parts { dataset, enc_vs, encoder, views } = assembly::assemble(&cfg, device)?;
        Self::build(cfg, run, lock, dataset, enc_vs, encoder, views)
    }

    /// A run from parts a user built: any dataset, any encoder (its parameters in `enc_vs`), any
    /// view family. Resumes from the run's last checkpoint when there is one. The run directory is
    /// locked while the trainer lives (a second trainer on it is refused, naming this one's pid).
    ///
    /// The parts are used as given; from `cfg` come the seed, the `train` section (epochs, batch
    /// size, SGD, temperature, objective, checkpoints, kNN monitor), `data.monitor_size`, the
    /// `viewmaker` optimiser settings (for a family with [`ViewFamily::trainable`] parameters)
    /// and the `dropout:<p>` re-draw probability of `view_mode`; `cfg` is written to the run's
    /// `config.json` as the record of the run. The encoder is trained with SGD on every trainable
    /// variable of `enc_vs`, so build it under `enc_vs.root()`. The dataset's inputs reach the view
    /// family as they are (images `[N, 3, H, W]` in [0, 1]); the views must come out ready for the
    /// encoder (normalised).
    ///
    /// # Example
    ///
    /// One epoch of a tiny ResNet on a built-in dataset, with a closure as the view family:
    ///
    /// ```
    /// use featdrop_augment::Normalize;
    /// use featdrop_contrastive::{EncoderSpec, ResNet, Stem, StopAfter, Trainer};
    /// use featdrop_core::seed::with_torch_seed;
    /// use featdrop_core::{RunConfig, RunDir, BaseViews};
    /// use featdrop_data::DatasetSpec;
    /// use tch::{Device, Tensor, nn::VarStore};
    ///
    /// let dataset = featdrop_data::open(&DatasetSpec::synthetic("photos+digits", 64, 32, 0))?;
    /// let vs = VarStore::new(Device::Cpu);
    /// let encoder = ResNet::new(&vs.root(), EncoderSpec::small(3, Stem::SmallImage, 4));
    /// // A view: pixel noise, the whole batch mirrored on even seeds, then normalisation.
    /// let views = |x: &Tensor, seed: u64| {
    ///     let noisy = with_torch_seed(seed, || x + x.randn_like() * 0.05);
    ///     Normalize::default().apply(&if seed % 2 == 0 { noisy.flip([3]) } else { noisy })
    /// };
    ///
    /// let mut cfg = RunConfig::new("docs", "photos+digits", BaseViews::None, 0);
    /// (cfg.train.epochs, cfg.train.batch_size, cfg.train.knn_k) = (1, 32, 5);
    /// cfg.train.view_grid_every = 0;
    /// let dir = tempfile::tempdir()?;
    /// let mut trainer =
    ///     Trainer::with_parts(cfg, RunDir::at(dir.path()), dataset, vs, Box::new(encoder), Box::new(views))?;
    /// let summary = trainer.run(StopAfter::default())?;
    /// assert!(summary.last_epoch_loss.is_finite());
    /// assert_eq!(summary.knn.keys().collect::<Vec<_>>(), ["digit", "photo"]); // kNN top-1 per task
    /// assert!(dir.path().join("pretrain.done.json").exists());
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn with_parts(
        cfg: RunConfig,
        run: RunDir,
        dataset: Box<dyn MultiTaskDataset>,
        enc_vs: VarStore,
        encoder: Box<dyn Encoder>,
        views: Box<dyn ViewFamily>,
    ) -> Result<Self> {
        cfg.validate(&run.config().display().to_string())?;
        check_devices(dataset.device(), &enc_vs, views.as_ref())?;
        let lock = run_dir::claim(&cfg, &run)?;
        run_dir::check_device(&run, dataset.device(), false)?;
        Self::build(cfg, run, lock, dataset, enc_vs, encoder, views)
    }

    /// The trainer, once `run` is claimed for `cfg`.
    fn build(
        cfg: RunConfig,
        run: RunDir,
        lock: DirLock,
        dataset: Box<dyn MultiTaskDataset>,
        enc_vs: VarStore,
        encoder: Box<dyn Encoder>,
        views: Box<dyn ViewFamily>,
    ) -> Result<Self> {
        let device = dataset.device();
        if cfg.train.deterministic {
            deterministic(device)?;
        }
        let cfg = run_dir::resolve_layout(cfg, &run, device)?;
        let channels_last = cfg.train.channels_last == ChannelsLast::Fixed(true);
        if channels_last {
            // Before the optimiser exists, so its momentum buffers share the new layout.
            featdrop_torch_ext::module_to_channels_last(&enc_vs)?;
        }
        if cfg.train.bf16 {
            // Fail now, not mid-run, if this device cannot run what bf16 autocast runs: switching
            // autocast on succeeds even where no bf16 kernel exists.
            featdrop_core::gpu::probe::bf16_conv(device)
                .map_err(|e| anyhow::anyhow!("train.bf16: {e}; set train.bf16 to false on this device"))?;
        }
        let t = &cfg.train;
        let sgd = Sgd::new(named_trainable(&enc_vs), t.lr, t.momentum, t.weight_decay);
        let vm_params = views.trainable();
        let adam = (!vm_params.is_empty()).then(|| Adam::new(vm_params, cfg.viewmaker.lr));
        let clean = views::clean(dataset.modality(), dataset.device());
        let seeds = Seeds::new(cfg.seed);
        let mut me = Self {
            cfg,
            run,
            device,
            seeds,
            dataset,
            enc_vs,
            encoder,
            views,
            clean,
            sgd,
            adam,
            channels_last,
            epochs_done: 0,
            last_epoch_loss: f64::NAN,
            first_epoch_loss: None,
            destruction: None,
            classifier_cache: None,
            events: None,
            _lock: lock,
        };
        me.prepare_run_dir()?;
        TrainedOn::new(me.device, me.cfg.train.deterministic).write(&me.run)?;
        Ok(me)
    }

    /// The encoder being trained.
    pub fn encoder(&self) -> &dyn Encoder {
        self.encoder.as_ref()
    }

    /// The dataset.
    pub fn dataset(&self) -> &dyn MultiTaskDataset {
        self.dataset.as_ref()
    }

    /// The view family pairs go through (the one given to [`Trainer::with_parts`], or the config's).
    pub fn views(&self) -> &dyn ViewFamily {
        self.views.as_ref()
    }

    /// The run's config.
    pub fn config(&self) -> &RunConfig {
        &self.cfg
    }

    /// Keeps the destruction monitor's task classifiers in `dir` and reuses them from there (a
    /// [`crate::classifier::ClassifierCache`], keyed as `featdrop-eval destruction` keys its own,
    /// so a grid's cells and its destruction analysis share them when their budgets agree).
    pub fn set_classifier_cache(&mut self, dir: impl Into<std::path::PathBuf>) {
        self.classifier_cache = Some(dir.into());
    }

    /// Whether this run logs per-epoch label destruction: its view family is trainable (the
    /// viewmaker modes) and `train.destruction.batch` is not 0. A dataset without
    /// a test split (a user's own) has nothing to score, so no monitor.
    pub fn monitors_destruction(&self) -> bool {
        let has_test = self.dataset.len(featdrop_core::Split::Test) > 0;
        self.cfg.train.destruction.batch > 0 && has_test && !self.views.trainable().is_empty()
    }

    /// Epochs finished so far (after a resume, those of the checkpoint).
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// All tensors a checkpoint holds: encoder variables (with batch-norm statistics), view-family
    /// parameters and optimiser state, by name.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = assembly::model_tensors(&self.enc_vs, self.views.as_ref());
        out.extend(self.sgd.state("sgd"));
        if let Some(adam) = &self.adam {
            out.extend(adam.state("adam"));
        }
        out
    }

    /// Records the config (checked against the directory's by [`run_dir::claim`]), removes what
    /// interrupted writes left, and resumes from the newest intact checkpoint.
    fn prepare_run_dir(&mut self) -> Result<()> {
        let cfg_path = self.run.config();
        if !cfg_path.exists() {
            write_json_atomic(&cfg_path, &self.cfg)?;
        }
        let ckpt_dir = self.run.checkpoints();
        // This process holds the run directory's lock: no other trainer writes there.
        for dir in [self.run.root(), ckpt_dir.as_path()] {
            remove_stale_temps(dir, std::time::Duration::ZERO, |_| true)?;
        }
        let mut state = None;
        if let Some((tag, tensors, s)) = checkpoint::load_newest_intact::<TrainerState>(&ckpt_dir)? {
            let loaded: Vec<(String, Tensor)> =
                tensors.into_iter().map(|(n, t)| (n, t.to_device(self.device))).collect();
            checkpoint::restore_into(&loaded, &self.state_tensors())
                .with_context(|| format!("restoring checkpoint {tag}"))?;
            self.epochs_done = s.epochs_done;
            self.last_epoch_loss = s.last_epoch_loss;
            self.first_epoch_loss = s.first_epoch_loss;
            tracing::info!(checkpoint = %tag, epochs_done = s.epochs_done, "resumed");
            self.prune_checkpoints_before(&tag)?;
            state = Some(s);
        }
        self.trim_metrics(state.as_ref())?;
        // After the trim: the event file stands for exactly the records kept.
        if self.cfg.train.tensorboard {
            self.events = Some(crate::tensorboard::rewrite_train(&self.run, self.epochs_done)?);
        } else {
            crate::tensorboard::remove(&self.run, crate::tensorboard::TRAIN)?;
        }
        Ok(())
    }

    /// Removes the checkpoints older than `tag` (the one resumed) that `train.keep_epochs` does not
    /// keep: a kill between saving a checkpoint and pruning its predecessor leaves both.
    fn prune_checkpoints_before(&self, tag: &str) -> Result<()> {
        let Some(resumed) = tag_epoch(tag) else { return Ok(()) };
        let keep = |t: &str| tag_epoch(t).is_none_or(|e| e >= resumed || self.cfg.train.keep_epochs.contains(&e));
        let removed = checkpoint::prune(&self.run.checkpoints(), keep)?;
        if !removed.is_empty() {
            tracing::info!(removed = ?removed, "removed checkpoints an interrupted run left behind");
        }
        Ok(())
    }

    /// Drops the metrics records past the restart point — they belong to work about to be redone
    /// (also when the run restarts from scratch) — and a torn last line a kill left behind. The
    /// restart point's own epoch record, if the log lost it, is put back from the checkpoint
    /// (`state`): that epoch is not redone.
    fn trim_metrics(&mut self, state: Option<&TrainerState>) -> Result<()> {
        let metrics = self.run.metrics();
        if !metrics.exists() {
            return Ok(());
        }
        let (records, torn) = JsonLines::read_complete::<serde_json::Value>(&metrics)?;
        let done = self.epochs_done as u64;
        let mut keep: Vec<serde_json::Value> =
            records.iter().filter(|r| r["epoch"].as_u64().is_some_and(|e| e <= done)).cloned().collect();
        let is_epoch = |r: &serde_json::Value, e: u64| r["kind"] == "epoch" && r["epoch"].as_u64() == Some(e);
        if self.first_epoch_loss.is_none() {
            // A checkpoint of an older version: the log still has it.
            self.first_epoch_loss = keep.iter().find(|r| is_epoch(r, 1)).and_then(|r| r["loss"].as_f64());
        }
        let mut restored = false;
        if done > 0 && !keep.iter().any(|r| is_epoch(r, done)) {
            match state.and_then(|s| s.epoch_record.clone()).filter(|r| is_epoch(r, done)) {
                Some(record) => {
                    keep.push(record);
                    restored = true;
                }
                None => tracing::warn!(file = %metrics.display(), epoch = done,
                    "the log lost the record of epoch {done} and its checkpoint (of an older version) holds none"),
            }
        }
        match (torn, restored) {
            (Some(line), true) => tracing::warn!(file = %metrics.display(), line, epoch = done,
                "dropped a torn last record; it was the record of epoch {done}, put back from its checkpoint"),
            (Some(line), false) => tracing::warn!(file = %metrics.display(), line,
                "dropped a torn last record; the work it recorded is redone"),
            (None, true) => tracing::warn!(file = %metrics.display(), epoch = done,
                "the record of epoch {done} was missing; put back from its checkpoint"),
            (None, false) => {}
        }
        let text: String = keep.iter().map(|r| format!("{r}\n")).collect();
        if text != std::fs::read_to_string(&metrics).with_context(|| format!("reading {}", metrics.display()))? {
            featdrop_core::io::write_atomic(&metrics, text.as_bytes())?;
        }
        Ok(())
    }
}

/// How [`Trainer::from_config_with`] may take over a run that has checkpoints.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResumeOptions {
    /// Resume on another device kind (cpu, cuda) than the run was trained on
    /// (`featdrop-train --allow-device-change`): the rest of the run then computes other numbers
    /// than the first part would have.
    pub allow_device_change: bool,
}

/// `train.deterministic`: libtorch's determinism switches, for the whole process. cuBLAS also
/// needs `CUBLAS_WORKSPACE_CONFIG` in the environment before CUDA starts, which only the program
/// can set safely (`featdrop-train` does, first thing): without it CUDA training is refused here
/// rather than failing at the first matrix product.
fn deterministic(device: Device) -> Result<()> {
    use featdrop_torch_ext::{CUBLAS_WORKSPACE_CONFIG, CUBLAS_WORKSPACE_SETTING};
    anyhow::ensure!(
        !device.is_cuda() || featdrop_torch_ext::cublas_workspace_is_deterministic(),
        "train.deterministic on {device:?} needs {CUBLAS_WORKSPACE_CONFIG}={CUBLAS_WORKSPACE_SETTING} in the \
         environment before CUDA starts (featdrop-train sets it; a program of your own must set it at its start)"
    );
    featdrop_torch_ext::set_deterministic(true).context("train.deterministic")
}

/// A VarStore's trainable variables by name, in name order (batch-norm statistics excluded).
pub fn named_trainable(vs: &VarStore) -> Vec<(String, Tensor)> {
    sorted(vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect())
}

fn sorted(mut v: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Refuses parts on different devices (a mix would panic at the first step): the encoder's
/// variables and the view family's trainable parameters must sit where the dataset's tensors do.
fn check_devices(dataset: Device, enc_vs: &VarStore, views: &dyn ViewFamily) -> Result<()> {
    let mut parts = vec![("the encoder's VarStore".to_string(), enc_vs.device())];
    parts.extend(enc_vs.variables().into_iter().map(|(n, t)| (format!("encoder variable `{n}`"), t.device())));
    parts.extend(views.trainable().into_iter().map(|(n, t)| (format!("view-family parameter `{n}`"), t.device())));
    same_device(dataset, &parts)
}

/// The first of `parts` (name, device) not on `dataset`'s device, as an error naming both.
fn same_device(dataset: Device, parts: &[(String, Device)]) -> Result<()> {
    match parts.iter().find(|(_, d)| *d != dataset) {
        None => Ok(()),
        Some((name, d)) => anyhow::bail!(
            "Trainer::with_parts: {name} is on {d:?} but the dataset is on {dataset:?}; build every part on \
             one device (the dataset's `DatasetSpec::device`, the encoder's `VarStore::new(device)`)"
        ),
    }
}

mod attempts;
mod destruction;
mod run;
mod run_dir;
pub use attempts::Attempt;
pub use destruction::classifier_budget;
pub use run::StopAfter;

#[cfg(test)]
mod device_tests {
    use super::*;

    /// Issue 30 item 5: a part off the dataset's device is named, whatever the devices (no GPU
    /// needed to build the case).
    #[test]
    fn parts_off_the_datasets_device_are_named() {
        let on = |d| vec![("the encoder's VarStore".to_string(), d), ("encoder variable `w`".to_string(), d)];
        same_device(Device::Cuda(0), &on(Device::Cuda(0))).unwrap();
        let e = same_device(Device::Cpu, &on(Device::Cuda(1))).unwrap_err().to_string();
        assert!(e.contains("the encoder's VarStore is on Cuda(1) but the dataset is on Cpu"), "{e}");
        let mut mixed = on(Device::Cuda(0));
        mixed.push(("view-family parameter `vm.w`".into(), Device::Cuda(1)));
        let e = same_device(Device::Cuda(0), &mixed).unwrap_err().to_string();
        assert!(e.contains("view-family parameter `vm.w` is on Cuda(1) but the dataset is on Cuda(0)"), "{e}");
    }
}
