//! The run config: every hyperparameter of a pretraining run and its evaluation (docs/PROTOCOL.md §4–§5),
//! with the published values as defaults. Unknown fields and out-of-range values are errors that
//! name the file, the field, the value and what is accepted.

use crate::catalogue;
use crate::device::DeviceChoice;
use crate::view_mode::{BaseViews, ViewMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::path::Path;

/// A config that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The config file.
        file: String,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// Not valid JSON, an unknown field, or a value of the wrong type.
    #[error("{file}: field `{field}`: {message}")]
    Parse {
        /// The config file (or `<string>`).
        file: String,
        /// Dotted path of the offending field (`.` for the top level).
        field: String,
        /// What serde found wrong.
        message: String,
    },
    /// A value outside its accepted range.
    #[error("{file}: field `{field}` = {value} is out of range; expected {expected}")]
    Range {
        /// The config file (or `<string>`).
        file: String,
        /// Dotted path of the field.
        field: String,
        /// The value found.
        value: String,
        /// The accepted range.
        expected: String,
    },
}

/// Defines a closed set of config values once: its serde and `--flag` spellings (kebab-case),
/// `Display`, and the list of accepted values shown in errors and `--help`.
macro_rules! closed_set {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident $(alias $alias:literal)?),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name {
            $($(#[$vmeta])* $(#[serde(alias = $alias)] #[value(alias = $alias)])? $variant),+
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let v = clap::ValueEnum::to_possible_value(self).expect("no variant is skipped");
                f.write_str(v.get_name())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <Self as clap::ValueEnum>::from_str(s, false).map_err(|_| {
                    let all: Vec<String> =
                        <Self as clap::ValueEnum>::value_variants().iter().map(ToString::to_string).collect();
                    format!("unknown {} `{s}`; accepted: {}", stringify!($name), all.join(", "))
                })
            }
        }
    };
}

closed_set! {
    /// Which contrastive objective (§4).
    Objective {
        /// The published SimCLR variant: the anchor's self-similarity stays in the denominator,
        /// one direction (`featdrop_contrastive::loss::simclr_published`).
        SimclrPublished alias "simclr",
        /// The common symmetric NT-Xent: self excluded, both directions.
        NtXent,
        /// Implicit feature modification over the published variant (Robinson et al., NeurIPS
        /// 2021; `featdrop_contrastive::loss::ifm`), with `train.ifm_epsilon` and `train.ifm_alpha`.
        Ifm,
    }
}

closed_set! {
    /// How encoder and viewmaker updates are ordered per batch (§4).
    UpdateOrder {
        /// Encoder step, then a fresh forward pass for the viewmaker step (published).
        Alternating,
        /// One pass with a gradient reversal on the view (a speed option).
        Simultaneous,
    }
}

closed_set! {
    /// Where a dataset's photos, glyphs, speech and noise come from (§2).
    Source {
        /// Built in: procedural photos, stroke-font glyphs, synthetic speech and noise.
        Synthetic,
        /// Files in a data folder: CIFAR-10, MNIST, a TTF font, AudioMNIST and noise recordings.
        Real,
    }
}

closed_set! {
    /// The encoder architecture (§4).
    Arch {
        /// ResNet-18 (the published encoder).
        Resnet18,
        /// One BasicBlock per stage: the same shape, far cheaper (CPU scales).
        Small,
    }
}

closed_set! {
    /// Where the linear probes' training features come from (§5.1).
    ProbeFeatures {
        /// Every batch through the run's view family and the frozen encoder (published).
        Views,
        /// Clean training features computed once (fast; not the published protocol).
        Cached,
    }
}

closed_set! {
    /// How the second view of an audio pair gets its background noise (§2.2).
    PairNoise {
        /// Both views from the same mixed example; the noise is re-drawn only by `+dropout:<p>`.
        Shared,
        /// Noise class and segment drawn anew for the second view of every pair (published).
        Independent,
    }
}

closed_set! {
    /// Which published expert views `speech+noise` gets (§3.1).
    #[derive(Default)]
    AudioExpert {
        /// Crop to a fraction of the clip and add white noise, on the waveform, before the log-mel.
        #[default]
        Waveform,
        /// A frequency and a time mask on the mel power, then Gaussian noise on the log-mel.
        Spectral,
    }
}

closed_set! {
    /// What the audio `viewmaker` view mode perturbs (§3.2).
    #[derive(Default)]
    ViewmakerInput {
        /// The log-mel of clips that went through the waveform expert operations first
        /// (published).
        #[default]
        WaveformViews,
        /// The log-mel of the clean mixed clip.
        Clean,
    }
}

/// `train.channels_last`: the memory layout of the encoder's and the viewmaker's weights and
/// inputs. Both layouts
/// compute the same function (the results differ by float rounding only); which is faster depends
/// on the device and the model's size, so the default is `auto`, made concrete per run by
/// [`ChannelsLast::resolve`] and recorded as a boolean in the run's `config.json` (what ran).
/// Written as `"auto"`, `true` or `false` (the booleans of older configs read as they are).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChannelsLast {
    /// The layout measured faster on the run's device for its encoder ([`ChannelsLast::resolve`]).
    #[default]
    Auto,
    /// Channels-last (`true`) or the default contiguous NCHW layout (`false`), as asked.
    Fixed(bool),
}

