//! `featdrop-theory`: the linear-model contrastive simulator's command line.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use featdrop_core::logging::{self, Verbosity};
use featdrop_theory::model::Group;
use featdrop_theory::sweep::{Grid, SweepConfig, run_sweep, write_outputs};
use featdrop_theory::train::Optimizer;
use featdrop_theory::{SimConfig, Solver, predict, simulate};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;

/// The linear-model contrastive simulator of featdrop (docs/PROTOCOL.md §6).
///
/// Inputs x = [a; b] carry task A in group a and task B in group b. A linear encoder W (k × d)
/// is learned from positive pairs made by additive Gaussian noise and by feature dropout on one
/// group (with probability p the second view's group is an independent draw). W comes from the
/// closed-form minimiser of the spectral contrastive loss, or from minibatch gradient descent on
/// the spectral loss or on InfoNCE. Each W is measured by how much of each group's signal
/// subspace it keeps and by linear-probe accuracy on tasks A and B.
///
/// Logs go to stderr (RUST_LOG overrides -v/-q); results go to stdout or files.
#[derive(Parser, Debug)]
#[command(name = "featdrop-theory", version)]
struct Cli {
    #[command(flatten)]
    verbosity: Verbosity,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Sweep dropout probability × strength ratio × k × seeds (in parallel) and write
    /// DIR/theory.json, DIR/summary.md and PNG figures.
    ///
    /// Three grids run: the closed form (the phase diagram), spectral gradient descent (checks
    /// the closed form) and InfoNCE. Each grid flag takes a list `0,0.1,0.5` or an inclusive
    /// range `start:end:step`. With --config the sweep starts from that JSON file (see
    /// `default-config`) and any flag given here overrides it.
    Sweep(Box<SweepArgs>),
    /// Simulate one configuration and print its measurements (and the prediction) as JSON on
    /// stdout.
    Point(PointArgs),
    /// Print the eigenvalue-ranking prediction for one configuration (thresholds and the
    /// features the spectral minimiser keeps) as JSON on stdout. Instant.
    Predict(PredictArgs),
    /// Print the default sweep configuration as JSON on stdout (a starting point for
    /// `sweep --config`).
    DefaultConfig,
}

/// The input distribution and augmentations.
#[derive(Args, Debug, Clone, Default)]
struct ModelArgs {
    /// Coordinates in group a [default: 16]
    #[arg(long, help_heading = "Model")]
    dim_a: Option<usize>,
    /// Classes of task A (its signal subspace has classes − 1 dimensions) [default: 2]
    #[arg(long, help_heading = "Model")]
    classes_a: Option<usize>,
    /// Strength of task A: distance between any two class means [default: 3]
    #[arg(long, help_heading = "Model")]
    strength_a: Option<f64>,
    /// Within-class (instance) noise std of group a, shared by both views [default: 1]
    #[arg(long, help_heading = "Model")]
    noise_a: Option<f64>,
    /// Coordinates in group b [default: 4]
    #[arg(long, help_heading = "Model")]
    dim_b: Option<usize>,
    /// Classes of task B [default: 2]
    #[arg(long, help_heading = "Model")]
    classes_b: Option<usize>,
    /// Strength of task B (point/predict; a sweep sets it from each ratio) [default: 1]
    #[arg(long, help_heading = "Model")]
    strength_b: Option<f64>,
    /// Within-class (instance) noise std of group b [default: 0.3]
    #[arg(long, help_heading = "Model")]
    noise_b: Option<f64>,
    /// Std of the additive Gaussian noise each view gets (label-preserving augmentation)
    /// [default: 0.3]
    #[arg(long, help_heading = "Model")]
    aug_noise: Option<f64>,
    /// Group that feature dropout acts on [default: a]
    #[arg(long, value_enum, help_heading = "Model")]
    dropout_group: Option<Group>,
}

impl ModelArgs {
    fn apply(&self, cfg: &mut SimConfig) {
        let m = &mut cfg.model;
        let set = |dst: &mut f64, v: Option<f64>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        if let Some(v) = self.dim_a {
            m.a.dim = v;
        }
        if let Some(v) = self.classes_a {
            m.a.classes = v;
        }
        set(&mut m.a.strength, self.strength_a);
        set(&mut m.a.noise_std, self.noise_a);
        if let Some(v) = self.dim_b {
            m.b.dim = v;
        }
        if let Some(v) = self.classes_b {
            m.b.classes = v;
        }
        set(&mut m.b.strength, self.strength_b);
        set(&mut m.b.noise_std, self.noise_b);
        set(&mut cfg.augment.noise_std, self.aug_noise);
        if let Some(g) = self.dropout_group {
            cfg.augment.dropout_group = g;
        }
    }
}

