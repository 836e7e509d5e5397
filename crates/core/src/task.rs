//! Downstream tasks: every example carries one label per task (docs/PROTOCOL.md §2).

use serde::{Deserialize, Serialize};

/// One downstream classification task, e.g. `photo` (10 classes) or `digit` (10 classes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Name used in configs, metrics and reports (`photo`, `shape`, `digit`, `letter`, `noise`).
    pub name: String,
    /// Number of classes; labels are `0..num_classes`.
    pub num_classes: usize,
}

impl Task {
    /// A task with the given name and class count.
    pub fn new(name: impl Into<String>, num_classes: usize) -> Self {
        Self { name: name.into(), num_classes }
    }

    /// Accuracy of guessing uniformly at random: the floor a probe must beat.
    pub fn chance(&self) -> f64 {
        1.0 / self.num_classes as f64
    }
}

/// The ordered tasks of a dataset; a batch's label tensors follow this order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskSet(pub Vec<Task>);

impl TaskSet {
    /// A task set from `(name, classes)` pairs.
    pub fn from_pairs(pairs: &[(&str, usize)]) -> Self {
        Self(pairs.iter().map(|&(n, c)| Task::new(n, c)).collect())
    }

    /// Position of the task called `name`, if any.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|t| t.name == name)
    }

    /// The task called `name`, or an error listing the tasks there are.
    pub fn get(&self, name: &str) -> anyhow::Result<&Task> {
        self.0
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| anyhow::anyhow!("unknown task `{name}`; this dataset has: {}", self.names().join(", ")))
    }

    /// Task names in order.
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|t| t.name.as_str()).collect()
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the tasks in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Task> {
        self.0.iter()
    }
}

/// What kind of input a dataset yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// 3×32×32 colour images in [0, 1] before normalisation.
    Image,
    /// 1×64×64 normalised log-mel spectrograms.
    Audio,
}

/// Which part of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Pretraining and probe-training data; overlays re-drawn at random on every read.
    Train,
    /// Evaluation data; fixed for a given seed.
    Test,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_set_lookup_and_errors() {
        let ts = TaskSet::from_pairs(&[("photo", 10), ("digit", 10)]);
        assert_eq!(ts.index_of("digit"), Some(1));
        let err = ts.get("letter").unwrap_err().to_string();
        assert!(err.contains("`letter`") && err.contains("photo, digit"), "{err}");
        assert!((ts.get("photo").unwrap().chance() - 0.1).abs() < 1e-12);
    }

    #[test]
    fn serde_round_trip() {
        let ts = TaskSet::from_pairs(&[("photo", 10), ("shape", 3)]);
        let s = serde_json::to_string(&ts).unwrap();
        assert_eq!(s, r#"[{"name":"photo","num_classes":10},{"name":"shape","num_classes":3}]"#);
        assert_eq!(serde_json::from_str::<TaskSet>(&s).unwrap(), ts);
        assert_eq!(serde_json::to_string(&Split::Test).unwrap(), "\"test\"");
    }
}