impl ChannelsLast {
    /// The layout to run: a fixed choice as it is; `auto` by the measurements below, for a run on
    /// CUDA (`cuda`) or the CPU with an `arch` encoder. One arm per device and encoder, so that a
    /// measurement that disagrees changes one line.
    ///
    /// CPU: channels-last for both encoders. Measured on this project's 2-core x86-64 machine
    /// (oneDNN, fp32, 2 threads) under heavy load from other jobs (load average 9–12), so relative
    /// only: `cargo bench -p featdrop-contrastive --bench layout`, both layouts built once and timed
    /// in alternation in one process, seconds per step NCHW → channels-last (ratio):
    /// - `mechanism` `colour` cell (small encoder, width 16, batch 64, 32×32), whole training
    ///   step: 9.44 → 6.03 s (1.30×; 4 steps × 5 repetitions, debug build; a second run, 4 × 3:
    ///   1.27×, the median of the paired ratios);
    /// - `mechanism` `viewmaker` cell (the same encoder, thin viewmaker, simultaneous update),
    ///   whole step: 1.05× with only the encoder channels-last, 1.31× with the viewmaker too
    ///   (9.56 → 8.88 s median times, 4 × 3);
    /// - paper expert step (ResNet-18, batch 256): 60.3 → 43.4 s (1.42×; 1 step × 2); issue 25
    ///   measured 1.39× at the same size with `bench reference` (release build);
    /// - the viewmaker alone (two views forward and backward): thin (×0.25, batch 64) 9.61 →
    ///   5.52 s (1.36×), published (×1, batch 256) 23.3 → 22.4 s (1.03×), so it follows the same
    ///   flag.
    ///
    /// Re-measured at 128f44c on the same machine with nothing else running and the C heap kept
    /// (`featdrop_core::heap`, which took the page faults out of both layouts' times; `cargo
    /// xtask bench layout`, 2 steps × 3): channels-last still wins every case — `mechanism`
    /// `colour` 1.16×, `viewmaker` 1.21×, paper expert 1.10×, viewmaker alone thin 1.19× and
    /// published 1.09×.
    ///
    /// CUDA: channels-last, unmeasured here (no GPU yet) — cuDNN's tensor-core convolutions (bf16,
    /// and fp32 as TF32) work in NHWC, so NCHW inputs pay a transpose per convolution; it is
    /// PyTorch's own advice for convolutional networks (its "channels last" tutorial). `cargo
    /// xtask bench gpu` measures both layouts on the first GPU it runs on.
    ///
    /// Audio encoders (one input channel, the 7×7 stem) are not measured apart; they follow `arch`.
    pub fn resolve(self, cuda: bool, arch: Arch) -> bool {
        match (self, cuda, arch) {
            (Self::Fixed(on), ..) => on,
            (Self::Auto, true, _) => true,
            (Self::Auto, false, Arch::Small) => true,
            (Self::Auto, false, Arch::Resnet18) => true,
        }
    }
}

impl Serialize for ChannelsLast {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::Fixed(on) => s.serialize_bool(*on),
        }
    }
}

impl<'de> Deserialize<'de> for ChannelsLast {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ChannelsLast;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false or \"auto\"")
            }
            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<ChannelsLast, E> {
                Ok(ChannelsLast::Fixed(on))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ChannelsLast, E> {
                match v {
                    "auto" => Ok(ChannelsLast::Auto),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Choices of view family a view mode leaves open (they only concern audio datasets).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ViewsConfig {
    /// The audio expert variant of `expert` and `expert+viewmaker` (published: both exist;
    /// default `waveform`).
    pub audio_expert: AudioExpert,
    /// The audio `viewmaker` input (published: `waveform-views`).
    pub viewmaker_input: ViewmakerInput,
}

/// Data of a run: where it comes from and how much of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Built-in synthetic data, or real files from `data_dir`.
    pub source: Source,
    /// Folder of real data (`data/raw` of the checkout by default).
    pub data_dir: Option<String>,
    /// TTF font for the letters of a real source (else a system sans is looked for).
    pub font: Option<String>,
    /// Training examples used (0 = the whole split).
    pub train_size: usize,
    /// Test examples used (0 = the whole split).
    pub test_size: usize,
    /// Held-out examples for the per-epoch kNN monitor.
    pub monitor_size: usize,
    /// Audio: how the second view of a pair gets its background noise (published: independent).
    pub pair_noise: PairNoise,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            source: Source::Synthetic,
            data_dir: None,
            font: None,
            train_size: 0,
            test_size: 0,
            monitor_size: 1000,
            pair_noise: PairNoise::Independent,
        }
    }
}

/// The encoder (§4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderConfig {
    /// ResNet-18 (the paper) or the small family (CPU scales).
    pub arch: Arch,
    /// Channels of the first stage (64 for ResNet-18).
    pub width: usize,
    /// Embedding size.
    pub embed_dim: usize,
    /// Add an MLP projection head (not in the published setup).
    pub projection_head: bool,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self { arch: Arch::Resnet18, width: 64, embed_dim: 128, projection_head: false }
    }
}

/// Pretraining (§4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Epochs of pretraining.
    pub epochs: usize,
    /// Batch size (the last partial batch is dropped).
    pub batch_size: usize,
    /// Encoder SGD learning rate (constant).
    pub lr: f64,
    /// Encoder SGD momentum.
    pub momentum: f64,
    /// Encoder SGD weight decay.
    pub weight_decay: f64,
    /// Softmax temperature t.
    pub temperature: f64,
    /// Contrastive objective.
    pub objective: Objective,
    /// IFM's budget ε: how far the positive's and each negative's cosine similarity are moved
    /// (`objective = "ifm"` only; 0.1, the authors' default).
    pub ifm_epsilon: f64,
    /// IFM's weight α of the perturbed loss: `(L + α·L_adv) / (1 + α)` (`objective = "ifm"`
    /// only; 1.0, the authors' default).
    pub ifm_alpha: f64,
    /// Encoder / viewmaker update order.
    pub update: UpdateOrder,
    /// Save a checkpoint every this many epochs (and at the end); only the newest is kept.
    pub checkpoint_every: usize,
    /// Epochs whose checkpoints are also saved and kept, never pruned, so that they can be probed
    /// (`featdrop-eval probe --epoch N`; the published tables probe some intermediate epochs, listed
    /// per dataset in the catalogue). Each within 1..=`epochs`.
    pub keep_epochs: Vec<usize>,
    /// k of the kNN monitor.
    pub knn_k: usize,
    /// Save a view grid every this many epochs (0 = never).
    pub view_grid_every: usize,
    /// bf16 autocast of the encoder's forward pass (a CUDA speed option; works on CPU too).
    pub bf16: bool,
    /// Channels-last memory format for the encoder, the viewmaker and their inputs (a speed
    /// option; the results differ only by float rounding): `"auto"` (default: the layout measured
    /// faster on the run's device, [`ChannelsLast::resolve`]), `true` or `false`. The run's
    /// `config.json` records the layout that ran.
    pub channels_last: ChannelsLast,
    /// Reproducible training on CUDA, at some speed cost: cuDNN deterministic and not autotuning,
    /// deterministic algorithms (an op without a deterministic implementation is an error), TF32
    /// off, and `CUBLAS_WORKSPACE_CONFIG=:4096:8` (docs/PROTOCOL.md §4). CPU results are the same
    /// either way. Off by default: libtorch's defaults (cuDNN may pick any algorithm and use TF32).
    pub deterministic: bool,
    /// The per-epoch label-destruction monitor of runs with a trainable view family (viewmaker
    /// modes): `destruction` per task in each epoch's `metrics.jsonl` record.
    pub destruction: DestructionMonitorConfig,
    /// TensorBoard event files in the run directory, written from the same records as
    /// `metrics.jsonl` (`tensorboard --logdir runs/<experiment>`; docs/PROTOCOL.md §8). Changes
    /// no result: a run directory may switch it (off removes the trainer's event files).
    pub tensorboard: bool,
}