/// Gradient-descent and probe settings.
#[derive(Args, Debug, Clone, Default)]
struct TrainArgs {
    /// Gradient steps (spectral-gd, info-nce) [default: 1500]
    #[arg(long, help_heading = "Training and probes")]
    steps: Option<usize>,
    /// Positive pairs per batch [default: 128]
    #[arg(long, help_heading = "Training and probes")]
    batch_size: Option<usize>,
    /// Initial learning rate, cosine-decayed to 1 % of it [default: 0.01]
    #[arg(long, help_heading = "Training and probes")]
    lr: Option<f64>,
    /// Std of the random initial weights [default: 0.01]
    #[arg(long, help_heading = "Training and probes")]
    init_scale: Option<f64>,
    /// InfoNCE temperature [default: 0.2]
    #[arg(long, help_heading = "Training and probes")]
    temperature: Option<f64>,
    /// InfoNCE on raw dot products instead of L2-normalised embeddings
    #[arg(long, help_heading = "Training and probes")]
    no_normalize: bool,
    /// Optimiser [default: adam]
    #[arg(long, value_enum, help_heading = "Training and probes")]
    optimizer: Option<Optimizer>,
    /// Clean training examples per linear probe [default: 2000]
    #[arg(long, help_heading = "Training and probes")]
    probe_train: Option<usize>,
    /// Clean test examples per linear probe [default: 2000]
    #[arg(long, help_heading = "Training and probes")]
    probe_test: Option<usize>,
    /// Probe ridge penalty, relative to the mean squared feature [default: 1e-6]
    #[arg(long, help_heading = "Training and probes")]
    ridge: Option<f64>,
}

impl TrainArgs {
    fn apply(&self, cfg: &mut SimConfig) {
        let t = &mut cfg.train;
        if let Some(v) = self.steps {
            t.steps = v;
        }
        if let Some(v) = self.batch_size {
            t.batch_size = v;
        }
        if let Some(v) = self.lr {
            t.lr = v;
        }
        if let Some(v) = self.init_scale {
            t.init_scale = v;
        }
        if let Some(v) = self.temperature {
            t.temperature = v;
        }
        if self.no_normalize {
            t.normalize = false;
        }
        if let Some(v) = self.optimizer {
            t.optimizer = v;
        }
        let p = &mut cfg.probe;
        if let Some(v) = self.probe_train {
            p.train_size = v;
        }
        if let Some(v) = self.probe_test {
            p.test_size = v;
        }
        if let Some(v) = self.ridge {
            p.ridge = v;
        }
    }
}

/// One configuration.
#[derive(Args, Debug)]
struct PointArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    train: TrainArgs,
    /// Dropout probability on the dropout group
    #[arg(short, long = "dropout-p", default_value_t = 0.0)]
    p: f64,
    /// Strength ratio strength_b / strength_a (overrides --strength-b)
    #[arg(long)]
    ratio: Option<f64>,
    /// Embedding size k (rows of W) [default: 4]
    #[arg(short, long)]
    k: Option<usize>,
    /// How W is obtained
    #[arg(long, value_enum, default_value_t = Solver::ClosedForm)]
    solver: Solver,
    /// Seed of the initialisation, batches and probe data
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Include the learned W in the output
    #[arg(long)]
    weights: bool,
    /// One-line JSON instead of pretty-printed
    #[arg(long)]
    compact: bool,
}

impl PointArgs {
    fn config(&self) -> SimConfig {
        let mut cfg = SimConfig::default();
        self.model.apply(&mut cfg);
        self.train.apply(&mut cfg);
        if let Some(r) = self.ratio {
            cfg.model.b.strength = r * cfg.model.a.strength;
        }
        cfg.augment.dropout_p = self.p;
        if let Some(k) = self.k {
            cfg.k = k;
        }
        cfg.solver = self.solver;
        cfg.seed = self.seed;
        cfg
    }
}

