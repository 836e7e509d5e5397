//! The files evaluation writes: `probe.json` and `destruction.json` (schemas in the crate docs).
//!
//! Both are read strictly: an unknown field or a missing one is an error naming the file and the
//! field's path, so a file from another version of featdrop is never half-understood.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;
use std::path::Path;

/// `schema` value of `probe.json` (version 2 added `epochs`).
pub const PROBE_SCHEMA: &str = "featdrop.probe/2";
/// The earlier `probe.json` schema (no `epochs`), still read: it is a version 2 file whose `epochs`
/// is empty.
pub const PROBE_SCHEMA_V1: &str = "featdrop.probe/1";
/// `schema` value of `destruction.json`.
pub const DESTRUCTION_SCHEMA: &str = "featdrop.destruction/1";

/// `probe.json`: linear-probe top-1 accuracy per task and the protocol that produced it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeReport {
    /// [`PROBE_SCHEMA`] (written), or [`PROBE_SCHEMA_V1`] in a file of an earlier version; any other
    /// value is an error when read.
    #[serde(deserialize_with = "probe_schema")]
    pub schema: String,
    /// Dataset of the run (`photos+digits`, …).
    pub dataset: String,
    /// View mode of the run (`expert`, `dropout:1`, …); for [`crate::probe_encoder`], the name of
    /// the view family it was given.
    pub view_mode: String,
    /// Tag of the run's final (latest) checkpoint, whose results `tasks` holds (`epoch-0200`);
    /// `encoder-weights:<file>` when the encoder came from a weights file, or
    /// [`crate::probe::IN_MEMORY`] for [`crate::probe_encoder`].
    pub checkpoint: String,
    /// How the probes were trained; every task in `tasks` and in `epochs` used this protocol.
    pub protocol: ProbeProtocol,
    /// Results of the final checkpoint by task name (empty until it is probed).
    pub tasks: BTreeMap<String, ProbeTask>,
    /// Results of earlier checkpoints (kept with `train.keep_epochs`, probed with
    /// `featdrop-eval probe --epoch N`) by pretraining epoch; the final checkpoint is never here.
    #[serde(default)]
    pub epochs: BTreeMap<usize, EpochProbe>,
}

/// The probe results of one earlier checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochProbe {
    /// Tag of the checkpoint probed (`epoch-0010`).
    pub checkpoint: String,
    /// Results by task name.
    pub tasks: BTreeMap<String, ProbeTask>,
}

fn probe_schema<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s == PROBE_SCHEMA || s == PROBE_SCHEMA_V1 {
        return Ok(s);
    }
    Err(serde::de::Error::custom(format!(
        "`{s}` is not a probe.json schema this version reads ({PROBE_SCHEMA}, {PROBE_SCHEMA_V1})"
    )))
}

/// The probe protocol actually used (§5.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeProtocol {
    /// `views` (training inputs through the run's view family; published) or `cached` (clean
    /// features computed once; the fast option).
    pub features: String,
    /// The view family training inputs went through (`identity` for `cached`).
    pub view_family: String,
    /// Which features: always `pre-pool` (the last stage's output before pooling, flattened).
    pub feature_layer: String,
    /// Length of the flattened feature vector.
    pub feature_dim: i64,
    /// Training epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Initial SGD learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD weight decay (0 in the published protocol).
    pub weight_decay: f64,
    /// Epochs (0-based) from which the learning rate is multiplied by `lr_gamma` once more.
    pub lr_milestones: Vec<usize>,
    /// Learning-rate factor per milestone.
    pub lr_gamma: f64,
    /// Training examples.
    pub train_size: usize,
    /// Test examples (clean inputs).
    pub test_size: usize,
    /// Run seed the probe's initialisation, shuffling and views derive from.
    pub seed: u64,
}

/// One task's probe result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeTask {
    /// Number of classes.
    pub num_classes: usize,
    /// Accuracy of guessing (1 / classes).
    pub chance: f64,
    /// Top-1 accuracy on the clean test split.
    pub top1: f64,
    /// Mean training cross-entropy of the last epoch.
    pub final_train_loss: f64,
}

