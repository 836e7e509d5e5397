//! `cargo xtask bench <data|audio|views|train|reference>`: runs a crate's benchmark (release build)
//! after set-up. Each benchmark measures a batched path against a baseline in the same run and
//! prints the ratio, plus one JSON line for other tools. `reference` measures featdrop's training
//! step against the published pipeline rebuilt in PyTorch (benches/reference/simclr_reference.py).

mod trace;

use crate::{libtorch, paths, pytorch};
use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use std::process::Command;

/// (name, package, bench target, what it measures)
pub const BENCHES: [(&str, &str, &str, &str); 4] = [
    ("data", "featdrop-data", "compose", "composing 256 photos+letters examples: batched vs per-image"),
    ("audio", "featdrop-data", "spectrogram", "log-mel features of 128 clips: batched vs per-example"),
    ("views", "featdrop-augment", "views", "expert views of 256 images: batched vs per-image"),
    ("train", "featdrop-contrastive", "train", "training steps (images/s): paper and small configurations"),
];

/// The configurations `reference` compares; each is a case of featdrop's train bench and a
/// `--config` of the PyTorch script.
pub const REFERENCE_CONFIGS: [&str; 4] = ["paper-expert", "paper-alternating", "small-expert", "small-alternating"];

pub fn run(which: &str, device: &str, profile: bool) -> Result<()> {
    if which == "reference" {
        return reference(device, profile);
    }
    ensure!(!profile, "--profile goes with `bench reference` only");
    let selected: Vec<_> = BENCHES.iter().filter(|b| which == "all" || b.0 == which).collect();
    ensure!(
        !selected.is_empty(),
        "unknown benchmark `{which}`; accepted: all, {}, reference",
        BENCHES.iter().map(|b| b.0).collect::<Vec<_>>().join(", ")
    );
    let lt = libtorch::setup()?;
    for (name, package, target, what) in selected {
        eprintln!("==> bench {name}: {what} (device {device})");
        let mut cmd = paths::cargo(&lt.root);
        cmd.args(["bench", "-q", "-p", package, "--bench", target, "--", device]);
        cmd.env("FEATDROP_DEVICE", device);
        let status = cmd.status()?;
        ensure!(status.success(), "bench {name} failed ({status})");
    }
    Ok(())
}

