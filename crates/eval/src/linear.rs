//! Linear probes on feature tensors (§5.1): one linear layer per task on shared features,
//! cross-entropy, SGD with momentum and the step schedule of [`crate::schedule`].

use crate::schedule::lr_at;
use anyhow::{Result, ensure};
use featdrop_contrastive::optim::Sgd;
use featdrop_contrastive::trainer::named_trainable;
use featdrop_core::config::ProbeConfig;
use featdrop_core::init;
use featdrop_core::seed::with_torch_seed;
use featdrop_data::epoch_indices;
use indicatif::ProgressBar;
use tch::{Device, Kind, Tensor, nn, nn::VarStore};

/// One linear head per task over the same features, trained together: the heads share no
/// parameters, so summing their losses gives each head exactly its own gradient.
pub struct LinearProbes {
    _vs: VarStore,
    heads: Vec<nn::Linear>,
    tasks: Vec<usize>,
    sgd: Sgd,
}

impl LinearProbes {
    /// Heads for `tasks` (indices into the label vectors batches carry), each `dim → classes`,
    /// initialised from `seed` (PyTorch's default linear initialisation).
    pub fn new(dim: i64, tasks: &[(usize, i64)], cfg: &ProbeConfig, device: Device, seed: u64) -> Self {
        let vs = VarStore::new(device);
        let heads = with_torch_seed(seed, || {
            tasks.iter().map(|&(t, c)| init::linear(vs.root() / format!("task{t}"), dim, c)).collect()
        });
        // Published protocol: no weight decay on the probes.
        let sgd = Sgd::new(named_trainable(&vs), cfg.lr, cfg.momentum, 0.0);
        Self { _vs: vs, heads, tasks: tasks.iter().map(|&(t, _)| t).collect(), sgd }
    }

    /// Sets the learning rate of the next steps.
    pub fn set_lr(&mut self, lr: f64) {
        self.sgd.lr = lr;
    }

    /// One SGD step on `feats` `[B, D]` with `labels` (all tasks' `[B]` labels, by task index);
    /// returns each head's cross-entropy before the step, in head order.
    pub fn step(&mut self, feats: &Tensor, labels: &[Tensor]) -> Vec<f64> {
        self.sgd.zero_grad();
        let feats = feats.detach();
        let losses: Vec<Tensor> = self
            .heads
            .iter()
            .zip(&self.tasks)
            .map(|(h, &t)| feats.apply(h).cross_entropy_for_logits(&labels[t]))
            .collect();
        let each = Tensor::stack(&losses, 0);
        each.sum(Kind::Float).backward();
        self.sgd.step();
        Vec::<f64>::try_from(each.detach().to_kind(Kind::Double)).unwrap_or_else(|_| vec![f64::NAN; self.heads.len()])
    }

    /// Correct top-1 predictions per head on `feats` with `labels` (by task index).
    pub fn correct(&self, feats: &Tensor, labels: &[Tensor]) -> Vec<i64> {
        tch::no_grad(|| {
            self.heads
                .iter()
                .zip(&self.tasks)
                .map(|(h, &t)| {
                    let hit = feats.apply(h).argmax(-1, false).eq_tensor(&labels[t].to_device(feats.device()));
                    hit.sum(Kind::Int64).int64_value(&[])
                })
                .collect()
        })
    }
}

/// Trains `probes` for `cfg.epochs` over `n` training examples. `batch(epoch, step, indices)`
/// returns the features `[B, D]` and all tasks' labels of those examples (from cached features,
/// or from a pass of fresh views through the frozen encoder); `seed` fixes the shuffling. The
/// last partial batch is dropped, as in pretraining, unless `n` is smaller than one batch. Returns
/// each epoch's mean loss of every head (`[epoch][head]`).
pub fn fit(
    probes: &mut LinearProbes,
    n: usize,
    cfg: &ProbeConfig,
    seed: u64,
    bar: &ProgressBar,
    mut batch: impl FnMut(usize, u64, &Tensor) -> Result<(Tensor, Vec<Tensor>)>,
) -> Result<Vec<Vec<f64>>> {
    ensure!(n > 0, "no training examples to fit the probes on");
    let bs = cfg.batch_size.min(n);
    let mut losses = Vec::with_capacity(cfg.epochs);
    let mut step = 0u64;
    for epoch in 0..cfg.epochs {
        probes.set_lr(lr_at(cfg.lr, &cfg.lr_milestones, cfg.lr_gamma, epoch));
        let batches = epoch_indices(n, bs, epoch as u64, seed);
        let mut sums = vec![0.0; probes.heads.len()];
        for idx in &batches {
            let (feats, labels) = batch(epoch, step, idx)?;
            let each = probes.step(&feats, &labels);
            ensure!(each.iter().all(|l| l.is_finite()), "probe loss became {each:?} at epoch {}", epoch + 1);
            sums.iter_mut().zip(&each).for_each(|(s, l)| *s += l);
            step += 1;
            let mean = each.iter().sum::<f64>() / each.len() as f64;
            bar.set_message(format!("epoch {}/{} loss {mean:.3}", epoch + 1, cfg.epochs));
            bar.inc(1);
        }
        losses.push(sums.iter().map(|s| s / batches.len() as f64).collect());
    }
    Ok(losses)
}

