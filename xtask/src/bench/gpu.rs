//! `cargo xtask bench gpu`: the first proof on a GPU, in one command that needs nothing else and
//! fits in minutes of a lent machine (issue 25 item 6). Each step runs as its own process under a
//! time limit (killed with its children when over); whatever happens, one JSON file holds every
//! figure and every step's outcome — rewritten after each step, so a killed run keeps what it had.
//!
//! `--device cpu` runs the same steps on the CPU at tiny sizes: the dry path its tests take.

use super::{load_average, median};
use crate::{libtorch, paths};
use anyhow::{Context, Result, bail, ensure};
use featdrop_core::io::write_json_atomic;
use serde_json::{Value, json};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The step names, in the order they run (`--steps` picks among them).
pub const STEPS: [&str; 10] = [
    "build",
    "doctor",
    "train-nchw",
    "train-channels-last",
    "train-bf16",
    "layout",
    "reference",
    "reference-bf16",
    "reproduce-smoke",
    "paper-cell",
];

/// `cargo xtask bench gpu` options.
#[derive(clap::Args, Debug)]
pub struct GpuArgs {
    /// With `gpu`: folder of the JSON file (`<out>/<UTC time>.json`) and its steps' logs and runs.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// With `gpu`: use the featdrop binaries already built in this folder; the `build` step is
    /// skipped.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// With `gpu`: run only these steps (comma-separated, of: build, doctor, train-nchw, train-channels-last,
    /// train-bf16, layout, reference, reference-bf16, reproduce-smoke, paper-cell); the others are
    /// recorded as skipped.
    #[arg(long, value_delimiter = ',')]
    pub steps: Option<Vec<String>>,
}

/// How a step's figures are read: from its stdout, or from the files it wrote.
type Figures = Box<dyn Fn(&str) -> Result<Value>>;

/// One step: a command, its time limit, and how its figures are read from what it wrote.
struct Step {
    name: &'static str,
    limit_s: u64,
    cmd: Command,
    figures: Figures,
}

/// How a step ended, as the JSON file records it.
#[derive(Debug)]
pub struct Outcome {
    /// ok, failed, timeout or skipped.
    pub status: &'static str,
    pub seconds: f64,
    pub figures: Value,
    pub error: Option<String>,
}

impl Outcome {
    fn skipped(why: &str) -> Self {
        Self { status: "skipped", seconds: 0.0, figures: json!({}), error: Some(why.into()) }
    }
}

impl GpuArgs {
    /// Whether any of these options was given.
    pub fn given(&self) -> bool {
        self.out.is_some() || self.bin_dir.is_some() || self.steps.is_some()
    }
}