/// The trainer's label-destruction monitor (§4, monitoring): once per run, a small CNN per task
/// is trained on clean data (the §5.2 classifier, with this budget); after each epoch it scores
/// the viewmaker's views of one fixed test batch, and `1 − accuracy on views / clean accuracy`
/// is logged. The default budget is the CPU `small` scale's destruction budget, so the two share
/// a classifier when the run has a classifier cache.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DestructionMonitorConfig {
    /// Test examples in the fixed batch, the first of the test split (0 turns the monitor off): 256.
    pub batch: usize,
    /// Classifier training epochs over the clean training split: 4.
    pub epochs: usize,
    /// Classifier batch size: 64.
    pub batch_size: usize,
    /// Classifier Adam learning rate: 0.003.
    pub lr: f64,
    /// Channels of the classifier's first stage: 16.
    pub width: usize,
}

impl Default for DestructionMonitorConfig {
    fn default() -> Self {
        Self { batch: 256, epochs: 4, batch_size: 64, lr: 0.003, width: 16 }
    }
}

/// IFM's published defaults (Robinson et al., NeurIPS 2021: ε = 0.1, α = 1).
const IFM_EPSILON: f64 = 0.1;
const IFM_ALPHA: f64 = 1.0;

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 200,
            batch_size: 256,
            lr: 0.03,
            momentum: 0.9,
            weight_decay: 1e-4,
            temperature: 0.07,
            objective: Objective::SimclrPublished,
            ifm_epsilon: IFM_EPSILON,
            ifm_alpha: IFM_ALPHA,
            update: UpdateOrder::Alternating,
            checkpoint_every: 10,
            keep_epochs: Vec::new(),
            knn_k: 200,
            view_grid_every: 10,
            bf16: false,
            channels_last: ChannelsLast::Auto,
            deterministic: false,
            destruction: DestructionMonitorConfig::default(),
            tensorboard: true,
        }
    }
}

/// The viewmaker network (§3.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ViewmakerConfig {
    /// Adam learning rate.
    pub lr: f64,
    /// Distortion budget: mean |δ| per example (`null` = the dataset's published value, from the
    /// catalogue; the resolved value is what `config.json` records).
    pub epsilon: Option<f64>,
    /// Residual blocks (1–5).
    pub num_res_blocks: usize,
    /// Channel multiplier on 32/64/128 (1 = published width).
    pub width_mult: f64,
    /// Clamp views to [0, 1].
    pub clamp: bool,
    /// Weight of the viewmaker's (negated) contrastive loss.
    pub loss_weight: f64,
}

impl Default for ViewmakerConfig {
    fn default() -> Self {
        Self { lr: 1e-3, epsilon: None, num_res_blocks: 3, width_mult: 1.0, clamp: false, loss_weight: 1.0 }
    }
}

/// Linear probes (§5.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Training epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// SGD learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Epochs at which the learning rate is multiplied by `lr_gamma`.
    pub lr_milestones: Vec<usize>,
    /// Learning-rate factor at each milestone.
    pub lr_gamma: f64,
    /// Training features through the run's views (published) or cached clean ones.
    pub features: ProbeFeatures,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 128,
            lr: 0.01,
            momentum: 0.9,
            lr_milestones: vec![60, 80],
            lr_gamma: 0.1,
            features: ProbeFeatures::Views,
        }
    }
}

/// Everything a run needs; written to the run's `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Experiment name (the first level of the run layout).
    pub experiment: String,
    /// Dataset name, e.g. `photos+digits` or `speech+noise`.
    pub dataset: String,
    /// View mode.
    pub view_mode: ViewMode,
    /// Run seed.
    pub seed: u64,
    /// Device choice.
    #[serde(default)]
    pub device: DeviceChoice,
    /// Data sizes.
    #[serde(default)]
    pub data: DataConfig,
    /// Encoder.
    #[serde(default)]
    pub encoder: EncoderConfig,
    /// Pretraining.
    #[serde(default)]
    pub train: TrainConfig,
    /// Choices of view family (audio).
    #[serde(default)]
    pub views: ViewsConfig,
    /// Viewmaker.
    #[serde(default)]
    pub viewmaker: ViewmakerConfig,
    /// Linear probes.
    #[serde(default)]
    pub probe: ProbeConfig,
}

/// Checks one value; the error names the field, the value and the accepted range.
struct Check<'a> {
    file: &'a str,
}

