//! The training loop: steps, epochs, monitoring, view grids and checkpoints.

use super::attempts::Attempts;
use super::destruction::DestructionMonitor;
use super::{TrainSummary, Trainer, TrainerState};
use crate::knn::knn_accuracy;
use crate::loss::{ifm, nt_xent, simclr_published};
use anyhow::Result;
use featdrop_core::config::{Objective, UpdateOrder};
use featdrop_core::io::{JsonLines, write_json_atomic};
use featdrop_core::{Modality, Split, Stream, checkpoint};
use featdrop_data::epoch_indices;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tch::{Kind, Tensor};

/// Where to stop early (for tests and for splitting long runs): after this many epochs in total.
#[derive(Clone, Copy, Debug, Default)]
pub struct StopAfter(pub Option<usize>);

/// Losses of one step, still on the device (detached): reading a loss back makes the host wait
/// for the device to finish the step, so they are read only when logged ([`PendingLosses`]).
struct StepLoss {
    encoder: Tensor,
    viewmaker: Option<Tensor>,
}

/// Read the pending step losses back at least this often (and at the end of each epoch).
const LOG_INTERVAL: Duration = Duration::from_secs(1);
/// ... and at the latest after this many steps.
const LOG_STEPS: usize = 100;

/// Step losses waiting to be logged: read back in one copy per log interval instead of one
/// synchronisation per step (issue 30 item 7). The metrics get the same one record per step.
struct PendingLosses {
    steps: Vec<(u64, StepLoss)>,
    since: Instant,
}

/// One step's losses on the host.
struct LoggedLoss {
    step: u64,
    encoder: f64,
    viewmaker: Option<f64>,
}

impl PendingLosses {
    fn new() -> Self {
        Self { steps: Vec::new(), since: Instant::now() }
    }

    fn push(&mut self, step: u64, loss: StepLoss) {
        self.steps.push((step, loss));
    }

    fn due(&self) -> bool {
        self.steps.len() >= LOG_STEPS || self.since.elapsed() >= LOG_INTERVAL
    }

    /// The pending losses, read back in one copy, in step order; empties the list.
    fn take(&mut self) -> Vec<LoggedLoss> {
        self.since = Instant::now();
        let pending = std::mem::take(&mut self.steps);
        let Some((_, first)) = pending.first() else { return Vec::new() };
        let width = 1 + usize::from(first.viewmaker.is_some());
        // In double before stacking: under bf16 autocast the two losses need not share a kind.
        let flat: Vec<Tensor> = pending
            .iter()
            .flat_map(|(_, l)| std::iter::once(&l.encoder).chain(l.viewmaker.as_ref()))
            .map(|t| t.to_kind(Kind::Double))
            .collect();
        let host = Tensor::stack(&flat, 0).to_device(tch::Device::Cpu);
        let values = Vec::<f64>::try_from(&host).unwrap_or_else(|_| vec![f64::NAN; flat.len()]);
        pending
            .iter()
            .zip(values.chunks(width))
            .map(|((step, _), v)| LoggedLoss { step: *step, encoder: v[0], viewmaker: v.get(1).copied() })
            .collect()
    }
}

impl Trainer {
    /// The contrastive loss of two views, under the speed options the config asks for
    /// (channels-last inputs, bf16 autocast; both checked when the trainer was built).
    fn objective(&self, v1: &Tensor, v2: &Tensor) -> Tensor {
        let t = &self.cfg.train;
        let layout =
            |v: &Tensor| if self.channels_last { featdrop_torch_ext::to_channels_last(v) } else { v.shallow_clone() };
        let forward = || {
            let (z1, z2) = (self.encoder.embed(&layout(v1), true), self.encoder.embed(&layout(v2), true));
            match t.objective {
                Objective::SimclrPublished => simclr_published(&z1, &z2, t.temperature),
                Objective::NtXent => nt_xent(&z1, &z2, t.temperature),
                Objective::Ifm => ifm(&z1, &z2, t.temperature, t.ifm_epsilon, t.ifm_alpha),
            }
        };
        if t.bf16 {
            featdrop_torch_ext::with_autocast(self.device, Kind::BFloat16, forward)
                .expect("checked when the trainer was built")
        } else {
            forward()
        }
    }