/// `bench gpu` on `device`: cuda, cuda:N (refused at once where no NVIDIA GPU is visible), or cpu
/// (the same steps at tiny sizes: a dry run).
pub fn run(device: &str, args: &GpuArgs) -> Result<()> {
    let cpu = device == "cpu";
    ensure!(
        cpu || device == "cuda" || device.strip_prefix("cuda:").is_some_and(|n| n.parse::<u32>().is_ok()),
        "bench gpu --device {device}: expected cuda, cuda:N or cpu"
    );
    let gpus = visible_nvidia_gpus(Path::new("/proc/driver/nvidia/gpus"), std::env::var("CUDA_VISIBLE_DEVICES").ok());
    if !cpu && gpus == 0 {
        bail!(
            "bench gpu --device {device}: no NVIDIA GPU is visible here (/proc/driver/nvidia/gpus lists none, or \
             CUDA_VISIBLE_DEVICES hides them); nothing was run. `--device cpu` runs the same steps at tiny sizes \
             on the CPU, as a dry run"
        );
    }
    let selected = match &args.steps {
        Some(names) => {
            let unknown: Vec<&String> = names.iter().filter(|n| !STEPS.contains(&n.as_str())).collect();
            ensure!(unknown.is_empty(), "--steps: unknown {unknown:?}; accepted: {}", STEPS.join(", "));
            names.clone()
        }
        None => STEPS.iter().map(|s| s.to_string()).collect(),
    };
    let out = absolute(args.out.as_deref().unwrap_or(Path::new("target/bench-gpu")));
    let stamp = utc_stamp(std::time::SystemTime::now());
    let work = out.join(&stamp);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let file = out.join(format!("{stamp}.json"));
    eprintln!("==> bench gpu on {device}: every figure goes to {}", file.display());
    let needs_cargo = selected.iter().any(|s| !matches!(s.as_str(), "doctor" | "reproduce-smoke" | "paper-cell"));
    let torch_root = if needs_cargo || args.bin_dir.is_none() { Some(libtorch::setup()?.root) } else { None };
    let bins = match &args.bin_dir {
        Some(d) => absolute(d),
        None => paths::repo_root().join("target/release"),
    };
    let plan = Plan { device: device.to_string(), bins, work: work.clone(), torch_root, gpus };
    let mut record = json!({
        "bench": "gpu", "schema": 1, "device": device, "started_utc": stamp, "gpus_visible": gpus,
        "commit": git_commit(), "host": hostname(), "budget_s": BUDGET_S, "logs": work, "steps": [],
    });
    let started = Instant::now();
    for name in STEPS {
        let outcome = if !selected.iter().any(|s| s == name) {
            Outcome::skipped("not among --steps")
        } else if name == "build" && args.bin_dir.is_some() {
            Outcome::skipped("--bin-dir given: binaries built before")
        } else {
            eprintln!("==> {name}");
            let step = plan.step(name)?;
            let limit = step.limit_s;
            let o = run_step(step, &work);
            eprintln!("    {} in {:.1} s (limit {limit} s){}", o.status, o.seconds, error_line(&o));
            o
        };
        push_step(&mut record, name, outcome);
        record["seconds"] = json!(started.elapsed().as_secs_f64());
        write_json_atomic(&file, &record)?;
    }
    let failed: Vec<String> = record["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["status"] == "failed" || s["status"] == "timeout")
        .filter_map(|s| s["name"].as_str().map(String::from))
        .collect();
    record["status"] = json!(if failed.is_empty() { "ok" } else { "failed" });
    write_json_atomic(&file, &record)?;
    println!("{}", file.display());
    ensure!(failed.is_empty(), "bench gpu: step(s) {} failed; see {}", failed.join(", "), file.display());
    Ok(())
}

fn error_line(o: &Outcome) -> String {
    o.error.as_deref().and_then(|e| e.lines().last()).map(|l| format!(": {l}")).unwrap_or_default()
}

/// Appends a step's outcome to the record's `steps`.
pub fn push_step(record: &mut Value, name: &str, o: Outcome) {
    let entry = json!({"name": name, "status": o.status, "seconds": o.seconds, "figures": o.figures,
        "error": o.error, "load_avg": load_average()});
    record["steps"].as_array_mut().expect("steps is an array").push(entry);
}

/// The time limits of the steps after `build`, summed: what the command takes at most on a GPU.
pub const BUDGET_S: u64 = 480;

/// Per step: its time limit (CUDA; the CPU dry path's sizes are tiny, its limits generous).
fn limit_s(name: &str, cpu: bool) -> u64 {
    let cuda = match name {
        "build" => 900,
        "doctor" => 20,
        "train-nchw" | "train-channels-last" | "train-bf16" => 40,
        "layout" => 30,
        "reference" => 100,
        "reference-bf16" => 40,
        "reproduce-smoke" => 60,
        "paper-cell" => 110,
        _ => 60,
    };
    if cpu { cuda.max(300) } else { cuda }
}

/// What every step needs to be built.
struct Plan {
    device: String,
    bins: PathBuf,
    work: PathBuf,
    /// libtorch's root, when a step runs cargo.
    torch_root: Option<PathBuf>,
    /// NVIDIA GPUs visible: the smoke study runs a cell on each at once.
    gpus: usize,
}

impl Plan {
    fn cpu(&self) -> bool {
        self.device == "cpu"
    }

    fn cargo(&self) -> Result<Command> {
        let root = self.torch_root.as_ref().context("libtorch was not set up")?;
        Ok(paths::cargo(root))
    }

    fn xtask(&self) -> Result<Command> {
        let mut cmd = Command::new(std::env::current_exe().context("finding xtask's own executable")?);
        cmd.current_dir(paths::repo_root());
        Ok(cmd)
    }

    fn step(&self, name: &'static str) -> Result<Step> {
        let last_json: Figures = Box::new(last_json_line);
        let (cmd, figures) = match name {
            "build" => (self.build()?, Box::new(|_: &str| Ok(json!({}))) as Figures),
            "doctor" => {
                let mut cmd = Command::new(self.bins.join("featdrop-doctor"));
                cmd.arg("--json");
                (cmd, last_json)
            }
            "train-nchw" => (self.train_bench(&[("FEATDROP_BENCH_CHANNELS_LAST", "0")])?, last_json),
            "train-channels-last" => (self.train_bench(&[("FEATDROP_BENCH_CHANNELS_LAST", "1")])?, last_json),
            "train-bf16" => (self.train_bench(&[("FEATDROP_BENCH_BF16", "1")])?, last_json),
            "layout" => (self.layout_bench()?, last_json),
            "reference" => (self.reference(false)?, last_json),
            "reference-bf16" => (self.reference(true)?, last_json),
            "reproduce-smoke" => {
                let runs = self.work.join("runs");
                let mut cmd = self.xtask()?;
                let jobs = if self.cpu() { None } else { Some(self.gpus) };
                cmd.args(reproduce_smoke_args(&self.device, jobs, &runs, &self.work.join("report"), &self.bins));
                (cmd, Box::new(move |_: &str| reproduce_figures(&runs)) as Figures)
            }
            "paper-cell" => {
                let run = self.work.join("paper-cell");
                let mut cmd = Command::new(self.bins.join("featdrop-train"));
                cmd.args(self.paper_cell_args(&run));
                (cmd, Box::new(move |_: &str| paper_cell_figures(&run)) as Figures)
            }
            other => bail!("no step `{other}`"),
        };
        Ok(Step { name, limit_s: limit_s(name, self.cpu()), cmd, figures })
    }

    /// The study's binaries and the benches, release: one shell line, so that one limit covers
    /// both builds, with the environment a cargo command gets here (libtorch, library path).
    fn build(&self) -> Result<Command> {
        let cargo = self.cargo()?;
        let bin = cargo.get_program().to_string_lossy().into_owned();
        let line = format!(
            "{bin} build --release -q --bins -p featdrop-contrastive -p featdrop-eval -p featdrop-theory \
             -p featdrop-core && {bin} bench -q -p featdrop-contrastive --bench train --bench layout --no-run"
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &line]).current_dir(paths::repo_root());
        cmd.envs(cargo.get_envs().filter_map(|(k, v)| Some((k, v?))));
        Ok(cmd)
    }

    /// featdrop's train bench on the device; tiny on the CPU.
    fn train_bench(&self, env: &[(&str, &str)]) -> Result<Command> {
        let mut cmd = self.cargo()?;
        cmd.args(["bench", "-q", "-p", "featdrop-contrastive", "--bench", "train", "--", &self.device]);
        cmd.env("FEATDROP_DEVICE", &self.device).envs(env.iter().copied());
        if self.cpu() {
            cmd.env("FEATDROP_BENCH_CASES", "small-expert").env("FEATDROP_BENCH_STEPS", "1");
        }
        Ok(cmd)
    }

    fn layout_bench(&self) -> Result<Command> {
        let mut cmd = self.cargo()?;
        cmd.args(["bench", "-q", "-p", "featdrop-contrastive", "--bench", "layout", "--", &self.device]);
        cmd.env("FEATDROP_DEVICE", &self.device);
        if self.cpu() {
            cmd.env("FEATDROP_BENCH_CASES", "mechanism-colour").env("FEATDROP_BENCH_STEPS", "1");
            cmd.env("FEATDROP_BENCH_REPS", "1");
        }
        Ok(cmd)
    }

    /// `cargo xtask bench reference` on the device: featdrop against PyTorch in both layouts.
    fn reference(&self, bf16: bool) -> Result<Command> {
        let mut cmd = self.xtask()?;
        cmd.args(["bench", "reference", "--device", &self.device]);
        cmd.env("FEATDROP_BENCH_BF16", if bf16 { "1" } else { "0" });
        if self.cpu() {
            cmd.env("FEATDROP_BENCH_CONFIGS", "small-expert").env("FEATDROP_BENCH_STEPS", "1");
        } else if bf16 {
            cmd.env("FEATDROP_BENCH_CONFIGS", "paper-expert,paper-alternating");
        }
        Ok(cmd)
    }

    /// Two epochs of a paper-config cell (`photos+digits`, viewmaker: ResNet-18, batch 256, the
    /// full viewmaker, its destruction monitor), on real data when CIFAR-10 and MNIST are there,
    /// else on the synthetic data of the same size; on the CPU, the smoke sizes.
    fn paper_cell_args(&self, run: &Path) -> Vec<OsString> {
        let raw = paths::repo_root().join("data/raw");
        // What photos+digits reads of the real data (crate::fetch::missing_real_data lists all).
        let real = raw.join("cifar-10-batches-bin/test_batch.bin").is_file() && raw.join("mnist").is_dir();
        let mut args: Vec<OsString> = ["--dataset", "photos+digits", "--view-mode", "viewmaker", "--seed", "0"]
            .into_iter()
            .map(Into::into)
            .collect();
        args.extend(["--device".into(), self.device.clone().into(), "--epochs".into(), "2".into()]);
        args.extend(["--run-dir".into(), run.as_os_str().to_owned()]);
        args.extend(["--set".into(), "train.checkpoint_every=1".into()]);
        if self.cpu() {
            let tiny = ["--encoder", "small", "--width", "8", "--viewmaker-width", "0.125", "--batch-size", "32"];
            args.extend(tiny.into_iter().map(Into::into));
            let sizes = ["--train-size", "128", "--test-size", "64", "--source", "synthetic"];
            args.extend(sizes.into_iter().map(Into::into));
            for set in ["data.monitor_size=64", "train.knn_k=5", "train.destruction.batch=32"] {
                args.extend(["--set".into(), set.into()]);
            }
        } else if real {
            args.extend(["--data-dir".into(), raw.into_os_string()]);
        } else {
            args.extend(["--source".into(), "synthetic".into()]);
        }
        args
    }
}

