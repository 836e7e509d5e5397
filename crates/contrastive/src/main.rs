//! `featdrop-train`: contrastive pretraining of one run (docs/PROTOCOL.md §4), writing the run
//! directory of §8. Resumes an interrupted run from its last checkpoint.

use anyhow::{Context, Result};
use clap::Parser;
use featdrop_contrastive::{ResumeOptions, StopAfter, Trainer};
use featdrop_core::config::{Arch, Source, UpdateOrder, parse_override, set_path};
use featdrop_core::costs;
use featdrop_core::logging::{Verbosity, init};
use featdrop_core::{DeviceChoice, RunConfig, RunDir, ViewMode};
use serde_json::{Value, json};
use std::path::PathBuf;

/// Pretrain an encoder with SimCLR on a multi-task dataset, with expert, learned (viewmaker),
/// combined, colour-only, identity or feature-dropout views. Flags override the config file;
/// without a config the published defaults apply (ResNet-18, batch 256, 200 epochs), so pass
/// --encoder small and a few --epochs on a CPU.
#[derive(Parser)]
#[command(name = "featdrop-train", version)]
struct Cli {
    /// Add this process's time by phase (start, data, pretraining, classifiers) to the run's
    /// costs-train.json, over every attempt; `cargo xtask reproduce` passes it to break each
    /// cell's wall time down.
    #[arg(long)]
    record_costs: bool,
    /// Run config (JSON, a featdrop_core::RunConfig); flags below override its fields.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Dataset: photos, photos+shapes, photos+digits, photos+letters, speech+noise.
    #[arg(long)]
    dataset: Option<String>,
    /// View mode: expert, viewmaker, expert+viewmaker, none, colour (images only), each optionally
    /// `+dropout:<p>`; `dropout:<p>` alone is expert views with feature dropout.
    #[arg(long)]
    view_mode: Option<ViewMode>,
    /// Run seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Device: auto, cpu, cuda, cuda:N (cuda without a usable GPU is an error).
    #[arg(long)]
    device: Option<DeviceChoice>,
    /// Experiment name (first level of the run directory).
    #[arg(long)]
    experiment: Option<String>,
    /// Pretraining epochs (train.epochs).
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size (train.batch_size).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Training examples, 0 = all (data.train_size).
    #[arg(long)]
    train_size: Option<usize>,
    /// Test examples, 0 = all (data.test_size).
    #[arg(long)]
    test_size: Option<usize>,
    /// Encoder architecture (encoder.arch).
    #[arg(long, value_enum)]
    encoder: Option<Arch>,
    /// Encoder width, channels of the first stage (encoder.width).
    #[arg(long)]
    width: Option<usize>,
    /// Viewmaker width multiplier, 1 = published (viewmaker.width_mult).
    #[arg(long)]
    viewmaker_width: Option<f64>,
    /// Encoder/viewmaker update order (train.update).
    #[arg(long, value_enum)]
    update: Option<UpdateOrder>,
    /// Data source (data.source).
    #[arg(long, value_enum)]
    source: Option<Source>,
    /// Folder of real data (data.data_dir; implies --source real); for speech+noise the audio
    /// folder, which may also be given as --audio-dir (featdrop-data's name for it).
    #[arg(long, value_name = "DIR", visible_alias = "audio-dir")]
    data_dir: Option<PathBuf>,
    /// TTF/OTF font for the letters of real data (data.font).
    #[arg(long, value_name = "FILE")]
    font: Option<PathBuf>,
    /// Set any config field, typed and validated like the config file: `--set train.lr=0.1`,
    /// `--set probe.lr_milestones=[30,40]`, `--set data.pair_noise=independent` (repeatable;
    /// applied after the flags above).
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    set: Vec<String>,
    /// Root of run directories.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Use this run directory instead of `<out>/<experiment>/<dataset>/<view-mode>/seed-<n>`.
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Stop after this many epochs in total (resume later by running again).
    #[arg(long)]
    stop_after_epoch: Option<usize>,
    /// Do not train: write a grid of view pairs (original | view 1 | view 2 | |δ|) of the
    /// configured view mode, as the untrained run would make them, to this PNG and exit.
    #[arg(long, value_name = "PNG")]
    preview_views: Option<PathBuf>,
    /// Do not train: check that each of these run configs parses and is valid (errors name the
    /// file and the field), then exit.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    check_config: Vec<PathBuf>,
    /// Keep the per-epoch destruction monitor's task classifiers (viewmaker runs) in this folder
    /// and reuse them from there; `featdrop-eval destruction --classifier-cache` shares the
    /// folder (`cargo xtask reproduce` passes `runs/<experiment>/classifiers` to both).
    #[arg(long, value_name = "DIR")]
    classifier_cache: Option<PathBuf>,
    /// Resume a run on another device kind (cpu, cuda) than it was trained on: refused without
    /// this flag, since the rest of the run would compute other numbers (trained_on.json).
    #[arg(long)]
    allow_device_change: bool,
    /// Examples in the --preview-views grid.
    #[arg(long, default_value_t = 8)]
    preview_count: i64,
    #[command(flatten)]
    verbosity: Verbosity,
}

