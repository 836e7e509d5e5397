//! What the channels-last memory layout is worth, per model size, on one device: the measurements
//! behind `train.channels_last = "auto"` (`featdrop_core::config::ChannelsLast::resolve`).
//!
//! - encoder: whole training steps (`Trainer::time_steps`) of the `mechanism` cells' model (small
//!   ResNet, width 16, batch 64, thin viewmaker, simultaneous updates) and of the paper's
//!   (ResNet-18, batch 256, expert views), once with the encoder NCHW and once channels-last;
//! - viewmaker: the forward and backward passes of two views (a viewmaker step's own work) of the
//!   thin viewmaker at batch 64 and the published one at batch 256, NCHW against channels-last.
//!
//! Both layouts are built once and timed in alternation (the order flips every repetition), so a
//! change in the machine's load falls on both; the ratio printed is the median over repetitions of
//! NCHW time / channels-last time (> 1: channels-last is faster).
//!
//! `cargo xtask bench layout [--device cuda]`, or `cargo bench -p featdrop-contrastive --bench
//! layout -- cpu|cuda|cuda:N|auto`. `FEATDROP_BENCH_STEPS` (timed steps per measurement, default
//! 2), `FEATDROP_BENCH_REPS` (default 3) and `FEATDROP_BENCH_CASES` (comma-separated) shape it.
//! Under `cargo test` (no `--bench`) only the mechanism-sized cases run, once, as a smoke test.

use featdrop_contrastive::Trainer;
use featdrop_core::config::{Arch, ChannelsLast, UpdateOrder};
use featdrop_core::{BaseViews, DeviceChoice, RunConfig, RunDir};
use featdrop_torch_ext::{module_to_channels_last, to_channels_last};
use featdrop_viewmaker::{Viewmaker, ViewmakerSpec};
use serde_json::json;
use std::time::Instant;
use tch::{Device, Kind, Tensor, nn::VarStore};

/// A training configuration whose encoder is timed in both layouts.
struct EncoderCase {
    name: &'static str,
    mode: BaseViews,
    arch: Arch,
    width: usize,
    batch: usize,
    update: UpdateOrder,
    paper: bool,
}

const ENCODER_CASES: [EncoderCase; 3] = [
    EncoderCase {
        name: "mechanism-colour",
        mode: BaseViews::Colour,
        arch: Arch::Small,
        width: 16,
        batch: 64,
        update: UpdateOrder::Simultaneous,
        paper: false,
    },
    EncoderCase {
        name: "mechanism-viewmaker",
        mode: BaseViews::Viewmaker,
        arch: Arch::Small,
        width: 16,
        batch: 64,
        update: UpdateOrder::Simultaneous,
        paper: false,
    },
    EncoderCase {
        name: "paper-expert",
        mode: BaseViews::Expert,
        arch: Arch::Resnet18,
        width: 64,
        batch: 256,
        update: UpdateOrder::Alternating,
        paper: true,
    },
];

/// (name, viewmaker width multiplier, batch, paper size)
const VIEWMAKER_CASES: [(&str, f64, i64, bool); 2] =
    [("viewmaker-mechanism", 0.25, 64, false), ("viewmaker-paper", 1.0, 256, true)];

fn trainer(case: &EncoderCase, device: DeviceChoice, channels_last: bool, dir: &std::path::Path) -> Trainer {
    let mut cfg = RunConfig::new("bench", "photos+digits", case.mode, 0);
    cfg.device = device;
    (cfg.data.train_size, cfg.data.test_size) = (case.batch * 2, 64);
    (cfg.encoder.arch, cfg.encoder.width) = (case.arch, case.width);
    (cfg.train.batch_size, cfg.train.update) = (case.batch, case.update);
    cfg.viewmaker.width_mult = if case.paper { 1.0 } else { 0.25 };
    cfg.train.channels_last = ChannelsLast::Fixed(channels_last);
    Trainer::from_config(cfg, RunDir::at(dir)).expect("a bench config builds")
}

/// Seconds of one viewmaker step's network work: two views forward, backward through both.
fn viewmaker_seconds(vm: &Viewmaker, x: &Tensor, steps: usize, sync: &dyn Fn()) -> f64 {
    sync();
    let start = Instant::now();
    for _ in 0..steps {
        let (a, b) = (vm.perturb(x), vm.perturb(x));
        // Any scalar of both views: what reaches the viewmaker is the gradient at its output.
        (a * b).mean(Kind::Float).backward();
    }
    sync();
    start.elapsed().as_secs_f64() / steps as f64
}