    /// One optimisation step on the examples `idx` at global step `step`.
    fn step(&mut self, idx: &Tensor, step: u64) -> StepLoss {
        let redraw = self.cfg.view_mode.overlay_redraw_p();
        let pair = self.dataset.pair(Split::Train, idx, redraw, self.seeds.derive(Stream::Data, step));
        let (x1, x2) = (pair.first.inputs, pair.second);
        let seed = |k: u64| self.seeds.derive(Stream::Views, step * 4 + k);
        let weight = self.cfg.viewmaker.loss_weight;
        self.sgd.zero_grad();
        match (self.cfg.train.update, self.adam.is_some()) {
            (UpdateOrder::Alternating, true) => {
                // Published order: encoder step on views made without the viewmaker's graph, then
                // a fresh forward pass (fresh noise) for the viewmaker step.
                let (v1, v2) = tch::no_grad(|| (self.views.view(&x1, seed(0)), self.views.view(&x2, seed(1))));
                let loss = self.objective(&v1, &v2);
                loss.backward();
                self.sgd.step();
                let adam = self.adam.as_mut().expect("checked above");
                adam.zero_grad();
                // The viewmaker step needs the gradient through the encoder to the views, not the
                // encoder's own weight gradients (cleared before they are used): freezing its
                // parameters for this pass skips computing them, as PyTorch Lightning's optimiser
                // toggling does in the published code.
                let encoder_params = self.enc_vs.trainable_variables();
                encoder_params.iter().for_each(|p| drop(p.set_requires_grad(false)));
                let (v1, v2) = (self.views.view(&x1, seed(2)), self.views.view(&x2, seed(3)));
                let vm_loss = self.objective(&v1, &v2);
                (&vm_loss * -weight).backward();
                encoder_params.iter().for_each(|p| drop(p.set_requires_grad(true)));
                self.adam.as_mut().expect("checked above").step();
                StepLoss { encoder: loss.detach(), viewmaker: Some(vm_loss.detach()) }
            }
            (_, has_vm) => {
                // One pass; the viewmaker's gradient is reversed (× −weight) before its step: the
                // single-pass `simultaneous` option, or a plain step for fixed families.
                if let Some(adam) = self.adam.as_mut() {
                    adam.zero_grad();
                }
                let (v1, v2) = (self.views.view(&x1, seed(0)), self.views.view(&x2, seed(1)));
                let loss = self.objective(&v1, &v2);
                loss.backward();
                self.sgd.step();
                if has_vm {
                    tch::no_grad(|| {
                        for (_, p) in self.views.trainable() {
                            let mut g = p.grad();
                            if g.defined() {
                                let _ = g.g_mul_scalar_(-weight);
                            }
                        }
                    });
                    self.adam.as_mut().expect("has_vm").step();
                }
                let l = loss.detach();
                StepLoss { viewmaker: has_vm.then(|| l.shallow_clone()), encoder: l }
            }
        }
    }

    /// Runs `steps` optimisation steps over the first training batches (no monitor, metrics or
    /// checkpoints) and returns the images per second, for benchmarks. Synchronises CUDA before
    /// reading the clock.
    pub fn time_steps(&mut self, steps: usize) -> f64 {
        let bs = self.cfg.train.batch_size;
        let batches = epoch_indices(self.dataset.len(Split::Train), bs, 0, self.cfg.seed);
        let sync = |d: tch::Device| {
            if let tch::Device::Cuda(i) = d {
                tch::Cuda::synchronize(i as i64);
            }
        };
        sync(self.device);
        let start = Instant::now();
        for (i, idx) in batches.iter().cycle().take(steps).enumerate() {
            self.step(idx, i as u64);
        }
        sync(self.device);
        (2 * bs * steps) as f64 / start.elapsed().as_secs_f64()
    }