/// The prediction for one configuration.
#[derive(Args, Debug)]
struct PredictArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Dropout probability on the dropout group
    #[arg(short, long = "dropout-p", default_value_t = 0.0)]
    p: f64,
    /// Strength ratio strength_b / strength_a (overrides --strength-b)
    #[arg(long)]
    ratio: Option<f64>,
    /// Embedding size k [default: 4]
    #[arg(short, long)]
    k: Option<usize>,
}

/// A list `a,b,c` or an inclusive range `start:end:step` of numbers.
fn parse_f64_list(s: &str) -> Result<Vec<f64>, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |t: &str| t.trim().parse::<f64>().map_err(|e| format!("`{t}`: {e}"));
    let values = match parts.as_slice() {
        [start, end, step] => {
            let (a, b, d) = (num(start)?, num(end)?, num(step)?);
            if d.is_nan() || d <= 0.0 || b < a {
                return Err(format!("range `{s}` needs start ≤ end and a positive step"));
            }
            featdrop_theory::sweep::linspace_step(a, b, d)
        }
        [_] => s.split(',').map(num).collect::<Result<Vec<_>, _>>()?,
        _ => return Err(format!("`{s}` is neither a list a,b,c nor a range start:end:step")),
    };
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return Err(format!("`{s}` gives no finite values"));
    }
    Ok(values)
}

/// A list `a,b,c` or an inclusive range `start:end` of non-negative integers.
fn parse_u64_list(s: &str) -> Result<Vec<u64>, String> {
    let num = |t: &str| t.trim().parse::<u64>().map_err(|e| format!("`{t}`: {e}"));
    match s.split_once(':') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if b < a {
                return Err(format!("range `{s}` needs start ≤ end"));
            }
            Ok((a..=b).collect())
        }
        None => s.split(',').map(num).collect(),
    }
}

#[derive(Clone, Debug)]
struct F64List(Vec<f64>);
#[derive(Clone, Debug)]
struct U64List(Vec<u64>);

fn f64_list(s: &str) -> Result<F64List, String> {
    parse_f64_list(s).map(F64List)
}
fn u64_list(s: &str) -> Result<U64List, String> {
    parse_u64_list(s).map(U64List)
}

/// One grid's flags.
#[derive(Args, Debug, Clone, Default)]
struct GridArgs {
    /// Dropout probabilities of the closed-form grid [default: 0:1:0.05]
    #[arg(long, value_parser = f64_list, help_heading = "Closed-form grid")]
    p_values: Option<F64List>,
    /// Strength ratios strength_b/strength_a of the closed-form grid [default: 0.05:1:0.05]
    #[arg(long, value_parser = f64_list, help_heading = "Closed-form grid")]
    ratios: Option<F64List>,
    /// Embedding sizes of the closed-form grid [default: 1,4,8]
    #[arg(long, value_parser = u64_list, help_heading = "Closed-form grid")]
    ks: Option<U64List>,
    /// Seeds of the closed-form grid (a list, or start:end inclusive) [default: 0:2]
    #[arg(long, value_parser = u64_list, help_heading = "Closed-form grid")]
    seeds: Option<U64List>,

    /// Dropout probabilities of the InfoNCE grid [default: 0:1:0.1]
    #[arg(long, value_parser = f64_list, help_heading = "InfoNCE grid")]
    infonce_p_values: Option<F64List>,
    /// Strength ratios of the InfoNCE grid [default: 0.2,0.35,0.6]
    #[arg(long, value_parser = f64_list, help_heading = "InfoNCE grid")]
    infonce_ratios: Option<F64List>,
    /// Embedding sizes of the InfoNCE grid (at least 2 with normalised embeddings) [default: 4]
    #[arg(long, value_parser = u64_list, help_heading = "InfoNCE grid")]
    infonce_ks: Option<U64List>,
    /// Seeds of the InfoNCE grid [default: 0,1]
    #[arg(long, value_parser = u64_list, help_heading = "InfoNCE grid")]
    infonce_seeds: Option<U64List>,
    /// Skip the InfoNCE grid
    #[arg(long, help_heading = "InfoNCE grid")]
    no_infonce: bool,