/// The median over `reps` of NCHW time / channels-last time, both timed by `time(channels_last)`
/// in alternation.
fn ratio(reps: usize, mut time: impl FnMut(bool) -> f64) -> (f64, f64, f64) {
    let (mut nchw, mut cl) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        for layout in if rep % 2 == 0 { [false, true] } else { [true, false] } {
            let t = time(layout);
            if layout { cl.push(t) } else { nchw.push(t) }
        }
    }
    let ratios: Vec<f64> = nchw.iter().zip(&cl).map(|(a, b)| a / b).collect();
    (median(nchw), median(cl), median(ratios))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn main() -> anyhow::Result<()> {
    // As featdrop's binaries start (featdrop_core::heap): the layouts are compared as they run.
    featdrop_core::heap::keep_freed_memory();
    let device = DeviceChoice::for_bench().map_err(anyhow::Error::msg)?;
    let dev = device.resolve()?;
    let smoke = !std::env::args().any(|a| a == "--bench");
    let env = |k: &str, default: usize| std::env::var(k).ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let (steps, reps) = if smoke { (1, 1) } else { (env("FEATDROP_BENCH_STEPS", 2), env("FEATDROP_BENCH_REPS", 3)) };
    let only: Option<Vec<String>> =
        std::env::var("FEATDROP_BENCH_CASES").ok().map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let selected = |name: &str, paper: bool| match &only {
        Some(names) => names.iter().any(|n| n == name),
        None => !(smoke && paper),
    };
    let sync = move || {
        if let Device::Cuda(i) = dev {
            tch::Cuda::synchronize(i as i64);
        }
    };
    println!(
        "| case | NCHW s/step | channels-last s/step | NCHW / channels-last | ({dev:?}, {steps} steps × {reps} reps) |"
    );
    println!("|---|---:|---:|---:|---|");
    let mut record = serde_json::Map::new();
    for case in ENCODER_CASES.iter().filter(|c| selected(c.name, c.paper)) {
        let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
        let mut trainers = [trainer(case, device, false, dirs[0].path()), trainer(case, device, true, dirs[1].path())];
        trainers.iter_mut().for_each(|t| {
            t.time_steps(1); // warm-up
        });
        let images = (2 * case.batch * steps) as f64;
        let (a, b, r) = ratio(reps, |cl| images / trainers[usize::from(cl)].time_steps(steps) / steps as f64);
        println!("| {} (encoder) | {a:.3} | {b:.3} | {r:.2}× |", case.name);
        record.insert(case.name.into(), json!({"nchw_s": a, "channels_last_s": b, "ratio": r}));
    }
    for (name, width, batch, _) in VIEWMAKER_CASES.into_iter().filter(|c| selected(c.0, c.3)) {
        let build = |cl: bool| -> anyhow::Result<(VarStore, Viewmaker, Tensor)> {
            let vs = VarStore::new(dev);
            let spec = ViewmakerSpec { width_mult: width, ..ViewmakerSpec::published(3, 0.05) };
            let vm = tch::no_grad(|| Viewmaker::new(&vs.root(), spec))?;
            let x = Tensor::rand([batch, 3, 32, 32], (Kind::Float, dev));
            if cl {
                module_to_channels_last(&vs)?;
            }
            Ok((vs, vm, if cl { to_channels_last(&x) } else { x }))
        };
        let nets = [build(false)?, build(true)?];
        nets.iter().for_each(|(_, vm, x)| {
            viewmaker_seconds(vm, x, 1, &sync); // warm-up
        });
        let (a, b, r) = ratio(reps, |cl| {
            let (_, vm, x) = &nets[usize::from(cl)];
            viewmaker_seconds(vm, x, steps, &sync)
        });
        println!("| {name} (two views, forward + backward) | {a:.3} | {b:.3} | {r:.2}× |");
        record.insert(name.into(), json!({"nchw_s": a, "channels_last_s": b, "ratio": r}));
    }
    println!(
        "{}",
        json!({"bench": "layout", "device": format!("{dev:?}"), "steps": steps, "reps": reps,
        "threads": tch::get_num_threads(), "cases": record})
    );
    Ok(())
}