/// `destruction.json`: per task, a supervised classifier's accuracy on clean inputs and on each
/// view family, and the label-destruction rates (§5.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestructionReport {
    /// Always [`DESTRUCTION_SCHEMA`].
    pub schema: String,
    /// Dataset of the run.
    pub dataset: String,
    /// View mode of the run.
    pub view_mode: String,
    /// Checkpoint the viewmaker views came from (`null` when the run has no viewmaker).
    pub checkpoint: Option<String>,
    /// The classifier and its training budget.
    pub classifier: crate::destruction::DestructionConfig,
    /// Re-draw probability of the `dropout:<p>` family (the run's p, or 1).
    pub dropout_p: f64,
    /// Test examples measured.
    pub test_size: usize,
    /// Run seed the classifier and the views derive from.
    pub seed: u64,
    /// Results by task name.
    pub tasks: BTreeMap<String, DestructionTask>,
}

/// One task's label-destruction measurements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestructionTask {
    /// Number of classes.
    pub num_classes: usize,
    /// Accuracy of guessing (1 / classes).
    pub chance: f64,
    /// The classifier's accuracy on clean test inputs.
    pub clean_accuracy: f64,
    /// By view family (`identity`, `expert`, `viewmaker`, `dropout:1`, …).
    pub families: BTreeMap<String, FamilyDestruction>,
}

/// How one view family treats one task's labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyDestruction {
    /// The classifier's accuracy on views of the test inputs, scored against the labels the
    /// pair carries.
    pub accuracy: f64,
    /// `1 − accuracy / clean_accuracy`: the fraction of recoverable labels the views destroy
    /// (negative when views happen to be easier than clean inputs).
    pub destruction_rate: f64,
}

/// Reads a report strictly; errors name the file and the offending field's path.
pub fn read_report<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_report(&text, &path.display().to_string())
}