/// The arguments of the `reproduce-smoke` step: the smoke grid on the device, its runs and report
/// in this bench's folder, with the binaries built for it; `jobs` cells at once (on CUDA one per
/// visible GPU, so that `--jobs` is proved on every GPU the machine has; on a CPU its default).
fn reproduce_smoke_args(device: &str, jobs: Option<usize>, runs: &Path, report: &Path, bins: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> =
        ["reproduce", "--scale", "smoke", "--no-theory", "--device", device].into_iter().map(Into::into).collect();
    if let Some(j) = jobs {
        args.extend(["--jobs".into(), j.to_string().into()]);
    }
    args.extend(["--out".into(), runs.as_os_str().to_owned(), "--report".into(), report.as_os_str().to_owned()]);
    args.extend(["--bin-dir".into(), bins.as_os_str().to_owned()]);
    args
}

/// The smoke study's `status.json`, and its cells' training figures.
fn reproduce_figures(runs: &Path) -> Result<Value> {
    let exp = runs.join("smoke");
    let status: Value = featdrop_core::io::read_json(&exp.join("status.json"))?;
    let mut cells = serde_json::Map::new();
    for done in glob_files(&exp, "pretrain.done.json")? {
        let summary: Value = featdrop_core::io::read_json(&done)?;
        let id = done.parent().and_then(|d| d.strip_prefix(&exp).ok()).map(|p| p.display().to_string());
        cells.insert(id.unwrap_or_default(), json!({"seconds": summary["seconds"], "images_per_s": summary["images_per_s"], "device": summary["device"]}));
    }
    Ok(json!({"status": status, "cells": cells}))
}

