//! Training-step throughput (images/s; a pair counts as two images) for the paper configuration
//! (ResNet-18, batch 256, 32×32) with expert views and with the full viewmaker under alternating
//! and simultaneous updates, and the small CPU configuration, on one device. The ratios compare
//! update orders and scales measured in this same run.
//!
//! `cargo xtask bench train [--device cuda]`, or `cargo bench -p featdrop-contrastive --bench train
//! -- cpu|cuda|cuda:N|auto`. `FEATDROP_BENCH_STEPS` sets the timed steps (default 5 on CUDA, 2 on
//! the CPU where a paper-sized step takes tens of seconds); `FEATDROP_BENCH_CASES` (comma-separated
//! case names) runs only those cases (`cargo xtask bench reference` runs them one at a time,
//! interleaved with the PyTorch pipeline's). `FEATDROP_BENCH_CHANNELS_LAST=0|1` overrides the
//! encoder's memory layout (default: what `train.channels_last = "auto"` picks on the device),
//! `FEATDROP_BENCH_BF16=1` turns on bf16 autocast (`train.bf16`); `FEATDROP_BENCH_PROFILE=1` times the phases of the expert cases' steps
//! instead; `FEATDROP_BENCH_TRACE=DIR` runs the timed steps under libtorch's profiler and saves
//! `DIR/featdrop-<case>.json` (a Chrome trace).

use featdrop_contrastive::optim::Sgd;
use featdrop_contrastive::{Encoder, ResNet, Trainer, simclr_published};
use featdrop_core::config::{Arch, ChannelsLast, UpdateOrder};
use featdrop_core::{BaseViews, DeviceChoice, RunConfig, RunDir};
use serde_json::json;

struct Case {
    name: &'static str,
    mode: BaseViews,
    arch: Arch,
    width: usize,
    vm_width: f64,
    batch: usize,
    update: UpdateOrder,
}

const CASES: [Case; 5] = [
    Case {
        name: "paper-expert",
        mode: BaseViews::Expert,
        arch: Arch::Resnet18,
        width: 64,
        vm_width: 1.0,
        batch: 256,
        update: UpdateOrder::Alternating,
    },
    Case {
        name: "paper-alternating",
        mode: BaseViews::Viewmaker,
        arch: Arch::Resnet18,
        width: 64,
        vm_width: 1.0,
        batch: 256,
        update: UpdateOrder::Alternating,
    },
    Case {
        name: "paper-simultaneous",
        mode: BaseViews::Viewmaker,
        arch: Arch::Resnet18,
        width: 64,
        vm_width: 1.0,
        batch: 256,
        update: UpdateOrder::Simultaneous,
    },
    Case {
        name: "small-alternating",
        mode: BaseViews::Viewmaker,
        arch: Arch::Small,
        width: 16,
        vm_width: 0.25,
        batch: 128,
        update: UpdateOrder::Alternating,
    },
    Case {
        name: "small-expert",
        mode: BaseViews::Expert,
        arch: Arch::Small,
        width: 16,
        vm_width: 0.25,
        batch: 128,
        update: UpdateOrder::Alternating,
    },
];

fn config(case: &Case, device: DeviceChoice) -> RunConfig {
    let mut cfg = RunConfig::new("bench", "photos+digits", case.mode, 0);
    cfg.device = device;
    (cfg.data.train_size, cfg.data.test_size) = (case.batch * 2, 64);
    (cfg.encoder.arch, cfg.encoder.width) = (case.arch, case.width);
    (cfg.train.batch_size, cfg.train.update) = (case.batch, case.update);
    cfg.viewmaker.width_mult = case.vm_width;
    // Knobs for measuring what the memory layout and bf16 are worth (the defaults: the layout
    // `auto` picks for the device, fp32).
    if let Ok(v) = std::env::var("FEATDROP_BENCH_CHANNELS_LAST") {
        cfg.train.channels_last = ChannelsLast::Fixed(v == "1");
    }
    cfg.train.bf16 = std::env::var("FEATDROP_BENCH_BF16").is_ok_and(|v| v == "1");
    cfg
}

