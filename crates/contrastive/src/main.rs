//! `featdrop-train`: contrastive pretraining of one run (DESIGN.md §4), writing the run directory
//! of §8. Resumes an interrupted run from its last checkpoint.

use anyhow::Result;
use clap::Parser;
use featdrop_contrastive::{StopAfter, Trainer};
use featdrop_core::config::UpdateOrder;
use featdrop_core::logging::{Verbosity, init};
use featdrop_core::{DeviceChoice, RunConfig, RunDir, ViewMode};
use std::path::PathBuf;

/// Pretrain an encoder with SimCLR on a multi-task dataset, with expert, learned (viewmaker),
/// combined, identity or feature-dropout views. Flags override the config file; without a config
/// the published defaults apply (ResNet-18, batch 256, 200 epochs), so pass --encoder small and a
/// few --epochs on a CPU.
#[derive(Parser)]
#[command(name = "featdrop-train", version)]
struct Cli {
    /// Run config (JSON, a featdrop_core::RunConfig); flags below override its fields.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Dataset: photos, photos+shapes, photos+digits, photos+letters.
    #[arg(long)]
    dataset: Option<String>,
    /// View mode: expert, viewmaker, expert+viewmaker, none, `dropout:<p>`.
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
    /// Pretraining epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Training examples (0 = all).
    #[arg(long)]
    train_size: Option<usize>,
    /// Test examples (0 = all).
    #[arg(long)]
    test_size: Option<usize>,
    /// Encoder: resnet18 or small.
    #[arg(long)]
    encoder: Option<String>,
    /// Encoder width (channels of the first stage).
    #[arg(long)]
    width: Option<usize>,
    /// Viewmaker width multiplier (1 = published).
    #[arg(long)]
    viewmaker_width: Option<f64>,
    /// Encoder/viewmaker update order: alternating (published) or simultaneous.
    #[arg(long, value_parser = parse_update)]
    update: Option<UpdateOrder>,
    /// Data source: synthetic or real.
    #[arg(long)]
    source: Option<String>,
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
    /// Examples in the --preview-views grid.
    #[arg(long, default_value_t = 8)]
    preview_count: i64,
    #[command(flatten)]
    verbosity: Verbosity,
}

fn parse_update(s: &str) -> Result<UpdateOrder, String> {
    match s {
        "alternating" => Ok(UpdateOrder::Alternating),
        "simultaneous" => Ok(UpdateOrder::Simultaneous),
        _ => Err(format!("unknown update order `{s}`; accepted: alternating, simultaneous")),
    }
}

fn config(cli: &Cli) -> Result<RunConfig> {
    let mut cfg = match &cli.config {
        Some(p) => RunConfig::from_file(p)?,
        None => RunConfig::new("default", "photos+digits", ViewMode::Expert, 0),
    };
    macro_rules! set {
        ($flag:expr => $($field:tt)+) => { if let Some(v) = $flag.clone() { cfg.$($field)+ = v; } };
    }
    set!(cli.dataset => dataset);
    set!(cli.view_mode => view_mode);
    set!(cli.seed => seed);
    set!(cli.device => device);
    set!(cli.experiment => experiment);
    set!(cli.epochs => train.epochs);
    set!(cli.batch_size => train.batch_size);
    set!(cli.train_size => data.train_size);
    set!(cli.test_size => data.test_size);
    set!(cli.encoder => encoder.arch);
    set!(cli.width => encoder.width);
    set!(cli.viewmaker_width => viewmaker.width_mult);
    set!(cli.update => train.update);
    set!(cli.source => data.source);
    let origin = cli.config.as_ref().map_or("command line".into(), |p| p.display().to_string());
    cfg.validate(&origin)?;
    Ok(cfg)
}

fn main() {
    let cli = Cli::parse();
    init(&cli.verbosity);
    let result = (|| -> Result<()> {
        if !cli.check_config.is_empty() {
            for file in &cli.check_config {
                RunConfig::from_file(file)?;
            }
            return Ok(());
        }
        let cfg = config(&cli)?;
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
        let mut trainer = Trainer::from_config(cfg, run)?;
        let summary = trainer.run(StopAfter(cli.stop_after_epoch))?;
        println!("{}", serde_json::to_string_pretty(&summary)?);
        Ok(())
    })();
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