/// Top-1 accuracy per head over test chunks of `(features, labels)`.
pub fn evaluate(
    probes: &LinearProbes,
    chunks: impl IntoIterator<Item = Result<(Tensor, Vec<Tensor>)>>,
) -> Result<Vec<f64>> {
    let mut hits = vec![0i64; probes.heads.len()];
    let mut total = 0i64;
    for chunk in chunks {
        let (feats, labels) = chunk?;
        total += feats.size()[0];
        for (h, c) in hits.iter_mut().zip(probes.correct(&feats, &labels)) {
            *h += c;
        }
    }
    ensure!(total > 0, "no test examples to evaluate the probes on");
    Ok(hits.iter().map(|&h| h as f64 / total as f64).collect())
}

/// Number of steps [`fit`] takes, for progress bars.
pub fn fit_steps(n: usize, cfg: &ProbeConfig) -> u64 {
    let bs = cfg.batch_size.min(n).max(1);
    (cfg.epochs * (n / bs)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Features whose first 4 dimensions are a one-hot of task 0's label (plus noise), with a
    /// second task whose labels are independent of the features.
    fn synthetic(n: i64, seed: u64) -> (Tensor, Vec<Tensor>) {
        with_torch_seed(seed, || synthetic_seeded(n))
    }

    fn synthetic_seeded(n: i64) -> (Tensor, Vec<Tensor>) {
        let opts = (Kind::Int64, Device::Cpu);
        let carried = Tensor::randint(4, [n], opts);
        let absent = Tensor::randint(5, [n], opts);
        let signal = carried.one_hot(4).to_kind(Kind::Float) * 3.0;
        let noise = Tensor::randn([n, 28], (Kind::Float, Device::Cpu));
        (
            Tensor::cat(&[signal + Tensor::randn([n, 4], (Kind::Float, Device::Cpu)) * 0.1, noise], 1),
            vec![carried, absent],
        )
    }

    #[test]
    fn heads_start_as_pytorch_linear_layers() {
        let probes = LinearProbes::new(2048, &[(0, 10), (1, 3)], &ProbeConfig::default(), Device::Cpu, 4);
        let bound = 1.0 / 2048f64.sqrt();
        for h in &probes.heads {
            // Thousands of weights reach near the bound; tch's default bound is √6 times wider.
            let max = h.ws.abs().max().double_value(&[]);
            assert!(max <= bound && max > 0.9 * bound, "weight: max {max} for U(±{bound})");
            // A handful of biases only stay inside it.
            let bias = h.bs.as_ref().expect("a bias").abs().max().double_value(&[]);
            assert!(bias <= bound && bias > 0.0, "bias: max {bias} for U(±{bound})");
        }
    }

    #[test]
    fn probe_learns_a_carried_task_and_not_an_absent_one() {
        let (train_x, train_y) = synthetic(2000, 1);
        let (test_x, test_y) = synthetic(2000, 2);
        let cfg = ProbeConfig { epochs: 10, lr_milestones: vec![6, 8], ..ProbeConfig::default() };
        let mut probes = LinearProbes::new(32, &[(0, 4), (1, 5)], &cfg, Device::Cpu, 7);
        let losses = fit(&mut probes, 2000, &cfg, 3, &ProgressBar::hidden(), |_, _, idx| {
            Ok((train_x.index_select(0, idx), train_y.iter().map(|y| y.index_select(0, idx)).collect()))
        })
        .unwrap();
        assert_eq!(losses.len(), 10);
        assert!(losses[9][0] < losses[0][0], "loss did not fall: {losses:?}");
        // Each head keeps its own loss (probe.json reports them per task): the carried task is
        // fitted, the absent one stays near ln 5.
        assert!(losses[9][0] < 0.2 && losses[9][1] > 1.4, "per-head losses {:?}", losses[9]);
        let acc = evaluate(&probes, [Ok((test_x, test_y))]).unwrap();
        assert!(acc[0] >= 0.99, "carried task: {}", acc[0]);
        assert!((acc[1] - 0.2).abs() < 0.05, "absent task should be at chance 0.2: {}", acc[1]);
    }

    #[test]
    fn fit_steps_counts_dropped_tails() {
        let cfg = ProbeConfig { epochs: 3, batch_size: 128, ..ProbeConfig::default() };
        assert_eq!(fit_steps(300, &cfg), 6);
        assert_eq!(fit_steps(100, &cfg), 3, "fewer examples than a batch: one batch of all");
    }
}
