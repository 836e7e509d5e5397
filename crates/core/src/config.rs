//! The run config: every hyperparameter of a pretraining run and its evaluation (DESIGN.md §4–§5),
//! with the published values as defaults. Unknown fields and out-of-range values are errors that
//! name the file, the field, the value and what is accepted.

use crate::device::DeviceChoice;
use crate::view_mode::ViewMode;
use serde::{Deserialize, Serialize};
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

/// Which contrastive objective (§4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// The published variant: self-similarity in the denominator, one direction.
    Simclr,
    /// Symmetric NT-Xent: self excluded, both directions.
    NtXent,
}

/// How encoder and viewmaker updates are ordered per batch (§4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    /// Encoder step, then a fresh forward pass for the viewmaker step (published).
    Alternating,
    /// One pass with a gradient reversal on the view (a speed option).
    Simultaneous,
}

/// Data sizes of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `synthetic` (built in) or `real` (loaded from `data_dir`).
    pub source: String,
    /// Folder of real data (`data/raw` by default).
    pub data_dir: Option<String>,
    /// Training examples used (0 = the whole split).
    pub train_size: usize,
    /// Test examples used (0 = the whole split).
    pub test_size: usize,
    /// Held-out examples for the per-epoch kNN monitor.
    pub monitor_size: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self { source: "synthetic".into(), data_dir: None, train_size: 0, test_size: 0, monitor_size: 1000 }
    }
}

/// The encoder (§4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderConfig {
    /// `resnet18` (the paper) or `small` (CPU scales).
    pub arch: String,
    /// Channels of the first stage (64 for ResNet-18).
    pub width: usize,
    /// Embedding size.
    pub embed_dim: usize,
    /// Add an MLP projection head (not in the published setup).
    pub projection_head: bool,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self { arch: "resnet18".into(), width: 64, embed_dim: 128, projection_head: false }
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
    /// Encoder / viewmaker update order.
    pub update: UpdateOrder,
    /// Save a checkpoint every this many epochs (and at the end).
    pub checkpoint_every: usize,
    /// k of the kNN monitor.
    pub knn_k: usize,
    /// Save a view grid every this many epochs (0 = never).
    pub view_grid_every: usize,
    /// bf16 autocast of the encoder's forward pass (a CUDA speed option; works on CPU too).
    pub bf16: bool,
    /// Channels-last memory format for the encoder and its inputs (on by default: oneDNN's CPU
    /// convolutions and cuDNN's run faster on it; the results differ only by float rounding).
    pub channels_last: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 200,
            batch_size: 256,
            lr: 0.03,
            momentum: 0.9,
            weight_decay: 1e-4,
            temperature: 0.07,
            objective: Objective::Simclr,
            update: UpdateOrder::Alternating,
            checkpoint_every: 10,
            knn_k: 200,
            view_grid_every: 10,
            bf16: false,
            channels_last: true,
        }
    }
}

/// The viewmaker network (§3.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ViewmakerConfig {
    /// Adam learning rate.
    pub lr: f64,
    /// Distortion budget: mean |δ| per example (`null` = the dataset's published value).
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
    /// `views` (published: inputs through the run's views) or `cached` (clean features once).
    pub features: String,
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
            features: "views".into(),
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

    fn one_of(&self, field: &str, v: &str, accepted: &[&str]) -> Result<(), ConfigError> {
        self.that(field, format!("\"{v}\""), accepted.contains(&v), &format!("one of {}", accepted.join(", ")))
    }
}

impl RunConfig {
    /// A config with every default for one grid cell.
    pub fn new(experiment: &str, dataset: &str, view_mode: ViewMode, seed: u64) -> Self {
        Self {
            experiment: experiment.into(),
            dataset: dataset.into(),
            view_mode,
            seed,
            device: DeviceChoice::Auto,
            data: DataConfig::default(),
            encoder: EncoderConfig::default(),
            train: TrainConfig::default(),
            viewmaker: ViewmakerConfig::default(),
            probe: ProbeConfig::default(),
        }
    }

    /// Parses and validates JSON; `file` names the source in errors.
    pub fn from_json(text: &str, file: &str) -> Result<Self, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let cfg: Self = serde_path_to_error::deserialize(de).map_err(|e| ConfigError::Parse {
            file: file.into(),
            field: e.path().to_string(),
            message: e.into_inner().to_string(),
        })?;
        cfg.validate(file)?;
        Ok(cfg)
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
        c.that("experiment", &self.experiment, !self.experiment.is_empty(), "a non-empty name")?;
        c.that("dataset", &self.dataset, !self.dataset.is_empty(), "a dataset name")?;
        c.one_of("data.source", &self.data.source, &["synthetic", "real"])?;
        c.one_of("encoder.arch", &self.encoder.arch, &["resnet18", "small"])?;
        c.at_least("encoder.width", self.encoder.width, 1)?;
        c.at_least("encoder.embed_dim", self.encoder.embed_dim, 1)?;
        let t = &self.train;
        c.at_least("train.epochs", t.epochs, 1)?;
        c.at_least("train.batch_size", t.batch_size, 2)?;
        c.positive("train.lr", t.lr)?;
        c.that("train.momentum", t.momentum, (0.0..1.0).contains(&t.momentum), "a number in [0, 1)")?;
        c.that("train.weight_decay", t.weight_decay, t.weight_decay >= 0.0, "a number ≥ 0")?;
        c.positive("train.temperature", t.temperature)?;
        c.at_least("train.checkpoint_every", t.checkpoint_every, 1)?;
        c.at_least("train.knn_k", t.knn_k, 1)?;
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
        c.one_of("probe.features", &p.features, &["views", "cached"])?;
        Ok(())
    }
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
}