/// The 1-minute load average, so that every figure carries the machine's state when it was taken.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The last stdout line of `cmd` that parses as a JSON object, failing with its stderr otherwise.
fn json_line(mut cmd: Command, what: &str) -> Result<Value> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    ensure!(out.status.success(), "{what} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok().filter(Value::is_object))
        .with_context(|| format!("{what} printed no JSON line:\n{stdout}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// featdrop's train bench and the PyTorch pipeline, configuration by configuration, repetitions
/// interleaved (featdrop first on even repetitions, PyTorch first on odd ones) so that a change in
/// the machine's load falls on both. `FEATDROP_BENCH_STEPS` (timed steps per measurement, default 2
/// on the CPU, 5 on CUDA), `FEATDROP_BENCH_REPS` (default 1) and `FEATDROP_BENCH_CONFIGS`
/// (comma-separated subset) shape it. With `profile`, each configuration is then run once more on
/// both sides under libtorch's profiler and compared op by op ([`trace::print_comparison`]).
fn reference(device: &str, profile: bool) -> Result<()> {
    let lt = libtorch::setup()?;
    let python = pytorch::python(&lt)?;
    pytorch::ensure(&python, &[("numpy", "numpy"), ("PIL", "pillow"), ("torchvision", pytorch::TORCHVISION)])?;
    let script = paths::repo_root().join("benches/reference/simclr_reference.py");
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let steps: usize = env("FEATDROP_BENCH_STEPS").map_or(Ok(if device == "cpu" { 2 } else { 5 }), |s| s.parse())?;
    let reps: usize = env("FEATDROP_BENCH_REPS").map_or(Ok(1), |s| s.parse())?;
    let configs: Vec<String> = match env("FEATDROP_BENCH_CONFIGS") {
        Some(v) => v.split(',').map(|s| s.trim().to_string()).collect(),
        None => REFERENCE_CONFIGS.iter().map(|s| s.to_string()).collect(),
    };
    for c in &configs {
        ensure!(
            REFERENCE_CONFIGS.contains(&c.as_str()),
            "FEATDROP_BENCH_CONFIGS: unknown `{c}`; known: {REFERENCE_CONFIGS:?}"
        );
    }
    eprintln!(
        "==> bench reference: featdrop vs the PyTorch pipeline, {steps} timed steps, {reps} repetition(s), {device}"
    );
    let mut build = paths::cargo(&lt.root);
    build.args(["bench", "-q", "-p", "featdrop-contrastive", "--bench", "train", "--no-run"]);
    ensure!(build.status()?.success(), "building the train bench failed");

    let trace_dir = paths::repo_root().join("target/bench-traces");
    let featdrop = |config: &str, traced: bool| -> Result<(f64, f64)> {
        let mut cmd = paths::cargo(&lt.root);
        cmd.args(["bench", "-q", "-p", "featdrop-contrastive", "--bench", "train", "--", device]);
        cmd.env("FEATDROP_DEVICE", device)
            .env("FEATDROP_BENCH_CASES", config)
            .env("FEATDROP_BENCH_STEPS", steps.to_string());
        if traced {
            cmd.env("FEATDROP_BENCH_TRACE", &trace_dir);
        }
        let load = load_average();
        let v = json_line(cmd, &format!("featdrop's train bench ({config})"))?;
        let r = v["pairs_per_s"][config].as_f64().with_context(|| format!("no pairs_per_s.{config} in {v}"))?;
        Ok((r, load))
    };
    let pytorch = |config: &str, traced: bool| -> Result<(f64, f64)> {
        let mut cmd = Command::new(&python);
        cmd.arg(&script).args(["--config", config, "--steps", &steps.to_string(), "--device", device]);
        if traced {
            cmd.arg("--trace").arg(trace_dir.join(format!("pytorch-{config}.json")));
        }
        let load = load_average();
        let v = json_line(cmd, &format!("the PyTorch pipeline ({config})"))?;
        Ok((v["pairs_per_s"].as_f64().with_context(|| format!("no pairs_per_s in {v}"))?, load))
    };

    println!("| configuration | featdrop pairs/s | PyTorch pairs/s | featdrop / PyTorch | load (1 min) |");
    println!("|---|---:|---:|---:|---:|");
    let mut record = serde_json::Map::new();
    for config in &configs {
        let (mut ours, mut theirs, mut loads) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..reps {
            let (a, b) = if rep % 2 == 0 {
                let a = featdrop(config, false)?;
                (a, pytorch(config, false)?)
            } else {
                let b = pytorch(config, false)?;
                (featdrop(config, false)?, b)
            };
            eprintln!(
                "  {config} rep {rep}: featdrop {:.2}, PyTorch {:.2} pairs/s (load {:.1}/{:.1})",
                a.0, b.0, a.1, b.1
            );
            ours.push(a.0);
            theirs.push(b.0);
            loads.extend([a.1, b.1]);
        }
        let ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a / b).collect();
        let (o, t, r) = (median(ours.clone()), median(theirs.clone()), median(ratios.clone()));
        let load = loads.iter().sum::<f64>() / loads.len() as f64;
        println!("| {config} | {o:.2} | {t:.2} | {r:.2}× | {load:.1} |");
        record.insert(
            config.clone(),
            json!({"featdrop_pairs_per_s": ours, "pytorch_pairs_per_s": theirs, "ratios": ratios, "median_ratio": r, "load_avg": loads}),
        );
    }
    println!("{}", json!({"bench": "reference", "device": device, "steps": steps, "reps": reps, "configs": record}));
    if profile {
        std::fs::create_dir_all(&trace_dir).with_context(|| format!("creating {}", trace_dir.display()))?;
        let mut profiles = serde_json::Map::new();
        for config in &configs {
            featdrop(config, true)?;
            pytorch(config, true)?;
            let ours = trace::op_times(&trace_dir.join(format!("featdrop-{config}.json")))?;
            let theirs = trace::op_times(&trace_dir.join(format!("pytorch-{config}.json")))?;
            // ResNet-18 on 32×32 costs ≈ 0.56 GFLOP per image forward and ≈ 3× that to train; the
            // expert step trains on both views of each pair. (The viewmaker steps' arithmetic is not
            // tallied.)
            let gflop = (config == "paper-expert").then_some(0.56 * 3.0 * 2.0 * 256.0);
            profiles.insert(config.clone(), trace::print_comparison(config, (&ours, &theirs), steps, 15, gflop));
        }
        eprintln!("traces (open in chrome://tracing or Perfetto): {}", trace_dir.display());
        println!("{}", json!({"bench": "reference-profile", "device": device, "steps": steps, "configs": profiles}));
    }
    Ok(())
}
