//! The dataset catalogue: every built-in dataset's facts in one place (docs/PROTOCOL.md §2) —
//! modality, tasks and their roles, input shape, and the defaults that depend on the dataset
//! (the viewmaker's budget ε, batch sizes, the probe's schedule). Every crate asks here; adding a
//! built-in dataset is one [`DatasetInfo`] entry (plus its builder in `featdrop-data`, which looks
//! its entry up), and a dataset without an entry cannot get a silent default.

use crate::task::{Modality, Task, TaskSet};

/// What a task is for in the study.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskRole {
    /// The content task the representation should serve (the photo; for audio the spoken digit).
    Content,
    /// The easy, independent feature that can suppress the content (the overlay; for audio the
    /// background noise): what feature dropout re-draws.
    Overlay,
}

/// One task of a catalogued dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    /// Task name in configs, metrics and reports.
    pub name: &'static str,
    /// Number of classes.
    pub classes: usize,
    /// Its role.
    pub role: TaskRole,
}

/// The facts of one built-in dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DatasetInfo {
    /// Name used everywhere (`photos+digits`).
    pub name: &'static str,
    /// Images or audio.
    pub modality: Modality,
    /// Tasks, in label order.
    pub tasks: &'static [TaskInfo],
    /// Shape of one encoder input, `[C, H, W]`.
    pub input_shape: [i64; 3],
    /// The published viewmaker budget ε (mean |δ| per example).
    pub epsilon: f64,
    /// The published pretraining batch size.
    pub train_batch_size: usize,
    /// The published linear-probe batch size.
    pub probe_batch_size: usize,
    /// Probe epochs at which the learning rate drops (empty: constant).
    pub probe_lr_milestones: &'static [usize],
    /// Pretraining epochs whose checkpoints the published tables probe besides the last one
    /// (docs/PROTOCOL.md §5.1; empty: the last only). A run keeps them with `train.keep_epochs`.
    pub probe_checkpoint_epochs: &'static [usize],
}

const PHOTO: TaskInfo = TaskInfo { name: "photo", classes: 10, role: TaskRole::Content };
const IMAGE: [i64; 3] = [3, 32, 32];

const fn image(
    name: &'static str,
    tasks: &'static [TaskInfo],
    epsilon: f64,
    probe_checkpoint_epochs: &'static [usize],
) -> DatasetInfo {
    DatasetInfo {
        name,
        modality: Modality::Image,
        tasks,
        input_shape: IMAGE,
        epsilon,
        train_batch_size: 256,
        probe_batch_size: 128,
        probe_lr_milestones: &[60, 80],
        probe_checkpoint_epochs,
    }
}

const fn overlay(name: &'static str, classes: usize) -> TaskInfo {
    TaskInfo { name, classes, role: TaskRole::Overlay }
}

/// Every built-in dataset (published values: docs/PROTOCOL.md §2–§5).
pub const CATALOGUE: [DatasetInfo; 5] = [
    image("photos", &[PHOTO], 0.05, &[]),
    image("photos+shapes", &[PHOTO, overlay("shape", 3)], 0.05, &[]),
    image("photos+digits", &[PHOTO, overlay("digit", 10)], 0.05, &[100]),
    image("photos+letters", &[PHOTO, overlay("letter", 26)], 0.1, &[10, 75]),
    DatasetInfo {
        name: "speech+noise",
        modality: Modality::Audio,
        tasks: &[TaskInfo { name: "digit", classes: 10, role: TaskRole::Content }, overlay("noise", 3)],
        input_shape: [1, 64, 64],
        epsilon: 0.125,
        train_batch_size: 128,
        probe_batch_size: 256,
        probe_lr_milestones: &[],
        probe_checkpoint_epochs: &[],
    },
];

/// The catalogued dataset called `name`, if any.
pub fn find(name: &str) -> Option<&'static DatasetInfo> {
    CATALOGUE.iter().find(|d| d.name == name)
}

/// The catalogued dataset called `name`, or an error listing the known ones.
pub fn lookup(name: &str) -> Result<&'static DatasetInfo, String> {
    find(name).ok_or_else(|| format!("unknown dataset `{name}`; known: {}", names().join(", ")))
}

/// Every catalogued name, in catalogue order.
pub fn names() -> Vec<&'static str> {
    CATALOGUE.iter().map(|d| d.name).collect()
}

impl DatasetInfo {
    /// The tasks as a [`TaskSet`], in label order.
    pub fn task_set(&self) -> TaskSet {
        TaskSet(self.tasks.iter().map(|t| Task::new(t.name, t.classes)).collect())
    }

    /// The overlay task (the feature dropout acts on), if the dataset has one.
    pub fn overlay_task(&self) -> Option<&'static TaskInfo> {
        self.tasks.iter().find(|t| t.role == TaskRole::Overlay)
    }

    /// The content task.
    pub fn content_task(&self) -> &'static TaskInfo {
        self.tasks.iter().find(|t| t.role == TaskRole::Content).expect("every catalogued dataset has a content task")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_complete_and_unique() {
        for (i, d) in CATALOGUE.iter().enumerate() {
            assert!(CATALOGUE[..i].iter().all(|o| o.name != d.name), "{} twice", d.name);
            assert_eq!(d.tasks.iter().filter(|t| t.role == TaskRole::Content).count(), 1, "{}", d.name);
            assert!(d.tasks.iter().filter(|t| t.role == TaskRole::Overlay).count() <= 1, "{}", d.name);
            assert!(d.epsilon > 0.0 && d.train_batch_size > 1 && d.probe_batch_size > 0, "{}", d.name);
            let channels = if d.modality == Modality::Image { 3 } else { 1 };
            assert_eq!(d.input_shape[0], channels, "{}", d.name);
        }
    }

    #[test]
    fn published_budgets_and_schedules() {
        let eps: Vec<f64> = names().iter().map(|n| lookup(n).unwrap().epsilon).collect();
        assert_eq!(eps, [0.05, 0.05, 0.05, 0.1, 0.125]);
        let audio = lookup("speech+noise").unwrap();
        assert_eq!((audio.train_batch_size, audio.probe_batch_size), (128, 256));
        assert!(audio.probe_lr_milestones.is_empty());
        assert_eq!(audio.overlay_task().unwrap().name, "noise");
        assert_eq!(lookup("photos+letters").unwrap().task_set().names(), ["photo", "letter"]);
        assert!(lookup("photos").unwrap().overlay_task().is_none());
    }

    #[test]
    fn published_intermediate_probe_epochs() {
        // Issue 15.8: the published tables probe letters at epochs 10 and 75, digits at 100, besides
        // the last checkpoint; the other datasets only at the last.
        let epochs: Vec<&[usize]> = names().iter().map(|n| lookup(n).unwrap().probe_checkpoint_epochs).collect();
        assert_eq!(epochs, [&[][..], &[], &[100], &[10, 75], &[]]);
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let e = lookup("photos+emoji").unwrap_err();
        assert!(e.contains("unknown dataset `photos+emoji`") && e.contains("photos+letters, speech+noise"), "{e}");
    }
}