/// Images per second of `steps` training steps of `case`, and whether they ran channels-last.
fn measure(case: &Case, device: DeviceChoice, steps: usize) -> anyhow::Result<(f64, bool)> {
    let dir = tempfile::tempdir()?;
    let mut trainer = Trainer::from_config(config(case, device), RunDir::at(dir.path()))?;
    let channels_last = trainer.config().train.channels_last == ChannelsLast::Fixed(true);
    trainer.time_steps(1); // warm-up: allocator, cuDNN autotuning
    let rate = match std::env::var_os("FEATDROP_BENCH_TRACE") {
        // libtorch's profiler over the timed steps, saved as a Chrome trace (`cargo xtask bench
        // reference --profile` compares it op by op with the PyTorch pipeline's).
        Some(trace_dir) => {
            let trace = std::path::Path::new(&trace_dir).join(format!("featdrop-{}.json", case.name));
            featdrop_torch_ext::profile(&trace, device.resolve()?.is_cuda(), || trainer.time_steps(steps))?
        }
        None => trainer.time_steps(steps),
    };
    Ok((rate, channels_last))
}

/// Where an expert step's time goes (`FEATDROP_BENCH_PROFILE=1`): the trainer's step for fixed
/// views (overlay composition, views without autograd, two forward passes and the loss, backward,
/// SGD), rebuilt from the public parts and timed phase by phase, seconds per step.
fn profile(case: &Case, device: DeviceChoice, steps: usize) -> anyhow::Result<serde_json::Value> {
    use featdrop_contrastive::assembly::{encoder_spec, open_dataset, view_family};
    use featdrop_contrastive::trainer::named_trainable;
    use featdrop_core::Split;
    use std::time::Instant;
    let cfg = config(case, device);
    let dev = cfg.device.resolve()?;
    let data = open_dataset(&cfg, dev)?;
    let vs = tch::nn::VarStore::new(dev);
    let encoder = ResNet::new(&vs.root(), encoder_spec(&cfg, data.modality()));
    let channels_last = cfg.train.channels_last.resolve(dev.is_cuda(), cfg.encoder.arch);
    if channels_last {
        featdrop_torch_ext::module_to_channels_last(&vs)?;
    }
    let layout =
        |v: &tch::Tensor| if channels_last { featdrop_torch_ext::to_channels_last(v) } else { v.shallow_clone() };
    let views = view_family(&cfg, data.modality(), dev)?;
    let t = &cfg.train;
    let mut sgd = Sgd::new(named_trainable(&vs), t.lr, t.momentum, t.weight_decay);
    let idx = tch::Tensor::arange(case.batch as i64, (tch::Kind::Int64, dev));
    let phases = ["overlay composition", "views", "forward + loss", "backward", "optimiser"];
    let mut total = [0.0; 5];
    for step in 0..=steps {
        let mut laps = [0.0; 5];
        let mut clock = Instant::now();
        let mut lap = |i: usize| {
            laps[i] = clock.elapsed().as_secs_f64();
            clock = Instant::now();
        };
        let pair = data.pair(Split::Train, &idx, 0.0, step as u64);
        lap(0);
        let (v1, v2) = tch::no_grad(|| (views.view(&pair.first.inputs, 2 * step as u64), views.view(&pair.second, 1)));
        lap(1);
        let loss =
            simclr_published(&encoder.embed(&layout(&v1), true), &encoder.embed(&layout(&v2), true), t.temperature);
        lap(2);
        sgd.zero_grad();
        loss.backward();
        lap(3);
        sgd.step();
        lap(4);
        if step > 0 {
            total.iter_mut().zip(laps).for_each(|(a, b)| *a += b / steps as f64);
        }
    }
    let sum: f64 = total.iter().sum();
    for (name, s) in phases.iter().zip(total) {
        println!("  {name:<20} {s:>7.2} s/step  {:>5.1} %", 100.0 * s / sum);
    }
    // ResNet-18 on 32×32: ≈0.56 GFLOP per image forward, ≈3× that to train (two views per pair).
    let gflop = 0.56 * 3.0 * 2.0 * case.batch as f64 * if case.arch == Arch::Resnet18 { 1.0 } else { f64::NAN };
    println!("  step {sum:.2} s; encoder forward+backward {:.1} GFLOP/s", gflop / (total[2] + total[3]));
    let record: serde_json::Map<_, _> = phases.iter().zip(total).map(|(n, s)| (n.to_string(), json!(s))).collect();
    Ok(json!({"case": case.name, "channels_last": channels_last, "seconds_per_step": record,
        "encoder_gflop_per_s": gflop / (total[2] + total[3])}))
}

