//! The supervised classifier of the label-destruction analysis (docs/PROTOCOL.md §5.2): a small
//! CNN trained on one task's clean, normalised training inputs, and a cache that keeps trained
//! ones on disk. It lives here, not in the evaluation crate, because the trainer scores its
//! viewmaker with it after every epoch (§4, monitoring); `featdrop-eval` re-exports it.

use anyhow::{Context, Result, ensure};
use featdrop_core::init;
use featdrop_core::io::{remove_stale_temps, temp_path_with_ext, write_json_atomic};
use featdrop_core::seed::with_torch_seed;
use featdrop_core::{RunConfig, Seeds, Split, Stream, ViewFamily};
use featdrop_data::{MultiTaskDataset, epoch_indices};
use indicatif::ProgressBar;
use std::path::{Path, PathBuf};
use tch::nn::{self, ModuleT, OptimizerConfig, VarStore};
use tch::{Device, Kind, Tensor};

/// Three conv-BN-ReLU stages (width, 2·width, 4·width; the first two max-pooled), average pooling
/// to 4×4 and a linear layer. The 4×4 map keeps where things are: overlays sit at fixed places, and
/// a global pool made the network learn them many times slower.
pub struct SmallCnn {
    vs: VarStore,
    net: nn::SequentialT,
}

fn stage(p: &nn::Path, cin: i64, cout: i64, pool: bool) -> nn::SequentialT {
    let conv = nn::ConvConfig { padding: 1, bias: false, ..Default::default() };
    let s = nn::seq_t()
        .add(init::conv2d(p / "conv", cin, cout, 3, conv))
        .add(init::batch_norm2d(p / "bn", cout))
        .add_fn(|x| x.relu());
    if pool { s.add_fn(|x| x.max_pool2d_default(2)) } else { s }
}

impl SmallCnn {
    /// A fresh network for `in_channels` inputs and `classes` outputs, initialised from `seed`.
    pub fn new(in_channels: i64, classes: i64, width: i64, device: Device, seed: u64) -> Self {
        let vs = VarStore::new(device);
        let net = with_torch_seed(seed, || {
            let r = vs.root();
            nn::seq_t()
                .add(stage(&(&r / "s1"), in_channels, width, true))
                .add(stage(&(&r / "s2"), width, 2 * width, true))
                .add(stage(&(&r / "s3"), 2 * width, 4 * width, false))
                .add_fn(|x| featdrop_torch_ext::adaptive_avg_pool2d(x, [4, 4]).flatten(1, -1))
                .add(init::linear(&r / "fc", 16 * 4 * width, classes))
        });
        Self { vs, net }
    }

    /// Logits `[N, classes]` of normalised inputs.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.net.forward_t(x, train)
    }

    /// The network's variables.
    pub fn var_store(&self) -> &VarStore {
        &self.vs
    }

    /// Writes the weights (batch-norm statistics included) as safetensors.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        Ok(self.vs.save(path)?)
    }

    /// Replaces the weights with those [`Self::save`] wrote for a network of the same shape.
    pub fn load(&mut self, path: &std::path::Path) -> Result<()> {
        Ok(self.vs.load(path)?)
    }

    /// Top-1 predictions (evaluation mode, no gradient).
    pub fn predict(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| self.forward(x, false).argmax(-1, false))
    }
}

/// The classifier's training budget (the CLI's `--epochs`, `--lr`, `--batch-size`, `--width`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestructionConfig {
    /// Training epochs over the clean training split.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Channels of the first stage.
    pub width: i64,
}

impl Default for DestructionConfig {
    fn default() -> Self {
        Self { epochs: 10, batch_size: 128, lr: 1e-3, width: 32 }
    }
}