/// The paper cell's training summary, per-epoch seconds and the layout it ran; of a cell stopped
/// at its time limit, the epochs it finished (`summary` null).
fn paper_cell_figures(run: &Path) -> Result<Value> {
    let summary: Value = featdrop_core::io::read_json(&run.join("pretrain.done.json")).unwrap_or(Value::Null);
    let config: Value = featdrop_core::io::read_json(&run.join("config.json"))?;
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap_or_default();
    let epochs: Vec<Value> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "epoch")
        .map(|r| json!({"epoch": r["epoch"], "seconds": r["seconds"], "loss": r["loss"], "knn": r["knn"]}))
        .collect();
    let seconds: Vec<f64> = epochs.iter().filter_map(|e| e["seconds"].as_f64()).collect();
    Ok(json!({"summary": summary, "epochs": epochs, "median_epoch_s": median(seconds),
        "channels_last": config["train"]["channels_last"], "source": config["data"]["source"],
        "train_size": config["data"]["train_size"]}))
}

/// Files named `name` anywhere under `dir`.
fn glob_files(dir: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.file_name().is_some_and(|n| n == name) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Runs `step` in its own process group, its stdout and stderr into `<logs>/<name>.out|.err`,
/// killing the group when it runs past its limit.
fn run_step(mut step: Step, logs: &Path) -> Outcome {
    use std::os::unix::process::CommandExt;
    let start = Instant::now();
    let files = (logs.join(format!("{}.out", step.name)), logs.join(format!("{}.err", step.name)));
    let spawned = (|| -> Result<std::process::Child> {
        let (out, err) = (std::fs::File::create(&files.0)?, std::fs::File::create(&files.1)?);
        step.cmd.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        Ok(step.cmd.spawn()?)
    })();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let error = format!("could not start {:?}: {e:#}", step.cmd.get_program());
            return Outcome { status: "failed", seconds: 0.0, figures: json!({}), error: Some(error) };
        }
    };
    let limit = Duration::from_secs(step.limit_s);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                // SAFETY: signals the process group this step's child leads (made above).
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                break None;
            }
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let stdout = std::fs::read_to_string(&files.0).unwrap_or_default();
    let stderr_tail = || tail(&std::fs::read_to_string(&files.1).unwrap_or_default(), 3000);
    let command = format!("{:?}", step.cmd);
    match status {
        None => Outcome {
            status: "timeout",
            seconds,
            figures: (step.figures)(&stdout).unwrap_or_else(|_| json!({})),
            error: Some(format!("killed after its limit of {} s: {command}\n{}", step.limit_s, stderr_tail())),
        },
        Some(s) if !s.success() => Outcome {
            status: "failed",
            seconds,
            figures: json!({}),
            error: Some(format!("{command} exited with {s}\n{}", stderr_tail())),
        },
        Some(_) => match (step.figures)(&stdout) {
            Ok(figures) => Outcome { status: "ok", seconds, figures, error: None },
            Err(e) => Outcome {
                status: "failed",
                seconds,
                figures: json!({}),
                error: Some(format!("{command} succeeded but its figures could not be read: {e:#}")),
            },
        },
    }
}