fn main() -> anyhow::Result<()> {
    // As featdrop's binaries start (featdrop_core::heap): the defaults are what is measured.
    let heap = featdrop_core::heap::keep_freed_memory();
    let device = DeviceChoice::for_bench().map_err(anyhow::Error::msg)?;
    let resolved = device.resolve()?;
    // `cargo test --all-targets` runs this file too, without `--bench`: then it is a smoke test of
    // the small configurations (a CPU paper-sized step takes tens of seconds).
    let smoke = !std::env::args().any(|a| a == "--bench");
    let default_steps = if resolved.is_cuda() {
        5
    } else if smoke {
        1
    } else {
        2
    };
    let steps = std::env::var("FEATDROP_BENCH_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(default_steps);
    let only: Option<Vec<String>> =
        std::env::var("FEATDROP_BENCH_CASES").ok().map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    if let Some(names) = &only {
        let unknown: Vec<&String> = names.iter().filter(|n| !CASES.iter().any(|c| c.name == n.as_str())).collect();
        let known: Vec<&str> = CASES.iter().map(|c| c.name).collect();
        anyhow::ensure!(unknown.is_empty(), "FEATDROP_BENCH_CASES: unknown {unknown:?}; known: {known:?}");
    }
    let selected = |c: &Case| match &only {
        Some(names) => names.iter().any(|n| n == c.name),
        None => !smoke || c.arch == Arch::Small,
    };
    if std::env::var("FEATDROP_BENCH_PROFILE").is_ok_and(|v| v == "1") {
        for case in CASES.iter().filter(|c| selected(c) && c.mode == BaseViews::Expert) {
            println!("{} phases ({steps} timed steps, {resolved:?}):", case.name);
            println!("{}", profile(case, device, steps)?);
        }
        return Ok(());
    }
    let mut rates = serde_json::Map::new();
    let mut layouts = serde_json::Map::new();
    for case in CASES.iter().filter(|c| selected(c)) {
        let (r, channels_last) = measure(case, device, steps)?;
        let layout = if channels_last { "channels-last" } else { "NCHW" };
        println!(
            "{:<20} {:>9.1} images/s  (batch {}, {} timed steps, {resolved:?}, {layout})",
            case.name, r, case.batch, steps
        );
        rates.insert(case.name.into(), json!(r));
        layouts.insert(case.name.into(), json!(channels_last));
    }
    let get = |k: &str| rates.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
    let ratio = get("paper-simultaneous") / get("paper-alternating");
    let small_vs_paper = get("small-alternating") / get("paper-alternating");
    if smoke || only.is_some() {
        println!("(the ratios need every case: `cargo xtask bench train`)");
    } else {
        println!("simultaneous / alternating (paper): {ratio:.2}x; small / paper (alternating): {small_vs_paper:.1}x");
    }
    let pairs: serde_json::Map<_, _> =
        rates.iter().map(|(k, v)| (k.clone(), json!(v.as_f64().unwrap_or(f64::NAN) / 2.0))).collect();
    let record = json!({"bench": "train", "device": format!("{resolved:?}"), "steps": steps, "images_per_s": rates,
        "pairs_per_s": pairs, "channels_last": layouts, "bf16": config(&CASES[0], device).train.bf16,
        "threads": tch::get_num_threads(), "heap": format!("{heap:?}"),
        "ratio_simultaneous_vs_alternating": ratio, "ratio_small_vs_paper": small_vs_paper});
    println!("{record}");
    Ok(())
}