    /// Dropout probabilities of the spectral gradient-descent check [default: 0:1:0.2]
    #[arg(long, value_parser = f64_list, help_heading = "Spectral gradient-descent grid")]
    gd_p_values: Option<F64List>,
    /// Strength ratios of the spectral gradient-descent check [default: 0.2,0.35,0.6]
    #[arg(long, value_parser = f64_list, help_heading = "Spectral gradient-descent grid")]
    gd_ratios: Option<F64List>,
    /// Embedding sizes of the spectral gradient-descent check [default: 4]
    #[arg(long, value_parser = u64_list, help_heading = "Spectral gradient-descent grid")]
    gd_ks: Option<U64List>,
    /// Seeds of the spectral gradient-descent check [default: 0]
    #[arg(long, value_parser = u64_list, help_heading = "Spectral gradient-descent grid")]
    gd_seeds: Option<U64List>,
    /// Skip the spectral gradient-descent check
    #[arg(long, help_heading = "Spectral gradient-descent grid")]
    no_gd_check: bool,
}

fn apply_grid(grid: &mut Grid, p: &Option<F64List>, r: &Option<F64List>, k: &Option<U64List>, s: &Option<U64List>) {
    if let Some(v) = p {
        grid.p_values = v.0.clone();
    }
    if let Some(v) = r {
        grid.ratios = v.0.clone();
    }
    if let Some(v) = k {
        grid.ks = v.0.iter().map(|&k| k as usize).collect();
    }
    if let Some(v) = s {
        grid.seeds = v.0.clone();
    }
}

/// The sweep.
#[derive(Args, Debug)]
struct SweepArgs {
    /// Output folder (created if missing); gets theory.json, summary.md and the PNG figures
    #[arg(long)]
    out: PathBuf,
    /// Start from this sweep configuration (JSON, as printed by `default-config`)
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    train: TrainArgs,
    /// Embedding size of the base configuration, used for the headline prediction [default: 4]
    #[arg(long)]
    base_k: Option<usize>,
    #[command(flatten)]
    grids: GridArgs,
    /// Worker threads (default: one per core)
    #[arg(long)]
    threads: Option<usize>,
    /// Skip the PNG figures
    #[arg(long)]
    no_figures: bool,
    /// Hide the progress bar
    #[arg(long)]
    no_progress: bool,
    /// Print a machine-readable JSON summary on stdout instead of text
    #[arg(long)]
    json: bool,
    /// Only check the arguments (parse them, read and validate the configuration) and exit:
    /// `cargo xtask reproduce` checks an experiment's `theory` list so before any cell.
    #[arg(long, hide = true)]
    check: bool,
}