/// The last `n` bytes of `text` (at a character boundary).
fn tail(text: &str, n: usize) -> String {
    let mut start = text.len().saturating_sub(n);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// `stdout` when it is one JSON object (the doctor's, pretty-printed), else its last line that is
/// one (a bench's record after its table).
fn last_json_line(stdout: &str) -> Result<Value> {
    if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(stdout) {
        return Ok(v);
    }
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok().filter(Value::is_object))
        .context("it printed no JSON line")
}

/// NVIDIA GPUs the driver lists in `proc_dir` (`/proc/driver/nvidia/gpus`, one folder each), no
/// more than `CUDA_VISIBLE_DEVICES` (`visible`) names; read without libtorch, so that a machine
/// without a GPU is told at once, before anything is built.
pub fn visible_nvidia_gpus(proc_dir: &Path, visible: Option<String>) -> usize {
    let listed = std::fs::read_dir(proc_dir).map(|d| d.count()).unwrap_or(0);
    match visible.as_deref().map(str::trim) {
        None => listed,
        Some("") => 0,
        Some(v) => listed.min(v.split(',').filter(|s| !s.trim().is_empty() && !s.trim().starts_with('-')).count()),
    }
}

/// `YYYY-MM-DDTHH-MM-SSZ` (UTC; no colons, so that it is a file name everywhere).
pub fn utc_stamp(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `p`, relative to the checkout when it is relative (where `cargo xtask` runs its steps).
fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { paths::repo_root().join(p) }
}

