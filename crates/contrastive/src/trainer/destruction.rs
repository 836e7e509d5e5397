//! The per-epoch label-destruction monitor (docs/PROTOCOL.md §4, monitoring): how much of each
//! task's label the viewmaker's views still carry while it trains, measured with the §5.2
//! classifiers on one fixed test batch.

use crate::classifier::{
    ClassifierCache, DestructionConfig, SmallCnn, accuracy, cached_or_trained, remove_stale_cache_temps,
};
use anyhow::Result;
use featdrop_core::config::DestructionMonitorConfig;
use featdrop_core::{RunConfig, Seeds, Split, Stream, ViewFamily};
use featdrop_data::MultiTaskDataset;
use indicatif::ProgressBar;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Counter of the evaluation stream the fixed test batch is drawn from (the trainer's own draws
/// use 0–3, the classifiers' and `featdrop-eval destruction`'s 200+ and 4–6 << 32).
const MONITOR_BATCH: u64 = 7 << 32;
/// Counter of the views stream the monitor's views are drawn from: the same seed every epoch, so
/// that a change between epochs is the viewmaker's, not the noise's.
const MONITOR_VIEWS: u64 = 7 << 32;

/// One task's classifier and what it reads on the clean batch.
struct TaskMonitor {
    name: String,
    net: SmallCnn,
    clean_accuracy: f64,
}

/// Trained classifiers and the fixed clean batch they score views of.
pub(super) struct DestructionMonitor {
    inputs: Tensor,
    labels: Vec<Tensor>,
    tasks: Vec<TaskMonitor>,
    view_seed: u64,
}

/// The §5.2 classifier budget of a monitor config.
pub fn classifier_budget(m: &DestructionMonitorConfig) -> DestructionConfig {
    DestructionConfig { epochs: m.epochs, batch_size: m.batch_size, lr: m.lr, width: m.width as i64 }
}

impl DestructionMonitor {
    /// Trains (or loads from `cache_dir`) one classifier per task and fixes the batch: the first
    /// `train.destruction.batch` test examples with their overlays drawn once.
    pub(super) fn build(
        cfg: &RunConfig,
        dataset: &dyn MultiTaskDataset,
        device: Device,
        cache_dir: Option<&Path>,
    ) -> Result<Self> {
        let seeds = Seeds::new(cfg.seed);
        let budget = classifier_budget(&cfg.train.destruction);
        let n = cfg.train.destruction.batch.min(dataset.len(Split::Test)) as i64;
        anyhow::ensure!(n > 0, "train.destruction: dataset `{}` has no test examples to score", cfg.dataset);
        let idx = Tensor::arange(n, (Kind::Int64, Device::Cpu));
        let batch = dataset.batch(Split::Test, &idx, seeds.derive(Stream::Eval, MONITOR_BATCH));
        let clean = crate::views::clean(dataset.modality(), dataset.device());
        let clean_inputs = tch::no_grad(|| clean.view(&batch.inputs, 0));
        if let Some(dir) = cache_dir {
            remove_stale_cache_temps(dir)?;
        }
        let mut tasks = Vec::new();
        for (i, t) in dataset.tasks().iter().enumerate() {
            let cache = cache_dir.map(|d| ClassifierCache::new(d, cfg, device, &t.name, &budget));
            let net = cached_or_trained(dataset, i, &budget, &seeds, &ProgressBar::hidden(), cache.as_ref())?;
            let (hits, total) = accuracy(&net, &clean_inputs, &batch.labels[i]);
            let clean_accuracy = hits as f64 / total as f64;
            tracing::info!(task = %t.name, clean = format!("{clean_accuracy:.3}"), "destruction monitor ready");
            tasks.push(TaskMonitor { name: t.name.clone(), net, clean_accuracy });
        }
        let view_seed = seeds.derive(Stream::Views, MONITOR_VIEWS);
        Ok(Self { inputs: batch.inputs, labels: batch.labels, tasks, view_seed })
    }

    /// Per task, `1 − accuracy on views / clean accuracy` of `views` on the fixed batch (NaN,
    /// written as `null`, when the classifier got no clean example right).
    pub(super) fn measure(&self, views: &dyn ViewFamily) -> BTreeMap<String, f64> {
        let x = tch::no_grad(|| views.view(&self.inputs, self.view_seed));
        self.tasks
            .iter()
            .zip(&self.labels)
            .map(|(t, labels)| {
                let (hits, total) = accuracy(&t.net, &x, labels);
                let on_views = hits as f64 / total as f64;
                let rate = if t.clean_accuracy > 0.0 { 1.0 - on_views / t.clean_accuracy } else { f64::NAN };
                (t.name.clone(), rate)
            })
            .collect()
    }
}