impl SweepArgs {
    fn config(&self) -> Result<SweepConfig> {
        let mut cfg = match &self.config {
            Some(path) => featdrop_core::io::read_json::<SweepConfig>(path)?,
            None => SweepConfig::default(),
        };
        self.model.apply(&mut cfg.base);
        self.train.apply(&mut cfg.base);
        if let Some(k) = self.base_k {
            cfg.base.k = k;
        }
        let g = &self.grids;
        apply_grid(&mut cfg.closed_form, &g.p_values, &g.ratios, &g.ks, &g.seeds);
        let defaults = SweepConfig::default();
        if g.no_infonce {
            cfg.info_nce = None;
        } else {
            let any = g.infonce_p_values.is_some()
                || g.infonce_ratios.is_some()
                || g.infonce_ks.is_some()
                || g.infonce_seeds.is_some();
            if any && cfg.info_nce.is_none() {
                cfg.info_nce = defaults.info_nce.clone();
            }
            if let Some(grid) = cfg.info_nce.as_mut() {
                apply_grid(grid, &g.infonce_p_values, &g.infonce_ratios, &g.infonce_ks, &g.infonce_seeds);
            }
        }
        if g.no_gd_check {
            cfg.spectral_gd = None;
        } else {
            let any = g.gd_p_values.is_some() || g.gd_ratios.is_some() || g.gd_ks.is_some() || g.gd_seeds.is_some();
            if any && cfg.spectral_gd.is_none() {
                cfg.spectral_gd = defaults.spectral_gd.clone();
            }
            if let Some(grid) = cfg.spectral_gd.as_mut() {
                apply_grid(grid, &g.gd_p_values, &g.gd_ratios, &g.gd_ks, &g.gd_seeds);
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

fn print_json<T: serde::Serialize>(value: &T, compact: bool) -> Result<()> {
    let text = if compact { serde_json::to_string(value)? } else { serde_json::to_string_pretty(value)? };
    emit(&format!("{text}\n"))
}

fn run_sweep_command(args: &SweepArgs) -> Result<()> {
    let cfg = args.config()?;
    if args.check {
        return Ok(());
    }
    let n = cfg.points().len();
    tracing::info!(points = n, out = %args.out.display(), "starting sweep");
    let bar = if args.no_progress {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(n as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} points, eta {eta}")
                .context("progress bar template")?,
        );
        bar
    };
    let pool = {
        let mut b = rayon::ThreadPoolBuilder::new();
        if let Some(t) = args.threads {
            b = b.num_threads(t);
        }
        b.build().context("starting the worker threads")?
    };
    let start = Instant::now();
    let out = pool.install(|| run_sweep(&cfg, &|| bar.inc(1)))?;
    bar.finish_and_clear();
    let wall_s = start.elapsed().as_secs_f64();
    let paths = write_outputs(&out, &args.out, !args.no_figures, wall_s)?;
    tracing::info!(wall_s, files = paths.len(), "sweep finished");
    let bp = &out.summary.base_prediction;
    if args.json {
        let summary = serde_json::json!({
            "out": args.out,
            "files": paths,
            "points": out.points.len(),
            "wall_s": wall_s,
            "base_prediction": bp,
            "gd_agreement": out.summary.gd_agreement,
            "thresholds": out.summary.thresholds,
        });
        print_json(&summary, false)?;
    } else {
        let mut text = format!("{} points in {:.1} s\n", out.points.len(), wall_s);
        text += &format!(
            "base configuration (ratio {:.3}, k = {}): predicted threshold p* = {}, task A's signal leaves past p = {:.3}\n",
            cfg.base.model.strength_ratio(),
            cfg.base.k,
            bp.onset_p.map(|p| format!("{p:.3}")).unwrap_or_else(|| "none".into()),
            bp.loss_p
        );
        for p in &paths {
            text += &format!("wrote {}\n", p.display());
        }
        emit(&text)?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    logging::init(&cli.verbosity);
    match &cli.command {
        Command::Sweep(args) => run_sweep_command(args),
        Command::Point(args) => {
            let cfg = args.config();
            let mut result = simulate(&cfg)?;
            if !args.weights {
                result.weights = None;
            }
            print_json(&serde_json::json!({ "config": cfg, "result": result }), args.compact)
        }
        Command::Predict(args) => {
            let mut cfg = SimConfig::default();
            args.model.apply(&mut cfg);
            if let Some(r) = args.ratio {
                cfg.model.b.strength = r * cfg.model.a.strength;
            }
            cfg.augment.dropout_p = args.p;
            if let Some(k) = args.k {
                cfg.k = k;
            }
            cfg.validate()?;
            let pred = predict(&cfg.model, &cfg.augment, cfg.k);
            print_json(&serde_json::json!({ "config": cfg, "prediction": pred }), false)
        }
        Command::DefaultConfig => print_json(&SweepConfig::default(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn documented_defaults_match_the_library() {
        let sweep = Cli::command().find_subcommand("sweep").cloned().expect("sweep subcommand");
        let help = sweep.clone().render_help().to_string();
        let d = SimConfig::default();
        for needle in [
            format!("[default: {}]", d.model.a.dim),
            format!("[default: {}]", d.model.a.strength),
            format!("[default: {}]", d.model.b.noise_std),
            format!("[default: {}]", d.augment.noise_std),
            format!("[default: {}]", d.train.steps),
            format!("[default: {}]", d.train.lr),
            format!("[default: {}]", d.train.temperature),
            format!("[default: {}]", d.k),
        ] {
            assert!(help.contains(&needle), "help lacks {needle}");
        }
        // Parsing no flags gives the library defaults.
        let cli = Cli::try_parse_from(["featdrop-theory", "sweep", "--out", "x"]).unwrap();
        let Command::Sweep(args) = cli.command else { panic!() };
        assert_eq!(args.config().unwrap(), SweepConfig::default());
    }

    #[test]
    fn lists_and_ranges_parse() {
        assert_eq!(parse_f64_list("0,0.5,1").unwrap(), vec![0.0, 0.5, 1.0]);
        assert_eq!(parse_f64_list("0:1:0.25").unwrap(), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert!(parse_f64_list("1:0:0.1").is_err());
        assert!(parse_f64_list("a").is_err());
        assert_eq!(parse_u64_list("2:4").unwrap(), vec![2, 3, 4]);
        assert_eq!(parse_u64_list("7").unwrap(), vec![7]);
    }
}
