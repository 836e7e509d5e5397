//! The linear-probe protocol (§5.1): on a reloaded run ([`run_probe`], resumable per task, written
//! to `probe.json`) or on any encoder and dataset in memory ([`probe_encoder`], nothing written).
//! Both go through the same fitting and scoring code.

use crate::frozen::{FrozenEncoder, FrozenRun};
use crate::linear::{LinearProbes, evaluate, fit, fit_steps};
use crate::pending::pending_tasks;
use crate::report::{EpochProbe, PROBE_SCHEMA, ProbeProtocol, ProbeReport, ProbeTask, read_report};
use anyhow::{Result, bail, ensure};
use featdrop_contrastive::tensorboard::{self, EventFile, Scalar};
use featdrop_contrastive::views::clean;
use featdrop_core::config::ProbeConfig;
use featdrop_core::io::{remove_stale_temps, write_json_atomic};
use featdrop_core::layout::tag_epoch;
use featdrop_core::{Seeds, Split, Stream};
use std::collections::BTreeMap;
use std::time::Duration;
use tch::{Kind, Tensor};

/// Where the probes' training features come from (the run config's closed set, under the name
/// this crate has always used).
pub use featdrop_core::config::ProbeFeatures as FeatureMode;

/// What to probe and how; unset fields come from the run's `probe` config section.
#[derive(Clone, Debug, Default)]
pub struct ProbeOptions {
    /// Task names to probe (`None`: all tasks).
    pub tasks: Option<Vec<String>>,
    /// Feature mode (`None`: `probe.features` of the config).
    pub features: Option<FeatureMode>,
    /// Training epochs (`None`: `probe.epochs`).
    pub epochs: Option<usize>,
    /// Recompute tasks already in `probe.json`.
    pub force: bool,
    /// Show a progress bar.
    pub progress: bool,
}

// Counters of the evaluation stream, apart from the trainer's (0–3).
const PROBE_INIT: u64 = 100;
const TRAIN_BATCH: u64 = 1 << 32;
const TEST_BATCH: u64 = 2 << 32;
const VIEW_BASE: u64 = 3 << 32;
const CHUNK: i64 = 256;

/// The `checkpoint` of a [`ProbeReport`] made by [`probe_encoder`]: the encoder as it was in memory.
pub const IN_MEMORY: &str = "in-memory";

impl ProbeOptions {
    /// Checks the options on their own (before a run is loaded): `epochs`, when given, is at
    /// least 1 — a probe trained for 0 epochs reads chance and would be recorded as done.
    pub fn validate(&self) -> Result<()> {
        if let Some(e) = self.epochs {
            ensure!(e >= 1, "--epochs = {e} is out of range; expected an integer ≥ 1 (probe training epochs)");
        }
        Ok(())
    }
}

/// Runs the probes of `opts` on `run` and writes the merged results to `probe.json`. Tasks whose
/// results are already there under the same protocol are kept, not recomputed, unless `force`.
pub fn run_probe(run: &FrozenRun, opts: &ProbeOptions) -> Result<ProbeReport> {
    opts.validate()?;
    // What an interrupted write of probe.json left (other writers' files in the run are theirs).
    let out = run.run.probe();
    remove_stale_temps(run.run.root(), Duration::ZERO, |target| out.ends_with(target) || target == "tensorboard")?;
    let mut cfg = run.cfg.probe.clone();
    let mode = match opts.features {
        Some(m) => m,
        None => cfg.features,
    };
    cfg.features = mode;
    if let Some(e) = opts.epochs {
        cfg.epochs = e;
    }
    let frozen = run.frozen();
    let protocol = protocol(&frozen, &cfg, mode);
    let mut report = existing(run, &protocol, opts.force)?;
    let pending = pending_tasks(run.dataset.as_ref(), opts.tasks.as_deref(), opts.force, |t| {
        results_of(&report, run.earlier_epoch).is_some_and(|r| r.contains_key(t))
    })?;
    if pending.is_empty() {
        tracing::info!(file = %run.run.probe().display(), checkpoint = %run.checkpoint, "every requested task already probed; --force recomputes");
        return Ok(report);
    }
    let results = train_and_test(&frozen, &pending, &cfg, mode, protocol.feature_dim, opts.progress)?;
    match run.earlier_epoch {
        None => report.tasks.extend(results),
        Some(e) => {
            let fresh = || EpochProbe { checkpoint: run.checkpoint.clone(), tasks: BTreeMap::new() };
            report.epochs.entry(e).or_insert_with(fresh).tasks.extend(results);
        }
    }
    write_json_atomic(&run.run.probe(), &report)?;
    if run.cfg.train.tensorboard {
        EventFile::rewrite(&run.run, tensorboard::PROBE, &probe_scalars(&report), &[])?;
    }
    Ok(report)
}