impl Check<'_> {
    fn that<T: std::fmt::Display>(&self, field: &str, value: T, ok: bool, expected: &str) -> Result<(), ConfigError> {
        if ok {
            return Ok(());
        }
        Err(ConfigError::Range {
            file: self.file.into(),
            field: field.into(),
            value: value.to_string(),
            expected: expected.into(),
        })
    }

    fn positive(&self, field: &str, v: f64) -> Result<(), ConfigError> {
        self.that(field, v, v.is_finite() && v > 0.0, "a finite number > 0")
    }

    fn unit(&self, field: &str, v: f64) -> Result<(), ConfigError> {
        self.that(field, v, (0.0..=1.0).contains(&v), "a number in [0, 1]")
    }

    fn at_least(&self, field: &str, v: usize, min: usize) -> Result<(), ConfigError> {
        self.that(field, v, v >= min, &format!("an integer ≥ {min}"))
    }
}

/// What a name that becomes a folder may be.
const NAME: &str = "a name of 1–100 bytes that is one path component (no '/', not '.' or '..')";
/// The widest encoder accepted: 16× the published ResNet-18 width.
const MAX_WIDTH: usize = 1024;
const WIDTH: &str = "an integer in 1..=1024 (64 is ResNet-18)";

/// Whether `name` can be one folder of the run layout.
pub fn is_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 100 && !name.contains(['/', '\\', '\0']) && name != "." && name != ".."
}

/// The sections whose defaults [`RunConfig::from_value`] fills in (the cell's identity —
/// experiment, dataset, view mode, seed — must be given).
const SECTIONS: [&str; 7] = ["device", "data", "encoder", "train", "views", "viewmaker", "probe"];

impl RunConfig {
    /// A config with every default for one grid cell; the defaults that depend on the dataset
    /// (ε, batch sizes, the probe schedule) come from its [`catalogue`] entry when it has one.
    pub fn new(experiment: &str, dataset: &str, view_mode: impl Into<ViewMode>, seed: u64) -> Self {
        let mut cfg = Self {
            experiment: experiment.into(),
            dataset: dataset.into(),
            view_mode: view_mode.into(),
            seed,
            device: DeviceChoice::Auto,
            data: DataConfig::default(),
            encoder: EncoderConfig::default(),
            train: TrainConfig::default(),
            views: ViewsConfig::default(),
            viewmaker: ViewmakerConfig::default(),
            probe: ProbeConfig::default(),
        };
        if let Some(info) = catalogue::find(dataset) {
            cfg.train.batch_size = info.train_batch_size;
            cfg.probe.batch_size = info.probe_batch_size;
            cfg.probe.lr_milestones = info.probe_lr_milestones.to_vec();
        }
        cfg.resolve();
        cfg
    }

    /// Fills what is left to the dataset: `viewmaker.epsilon` from the catalogue (a dataset
    /// outside it keeps `None`, and a viewmaker built for it asks for an explicit value).
    pub fn resolve(&mut self) {
        if self.viewmaker.epsilon.is_none() {
            self.viewmaker.epsilon = catalogue::find(&self.dataset).map(|d| d.epsilon);
        }
    }

    /// The one way a config is read: `value` (JSON: a config file, an experiment cell, flags) is
    /// laid over the defaults of its dataset, parsed, resolved and validated. `origin` names the
    /// source in errors, which give the field's dotted path.
    pub fn from_value(mut value: Value, origin: &str) -> Result<Self, ConfigError> {
        infer_source(&mut value, origin)?;
        let dataset = value.get("dataset").and_then(Value::as_str).unwrap_or_default();
        let defaults = serde_json::to_value(Self::new("", dataset, ViewMode::from(BaseViews::Expert), 0))
            .expect("a config always serialises");
        let mut merged = value;
        if let Value::Object(m) = &mut merged {
            for key in SECTIONS {
                let mut section = defaults[key].clone();
                if let Some(given) = m.get(key) {
                    merge_json(&mut section, given);
                }
                m.insert(key.into(), section);
            }
        }
        let mut cfg: Self = serde_path_to_error::deserialize(merged).map_err(|e| ConfigError::Parse {
            file: origin.into(),
            field: e.path().to_string(),
            message: e.into_inner().to_string(),
        })?;
        cfg.resolve();
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Parses and validates JSON text; `file` names the source in errors.
    pub fn from_json(text: &str, file: &str) -> Result<Self, ConfigError> {
        let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.into(),
            field: ".".into(),
            message: e.to_string(),
        })?;
        Self::from_value(value, file)
    }

    /// Reads, parses and validates a config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { file: file.clone(), source })?;
        Self::from_json(&text, &file)
    }

    /// Checks every range; `file` names the source in errors.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let c = Check { file };
        // Both name folders of the run layout: one path component each, never a way out of it.
        c.that("experiment", format!("\"{}\"", self.experiment), is_name(&self.experiment), NAME)?;
        c.that("dataset", format!("\"{}\"", self.dataset), is_name(&self.dataset), NAME)?;
        c.that("encoder.width", self.encoder.width, (1..=MAX_WIDTH).contains(&self.encoder.width), WIDTH)?;
        c.at_least("data.monitor_size", self.data.monitor_size, 1)?;
        c.at_least("encoder.embed_dim", self.encoder.embed_dim, 1)?;
        let t = &self.train;
        c.at_least("train.epochs", t.epochs, 1)?;
        c.at_least("train.batch_size", t.batch_size, 2)?;
        c.positive("train.lr", t.lr)?;
        c.that("train.momentum", t.momentum, (0.0..1.0).contains(&t.momentum), "a number in [0, 1)")?;
        c.that("train.weight_decay", t.weight_decay, t.weight_decay >= 0.0, "a number ≥ 0")?;
        c.positive("train.temperature", t.temperature)?;
        self.validate_ifm(&c)?;
        c.at_least("train.checkpoint_every", t.checkpoint_every, 1)?;
        if let Some(bad) = t.keep_epochs.iter().find(|e| !(1..=t.epochs).contains(*e)) {
            let within = format!("epochs within 1..=train.epochs ({}); {bad} is not", t.epochs);
            c.that("train.keep_epochs", format!("{:?}", t.keep_epochs), false, &within)?;
        }
        c.at_least("train.knn_k", t.knn_k, 1)?;
        c.at_least("train.destruction.epochs", t.destruction.epochs, 1)?;
        c.at_least("train.destruction.batch_size", t.destruction.batch_size, 1)?;
        c.positive("train.destruction.lr", t.destruction.lr)?;
        c.at_least("train.destruction.width", t.destruction.width, 1)?;
        let v = &self.viewmaker;
        c.positive("viewmaker.lr", v.lr)?;
        if let Some(eps) = v.epsilon {
            c.positive("viewmaker.epsilon", eps)?;
        }
        c.that(
            "viewmaker.num_res_blocks",
            v.num_res_blocks,
            (1..=5).contains(&v.num_res_blocks),
            "an integer in 1..=5",
        )?;
        c.positive("viewmaker.width_mult", v.width_mult)?;
        c.that("viewmaker.loss_weight", v.loss_weight, v.loss_weight >= 0.0, "a number ≥ 0")?;
        let p = &self.probe;
        c.at_least("probe.epochs", p.epochs, 1)?;
        c.at_least("probe.batch_size", p.batch_size, 1)?;
        c.positive("probe.lr", p.lr)?;
        c.that("probe.momentum", p.momentum, (0.0..1.0).contains(&p.momentum), "a number in [0, 1)")?;
        c.unit("probe.lr_gamma", p.lr_gamma)?;
        let audio = catalogue::find(&self.dataset).is_some_and(|d| d.modality == crate::Modality::Audio);
        if let (true, PairNoise::Independent, Some(_)) = (audio, self.data.pair_noise, self.view_mode.dropout) {
            // The second view's noise is re-drawn for every pair already: a dropout probability
            // would claim a control it does not give.
            c.that(
                "view_mode",
                format!("{} with data.pair_noise = independent", self.view_mode),
                false,
                "no +dropout:<p> on audio unless data.pair_noise = shared (independent re-draws every pair's noise)",
            )?;
        }
        // A font only draws letters: on another dataset of the catalogue it would go unused.
        if let (Some(font), Some(info)) = (&self.data.font, catalogue::find(&self.dataset)) {
            let letters = info.overlay_task().is_some_and(|t| t.name == "letter");
            let expected = "no font: only photos+letters draws letters with one";
            c.that("data.font", format!("\"{font}\" on dataset {}", self.dataset), letters, expected)?;
        }
        // `colour` recolours pixels; a spectrogram has no colours to change.
        let colour = self.view_mode.base == BaseViews::Colour;
        let audio_modes = "expert, viewmaker, expert+viewmaker or none on audio (`colour` is an image view family)";
        c.that("view_mode", format!("{} on audio", self.view_mode), !(audio && colour), audio_modes)?;
        Ok(())
    }
}

