//! The crates as libraries: each extension point used from outside the crates, through their
//! public API only — a user-defined dataset with several label sets (pretrained, probed, results
//! read back), a user-defined view family (a closure), and a user-defined encoder.

use featdrop_augment::{ExpertImage, ImageRecipe, Normalize};
use featdrop_contrastive::{Encoder, EncoderSpec, ResNet, Stem, StopAfter, TrainSummary, Trainer};
use featdrop_core::seed::with_torch_seed;
use featdrop_core::{BaseViews, RunConfig, RunDir, ViewFamily};
use featdrop_eval::report::{PROBE_SCHEMA, parse_report};
use featdrop_eval::{FrozenEncoder, ProbeReport, probe_encoder};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tch::{Device, Tensor, nn, nn::VarStore};

/// The user-defined dataset of `examples/custom_dataset.rs` (in-memory tensors; tasks `colour`,
/// 3 classes, carried by the hue, and `pattern`, 4 stripe orientations), used as a user would.
#[path = "../examples/custom_dataset.rs"]
#[allow(dead_code)]
mod custom_dataset;
use custom_dataset::ColourPatterns;

/// libtorch's random generator is global to the process: these tests draw seeded weights and
/// views, so they run one at a time.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// A CPU-sized run config over the custom dataset (probe: cached clean features, 15 epochs).
fn config(epochs: usize) -> RunConfig {
    let mut cfg = RunConfig::new("library", "colour+pattern", BaseViews::Expert, 0);
    (cfg.train.epochs, cfg.train.batch_size, cfg.train.knn_k, cfg.train.view_grid_every) = (epochs, 64, 10, 0);
    (cfg.probe.epochs, cfg.probe.batch_size, cfg.probe.lr_milestones) = (15, 64, vec![10]);
    cfg.probe.features = featdrop_core::config::ProbeFeatures::Cached;
    cfg
}

/// Pretrains `encoder` (its variables in `vs`) on a fresh [`ColourPatterns`] with `views`, then
/// probes every task in memory.
fn pretrain_and_probe(
    encoder: Box<dyn Encoder>,
    vs: VarStore,
    views: Box<dyn ViewFamily>,
    epochs: usize,
) -> (TrainSummary, ProbeReport) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(epochs);
    let probe_cfg = cfg.probe.clone();
    let data = Box::new(ColourPatterns::new(256, 128, 3));
    let mut trainer = Trainer::with_parts(cfg, RunDir::at(dir.path()), data, vs, encoder, views).unwrap();
    let summary = trainer.run(StopAfter::default()).unwrap();
    assert!(dir.path().join("pretrain.done.json").exists(), "the run directory records the finished run");
    let report = probe_encoder(&FrozenEncoder::from_trainer(&trainer), &probe_cfg).unwrap();
    let top1: Vec<String> = report.tasks.iter().map(|(t, r)| format!("{t} {:.3}", r.top1)).collect();
    eprintln!(
        "loss {:?} -> {:.3}; probe top-1: {}",
        summary.first_epoch_loss,
        summary.last_epoch_loss,
        top1.join(", ")
    );
    (summary, report)
}

/// A user's dataset with two label sets, pretrained with expert views and probed on both tasks;
/// the report reads back through the `probe.json` schema. The hue is linearly decodable from any
/// convolutional features, so the `colour` probe must be far above chance.
#[test]
fn custom_dataset_pretrains_and_probes_every_task() {
    let _serial = serial();
    let vs = VarStore::new(Device::Cpu);
    let encoder = with_torch_seed(1, || ResNet::new(&vs.root(), EncoderSpec::small(3, Stem::SmallImage, 8)));
    let views = Box::new(ExpertImage::new(ImageRecipe::default()).unwrap());
    let (summary, report) = pretrain_and_probe(Box::new(encoder), vs, views, 2);

    assert_eq!(summary.knn.keys().collect::<Vec<_>>(), ["colour", "pattern"]);
    assert_eq!((report.schema.as_str(), report.dataset.as_str()), (PROBE_SCHEMA, "colour+pattern"));
    assert_eq!((report.view_mode.as_str(), report.checkpoint.as_str()), ("expert", "in-memory"));
    let p = &report.protocol;
    assert_eq!((p.feature_dim, p.train_size, p.test_size, p.epochs), (64 * 4 * 4, 256, 128, 15));
    assert_eq!(report.tasks.keys().collect::<Vec<_>>(), ["colour", "pattern"]);
    let (colour, pattern) = (&report.tasks["colour"], &report.tasks["pattern"]);
    assert_eq!((colour.num_classes, pattern.num_classes), (3, 4));
    assert!((colour.chance - 1.0 / 3.0).abs() < 1e-12 && (pattern.chance - 0.25).abs() < 1e-12);
    assert!(colour.top1 > 0.9, "colour probe {} (chance 0.33)", colour.top1);
    // Stripes need the encoder's spatial features: a clear margin over chance, not just above it.
    assert!(pattern.top1 > pattern.chance + 0.1, "pattern probe {} (chance 0.25)", pattern.top1);
    // The report is the probe.json record: it round-trips through the strict reader (JSON keeps
    // accuracies, k / n, exactly; a loss may lose its last bit).
    let back: ProbeReport = parse_report(&serde_json::to_string(&report).unwrap(), "probe.json").unwrap();
    assert_eq!((&back.protocol, back.tasks.len()), (&report.protocol, 2));
    for (name, t) in &back.tasks {
        assert_eq!(t.top1, report.tasks[name].top1);
        assert!((t.final_train_loss - report.tasks[name].final_train_loss).abs() < 1e-12);
    }
}