/// Parses a report from `text`; `file` names the source in errors.
pub fn parse_report<T: DeserializeOwned>(text: &str, file: &str) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        anyhow::anyhow!("{file}: field `{path}`: {}", e.into_inner())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destruction::DestructionConfig;
    use serde_json::{Value, json};

    fn probe() -> ProbeReport {
        let protocol = ProbeProtocol {
            features: "cached".into(),
            view_family: "identity".into(),
            feature_layer: "pre-pool".into(),
            feature_dim: 8192,
            epochs: 100,
            batch_size: 128,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 0.0,
            lr_milestones: vec![60, 80],
            lr_gamma: 0.1,
            train_size: 50_000,
            test_size: 10_000,
            seed: 0,
        };
        let task = ProbeTask { num_classes: 10, chance: 0.1, top1: 0.8, final_train_loss: 0.5 };
        ProbeReport {
            schema: PROBE_SCHEMA.into(),
            dataset: "photos+digits".into(),
            view_mode: "expert".into(),
            checkpoint: "epoch-0200".into(),
            protocol,
            tasks: [("photo".to_string(), task.clone())].into(),
            epochs: [(10, EpochProbe { checkpoint: "epoch-0010".into(), tasks: [("photo".to_string(), task)].into() })]
                .into(),
        }
    }

    fn destruction() -> DestructionReport {
        let fam = FamilyDestruction { accuracy: 0.5, destruction_rate: 0.375 };
        let task = DestructionTask {
            num_classes: 10,
            chance: 0.1,
            clean_accuracy: 0.8,
            families: [("expert".to_string(), fam)].into(),
        };
        DestructionReport {
            schema: DESTRUCTION_SCHEMA.into(),
            dataset: "photos+digits".into(),
            view_mode: "viewmaker".into(),
            checkpoint: Some("epoch-0200".into()),
            classifier: DestructionConfig::default(),
            dropout_p: 1.0,
            test_size: 10_000,
            seed: 0,
            tasks: [("digit".to_string(), task)].into(),
        }
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    #[test]
    fn probe_schema_field_names_and_types() {
        let v = serde_json::to_value(probe()).unwrap();
        assert_eq!(keys(&v), ["checkpoint", "dataset", "epochs", "protocol", "schema", "tasks", "view_mode"]);
        assert_eq!(v["schema"], "featdrop.probe/2");
        assert_eq!(keys(&v["epochs"]), ["10"], "epochs are keyed by the pretraining epoch");
        assert_eq!(keys(&v["epochs"]["10"]), ["checkpoint", "tasks"]);
        let p = &v["protocol"];
        assert_eq!(
            keys(p),
            [
                "batch_size",
                "epochs",
                "feature_dim",
                "feature_layer",
                "features",
                "lr",
                "lr_gamma",
                "lr_milestones",
                "momentum",
                "seed",
                "test_size",
                "train_size",
                "view_family",
                "weight_decay"
            ]
        );
        assert!(p["lr_milestones"].is_array() && p["feature_dim"].is_i64() && p["lr"].is_f64());
        assert_eq!(keys(&v["tasks"]["photo"]), ["chance", "final_train_loss", "num_classes", "top1"]);
        assert!(v["tasks"]["photo"]["top1"].is_f64() && v["tasks"]["photo"]["num_classes"].is_u64());
        let back: ProbeReport = parse_report(&v.to_string(), "probe.json").unwrap();
        assert_eq!(back, probe());
    }

    #[test]
    fn probe_files_of_version_1_are_still_read_and_other_schemas_are_not() {
        let mut v = serde_json::to_value(probe()).unwrap();
        v.as_object_mut().unwrap().remove("epochs");
        v["schema"] = "featdrop.probe/1".into();
        let old: ProbeReport = parse_report(&v.to_string(), "probe.json").unwrap();
        assert!(old.epochs.is_empty() && old.tasks == probe().tasks);
        v["schema"] = "featdrop.probe/3".into();
        let e = parse_report::<ProbeReport>(&v.to_string(), "probe.json").unwrap_err().to_string();
        assert!(e.starts_with("probe.json: field `schema`") && e.contains("`featdrop.probe/3` is not"), "{e}");
        let mut v = serde_json::to_value(probe()).unwrap();
        v["epochs"]["10"]["top1"] = json!(0.5);
        let e = parse_report::<ProbeReport>(&v.to_string(), "probe.json").unwrap_err().to_string();
        assert!(e.contains("field `epochs.10.top1`") && e.contains("unknown field"), "{e}");
    }

    #[test]
    fn destruction_schema_field_names_and_types() {
        let v = serde_json::to_value(destruction()).unwrap();
        assert_eq!(
            keys(&v),
            ["checkpoint", "classifier", "dataset", "dropout_p", "schema", "seed", "tasks", "test_size", "view_mode"]
        );
        assert_eq!(keys(&v["classifier"]), ["batch_size", "epochs", "lr", "width"]);
        let t = &v["tasks"]["digit"];
        assert_eq!(keys(t), ["chance", "clean_accuracy", "families", "num_classes"]);
        assert_eq!(keys(&t["families"]["expert"]), ["accuracy", "destruction_rate"]);
        assert!(t["families"]["expert"]["destruction_rate"].is_f64() && v["checkpoint"].is_string());
        let back: DestructionReport = parse_report(&v.to_string(), "destruction.json").unwrap();
        assert_eq!(back, destruction());
        let mut none = destruction();
        none.checkpoint = None;
        let back: DestructionReport = parse_report(&serde_json::to_string(&none).unwrap(), "d").unwrap();
        assert_eq!(back.checkpoint, None);
    }

    #[test]
    fn missing_or_unknown_fields_are_named() {
        let mut v = serde_json::to_value(probe()).unwrap();
        v["tasks"]["photo"].as_object_mut().unwrap().remove("top1");
        let e = parse_report::<ProbeReport>(&v.to_string(), "probe.json").unwrap_err().to_string();
        assert!(e.starts_with("probe.json: field `tasks.photo`"), "{e}");
        assert!(e.contains("missing field `top1`"), "{e}");

        let mut v = serde_json::to_value(destruction()).unwrap();
        v["classifier"]["momentum"] = json!(0.9);
        let e = parse_report::<DestructionReport>(&v.to_string(), "destruction.json").unwrap_err().to_string();
        assert!(e.starts_with("destruction.json: field `classifier.momentum`"), "{e}");
        assert!(e.contains("unknown field `momentum`"), "{e}");

        let mut v = serde_json::to_value(destruction()).unwrap();
        v["tasks"]["digit"]["clean_accuracy"] = json!("high");
        let e = parse_report::<DestructionReport>(&v.to_string(), "destruction.json").unwrap_err().to_string();
        assert!(e.contains("tasks.digit.clean_accuracy") && e.contains("invalid type"), "{e}");
    }
}