/// `probe/<task>`: the top-1 accuracy of each task at the pretraining epoch of the checkpoint
/// probed (the final one and the earlier kept ones), for the run's TensorBoard files.
pub fn probe_scalars(report: &ProbeReport) -> Vec<Scalar> {
    let at = |epoch: usize, tasks: &BTreeMap<String, ProbeTask>| -> Vec<Scalar> {
        let point = |(name, t): (&String, &ProbeTask)| Scalar {
            tag: format!("probe/{name}"),
            step: epoch as i64,
            value: t.top1 as f32,
        };
        tasks.iter().map(point).collect()
    };
    let mut out: Vec<Scalar> = report.epochs.iter().flat_map(|(e, p)| at(*e, &p.tasks)).collect();
    // A checkpoint not named `epoch-N` (weights of another source) has no epoch to stand at.
    if let Some(last) = tag_epoch(&report.checkpoint) {
        out.extend(at(last, &report.tasks));
    }
    out
}

/// The results of the final checkpoint (`epoch` `None`: the top of probe.json) or of an earlier one
/// (under `epochs`).
fn results_of(r: &ProbeReport, epoch: Option<usize>) -> Option<&BTreeMap<String, ProbeTask>> {
    match epoch {
        None => Some(&r.tasks),
        Some(e) => r.epochs.get(&e).map(|p| &p.tasks),
    }
}

/// The tag of the run's final checkpoint (where `probe.json`'s top-level results come from).
fn final_checkpoint(run: &FrozenRun) -> String {
    match run.earlier_epoch {
        Some(_) => run.latest_checkpoint.clone().unwrap_or_default(),
        None => run.checkpoint.clone(),
    }
}

/// Fits the linear probes of §5.1 on a frozen encoder's pre-pool features — one linear layer per
/// task of `frozen.dataset`, trained together — and scores them on the clean test split.
///
/// `cfg` is the protocol (usually the run config's `probe` section; the published defaults are 100
/// epochs, batch 128, SGD lr 0.01 × 0.1 at epochs 60 and 80, momentum 0.9). Its `features` field
/// picks where the training features come from: `views` (every batch through `frozen.views`, the
/// published protocol) or `cached` (clean features computed once; fast). Inputs are whatever the
/// dataset yields (images `[N, 3, H, W]` in [0, 1]); clean inputs go through the modality's clean
/// transform (normalisation for images) before the encoder, as in pretraining's monitor.
///
/// This is [`run_probe`] without a run directory: nothing is read or written, and the returned
/// [`ProbeReport`] (schema `featdrop.probe/2`) names the dataset by [`MultiTaskDataset::name`], the
/// view mode by the view family's name, and the checkpoint as [`IN_MEMORY`]. Deterministic on the
/// CPU for a given `frozen.seed`.
///
/// [`MultiTaskDataset::name`]: featdrop_data::MultiTaskDataset::name
///
/// # Example
///
/// A randomly initialised small ResNet probed on a built-in dataset (use your own encoder and
/// [`featdrop_data::MultiTaskDataset`] the same way; see `examples/custom_dataset.rs`):
///
/// ```
/// use featdrop_augment::Identity;
/// use featdrop_contrastive::{EncoderSpec, ResNet, Stem};
/// use featdrop_core::config::{ProbeConfig, ProbeFeatures};
/// use featdrop_data::DatasetSpec;
/// use featdrop_eval::{FrozenEncoder, probe_encoder};
/// use tch::{Device, nn::VarStore};
///
/// let dataset = featdrop_data::open(&DatasetSpec::synthetic("photos+digits", 64, 64, 0))?;
/// let vs = VarStore::new(Device::Cpu);
/// let encoder = ResNet::new(&vs.root(), EncoderSpec::small(3, Stem::SmallImage, 4));
/// let views = Identity::default();
/// let cfg = ProbeConfig { epochs: 2, batch_size: 32, features: ProbeFeatures::Cached, ..Default::default() };
///
/// let report = probe_encoder(&FrozenEncoder::new(&encoder, dataset.as_ref(), &views, 0), &cfg)?;
/// assert_eq!(report.protocol.feature_dim, 32 * 4 * 4); // 8·width channels on a 4×4 map
/// for (task, result) in &report.tasks {
///     println!("{task}: top-1 {:.3} (chance {:.3})", result.top1, result.chance);
/// }
/// assert_eq!(report.tasks.keys().collect::<Vec<_>>(), ["digit", "photo"]);
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn probe_encoder(frozen: &FrozenEncoder, cfg: &ProbeConfig) -> Result<ProbeReport> {
    ensure!(cfg.epochs >= 1, "probe.epochs = {} is out of range; expected an integer ≥ 1", cfg.epochs);
    let mode = cfg.features;
    let protocol = protocol(frozen, cfg, mode);
    let all: Vec<(usize, String)> =
        frozen.dataset.tasks().names().into_iter().enumerate().map(|(i, n)| (i, n.to_string())).collect();
    let tasks = train_and_test(frozen, &all, cfg, mode, protocol.feature_dim, false)?;
    Ok(ProbeReport {
        schema: PROBE_SCHEMA.into(),
        dataset: frozen.dataset.name().into(),
        view_mode: frozen.views.name(),
        checkpoint: IN_MEMORY.into(),
        protocol,
        tasks,
        epochs: BTreeMap::new(),
    })
}

