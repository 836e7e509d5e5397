//! `featdrop-eval`: linear probes (`probe`, docs/PROTOCOL.md §5.1) and the label-destruction analysis
//! (`destruction`, §5.2) of a pretrained run directory, and `export` of its encoder for PyTorch.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use featdrop_core::costs;
use featdrop_core::logging::{Verbosity, init};
use featdrop_core::{DeviceChoice, RunDir};
use featdrop_eval::{DestructionConfig, DestructionOptions, FeatureMode, FrozenRun, ProbeOptions};
use std::path::PathBuf;

/// Evaluate a pretrained run: linear probes on every task, and how often each kind of view
/// destroys each task's label. Results go into the run directory (probe.json, destruction.json,
/// destruction.png); finished tasks are not recomputed unless --force.
#[derive(Parser)]
#[command(name = "featdrop-eval", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    verbosity: Verbosity,
}

#[derive(Args)]
struct Common {
    /// The run directory (made by featdrop-train).
    #[arg(long)]
    run: PathBuf,
    /// Only this task (repeatable); default: every task.
    #[arg(long = "task", conflicts_with = "all_tasks")]
    tasks: Vec<String>,
    /// Every task of the dataset (the default).
    #[arg(long)]
    all_tasks: bool,
    /// Recompute tasks already in the output file.
    #[arg(long)]
    force: bool,
    /// Device: auto, cpu, cuda, cuda:N (default: the run's own choice).
    #[arg(long)]
    device: Option<DeviceChoice>,
    /// The encoder's weights from this safetensors state dict with torchvision resnet18 names
    /// (e.g. trained in PyTorch) instead of the run's checkpoint; the run then needs only its
    /// config.json (dataset, encoder shape, views, seed).
    #[arg(long, value_name = "FILE")]
    encoder_weights: Option<PathBuf>,
    /// Evaluate on another device kind (cpu, cuda) than the run was trained on: refused without
    /// this flag, since the numbers would not be the ones of the run's own device (trained_on.json).
    #[arg(long)]
    allow_device_change: bool,
    /// Add this process's time by phase to the run's costs-probe.json or costs-destruction.json,
    /// over every attempt; `cargo xtask reproduce` passes it to break each cell's wall time down.
    #[arg(long)]
    record_costs: bool,
}

impl Common {
    fn tasks(&self) -> Option<Vec<String>> {
        (!self.tasks.is_empty()).then(|| self.tasks.clone())
    }

    fn load(&self, epoch: Option<usize>) -> Result<FrozenRun> {
        let run = RunDir::at(&self.run);
        let frozen = FrozenRun::load_at(&run, self.device, self.encoder_weights.as_deref(), epoch)?;
        featdrop_core::trained_on::check(&run, frozen.device, "evaluate", self.allow_device_change)?;
        Ok(frozen)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Linear probe per task on the frozen encoder's pre-pool features (published protocol:
    /// the run's config `probe` section).
    Probe {
        #[command(flatten)]
        common: Common,
        /// views (published: training inputs through the run's views) or cached (clean features
        /// computed once; faster). Default: the config's probe.features.
        #[arg(long)]
        features: Option<FeatureMode>,
        /// Probe training epochs (default: the config's probe.epochs).
        #[arg(long)]
        epochs: Option<usize>,
        /// Probe the checkpoint of this pretraining epoch instead of the final one (the run keeps
        /// those of its train.keep_epochs); results go under `epochs` in probe.json.
        #[arg(long, value_name = "N", conflicts_with = "encoder_weights")]
        epoch: Option<usize>,
    },
    /// Label-destruction rates per task and view family, with a grid of views.
    Destruction {
        #[command(flatten)]
        common: Common,
        /// Classifier training epochs.
        #[arg(long, default_value_t = DestructionConfig::default().epochs)]
        epochs: usize,
        /// Classifier Adam learning rate.
        #[arg(long, default_value_t = DestructionConfig::default().lr)]
        lr: f64,
        /// Classifier batch size.
        #[arg(long, default_value_t = DestructionConfig::default().batch_size)]
        batch_size: usize,
        /// Classifier width (channels of its first stage).
        #[arg(long, default_value_t = DestructionConfig::default().width)]
        width: i64,
        /// Rows of destruction.png (0: none).
        #[arg(long, default_value_t = 8)]
        grid_rows: i64,
        /// Keep the trained task classifiers in this folder and reuse them for any run with the
        /// same dataset, data settings, seed and classifier flags (e.g. the other view modes of a
        /// grid; `cargo xtask reproduce` passes one per experiment)
        #[arg(long, value_name = "DIR")]
        classifier_cache: Option<std::path::PathBuf>,
        /// Only check these arguments (parse and validate them, read no run) and exit:
        /// `cargo xtask reproduce` checks an experiment's `destruction_args` so before any cell.
        #[arg(long, hide = true)]
        check_args: bool,
    },
    /// Write a run's encoder as a safetensors state dict with torchvision's resnet18 names, which
    /// `torchvision.models.resnet18(num_classes=128)` with the small-image stem loads with
    /// strict=True (README: "Using the weights in PyTorch").
    Export {
        /// The run directory (made by featdrop-train).
        #[arg(long)]
        run: PathBuf,
        /// The checkpoint of this epoch (default: the latest).
        #[arg(long)]
        epoch: Option<usize>,
        /// The file to write (e.g. encoder.safetensors).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs step `step` of the run `common` names (its main work charged to `work`); with
/// `--record-costs`, adds its phase times to the run's `costs-<step>.json`, a failed attempt's too.
fn measured<T>(common: &Common, step: &str, work: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    if common.record_costs {
        costs::record_to(&common.run, step)?;
    }
    costs::begin_work(work);
    let out = f();
    let saved = costs::save();
    let out = out?;
    saved?;
    Ok(out)
}

fn run(cli: &Cli) -> Result<()> {
    let progress = !cli.verbosity.quiet;
    match &cli.command {
        Command::Probe { common, features, epochs, epoch } => {
            let opts = ProbeOptions {
                tasks: common.tasks(),
                features: *features,
                epochs: *epochs,
                force: common.force,
                progress,
            };
            // Before minutes of loading the run.
            opts.validate()?;
            let report =
                measured(common, "probe", costs::PROBES, || featdrop_eval::run_probe(&common.load(*epoch)?, &opts))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Destruction { common, epochs, lr, batch_size, width, grid_rows, classifier_cache, check_args } => {
            let classifier = DestructionConfig { epochs: *epochs, batch_size: *batch_size, lr: *lr, width: *width };
            if *check_args {
                return classifier.validate();
            }
            let opts = DestructionOptions {
                tasks: common.tasks(),
                classifier,
                force: common.force,
                progress,
                grid_rows: *grid_rows,
                classifier_cache: classifier_cache.clone(),
            };
            let report = measured(common, "destruction", costs::DESTRUCTION, || {
                featdrop_eval::run_destruction(&common.load(None)?, &opts)
            })?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Export { run, epoch, out } => {
            let summary = featdrop_eval::interop::export_run(&RunDir::at(run), *epoch, out)?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
    }
    Ok(())
}

fn main() {
    costs::start();
    let cli = Cli::parse();
    init(&cli.verbosity);
    // Freed tensors' memory is reused instead of faulted in again each step (see the module).
    featdrop_core::heap::keep_freed_memory();
    if let Err(e) = run(&cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