impl RunConfig {
    /// IFM's ε and α are finite and ≥ 0; with another objective they would go unused, so a value
    /// other than the default is an error there (a `--set train.ifm_epsilon=…` on a SimCLR run
    /// must not look like it did something).
    fn validate_ifm(&self, c: &Check<'_>) -> Result<(), ConfigError> {
        let t = &self.train;
        for (field, v, default) in
            [("train.ifm_epsilon", t.ifm_epsilon, IFM_EPSILON), ("train.ifm_alpha", t.ifm_alpha, IFM_ALPHA)]
        {
            c.that(field, v, v.is_finite() && v >= 0.0, "a finite number ≥ 0")?;
            let unused = t.objective != Objective::Ifm && v != default;
            let expected =
                format!("{default} (the default) unless train.objective = \"ifm\", the only objective that reads it");
            c.that(field, format!("{v} with train.objective = \"{}\"", t.objective), !unused, &expected)?;
        }
        Ok(())
    }
}

/// A data folder means real data: `data.data_dir` given without `data.source` sets the source to
/// `real`; given with `synthetic` the folder would go unused, so that is an error.
fn infer_source(value: &mut Value, origin: &str) -> Result<(), ConfigError> {
    let data = value.get("data");
    if data.and_then(|d| d.get("data_dir")).is_none_or(Value::is_null) {
        return Ok(());
    }
    match data.and_then(|d| d.get("source")) {
        None | Some(Value::Null) => set_path(value, "data.source", Value::from(Source::Real.to_string())),
        Some(s) if s.as_str() == Some(&Source::Synthetic.to_string()) => {
            let expected = "`real` (or no data.source) when data.data_dir names a folder of real data";
            Check { file: origin }.that("data.source", s, false, expected)?
        }
        Some(_) => {}
    }
    Ok(())
}