/// The protocol `cfg` and `mode` amount to on `frozen`.
fn protocol(frozen: &FrozenEncoder, cfg: &ProbeConfig, mode: FeatureMode) -> ProbeProtocol {
    let ds = frozen.dataset;
    ProbeProtocol {
        features: mode.to_string(),
        view_family: if mode == FeatureMode::Views { frozen.views.name() } else { "identity".into() },
        feature_layer: "pre-pool".into(),
        feature_dim: feature_dim(frozen),
        epochs: cfg.epochs,
        batch_size: cfg.batch_size,
        lr: cfg.lr,
        momentum: cfg.momentum,
        weight_decay: 0.0,
        lr_milestones: cfg.lr_milestones.clone(),
        lr_gamma: cfg.lr_gamma,
        train_size: ds.len(Split::Train),
        test_size: ds.len(Split::Test),
        seed: frozen.seed,
    }
}

/// The report to add to: the existing `probe.json` when its protocol and checkpoints match, else an
/// empty one.
fn existing(run: &FrozenRun, protocol: &ProbeProtocol, force: bool) -> Result<ProbeReport> {
    let final_tag = final_checkpoint(run);
    let fresh = ProbeReport {
        schema: PROBE_SCHEMA.into(),
        dataset: run.cfg.dataset.clone(),
        view_mode: run.cfg.view_mode.to_string(),
        checkpoint: final_tag.clone(),
        protocol: protocol.clone(),
        tasks: BTreeMap::new(),
        epochs: BTreeMap::new(),
    };
    let path = run.run.probe();
    if !path.exists() {
        return Ok(fresh);
    }
    let old: ProbeReport = match read_report(&path) {
        Ok(old) => old,
        Err(e) if force => {
            tracing::warn!("replacing unreadable {}: {e:#}", path.display());
            return Ok(fresh);
        }
        Err(e) => return Err(e.context("pass --force to recompute it")),
    };
    let same_earlier =
        run.earlier_epoch.and_then(|e| old.epochs.get(&e)).is_none_or(|p| p.checkpoint == run.checkpoint);
    let same = old.protocol == *protocol && old.checkpoint == final_tag && same_earlier;
    match (same, force) {
        // Read as version 2 whatever it was written as: it is rewritten as such.
        (true, _) => Ok(ProbeReport { schema: PROBE_SCHEMA.into(), ..old }),
        (false, true) => Ok(fresh),
        (false, false) => bail!(
            "{} was made with another protocol or checkpoint ({} features, {} epochs, checkpoint {}); \
             pass --force to recompute every task",
            path.display(),
            old.protocol.features,
            old.protocol.epochs,
            old.checkpoint
        ),
    }
}

