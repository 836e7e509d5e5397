//! `cargo xtask bench <data|audio|views|train|layout|reference|gpu>`: runs a crate's benchmark
//! (release build) after set-up. Each benchmark measures a batched path against a baseline in the
//! same run and prints the ratio, plus one JSON line for other tools. `reference` measures
//! featdrop's training step against the published pipeline rebuilt in PyTorch
//! (benches/reference/simclr_reference.py); `gpu` runs every measurement a first GPU should make,
//! into one JSON file ([`gpu`]).

pub mod gpu;
mod trace;

use crate::{libtorch, paths, pytorch};
use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use std::process::Command;

/// (name, package, bench target, what it measures)
pub const BENCHES: [(&str, &str, &str, &str); 5] = [
    ("data", "featdrop-data", "compose", "composing 256 photos+letters examples: batched vs per-image"),
    ("audio", "featdrop-data", "spectrogram", "log-mel features of 128 clips: batched vs per-example"),
    ("views", "featdrop-augment", "views", "expert views of 256 images: batched vs per-image"),
    ("train", "featdrop-contrastive", "train", "training steps (images/s): paper and small configurations"),
    (
        "layout",
        "featdrop-contrastive",
        "layout",
        "encoder and viewmaker steps, NCHW vs channels-last (train.channels_last)",
    ),
];

/// The configurations `reference` compares; each is a case of featdrop's train bench and a
/// `--config` of the PyTorch script.
pub const REFERENCE_CONFIGS: [&str; 4] = ["paper-expert", "paper-alternating", "small-expert", "small-alternating"];