/// Deep-merges `over` into `base`: objects merge key by key, anything else replaces.
pub fn merge_json(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge_json(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Sets the field at a dotted `path` (`train.lr`) of a JSON object to `value`, making the
/// intermediate objects; the typed parse that follows rejects fields that do not exist.
pub fn set_path(target: &mut Value, path: &str, value: Value) {
    let mut at = target;
    for key in path.split('.') {
        if !at.is_object() {
            *at = Value::Object(Default::default());
        }
        at = at.as_object_mut().expect("made an object above").entry(key.to_string()).or_insert(Value::Null);
    }
    *at = value;
}

/// Parses a `--set` override `key.path=value`: the value is JSON when it parses as JSON (`0.1`,
/// `true`, `[60, 80]`, `null`), a string otherwise (`real`, `cuda:1`).
pub fn parse_override(text: &str) -> Result<(String, Value), String> {
    let (path, raw) =
        text.split_once('=').ok_or_else(|| format!("--set `{text}`: expected key.path=value, e.g. train.lr=0.1"))?;
    let path = path.trim();
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(format!("--set `{text}`: `{path}` is not a field path like train.lr"));
    }
    let value = serde_json::from_str(raw.trim()).unwrap_or_else(|_| Value::String(raw.trim().to_string()));
    Ok((path.to_string(), value))
}

/// The fields in which `new` differs from `old`, as `field old → new` (dotted paths, in field
/// order), for an error that says what changed; the device is left out — a run may move between
/// machines — and so is `train.tensorboard`, which changes no result; `train.channels_last =
/// "auto"` on either side matches the other side's layout (a run's `config.json` records the
/// layout `auto` resolved to). Empty: the same run.
pub fn changed_fields(old: &RunConfig, new: &RunConfig) -> Vec<String> {
    fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let sub = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    walk(&sub, x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), out);
                }
            }
            _ if a != b => out.push(format!("{path} {a} → {b}")),
            _ => {}
        }
    }
    let as_json = |c: &RunConfig, other: &RunConfig| {
        let mut c = RunConfig { device: DeviceChoice::default(), ..c.clone() };
        c.train.tensorboard = true;
        if c.train.channels_last == ChannelsLast::Auto {
            c.train.channels_last = other.train.channels_last;
        }
        serde_json::to_value(c)
    };
    let mut out = Vec::new();
    if let (Ok(a), Ok(b)) = (as_json(old, new), as_json(new, old)) {
        walk("", &a, &b, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({"experiment": "t", "dataset": "photos+digits", "view_mode": "expert", "seed": 0})
    }

    fn err(v: serde_json::Value) -> String {
        RunConfig::from_json(&v.to_string(), "exp.json").unwrap_err().to_string()
    }

    #[test]
    fn minimal_config_gets_published_defaults_and_round_trips() {
        let cfg = RunConfig::from_json(&base().to_string(), "exp.json").unwrap();
        assert_eq!(cfg.train.lr, 0.03);
        assert_eq!(cfg.train.temperature, 0.07);
        assert_eq!(cfg.probe.lr_milestones, [60, 80]);
        let back = RunConfig::from_json(&serde_json::to_string(&cfg).unwrap(), "x").unwrap();
        assert_eq!(back, cfg);
    }

    /// Issue 30 item 8: `train.deterministic` is off unless asked for, and only a boolean.
    #[test]
    fn deterministic_defaults_to_off_and_takes_only_a_boolean() {
        assert!(!RunConfig::from_json(&base().to_string(), "exp.json").unwrap().train.deterministic);
        let mut v = base();
        v["train"] = serde_json::json!({"deterministic": true});
        assert!(RunConfig::from_json(&v.to_string(), "exp.json").unwrap().train.deterministic);
        v["train"] = serde_json::json!({"deterministic": "yes"});
        let e = err(v);
        assert!(e.contains("exp.json") && e.contains("train.deterministic"), "{e}");
    }

    /// Issue 28 item 1: `train.objective = "ifm"` with ε and α (defaults 0.1 and 1), each checked,
    /// and neither accepted off its default by another objective, which would ignore it.
    #[test]
    fn ifm_takes_its_budget_and_weight_and_nothing_else_reads_them() {
        let mut v = base();
        v["train"] = serde_json::json!({"objective": "ifm"});
        let cfg = RunConfig::from_json(&v.to_string(), "exp.json").unwrap();
        assert_eq!((cfg.train.objective, cfg.train.ifm_epsilon, cfg.train.ifm_alpha), (Objective::Ifm, 0.1, 1.0));
        v["train"] = serde_json::json!({"objective": "ifm", "ifm_epsilon": 0.3, "ifm_alpha": 0.0});
        let cfg = RunConfig::from_json(&v.to_string(), "exp.json").unwrap();
        assert_eq!((cfg.train.ifm_epsilon, cfg.train.ifm_alpha), (0.3, 0.0));
        for (field, bad) in [("ifm_epsilon", -0.1), ("ifm_alpha", -1.0)] {
            v["train"] = serde_json::json!({"objective": "ifm", field: bad});
            let e = err(v.clone());
            assert!(e.contains(&format!("`train.{field}` = {bad}")) && e.contains("a finite number ≥ 0"), "{e}");
        }
        v["train"] = serde_json::json!({"ifm_epsilon": 0.2});
        let e = err(v.clone());
        assert!(
            e.contains("`train.ifm_epsilon` = 0.2 with train.objective = \"simclr-published\"")
                && e.contains("unless train.objective = \"ifm\""),
            "{e}"
        );
        v["train"] = serde_json::json!({"objective": "nt-xent", "ifm_alpha": 1.0});
        RunConfig::from_json(&v.to_string(), "exp.json").expect("the default is no claim");
        let e = "ifm2".parse::<Objective>().unwrap_err();
        assert_eq!(e, "unknown Objective `ifm2`; accepted: simclr-published, nt-xent, ifm");
    }

    /// Issue 27 item 21's leftover: `data.font` on a dataset without letters was accepted and
    /// went unused.
    #[test]
    fn a_font_is_only_for_a_dataset_with_letters() {
        let mut v = base();
        v["data"] = serde_json::json!({"font": "/fonts/sans.ttf"});
        let e = err(v.clone());
        assert!(e.contains("exp.json") && e.contains("data.font") && e.contains("photos+digits"), "{e}");
        v["dataset"] = "photos+letters".into();
        RunConfig::from_json(&v.to_string(), "exp.json").unwrap();
    }

    /// Issue 19.3: a data folder with the default source ran on synthetic data, silently.
    #[test]
    fn a_data_folder_means_the_real_source() {
        let mut v = base();
        v["data"] = serde_json::json!({"data_dir": "/my/cifar"});
        let cfg = RunConfig::from_json(&v.to_string(), "exp.json").unwrap();
        assert_eq!((cfg.data.source, cfg.data.data_dir.as_deref()), (Source::Real, Some("/my/cifar")));
        let back = RunConfig::from_json(&serde_json::to_string(&cfg).unwrap(), "x").unwrap();
        assert_eq!(back, cfg, "a written config reads back the same");
        v["data"]["source"] = "synthetic".into();
        let e = err(v.clone());
        assert!(e.starts_with("exp.json: field `data.source` = \"synthetic\"") && e.contains("data.data_dir"), "{e}");
        v["data"]["data_dir"] = Value::Null;
        assert_eq!(RunConfig::from_json(&v.to_string(), "x").unwrap().data.source, Source::Synthetic);
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let mut v = base();
        v["train"] = serde_json::json!({"lr": 0.1, "learning_rate": 0.1});
        let e = err(v);
        assert!(e.starts_with("exp.json: field `train.learning_rate`"), "{e}");
        assert!(e.contains("unknown field `learning_rate`"), "{e}");
    }

    #[test]
    fn out_of_range_names_field_value_and_range() {
        let mut v = base();
        v["train"] = serde_json::json!({"lr": -0.5});
        assert_eq!(err(v), "exp.json: field `train.lr` = -0.5 is out of range; expected a finite number > 0");
        let mut v = base();
        v["viewmaker"] = serde_json::json!({"num_res_blocks": 9});
        assert!(err(v).contains("`viewmaker.num_res_blocks` = 9 is out of range; expected an integer in 1..=5"));
    }

    #[test]
    fn bad_view_mode_and_device_are_explained() {
        let mut v = base();
        v["view_mode"] = "dropout:2".into();
        let e = err(v);
        assert!(e.contains("field `view_mode`") && e.contains("outside [0, 1]"), "{e}");
        let mut v = base();
        v["device"] = "tpu".into();
        let e = err(v);
        assert!(e.contains("field `device`") && e.contains("accepted: auto, cpu, cuda, cuda:N"), "{e}");
    }

    #[test]
    fn missing_file_is_named() {
        let e = RunConfig::from_file(Path::new("/no/such/cfg.json")).unwrap_err().to_string();
        assert!(e.starts_with("/no/such/cfg.json:"), "{e}");
    }

    #[test]
    fn dataset_defaults_come_from_the_catalogue_and_are_recorded() {
        let cfg = RunConfig::from_json(&base().to_string(), "exp.json").unwrap();
        assert_eq!(cfg.viewmaker.epsilon, Some(0.05));
        let mut v = base();
        v["dataset"] = "speech+noise".into();
        v["probe"] = serde_json::json!({"epochs": 3});
        let audio = RunConfig::from_json(&v.to_string(), "exp.json").unwrap();
        assert_eq!(audio.viewmaker.epsilon, Some(0.125));
        assert_eq!((audio.train.batch_size, audio.probe.batch_size, audio.probe.epochs), (128, 256, 3));
        assert!(audio.probe.lr_milestones.is_empty());
        let written = serde_json::to_value(&audio).unwrap();
        assert_eq!(written["viewmaker"]["epsilon"], 0.125, "config.json records the resolved value");
        v["viewmaker"] = serde_json::json!({"epsilon": 0.3});
        v["train"] = serde_json::json!({"batch_size": 32});
        let given = RunConfig::from_json(&v.to_string(), "exp.json").unwrap();
        assert_eq!((given.viewmaker.epsilon, given.train.batch_size), (Some(0.3), 32), "given values win");
        let custom = RunConfig::new("x", "my-own-data", ViewMode::from(BaseViews::Viewmaker), 0);
        assert_eq!(custom.viewmaker.epsilon, None, "no silent default outside the catalogue");
    }

    #[test]
    fn closed_sets_name_their_accepted_values() {
        let mut v = base();
        v["data"] = serde_json::json!({"source": "reel"});
        let e = err(v);
        assert!(e.contains("field `data.source`") && e.contains("`synthetic`") && e.contains("`real`"), "{e}");
        assert_eq!("small".parse::<Arch>().unwrap(), Arch::Small);
        let e = "vgg".parse::<Arch>().unwrap_err();
        assert_eq!(e, "unknown Arch `vgg`; accepted: resnet18, small");
        assert_eq!(Objective::SimclrPublished.to_string(), "simclr-published");
        let mut v = base();
        v["train"] = serde_json::json!({"objective": "simclr"});
        let cfg = RunConfig::from_json(&v.to_string(), "old.json").unwrap();
        assert_eq!(cfg.train.objective, Objective::SimclrPublished, "the old spelling is still read");
    }

    #[test]
    fn names_stay_inside_the_run_layout_and_sizes_are_bounded() {
        for (field, bad) in [("experiment", ".."), ("experiment", "a/b"), ("dataset", "../../x"), ("experiment", "")] {
            let mut v = base();
            v[field] = bad.into();
            let e = err(v);
            assert!(e.contains(&format!("field `{field}`")) && e.contains("one path component"), "{e}");
        }
        let mut v = base();
        v["experiment"] = "x".repeat(300).into();
        assert!(err(v).contains("1–100 bytes"), "a name too long for a file system is named");
        let mut v = base();
        v["encoder"] = serde_json::json!({"width": 100000});
        assert!(err(v).contains("`encoder.width` = 100000 is out of range"));
        let mut v = base();
        v["data"] = serde_json::json!({"monitor_size": 0});
        assert!(err(v).contains("`data.monitor_size` = 0 is out of range"));
    }

    #[test]
    fn colour_is_an_image_family() {
        let mut v = base();
        v["dataset"] = "speech+noise".into();
        v["view_mode"] = "colour+dropout:0.5".into();
        v["data"] = serde_json::json!({"pair_noise": "shared"});
        let e = RunConfig::from_value(v.clone(), "exp.json").unwrap_err().to_string();
        assert!(e.contains("field `view_mode`") && e.contains("image view family"), "{e}");
        v["dataset"] = "photos+digits".into();
        let cfg = RunConfig::from_value(v, "exp.json").unwrap();
        assert_eq!(cfg.view_mode.to_string(), "colour+dropout:0.5");
    }

    #[test]
    fn audio_dropout_needs_shared_pair_noise() {
        let mut v = base();
        v["dataset"] = "speech+noise".into();
        v["view_mode"] = "dropout:0.5".into();
        v["data"] = serde_json::json!({"pair_noise": "independent"});
        let e = err(v.clone());
        assert!(e.contains("field `view_mode`") && e.contains("data.pair_noise = shared"), "{e}");
        v["data"]["pair_noise"] = "shared".into();
        assert!(RunConfig::from_json(&v.to_string(), "exp.json").is_ok());
        v["dataset"] = "photos+digits".into();
        v["data"]["pair_noise"] = "independent".into();
        assert!(RunConfig::from_json(&v.to_string(), "exp.json").is_ok(), "images have no pair noise");
    }

    #[test]
    fn kept_epochs_lie_within_the_run() {
        let mut v = base();
        v["train"] = serde_json::json!({"epochs": 100, "keep_epochs": [10, 75]});
        let cfg = RunConfig::from_json(&v.to_string(), "exp.json").unwrap();
        assert_eq!(cfg.train.keep_epochs, [10, 75]);
        assert!(RunConfig::from_json(&base().to_string(), "x").unwrap().train.keep_epochs.is_empty());
        for bad in [0, 101] {
            v["train"]["keep_epochs"] = serde_json::json!([10, bad]);
            let e = err(v.clone());
            assert!(e.contains("`train.keep_epochs` = [10, ") && e.contains("within 1..=train.epochs (100)"), "{e}");
            assert!(e.contains(&format!("{bad} is not")), "{e}");
        }
    }

    #[test]
    fn overrides_set_any_field_and_are_checked() {
        let (path, value) = parse_override("train.lr=0.1").unwrap();
        let mut v = base();
        set_path(&mut v, &path, value);
        for o in ["data.source=real", "probe.lr_milestones=[5, 7]", "viewmaker.clamp=true"] {
            let (path, value) = parse_override(o).unwrap();
            set_path(&mut v, &path, value);
        }
        let cfg = RunConfig::from_value(v.clone(), "--set").unwrap();
        assert_eq!((cfg.train.lr, cfg.data.source, cfg.viewmaker.clamp), (0.1, Source::Real, true));
        assert_eq!(cfg.probe.lr_milestones, [5, 7]);
        let (path, value) = parse_override("train.learnrate=1").unwrap();
        set_path(&mut v, &path, value);
        let e = RunConfig::from_value(v, "--set").unwrap_err().to_string();
        assert!(e.contains("field `train.learnrate`") && e.contains("unknown field"), "{e}");
        assert!(parse_override("train.lr").unwrap_err().contains("expected key.path=value"));
        assert!(parse_override("train..lr=1").unwrap_err().contains("not a field path"));
    }

    /// Issue 25 item 4: `train.channels_last` is `auto` by default, still reads the booleans of
    /// older configs, writes what it holds, and names the field on anything else.
    #[test]
    fn channels_last_is_auto_by_default_and_reads_booleans() {
        let cfg = RunConfig::from_json(&base().to_string(), "exp.json").unwrap();
        assert_eq!(cfg.train.channels_last, ChannelsLast::Auto);
        assert_eq!(serde_json::to_value(&cfg).unwrap()["train"]["channels_last"], "auto");
        for (given, read) in
            [(Value::Bool(true), ChannelsLast::Fixed(true)), (false.into(), ChannelsLast::Fixed(false))]
        {
            let mut v = base();
            v["train"] = serde_json::json!({ "channels_last": given });
            let cfg = RunConfig::from_json(&v.to_string(), "old.json").unwrap();
            assert_eq!(cfg.train.channels_last, read);
            assert_eq!(serde_json::to_value(&cfg).unwrap()["train"]["channels_last"], given, "written as read");
        }
        let mut v = base();
        v["train"] = serde_json::json!({"channels_last": "yes"});
        let e = err(v);
        assert!(e.contains("exp.json") && e.contains("train.channels_last") && e.contains("\"auto\""), "{e}");
        assert!(!ChannelsLast::Fixed(false).resolve(true, Arch::Resnet18), "a fixed choice wins");
        assert!(ChannelsLast::Auto.resolve(true, Arch::Small), "CUDA: channels-last");
    }

    /// A run whose `config.json` records the layout `auto` resolved to is the same run under
    /// `auto`; an explicit other layout is a change.
    #[test]
    fn auto_layout_matches_the_recorded_one() {
        let auto = RunConfig::from_json(&base().to_string(), "a.json").unwrap();
        let mut ran = auto.clone();
        ran.train.channels_last = ChannelsLast::Fixed(true);
        assert!(changed_fields(&ran, &auto).is_empty() && changed_fields(&auto, &ran).is_empty());
        let mut other = auto.clone();
        other.train.channels_last = ChannelsLast::Fixed(false);
        assert_eq!(changed_fields(&ran, &other), ["train.channels_last true → false"]);
    }

    #[test]
    fn changed_fields_name_each_difference_but_not_the_device() {
        let old = RunConfig::from_json(&base().to_string(), "a.json").unwrap();
        let mut new = old.clone();
        assert!(changed_fields(&old, &new).is_empty());
        (new.train.lr, new.train.epochs, new.device) = (0.5, 7, "cuda:1".parse().unwrap());
        let got = changed_fields(&old, &new);
        assert_eq!(got, [format!("train.epochs {} → 7", old.train.epochs), format!("train.lr {} → 0.5", old.train.lr)]);
    }

    /// Issue 29 item 3: TensorBoard files are on by default, a run may switch them off (no result
    /// changes, so its directory is still the same run), and a value that is not a bool is named.
    #[test]
    fn train_tensorboard_is_on_by_default_and_switching_it_is_no_change() {
        let old = RunConfig::from_json(&base().to_string(), "a.json").unwrap();
        assert!(old.train.tensorboard);
        let mut v = base();
        set_path(&mut v, "train.tensorboard", serde_json::json!(false));
        let off = RunConfig::from_value(v.clone(), "b.json").unwrap();
        assert!(!off.train.tensorboard);
        assert!(changed_fields(&old, &off).is_empty(), "{:?}", changed_fields(&old, &off));
        set_path(&mut v, "train.tensorboard", serde_json::json!("no"));
        let e = RunConfig::from_value(v, "b.json").unwrap_err().to_string();
        assert!(e.contains("b.json") && e.contains("train.tensorboard"), "{e}");
    }
}
