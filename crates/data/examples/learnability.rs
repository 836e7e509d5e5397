//! How learnable is each task of a synthetic dataset? Trains a small supervised CNN per task for
//! a fixed budget and prints test accuracy. The photo task must be well above chance
//! (10 %) yet clearly harder than the overlay task (docs/PROTOCOL.md §2.1, §7).
//!
//! `cargo run --release -p featdrop-data --example learnability -- [--seconds S | --steps N] [DATASET ...]`
//! (default: 1 200 steps of 64 per task on `photos+digits` and `photos+letters`, 8 000 train /
//! 2 000 test). A step budget gives every task the same training however busy the machine is.

use featdrop_core::{Seeds, Split, Stream};
use featdrop_data::{DatasetSpec, MultiTaskDataset, epoch_indices, open};
use std::time::{Duration, Instant};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// Examples per training step.
const BATCH: usize = 64;

/// conv-relu-pool ×3 (16, 32, 32 channels), then a linear classifier.
fn cnn(vs: &nn::Path, classes: i64) -> nn::Sequential {
    let conv = |i, o, n: &str| nn::conv2d(vs / n, i, o, 3, nn::ConvConfig { padding: 1, ..Default::default() });
    nn::seq()
        .add(conv(3, 16, "c1"))
        .add_fn(|x| x.relu().max_pool2d_default(2))
        .add(conv(16, 32, "c2"))
        .add_fn(|x| x.relu().max_pool2d_default(2))
        .add(conv(32, 32, "c3"))
        .add_fn(|x| x.relu().adaptive_avg_pool2d([2, 2]).flatten(1, -1))
        .add(nn::linear(vs / "fc", 128, classes, Default::default()))
}

fn accuracy(ds: &dyn MultiTaskDataset, net: &nn::Sequential, task: usize) -> f64 {
    let n = ds.len(Split::Test) as i64;
    let b = ds.batch(Split::Test, &Tensor::arange(n, (Kind::Int64, Device::Cpu)), 0);
    let pred = tch::no_grad(|| net.forward(&b.inputs)).argmax(1, false);
    pred.eq_tensor(&b.labels[task]).to_kind(Kind::Float).mean(Kind::Float).double_value(&[])
}

/// How long each task trains.
#[derive(Clone, Copy)]
enum Budget {
    Time(Duration),
    Steps(u64),
}

impl Budget {
    fn spent(self, start: Instant, steps: u64) -> bool {
        match self {
            Budget::Time(d) => start.elapsed() >= d,
            Budget::Steps(n) => steps >= n,
        }
    }
}

fn train(ds: &dyn MultiTaskDataset, task: usize, budget: Budget) -> (f64, usize) {
    let seeds = Seeds::new(0);
    seeds.seed_torch(Stream::Init, task as u64);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = cnn(&vs.root(), ds.tasks().0[task].num_classes as i64);
    let mut opt = nn::Adam::default().build(&vs, 3e-3).expect("optimizer");
    let (start, mut epoch, mut step) = (Instant::now(), 0, 0u64);
    while !budget.spent(start, step) {
        for idx in epoch_indices(ds.len(Split::Train), BATCH, epoch, 0) {
            let b = ds.batch(Split::Train, &idx, seeds.derive(Stream::Data, step));
            opt.backward_step(&net.forward(&b.inputs).cross_entropy_for_logits(&b.labels[task]));
            step += 1;
            if budget.spent(start, step) {
                break;
            }
        }
        epoch += 1;
    }
    (accuracy(ds, &net, task), step as usize)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut budget = Budget::Steps(1200);
    if let Some(i) = args.iter().position(|a| a == "--seconds") {
        budget = Budget::Time(Duration::from_secs_f64(args[i + 1].parse().expect("--seconds takes a number")));
        args.drain(i..=i + 1);
    }
    if let Some(i) = args.iter().position(|a| a == "--steps") {
        budget = Budget::Steps(args[i + 1].parse().expect("--steps takes a whole number"));
        args.drain(i..=i + 1);
    }
    if args.is_empty() {
        args = vec!["photos+digits".into(), "photos+letters".into()];
    }
    for name in &args {
        let ds = open(&DatasetSpec::synthetic(name, 8000, 2000, 0)).expect("dataset");
        for (t, task) in ds.tasks().iter().enumerate() {
            let start = Instant::now();
            let (acc, steps) = train(ds.as_ref(), t, budget);
            println!(
                "{name:16} task {:7} test accuracy {:5.1} % (chance {:4.1} %, {steps} steps of {BATCH} in {:.0} s)",
                task.name,
                100.0 * acc,
                100.0 * task.chance(),
                start.elapsed().as_secs_f64()
            );
        }
    }
}