/// Trains one probe per pending task on shared features and tests them on clean inputs.
fn train_and_test(
    frozen: &FrozenEncoder,
    pending: &[(usize, String)],
    cfg: &ProbeConfig,
    mode: FeatureMode,
    dim: i64,
    progress: bool,
) -> Result<BTreeMap<String, ProbeTask>> {
    let ds = frozen.dataset;
    let seeds = Seeds::new(frozen.seed);
    let tasks = ds.tasks();
    let heads: Vec<(usize, i64)> = pending.iter().map(|(i, _)| (*i, tasks.0[*i].num_classes as i64)).collect();
    let n = ds.len(Split::Train);
    let mut probes = LinearProbes::new(dim, &heads, cfg, ds.device(), seeds.derive(Stream::Eval, PROBE_INIT));
    let bar = crate::progress::bar(fit_steps(n, cfg), &format!("probe ({mode})"), progress);
    let losses = match mode {
        FeatureMode::Cached => {
            bar.set_message("caching clean features");
            let (feats, labels) = clean_features(frozen, Split::Train, TRAIN_BATCH)?;
            fit(&mut probes, n, cfg, seeds.derive(Stream::Eval, PROBE_INIT + 1), &bar, |_, _, idx| {
                let idx = idx.to_device(feats.device());
                Ok((feats.index_select(0, &idx), labels.iter().map(|l| l.index_select(0, &idx)).collect()))
            })?
        }
        FeatureMode::Views => {
            fit(&mut probes, n, cfg, seeds.derive(Stream::Eval, PROBE_INIT + 1), &bar, |_, step, idx| {
                // The label belongs to the image fed: the view is made from this batch's own inputs.
                let batch = ds.batch(Split::Train, idx, seeds.derive(Stream::Eval, TRAIN_BATCH + step));
                let v =
                    tch::no_grad(|| frozen.views.view(&batch.inputs, seeds.derive(Stream::Views, VIEW_BASE + step)));
                Ok((frozen.features(&v), batch.labels))
            })?
        }
    };
    bar.finish_and_clear();
    let (test_x, test_y) = clean_features(frozen, Split::Test, TEST_BATCH)?;
    let acc = evaluate(&probes, [Ok((test_x, test_y))])?;
    let last = losses.last().cloned().unwrap_or_default();
    Ok(pending
        .iter()
        .zip(acc)
        .enumerate()
        .map(|(head, ((i, name), top1))| {
            let t = &tasks.0[*i];
            let final_train_loss = last.get(head).copied().unwrap_or(f64::NAN);
            tracing::info!(task = %name, top1 = format!("{top1:.4}"), "probe");
            (name.clone(), ProbeTask { num_classes: t.num_classes, chance: t.chance(), top1, final_train_loss })
        })
        .collect())
}

/// Length of the encoder's flattened pre-pool features, from one clean test input.
pub fn feature_dim(frozen: &FrozenEncoder) -> i64 {
    let ds = frozen.dataset;
    let x = ds.batch(Split::Test, &Tensor::from_slice(&[0i64]), 0).inputs;
    frozen.features(&clean(ds.modality(), ds.device()).view(&x, 0)).size()[1]
}

/// Clean features and labels of a whole split, in index order, computed in chunks; batches are
/// seeded from the [`Stream::Eval`] stream at `counter + chunk`.
pub fn clean_features(frozen: &FrozenEncoder, split: Split, counter: u64) -> Result<(Tensor, Vec<Tensor>)> {
    let ds = frozen.dataset;
    let views = clean(ds.modality(), ds.device());
    let n = ds.len(split) as i64;
    let seeds = Seeds::new(frozen.seed);
    let (mut feats, mut labels): (Vec<Tensor>, Vec<Vec<Tensor>>) = (Vec::new(), Vec::new());
    for (c, start) in (0..n).step_by(CHUNK as usize).enumerate() {
        let idx = Tensor::arange_start(start, (start + CHUNK).min(n), (Kind::Int64, tch::Device::Cpu));
        let batch = ds.batch(split, &idx, seeds.derive(Stream::Eval, counter + c as u64));
        feats.push(frozen.features(&views.view(&batch.inputs, 0)));
        labels.push(batch.labels);
    }
    let tasks = ds.tasks().len();
    let labels = (0..tasks).map(|t| Tensor::cat(&labels.iter().map(|l| &l[t]).collect::<Vec<_>>(), 0)).collect();
    Ok((Tensor::cat(&feats, 0), labels))
}
