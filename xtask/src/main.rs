//! `cargo xtask …`: featdrop's task runner. It builds without libtorch (it is what installs it),
//! so it never depends on tch; steps that need libtorch run the per-crate binaries.

mod bench;
mod doctor;
mod fetch;
mod libtorch;
mod paths;
mod pytorch;
mod report;
mod reproduce;
mod test;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", version, about = "featdrop's task runner: set-up, checks and the test command")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install libtorch 2.11 (the PyPI wheel torch==2.11.0) into a user-level cache, or check
    /// the libtorch that LIBTORCH points at, and link it into this checkout (.libtorch/).
    /// A second run is instant.
    Setup,
    /// Report libtorch version and path, CUDA, GPUs, cuDNN and threads.
    Doctor {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The one test command: set-up, then every test of the workspace (unit, integration, the
    /// library examples custom_dataset, custom_views and theory_quick, doc), `cargo doc` with
    /// warnings as errors, then the formatting and lint checks.
    Test {
        /// Skip `cargo fmt --check` and `cargo clippy`.
        #[arg(long)]
        no_lint: bool,
        /// Extra arguments passed to `cargo test` (after `--`), e.g. a test-name filter. With
        /// them only library, binary and integration tests run: benches and examples take no filter.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Download a real dataset (CIFAR-10, MNIST) into data/raw/, verified against data/manifest.json;
    /// resumes interrupted downloads and skips files already verified.
    Fetch(fetch::FetchArgs),
    /// The whole study: for every cell of an experiment grid (dataset × view mode × seed)
    /// pretraining, linear probes and label destruction, then the theory sweep and the report.
    /// Finished cells are skipped; an interrupted cell resumes.
    Reproduce(Box<reproduce::ReproduceArgs>),
    /// Run one cell of an experiment grid by its index (what each task of the Slurm job array of
    /// `reproduce --executor slurm` runs); writes the cell's status record.
    Cell(reproduce::cell::CellArgs),
    /// Gather finished runs into report/REPORT.md, figures and report/results.json.
    Report {
        /// Root of the run directories.
        #[arg(long, default_value = "runs")]
        runs: std::path::PathBuf,
        /// Output folder.
        #[arg(long, default_value = "report")]
        out: std::path::PathBuf,
        /// Only this experiment (default: every experiment under --runs).
        #[arg(long)]
        experiment: Option<String>,
    },
    /// Benchmarks: `data` (overlay composition), `audio` (spectrograms), `views` (expert augmentations), `train`
    /// (training steps), `layout` (training steps NCHW vs channels-last), or `all`. Each prints its ratio against a baseline measured in the same run.
    /// `reference` (not in `all`) compares featdrop's training steps with the published pipeline
    /// in PyTorch (benches/reference/), installing torchvision and pillow into torch's Python.
    /// `gpu` (not in `all`): doctor, the train, layout and reference benches, the smoke study and two
    /// epochs of a paper cell on the GPU, each step time-limited, into one JSON file
    /// (`target/bench-gpu/<UTC time>.json`; docs/PROTOCOL.md).
    Bench {
        /// Which benchmark: data, audio, views, train, layout, all, reference or gpu.
        #[arg(default_value = "all")]
        which: String,
        /// Device: cpu, cuda, cuda:N (cuda without a usable GPU is an error). Default: cuda for
        /// `gpu` (`--device cpu` runs its steps at tiny sizes on the CPU), cpu otherwise.
        #[arg(long)]
        device: Option<String>,
        /// With `reference`: then profile one more run of each configuration on both sides with
        /// libtorch's profiler and print where each step's time goes, op by op (traces are kept in
        /// target/bench-traces/).
        #[arg(long)]
        profile: bool,
        #[command(flatten)]
        gpu: bench::gpu::GpuArgs,
    },
}

fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match cli.cmd {
        Cmd::Setup => libtorch::setup().map(|_| ()),
        Cmd::Doctor { json } => doctor::run(json),
        Cmd::Test { no_lint, cargo_args } => test::run(!no_lint, &cargo_args),
        Cmd::Fetch(args) => fetch::run(&args),
        Cmd::Bench { which, device, profile, gpu } => bench::run(&which, device.as_deref(), profile, &gpu),
        Cmd::Reproduce(args) => reproduce::run(&args),
        Cmd::Cell(args) => reproduce::cell::run_cell(&args),
        Cmd::Report { runs, out, experiment } => report::write(&runs, &out, experiment.as_deref()),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