impl DestructionConfig {
    /// Checks every value, naming the flag and the accepted range.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.epochs >= 1, "--epochs = {} is out of range; expected an integer ≥ 1", self.epochs);
        ensure!(self.batch_size >= 1, "--batch-size = {} is out of range; expected an integer ≥ 1", self.batch_size);
        ensure!(
            self.lr.is_finite() && self.lr > 0.0,
            "--lr = {} is out of range; expected a finite number > 0",
            self.lr
        );
        ensure!(self.width >= 1, "--width = {} is out of range; expected an integer ≥ 1", self.width);
        Ok(())
    }
}

/// Counter of the evaluation stream the classifiers' initialisation (and batch order) derive from
/// (apart from the probes').
pub const CLS_INIT: u64 = 200;
/// Counter of the evaluation stream the classifiers' training batches derive from.
pub const CLS_BATCH: u64 = 4 << 32;

/// Trains a classifier for task `task` on clean (`clean` family, i.e. normalised) training
/// batches of `dataset`. Seeds derive from `seeds`; the overlay of each training batch is drawn
/// afresh, which only adds clean examples.
pub fn train_classifier(
    dataset: &dyn MultiTaskDataset,
    task: usize,
    clean: &dyn ViewFamily,
    cfg: &DestructionConfig,
    seeds: &Seeds,
    bar: &ProgressBar,
) -> Result<SmallCnn> {
    cfg.validate()?;
    let classes = dataset.tasks().0[task].num_classes as i64;
    let probe = clean.view(&dataset.batch(Split::Train, &Tensor::from_slice(&[0i64]), 0).inputs, 0);
    let net = SmallCnn::new(
        probe.size()[1],
        classes,
        cfg.width,
        dataset.device(),
        seeds.derive(Stream::Eval, CLS_INIT + task as u64),
    );
    let mut opt = nn::Adam::default().build(&net.vs, cfg.lr)?;
    let n = dataset.len(Split::Train);
    let bs = cfg.batch_size.min(n);
    let mut step = 0u64;
    for epoch in 0..cfg.epochs {
        let order = seeds.derive(Stream::Eval, CLS_INIT + 1000 + task as u64);
        for idx in epoch_indices(n, bs, epoch as u64, order) {
            let batch = dataset.batch(Split::Train, &idx, seeds.derive(Stream::Eval, CLS_BATCH + step));
            let x = clean.view(&batch.inputs, 0);
            let loss = net.forward(&x, true).cross_entropy_for_logits(&batch.labels[task]);
            opt.backward_step(&loss);
            let l = f64::try_from(&loss).unwrap_or(f64::NAN);
            ensure!(l.is_finite(), "classifier loss became {l} at epoch {}", epoch + 1);
            bar.set_message(format!("epoch {}/{} loss {l:.3}", epoch + 1, cfg.epochs));
            bar.inc(1);
            step += 1;
        }
    }
    Ok(net)
}

/// Steps [`train_classifier`] takes, for progress bars.
pub fn train_steps(n: usize, cfg: &DestructionConfig) -> u64 {
    (cfg.epochs * (n / cfg.batch_size.min(n).max(1))) as u64
}

/// How many of `x` the classifier labels as `labels`, and how many there are.
pub fn accuracy(net: &SmallCnn, x: &Tensor, labels: &Tensor) -> (i64, i64) {
    let hit = net.predict(x).eq_tensor(&labels.to_device(x.device())).sum(Kind::Int64).int64_value(&[]);
    (hit, x.size()[0])
}

/// Trained task classifiers kept on disk and reused. A classifier depends only on the dataset, its
/// data settings, the seed, the task and the classifier budget — not on the run's views — so the
/// cells of one grid that share those (the view modes of a dataset) train it once, and the
/// trainer's destruction monitor and `featdrop-eval destruction` share it when their budgets agree.
///
/// Each task's classifier is `<dir>/<name>.safetensors` with its key in `<name>.json`, the name
/// ending in a hash of the key: classifiers of different budgets (the trainer's monitor and the
/// destruction analysis may differ) are different files, so writers of one never race readers of
/// the other; a stored key that differs in any field is never loaded.
pub struct ClassifierCache {
    dir: PathBuf,
    name: String,
    key: serde_json::Value,
}

