//! Training-step throughput (images/s; a pair counts as two images) for the paper configuration
//! (ResNet-18, batch 256, 32×32, full viewmaker) with alternating and simultaneous updates, and the
//! small CPU configuration, on one device. The ratios compare update orders and scales measured in
//! this same run.
//!
//! `cargo xtask bench train [--device cuda]`, or `cargo bench -p featdrop-contrastive --bench train
//! -- cpu|cuda|cuda:N|auto`. `FEATDROP_BENCH_STEPS` sets the timed steps (default 5 on CUDA, 2 on
//! the CPU where a paper-sized step takes tens of seconds).

use featdrop_contrastive::Trainer;
use featdrop_core::config::{Arch, UpdateOrder};
use featdrop_core::{BaseViews, DeviceChoice, RunConfig, RunDir};
use serde_json::json;

struct Case {
    name: &'static str,
    arch: Arch,
    width: usize,
    vm_width: f64,
    batch: usize,
    update: UpdateOrder,
}

const CASES: [Case; 4] = [
    Case {
        name: "paper-alternating",
        arch: Arch::Resnet18,
        width: 64,
        vm_width: 1.0,
        batch: 256,
        update: UpdateOrder::Alternating,
    },
    Case {
        name: "paper-simultaneous",
        arch: Arch::Resnet18,
        width: 64,
        vm_width: 1.0,
        batch: 256,
        update: UpdateOrder::Simultaneous,
    },
    Case {
        name: "small-alternating",
        arch: Arch::Small,
        width: 16,
        vm_width: 0.25,
        batch: 128,
        update: UpdateOrder::Alternating,
    },
    Case {
        name: "small-expert",
        arch: Arch::Small,
        width: 16,
        vm_width: 0.25,
        batch: 128,
        update: UpdateOrder::Alternating,
    },
];

fn measure(case: &Case, device: DeviceChoice, steps: usize) -> anyhow::Result<f64> {
    let mode = if case.name == "small-expert" { BaseViews::Expert } else { BaseViews::Viewmaker };
    let mut cfg = RunConfig::new("bench", "photos+digits", mode, 0);
    cfg.device = device;
    (cfg.data.train_size, cfg.data.test_size) = (case.batch * 2, 64);
    (cfg.encoder.arch, cfg.encoder.width) = (case.arch, case.width);
    (cfg.train.batch_size, cfg.train.update) = (case.batch, case.update);
    cfg.viewmaker.width_mult = case.vm_width;
    let dir = tempfile::tempdir()?;
    let mut trainer = Trainer::from_config(cfg, RunDir::at(dir.path()))?;
    trainer.time_steps(1); // warm-up: allocator, cuDNN autotuning
    Ok(trainer.time_steps(steps))
}

fn main() -> anyhow::Result<()> {
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
    let mut rates = serde_json::Map::new();
    for case in CASES.iter().filter(|c| !smoke || c.arch == Arch::Small) {
        let r = measure(case, device, steps)?;
        println!("{:<20} {:>9.1} images/s  (batch {}, {} timed steps, {resolved:?})", case.name, r, case.batch, steps);
        rates.insert(case.name.into(), json!(r));
    }
    let get = |k: &str| rates.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
    let ratio = get("paper-simultaneous") / get("paper-alternating");
    let small_vs_paper = get("small-alternating") / get("paper-alternating");
    if smoke {
        println!("(smoke run: the paper configurations, and so the ratios, need `cargo xtask bench train`)");
    } else {
        println!("simultaneous / alternating (paper): {ratio:.2}x; small / paper (alternating): {small_vs_paper:.1}x");
    }
    let record = json!({"bench": "train", "device": format!("{resolved:?}"), "steps": steps, "images_per_s": rates,
        "ratio_simultaneous_vs_alternating": ratio, "ratio_small_vs_paper": small_vs_paper});
    println!("{record}");
    Ok(())
}