/// A closure is a view family the trainer uses as it is: every view of every step comes from it.
#[test]
fn custom_view_closure_drives_training() {
    let _serial = serial();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let views = move |x: &Tensor, seed: u64| {
        counter.fetch_add(1, Ordering::Relaxed);
        let noisy = with_torch_seed(seed, || (x + x.randn_like() * 0.1).clamp(0.0, 1.0));
        Normalize::default().apply(&noisy)
    };
    let vs = VarStore::new(Device::Cpu);
    let encoder = with_torch_seed(1, || ResNet::new(&vs.root(), EncoderSpec::small(3, Stem::SmallImage, 8)));
    let (summary, report) = pretrain_and_probe(Box::new(encoder), vs, Box::new(views), 2);

    // 256 / 64 = 4 steps per epoch, two views per step; the probe (cached mode) uses clean inputs.
    assert_eq!(summary.steps, 8);
    assert_eq!(calls.load(Ordering::Relaxed), 2 * 8, "the trainer made its views elsewhere");
    let first = summary.first_epoch_loss.unwrap();
    assert!(
        summary.last_epoch_loss.is_finite() && summary.last_epoch_loss < first,
        "loss {first} -> {}",
        summary.last_epoch_loss
    );
    assert_eq!(report.view_mode, "custom");
    assert!(report.tasks["colour"].top1 > 0.9, "{:?}", report.tasks);
}

/// The smallest user encoder: one stride-2 convolution (the probes' pre-pool features) and a linear
/// embedding of its pooled output.
struct TinyEncoder {
    conv: nn::Conv2D,
    fc: nn::Linear,
}

impl TinyEncoder {
    fn new(vs: &nn::Path) -> Self {
        let conv = nn::ConvConfig { stride: 2, padding: 1, ..Default::default() };
        Self { conv: nn::conv2d(vs / "conv", 3, 16, 3, conv), fc: nn::linear(vs / "fc", 16, 32, Default::default()) }
    }
}

impl Encoder for TinyEncoder {
    fn embed(&self, x: &Tensor, _train: bool) -> Tensor {
        self.features(x).adaptive_avg_pool2d([1, 1]).flatten(1, -1).apply(&self.fc)
    }

    fn features(&self, x: &Tensor) -> Tensor {
        x.apply(&self.conv).relu()
    }
}

/// A user-defined encoder is trained by the trainer (its weights move) and probed on its own
/// feature map.
#[test]
fn custom_encoder_is_trained_and_probed() {
    let _serial = serial();
    let vs = VarStore::new(Device::Cpu);
    let encoder = with_torch_seed(1, || TinyEncoder::new(&vs.root()));
    let weights = vs.variables()["conv.weight"].shallow_clone();
    let before = weights.detach().copy();
    let views = Box::new(ExpertImage::new(ImageRecipe::default()).unwrap());
    let (summary, report) = pretrain_and_probe(Box::new(encoder), vs, views, 1);

    assert!(summary.last_epoch_loss.is_finite());
    assert!(!weights.equal(&before), "the trainer did not update the user's encoder");
    assert_eq!(report.protocol.feature_dim, 16 * 16 * 16, "the encoder's own pre-pool map, flattened");
    assert!(report.tasks["colour"].top1 > 0.9, "{:?}", report.tasks);
}