impl ClassifierCache {
    /// The cache entry under `dir` of task `task` of a run of `run_cfg` on `device`, for a
    /// classifier trained with `cfg`.
    pub fn new(dir: &Path, run_cfg: &RunConfig, device: Device, task: &str, cfg: &DestructionConfig) -> Self {
        let c = run_cfg;
        let key = serde_json::json!({
            "dataset": c.dataset,
            "data": c.data,
            "seed": c.seed,
            "task": task,
            "classifier": cfg,
            "device": format!("{device:?}"),
        });
        let name = format!("{}.seed-{}.{task}.{:016x}", c.dataset.replace('+', "-"), c.seed, fnv1a(&key.to_string()));
        Self { dir: dir.to_path_buf(), name, key }
    }

    /// The entry's key: what must match for the stored classifier to be reused.
    pub fn key(&self) -> &serde_json::Value {
        &self.key
    }

    /// Where the entry's weights are (or will be) stored.
    pub fn weights(&self) -> PathBuf {
        self.paths().0
    }

    /// The entry's lock file in the cache folder (hidden, never a temp name: cleaning leaves it).
    fn lock_name(&self) -> String {
        format!(".{}.lock", self.name)
    }

    fn paths(&self) -> (PathBuf, PathBuf) {
        (self.dir.join(format!("{}.safetensors", self.name)), self.dir.join(format!("{}.json", self.name)))
    }

    /// Loads the cached weights into `net` when the entry's key matches; whether it did.
    pub fn load_into(&self, net: &mut SmallCnn) -> Result<bool> {
        let (weights, key) = self.paths();
        let stored: Option<serde_json::Value> =
            std::fs::read_to_string(&key).ok().and_then(|t| serde_json::from_str(&t).ok());
        if stored.as_ref() != Some(&self.key) || !weights.exists() {
            return Ok(false);
        }
        net.load(&weights).with_context(|| format!("reading cached classifier {}", weights.display()))?;
        Ok(true)
    }

    /// Stores `net` under this entry (weights first, then the key, each atomically).
    pub fn store(&self, net: &SmallCnn) -> Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let (weights, key) = self.paths();
        // One temp file per process: with several cells at once (a Slurm array), the view modes of
        // a dataset may store the same entry together. (tch picks the format by the extension.)
        let tmp = temp_path_with_ext(&self.dir.join(&self.name), "safetensors");
        net.save(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &weights).with_context(|| format!("writing {}", weights.display()))?;
        write_json_atomic(&key, &self.key)
    }
}