    /// kNN accuracy per task: training-split bank, test-split queries, clean inputs, embeddings
    /// (before the projection head when there is one: [`crate::Encoder::representation`]).
    pub fn monitor(&self) -> BTreeMap<String, f64> {
        let m = self.cfg.data.monitor_size as i64;
        let embed_split = |split: Split| {
            let n = (self.dataset.len(split) as i64).min(m);
            let idx = Tensor::arange(n, (Kind::Int64, tch::Device::Cpu));
            let batch = self.dataset.batch(split, &idx, self.seeds.derive(Stream::Eval, 0));
            let z = tch::no_grad(|| {
                let chunks: Vec<Tensor> = batch
                    .inputs
                    .split(256, 0)
                    .iter()
                    .map(|x| self.encoder.representation(&self.clean.view(x, 0)))
                    .collect();
                Tensor::cat(&chunks, 0)
            });
            (z, batch.labels)
        };
        let (bank, bank_labels) = embed_split(Split::Train);
        let (query, query_labels) = embed_split(Split::Test);
        let k = self.cfg.train.knn_k as i64;
        self.dataset
            .tasks()
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let acc = knn_accuracy(&bank, &bank_labels[i], &query, &query_labels[i], k, t.num_classes as i64);
                (t.name.clone(), acc)
            })
            .collect()
    }

    /// Trains until `cfg.train.epochs` (or `stop`), resuming where the run left off.
    pub fn run(&mut self, stop: StopAfter) -> Result<TrainSummary> {
        let cfg = self.cfg.clone();
        let bs = cfg.train.batch_size;
        let n = self.dataset.len(Split::Train);
        anyhow::ensure!(n >= bs, "dataset `{}` has {n} training examples, fewer than one batch of {bs}", cfg.dataset);
        let per_epoch = (n / bs) as u64;
        let end = stop.0.map_or(cfg.train.epochs, |s| s.min(cfg.train.epochs));
        if self.epochs_done == cfg.train.epochs {
            // Finished before: its summary holds the real training costs; rewriting it from this
            // process, which trained nothing, would zero them.
            if let Ok(summary) = featdrop_core::io::read_json::<TrainSummary>(&self.run.done_marker()) {
                tracing::info!(run = %self.run.root().display(), "already trained; nothing to do");
                return Ok(summary);
            }
        }
        if self.destruction.is_none() && self.epochs_done < end && self.monitors_destruction() {
            let cache = self.classifier_cache.clone();
            let monitor = {
                let _classifiers = featdrop_core::costs::phase(featdrop_core::costs::CLASSIFIERS);
                DestructionMonitor::build(&cfg, self.dataset.as_ref(), self.device, cache.as_deref())?
            };
            self.destruction = Some(monitor);
        }
        let mut metrics = JsonLines::append(&self.run.metrics())?;
        let mut attempts = Attempts::load(&self.run.attempts())?;
        if self.epochs_done < end {
            attempts.begin(self.epochs_done)?;
        }
        let started = Instant::now();
        let mut images = 0u64;
        let mut knn = BTreeMap::new();
        for epoch in self.epochs_done..end {
            let t0 = Instant::now();
            let batches = epoch_indices(n, bs, epoch as u64, cfg.seed);
            let bar = progress(batches.len() as u64, epoch, cfg.train.epochs);
            let mut sum = 0.0;
            let mut pending = PendingLosses::new();
            for (i, idx) in batches.iter().enumerate() {
                let step = epoch as u64 * per_epoch + i as u64;
                pending.push(step, self.step(idx, step));
                images += 2 * bs as u64;
                bar.inc(1);
                if !pending.due() && i + 1 < batches.len() {
                    continue;
                }
                for l in pending.take() {
                    anyhow::ensure!(l.encoder.is_finite(), "loss became {} at step {}", l.encoder, l.step);
                    sum += l.encoder;
                    let record = json!({"kind": "step", "epoch": epoch + 1, "step": l.step, "loss": l.encoder, "viewmaker_loss": l.viewmaker});
                    self.log(&mut metrics, &record)?;
                    let rate = images as f64 / started.elapsed().as_secs_f64();
                    bar.set_message(format!("loss {:.4}  {rate:.0} img/s", l.encoder));
                }
            }
            bar.finish_and_clear();
            let mean = sum / batches.len() as f64;
            if epoch == 0 {
                self.first_epoch_loss = Some(mean);
            }
            knn = self.monitor();
            self.epochs_done = epoch + 1;
            self.last_epoch_loss = mean;
            let secs = t0.elapsed().as_secs_f64();
            let rate = (2 * bs * batches.len()) as f64 / secs;
            let mut record = json!({"kind": "epoch", "epoch": epoch + 1, "loss": mean, "knn": knn, "seconds": secs,
                "images_per_s": rate, "lr": self.learning_rates()});
            if let Some(monitor) = &self.destruction {
                let rates = monitor.measure(self.views.as_ref());
                tracing::info!(epoch = epoch + 1, destruction = ?rates, "destruction");
                record["destruction"] = json!(rates);
            }
            self.log(&mut metrics, &record)?;
            tracing::info!(epoch = epoch + 1, loss = format!("{mean:.4}"), knn = ?knn, seconds = format!("{secs:.1}"), "epoch");
            self.after_epoch(epoch + 1, end, record)?;
            attempts.record(epoch + 1, started.elapsed().as_secs_f64(), images)?;
            // As the attempts are: a killed process's phases count up to its last epoch.
            featdrop_core::costs::save()?;
        }
        if knn.is_empty() {
            knn = self.monitor();
        }
        let (seconds, images) = attempts.totals();
        let summary = TrainSummary {
            epochs: self.epochs_done,
            steps: self.epochs_done as u64 * per_epoch,
            first_epoch_loss: self.first_epoch_loss,
            last_epoch_loss: self.last_epoch_loss,
            knn,
            seconds,
            images_per_s: if seconds > 0.0 { images as f64 / seconds } else { 0.0 },
            device: format!("{:?}", self.device),
            attempts: attempts.all().to_vec(),
        };
        if self.epochs_done == cfg.train.epochs {
            write_json_atomic(&self.run.done_marker(), &summary)?;
        }
        Ok(summary)
    }

    /// Appends `record` to `metrics.jsonl` and its scalars to the TensorBoard event file: both
    /// from the one record, so the two cannot disagree.
    fn log(&mut self, metrics: &mut JsonLines, record: &serde_json::Value) -> Result<()> {
        metrics.write(record)?;
        match &mut self.events {
            Some(events) => events.record(record),
            None => Ok(()),
        }
    }

    /// The optimisers' learning rates by name (`encoder`, and `viewmaker` when it trains).
    fn learning_rates(&self) -> BTreeMap<&'static str, f64> {
        let mut lr = BTreeMap::from([("encoder", self.sgd.lr)]);
        if let Some(adam) = &self.adam {
            lr.insert("viewmaker", adam.lr);
        }
        lr
    }

    /// Saves view grids and checkpoints when due: on the `checkpoint_every` beat, at the last
    /// epoch, at a kept epoch, and where this process stops (`stop`), so that a rerun does not
    /// redo the epochs since the last beat. `record` is the epoch's metrics record.
    fn after_epoch(&mut self, done: usize, stop: usize, record: serde_json::Value) -> Result<()> {
        let t = &self.cfg.train;
        let last = done == t.epochs;
        if t.view_grid_every > 0 && (done.is_multiple_of(t.view_grid_every) || last) {
            let path = self.run.views().join(format!("epoch-{done:04}.png"));
            crate::grid::save_view_grid(self, &path, 8)?;
            if let Some(events) = &mut self.events {
                events.image(done, &path)?;
            }
        }
        let keep = |epoch: usize| t.keep_epochs.contains(&epoch);
        if done.is_multiple_of(t.checkpoint_every) || last || keep(done) || done == stop {
            let per_epoch = (self.dataset.len(Split::Train) / t.batch_size) as u64;
            let state = TrainerState {
                epochs_done: done,
                step: done as u64 * per_epoch,
                last_epoch_loss: self.last_epoch_loss,
                first_epoch_loss: self.first_epoch_loss,
                epoch_record: Some(record),
            };
            let dir = self.run.checkpoints();
            let tag = featdrop_core::layout::epoch_tag(done);
            checkpoint::save(&dir, &tag, &self.state_tensors(), &state)?;
            // The older checkpoints go unless they are of `train.keep_epochs` (kept to be probed).
            let kept = |t: &str| t == tag || featdrop_core::layout::tag_epoch(t).is_some_and(keep);
            checkpoint::prune(&dir, kept)?;
        }
        Ok(())
    }

    pub(crate) fn views_for_grid(&self, idx: &Tensor) -> (Tensor, Tensor, Tensor, Vec<String>) {
        let batch = self.dataset.batch(Split::Train, idx, self.seeds.derive(Stream::Eval, 1));
        let (v1, v2) = tch::no_grad(|| {
            (
                self.views.view(&batch.inputs, self.seeds.derive(Stream::Eval, 2)),
                self.views.view(&batch.inputs, self.seeds.derive(Stream::Eval, 3)),
            )
        });
        // Class names, one line per task, so captions fit under a 32-pixel cell.
        let names: Vec<Vec<String>> = (0..batch.labels.len()).map(|t| self.dataset.class_names(t)).collect();
        let labels = (0..batch.len())
            .map(|i| {
                let class = |(t, l): (usize, &Tensor)| names[t][l.int64_value(&[i as i64]) as usize].clone();
                batch.labels.iter().enumerate().map(class).collect::<Vec<_>>().join("\n")
            })
            .collect();
        // The original column: images as they are, audio as the clean clip's log-mel.
        let original = match self.dataset.modality() {
            Modality::Image => batch.inputs,
            Modality::Audio => tch::no_grad(|| self.clean.view(&batch.inputs, 0)),
        };
        (original, v1, v2, labels)
    }
}

fn progress(len: u64, epoch: usize, epochs: usize) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} {msg} [{elapsed_precise}]")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(format!("{}/{}", epoch + 1, epochs));
    bar
}