fn git_commit() -> Option<String> {
    let out = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(paths::repo_root()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &'static str, limit_s: u64, script: &str) -> Step {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        Step { name, limit_s, cmd, figures: Box::new(last_json_line) }
    }

    #[test]
    fn a_step_records_its_figures_its_failure_or_its_timeout() {
        let logs = tempfile::tempdir().unwrap();
        let ok = run_step(step("ok", 30, "echo noise; echo '{\"rate\": 2.5}'"), logs.path());
        assert_eq!((ok.status, ok.figures.clone(), ok.error.clone()), ("ok", json!({"rate": 2.5}), None));
        let pretty = run_step(step("pretty", 30, "printf '{\\n  \"gpus\": 0\\n}\\n'"), logs.path());
        assert_eq!((pretty.status, pretty.figures), ("ok", json!({"gpus": 0})), "{:?}", pretty.error);
        let failed = run_step(step("failed", 30, "echo 'CUDA error: out of memory' >&2; exit 3"), logs.path());
        assert_eq!(failed.status, "failed");
        let e = failed.error.unwrap();
        assert!(e.contains("exit status: 3") && e.contains("CUDA error: out of memory"), "{e}");
        let silent = run_step(step("silent", 30, "echo no json here"), logs.path());
        assert!(silent.error.unwrap().contains("printed no JSON line"));
        // A child that outlives its shell is killed with it (the whole process group).
        let slow = run_step(step("slow", 1, "sleep 60 & echo '{\"partial\": 1}'; wait"), logs.path());
        assert_eq!((slow.status, slow.figures), ("timeout", json!({"partial": 1})));
        assert!(slow.seconds < 30.0 && slow.error.unwrap().contains("limit of 1 s"));
    }

    /// The smoke study runs one cell per visible GPU at once on CUDA, and `reproduce`'s own
    /// default on a CPU.
    #[test]
    fn the_smoke_study_runs_a_cell_on_every_gpu_at_once() {
        let p = Path::new("/x");
        let args = |device, jobs| -> Vec<String> {
            reproduce_smoke_args(device, jobs, p, p, p).iter().map(|a| a.to_string_lossy().into_owned()).collect()
        };
        let cuda = args("cuda", Some(4));
        assert!(cuda.windows(2).any(|w| w == ["--jobs", "4"]), "{cuda:?}");
        assert!(!args("cpu", None).contains(&"--jobs".to_string()));
    }

    #[test]
    fn gpus_are_counted_from_the_driver_and_cuda_visible_devices() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(visible_nvidia_gpus(&dir.path().join("missing"), None), 0);
        for i in 0..4 {
            std::fs::create_dir(dir.path().join(format!("0000:0{i}:00.0"))).unwrap();
        }
        assert_eq!(visible_nvidia_gpus(dir.path(), None), 4);
        assert_eq!(visible_nvidia_gpus(dir.path(), Some("0,2".into())), 2);
        assert_eq!(visible_nvidia_gpus(dir.path(), Some(String::new())), 0);
        assert_eq!(visible_nvidia_gpus(dir.path(), Some("-1".into())), 0);
    }

    #[test]
    fn stamps_are_utc_file_names() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_709_210_096); // 2024-02-29 12:34:56 UTC
        assert_eq!(utc_stamp(t), "2024-02-29T12-34-56Z");
        assert_eq!(utc_stamp(std::time::UNIX_EPOCH), "1970-01-01T00-00-00Z");
    }

    #[test]
    fn every_step_has_a_limit_within_the_budget() {
        let sum: u64 = STEPS.iter().filter(|s| **s != "build").map(|s| limit_s(s, false)).sum();
        assert!(sum <= BUDGET_S, "the steps' limits add up to {sum} s, over {BUDGET_S} s");
    }
}