/// How long a temp file in a classifier cache must have been left alone before it counts as an
/// interrupted write's: the cache may be shared by processes on other machines (a Slurm array
/// on a shared file system), whose pids say nothing here, and a write in progress takes seconds.
const CACHE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes the temp files interrupted stores left in the classifier cache `dir` (see
/// [`featdrop_core::io::remove_stale_temps`]); their writers have ended and left them alone for
/// ten minutes.
pub fn remove_stale_cache_temps(dir: &Path) -> Result<()> {
    remove_stale_temps(dir, CACHE_TEMP_AGE, |_| true).map(drop)
}

/// The 64-bit FNV-1a hash of `text`: stable across builds and platforms, unlike std's hasher.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Task `task`'s classifier: from `cache` when it holds one for the same settings, otherwise
/// trained on clean inputs (and stored in `cache`). `bar` shows the training steps.
pub fn cached_or_trained(
    dataset: &dyn MultiTaskDataset,
    task: usize,
    cfg: &DestructionConfig,
    seeds: &Seeds,
    bar: &ProgressBar,
    cache: Option<&ClassifierCache>,
) -> Result<SmallCnn> {
    let t = &dataset.tasks().0[task];
    let clean = crate::views::clean(dataset.modality(), dataset.device());
    let train = || train_classifier(dataset, task, clean.as_ref(), cfg, seeds, bar);
    let Some(cache) = cache else { return train() };
    let load = || -> Result<Option<SmallCnn>> {
        let probe = clean.view(&dataset.batch(Split::Train, &Tensor::from_slice(&[0i64]), 0).inputs, 0);
        let mut net = SmallCnn::new(probe.size()[1], t.num_classes as i64, cfg.width, dataset.device(), 0);
        let hit = cache.load_into(&mut net)?;
        if hit {
            tracing::info!(task = %t.name, "classifier reused from the cache");
        }
        Ok(hit.then_some(net))
    };
    load_or_make(&cache.dir, &cache.lock_name(), load, train, |net| cache.store(net))
}

/// The cache entry's value: loaded when stored, else made and stored while holding the entry's
/// lock file `lock_name` in `dir`. Cells running side by side (`reproduce --jobs`, a Slurm array)
/// often need one classifier together: the first makes it, the others wait for its lock, then
/// load what it stored, instead of each training the same classifier.
fn load_or_make<T>(
    dir: &Path,
    lock_name: &str,
    load: impl Fn() -> Result<Option<T>>,
    make: impl FnOnce() -> Result<T>,
    store: impl FnOnce(&T) -> Result<()>,
) -> Result<T> {
    if let Some(v) = load()? {
        return Ok(v);
    }
    let program = std::env::args().next().unwrap_or_default();
    let program = Path::new(&program).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let _lock = featdrop_core::lock::DirLock::wait_file(dir, lock_name, &program)?;
    // Made by whoever held the lock before.
    if let Some(v) = load()? {
        return Ok(v);
    }
    let v = make()?;
    store(&v)?;
    Ok(v)
}

#[cfg(test)]
mod init_tests {
    use super::*;

    #[test]
    fn the_classifier_starts_as_pytorch_starts_it() {
        let net = SmallCnn::new(3, 10, 8, Device::Cpu, 1);
        let vars = net.var_store().variables();
        let max = |n: &str| vars[n].abs().max().double_value(&[]);
        let bound = |fan_in: f64| 1.0 / fan_in.sqrt();
        assert!(max("s1.conv.weight") <= bound(27.0) && max("s1.conv.weight") > 0.8 * bound(27.0));
        assert!(max("fc.weight") <= bound(16.0 * 32.0) && max("fc.bias") > 0.0);
        // Batch norm γ = 1 (tch would draw it from U(0, 1)), β = 0.
        assert_eq!((vars["s2.bn.weight"].min().double_value(&[]), max("s2.bn.bias")), (1.0, 0.0));
    }
}

#[cfg(test)]
mod cache_lock_tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    /// Issue 25 item 1: two cells needing one classifier at once used to both train it; now the
    /// second waits for the first's lock and loads what it stored.
    #[test]
    fn two_users_of_one_entry_make_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let made = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(2));
        let stored = dir.path().join("entry.json");
        let users: Vec<_> = (0..2)
            .map(|_| {
                let (dir, made, start, stored) =
                    (dir.path().to_path_buf(), made.clone(), start.clone(), stored.clone());
                std::thread::spawn(move || {
                    let load = || Ok(std::fs::read_to_string(&stored).ok());
                    start.wait();
                    let make = || {
                        made.fetch_add(1, Ordering::SeqCst);
                        // Long enough for the other user to find nothing stored and queue.
                        std::thread::sleep(std::time::Duration::from_millis(300));
                        Ok("weights".to_string())
                    };
                    // Atomic, with a temp file of this thread's own (the two users share a pid).
                    let store = |v: &String| {
                        let tmp = stored.with_extension(format!("{:?}", std::thread::current().id()));
                        std::fs::write(&tmp, v)?;
                        Ok(std::fs::rename(&tmp, &stored)?)
                    };
                    load_or_make(&dir, ".entry.lock", load, make, store).unwrap()
                })
            })
            .collect();
        for u in users {
            assert_eq!(u.join().unwrap(), "weights");
        }
        assert_eq!(made.load(Ordering::SeqCst), 1, "the classifier was trained twice");
    }
}