/// `bench <which>` on `device` (default: cuda for `gpu`, cpu otherwise).
pub fn run(which: &str, device: Option<&str>, profile: bool, gpu_args: &gpu::GpuArgs) -> Result<()> {
    if which == "gpu" {
        ensure!(!profile, "--profile goes with `bench reference` only");
        return gpu::run(device.unwrap_or("cuda"), gpu_args);
    }
    ensure!(!gpu_args.given(), "--out, --bin-dir and --steps go with `bench gpu` only");
    let device = device.unwrap_or("cpu");
    if which == "reference" {
        return reference(device, profile);
    }
    ensure!(!profile, "--profile goes with `bench reference` only");
    let selected: Vec<_> = BENCHES.iter().filter(|b| which == "all" || b.0 == which).collect();
    ensure!(
        !selected.is_empty(),
        "unknown benchmark `{which}`; accepted: all, {}, reference, gpu",
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

/// The two layouts the PyTorch pipeline is timed in: as published (NCHW), and with its models and
/// inputs channels-last, the fastest plain PyTorch a user could write (`--channels-last`).
const PYTORCH_LAYOUTS: [(&str, bool); 2] = [("PyTorch", false), ("PyTorch channels-last", true)];

/// featdrop's train bench (its defaults: the layout `train.channels_last = "auto"` picks) and the
/// PyTorch pipeline in both [`PYTORCH_LAYOUTS`], configuration by configuration, repetitions
/// interleaved (the order of the three rotates every repetition) so that a change in the machine's
/// load falls on all. `FEATDROP_BENCH_STEPS` (timed steps per measurement, default 2 on the CPU, 5
/// on CUDA), `FEATDROP_BENCH_REPS` (default 1), `FEATDROP_BENCH_CONFIGS` (comma-separated subset)
/// `FEATDROP_BENCH_BF16=1` (bf16 autocast on both sides) and `FEATDROP_BENCH_PYTORCH_HEAP=1` (the
/// PyTorch processes get the C heap setting featdrop's binaries start with, through glibc's
/// environment variables: see `featdrop_core::heap`) shape it. With `profile`, each
/// configuration is then run once more on both sides (PyTorch as published) under libtorch's
/// profiler and compared op by op ([`trace::print_comparison`]).
fn reference(device: &str, profile: bool) -> Result<()> {
    let lt = libtorch::setup()?;
    let python = pytorch::python(&lt)?;
    pytorch::ensure(&python, &[("numpy", "numpy"), ("PIL", "pillow"), ("torchvision", pytorch::TORCHVISION)])?;
    let script = paths::repo_root().join("benches/reference/simclr_reference.py");
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let steps: usize = env("FEATDROP_BENCH_STEPS").map_or(Ok(if device == "cpu" { 2 } else { 5 }), |s| s.parse())?;
    let reps: usize = env("FEATDROP_BENCH_REPS").map_or(Ok(1), |s| s.parse())?;
    let bf16 = env("FEATDROP_BENCH_BF16").is_some_and(|v| v == "1");
    let pytorch_heap = env("FEATDROP_BENCH_PYTORCH_HEAP").is_some_and(|v| v == "1");
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
    let precision = if bf16 { "bf16 autocast" } else { "fp32" };
    let heap =
        if pytorch_heap { "featdrop's heap setting on both sides" } else { "PyTorch with glibc's heap defaults" };
    eprintln!(
        "==> bench reference: featdrop vs the PyTorch pipeline (NCHW and channels-last), {steps} timed steps, \
         {reps} repetition(s), {device}, {precision}, {heap}"
    );
    let mut build = paths::cargo(&lt.root);
    build.args(["bench", "-q", "-p", "featdrop-contrastive", "--bench", "train", "--no-run"]);
    ensure!(build.status()?.success(), "building the train bench failed");

    let trace_dir = paths::repo_root().join("target/bench-traces");
    // (pairs/s, load average, whether it ran channels-last)
    let featdrop = |config: &str, traced: bool| -> Result<(f64, f64, bool)> {
        let mut cmd = paths::cargo(&lt.root);
        cmd.args(["bench", "-q", "-p", "featdrop-contrastive", "--bench", "train", "--", device]);
        cmd.env("FEATDROP_DEVICE", device)
            .env("FEATDROP_BENCH_CASES", config)
            .env("FEATDROP_BENCH_STEPS", steps.to_string())
            .env("FEATDROP_BENCH_BF16", if bf16 { "1" } else { "0" });
        if traced {
            cmd.env("FEATDROP_BENCH_TRACE", &trace_dir);
        }
        let load = load_average();
        let v = json_line(cmd, &format!("featdrop's train bench ({config})"))?;
        let r = v["pairs_per_s"][config].as_f64().with_context(|| format!("no pairs_per_s.{config} in {v}"))?;
        Ok((r, load, v["channels_last"][config].as_bool().unwrap_or(false)))
    };
    let pytorch = |config: &str, channels_last: bool, traced: bool| -> Result<(f64, f64)> {
        let mut cmd = Command::new(&python);
        cmd.arg(&script).args(["--config", config, "--steps", &steps.to_string(), "--device", device]);
        cmd.args(channels_last.then_some("--channels-last")).args(bf16.then_some("--bf16"));
        if pytorch_heap {
            // glibc's names for featdrop_core::heap's mallopt calls: no mmap, no trimming (1 TiB).
            cmd.env("MALLOC_MMAP_MAX_", "0").env("MALLOC_TRIM_THRESHOLD_", "1099511627776");
        }
        if traced {
            cmd.arg("--trace").arg(trace_dir.join(format!("pytorch-{config}.json")));
        }
        let load = load_average();
        let what = format!("the PyTorch pipeline ({config}{})", if channels_last { ", channels-last" } else { "" });
        let v = json_line(cmd, &what)?;
        Ok((v["pairs_per_s"].as_f64().with_context(|| format!("no pairs_per_s in {v}"))?, load))
    };

    println!("{}", table_header());
    let mut record = serde_json::Map::new();
    for config in &configs {
        let mut m = Measured::default();
        for rep in 0..reps {
            // featdrop, PyTorch, PyTorch channels-last; each repetition starts one further along.
            for k in 0..3 {
                match (rep + k) % 3 {
                    0 => {
                        let (r, load, cl) = featdrop(config, false)?;
                        m.ours.push(r);
                        m.featdrop_channels_last = cl;
                        m.loads.push(load);
                    }
                    i => {
                        let (r, load) = pytorch(config, PYTORCH_LAYOUTS[i - 1].1, false)?;
                        m.theirs[i - 1].push(r);
                        m.loads.push(load);
                    }
                }
            }
            let last = |v: &Vec<f64>| v.last().copied().unwrap_or(f64::NAN);
            eprintln!(
                "  {config} rep {rep}: featdrop {:.2}, PyTorch {:.2}, PyTorch channels-last {:.2} pairs/s",
                last(&m.ours),
                last(&m.theirs[0]),
                last(&m.theirs[1])
            );
        }
        println!("{}", m.row(config));
        record.insert(config.clone(), m.record());
    }
    println!(
        "{}",
        json!({"bench": "reference", "device": device, "steps": steps, "reps": reps, "bf16": bf16,
            "pytorch_heap_as_featdrop": pytorch_heap, "configs": record})
    );
    if profile {
        std::fs::create_dir_all(&trace_dir).with_context(|| format!("creating {}", trace_dir.display()))?;
        let mut profiles = serde_json::Map::new();
        for config in &configs {
            featdrop(config, true)?;
            pytorch(config, false, true)?;
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

/// The header of the per-configuration table `bench reference` prints.
fn table_header() -> String {
    let columns = ["configuration", "featdrop pairs/s (layout)", "PyTorch pairs/s", "PyTorch channels-last pairs/s"];
    let ratios = ["featdrop / PyTorch", "featdrop / PyTorch channels-last", "load (1 min)"];
    format!("| {} | {} |\n|---|---:|---:|---:|---:|---:|---:|", columns.join(" | "), ratios.join(" | "))
}

/// One configuration's measurements in `bench reference`: pairs per second per repetition.
#[derive(Default)]
struct Measured {
    ours: Vec<f64>,
    /// Whether featdrop's defaults ran channels-last.
    featdrop_channels_last: bool,
    /// PyTorch in each of [`PYTORCH_LAYOUTS`].
    theirs: [Vec<f64>; 2],
    loads: Vec<f64>,
}

impl Measured {
    /// featdrop / PyTorch per repetition, for each PyTorch layout.
    fn ratios(&self) -> [Vec<f64>; 2] {
        self.theirs.clone().map(|t| self.ours.iter().zip(&t).map(|(a, b)| a / b).collect())
    }

    /// The table row: medians over repetitions, and the mean load.
    fn row(&self, config: &str) -> String {
        let [r, rc] = self.ratios().map(median);
        let layout = if self.featdrop_channels_last { "channels-last" } else { "NCHW" };
        let load = self.loads.iter().sum::<f64>() / self.loads.len() as f64;
        format!(
            "| {config} | {:.2} ({layout}) | {:.2} | {:.2} | {r:.2}× | {rc:.2}× | {load:.1} |",
            median(self.ours.clone()),
            median(self.theirs[0].clone()),
            median(self.theirs[1].clone())
        )
    }

    fn record(&self) -> Value {
        let [r, rc] = self.ratios();
        json!({"featdrop_pairs_per_s": self.ours, "featdrop_channels_last": self.featdrop_channels_last,
            "pytorch_pairs_per_s": self.theirs[0], "pytorch_channels_last_pairs_per_s": self.theirs[1],
            "ratios": r, "median_ratio": median(r.clone()),
            "ratios_vs_channels_last": rc, "median_ratio_vs_channels_last": median(rc.clone()),
            "load_avg": self.loads})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 25 item 5: each row shows featdrop against both PyTorch layouts, with as many cells as
    /// the header has columns.
    #[test]
    fn a_reference_row_has_both_ratios_and_fits_the_header() {
        let m = Measured {
            ours: vec![15.0, 13.0],
            featdrop_channels_last: true,
            theirs: [vec![10.0, 10.0], vec![12.5, 13.0]],
            loads: vec![1.0, 2.0],
        };
        let row = m.row("paper-expert");
        assert_eq!(row, "| paper-expert | 14.00 (channels-last) | 10.00 | 12.75 | 1.40× | 1.10× | 1.5 |");
        let header = table_header();
        let cells = |l: &str| l.matches('|').count();
        assert!(header.lines().all(|l| cells(l) == cells(&row)), "{header}\n{row}");
        let rec = m.record();
        assert!((rec["median_ratio"].as_f64().unwrap() - 1.4).abs() < 1e-12, "{rec}");
        assert_eq!(rec["ratios_vs_channels_last"], json!([1.2, 1.0]));
    }
}