/// The run config: the file (or a minimal cell), then the flags, then `--set`, laid over the
/// dataset's defaults and parsed and validated once, by `RunConfig::from_value`.
fn config(cli: &Cli) -> Result<RunConfig> {
    let (mut value, mut origin) = match &cli.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let v: Value = serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", p.display()))?;
            (v, p.display().to_string())
        }
        None => (
            json!({"experiment": "default", "dataset": "photos+digits", "view_mode": "expert", "seed": 0}),
            "command line".to_string(),
        ),
    };
    let flags = [
        ("dataset", cli.dataset.clone().map(Value::from)),
        ("view_mode", cli.view_mode.map(|m| Value::from(m.to_string()))),
        ("seed", cli.seed.map(Value::from)),
        ("device", cli.device.map(|d| Value::from(d.to_string()))),
        ("experiment", cli.experiment.clone().map(Value::from)),
        ("train.epochs", cli.epochs.map(Value::from)),
        ("train.batch_size", cli.batch_size.map(Value::from)),
        ("data.train_size", cli.train_size.map(Value::from)),
        ("data.test_size", cli.test_size.map(Value::from)),
        ("encoder.arch", cli.encoder.map(|a| Value::from(a.to_string()))),
        ("encoder.width", cli.width.map(Value::from)),
        ("viewmaker.width_mult", cli.viewmaker_width.map(Value::from)),
        ("train.update", cli.update.map(|u| Value::from(u.to_string()))),
        ("data.source", cli.source.map(|s| Value::from(s.to_string()))),
        ("data.data_dir", cli.data_dir.as_ref().map(|d| Value::from(d.display().to_string()))),
        ("data.font", cli.font.as_ref().map(|f| Value::from(f.display().to_string()))),
    ];
    let mut overridden = false;
    for (path, v) in flags {
        if let Some(v) = v {
            set_path(&mut value, path, v);
            overridden = true;
        }
    }
    for text in &cli.set {
        let (path, v) = parse_override(text).map_err(anyhow::Error::msg)?;
        set_path(&mut value, &path, v);
        overridden = true;
    }
    if overridden && cli.config.is_some() {
        origin = format!("{origin} with command-line flags");
    }
    Ok(RunConfig::from_value(value, &origin)?)
}

/// `train.deterministic`: deterministic cuBLAS needs `CUBLAS_WORKSPACE_CONFIG` before CUDA starts.
/// A value the user set is kept (the trainer refuses one that is not deterministic).
fn cublas_workspace() {
    use featdrop_torch_ext::{CUBLAS_WORKSPACE_CONFIG, CUBLAS_WORKSPACE_SETTING};
    if std::env::var_os(CUBLAS_WORKSPACE_CONFIG).is_none() {
        // SAFETY: called from `main` before any thread is started and before libtorch (or CUDA)
        // is used: nothing reads the environment concurrently.
        unsafe { std::env::set_var(CUBLAS_WORKSPACE_CONFIG, CUBLAS_WORKSPACE_SETTING) };
        tracing::info!("train.deterministic: set {CUBLAS_WORKSPACE_CONFIG}={CUBLAS_WORKSPACE_SETTING}");
    }
}

fn main() {
    costs::start();
    let cli = Cli::parse();
    init(&cli.verbosity);
    // Freed tensors' memory is reused instead of faulted in again each step (see the module).
    featdrop_core::heap::keep_freed_memory();
    let result = (|| -> Result<()> {
        if !cli.check_config.is_empty() {
            for file in &cli.check_config {
                RunConfig::from_file(file)?;
            }
            return Ok(());
        }
        let cfg = config(&cli)?;
        if cfg.train.deterministic {
            cublas_workspace();
        }
        if let Some(png) = &cli.preview_views {
            // A throw-away run directory: previewing must not leave a half-made run behind.
            let tmp = std::env::temp_dir().join(format!("featdrop-preview-{}", std::process::id()));
            let trainer = Trainer::from_config(cfg, RunDir::at(&tmp))?;
            let written = featdrop_contrastive::grid::save_view_grid(&trainer, png, cli.preview_count);
            let _ = std::fs::remove_dir_all(&tmp);
            written?;
            tracing::info!(out = %png.display(), "wrote view preview");
            return Ok(());
        }
        let run = match &cli.run_dir {
            Some(d) => RunDir::at(d),
            None => RunDir::for_cell(&cli.out, &cfg.experiment, &cfg.dataset, cfg.view_mode, cfg.seed),
        };
        tracing::info!(run = %run.root().display(), "run directory");
        if cli.record_costs {
            costs::record_to(run.root(), "train")?;
        }
        costs::begin_work(costs::PRETRAINING);
        let opts = ResumeOptions { allow_device_change: cli.allow_device_change };
        let trained = (|| {
            let mut trainer = Trainer::from_config_with(cfg, run, opts)?;
            if let Some(dir) = &cli.classifier_cache {
                trainer.set_classifier_cache(dir);
            }
            trainer.run(StopAfter(cli.stop_after_epoch))
        })();
        // A failed attempt's time counts too.
        let saved = costs::save();
        let summary = trained?;
        saved?;
        println!("{}", serde_json::to_string_pretty(&summary)?);
        Ok(())
    })();
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
