//! `cargo xtask reproduce`: the whole study in one command (docs/PROTOCOL.md §7–§8). For each grid cell of
//! an experiment it runs pretraining, linear probes and the label-destruction analysis through the
//! per-crate binaries, then the theory sweep, then the report. Finished cells are skipped, an
//! interrupted cell resumes (the binaries resume themselves), a failed cell is recorded with its
//! error and the rest go on; the exit status says whether any cell failed.
//!
//! Everything the experiment file says is checked before the first cell starts (see
//! [`preflight`]), and so is the device every cell will use, which is said ([`devices`]). One
//! `reproduce` at a time writes an experiment's folder: it holds the folder's lock (a second one
//! stops at once, naming the first one's pid), and every process it starts ends when it ends,
//! however it ends — no orphaned trainer goes on writing a run directory.

pub mod cell;
pub mod changed;
pub mod costs;
pub mod devices;
pub mod experiment;
pub mod locks;
pub mod preflight;
pub mod record;
pub mod slots;
pub mod slurm;
pub mod tidy;
pub mod twins;
pub mod wall;

use crate::{libtorch, paths};
use anyhow::{Context, Result, bail, ensure};
use experiment::{Cell, Experiment};
use featdrop_core::io::write_json_atomic;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `--scale` values: each is `experiments/<scale>.json`.
pub const SCALES: [&str; 6] = ["smoke", "small", "mechanism", "cures", "destruction", "paper"];

/// `cargo xtask reproduce` options.
#[derive(clap::Args, Debug)]
pub struct ReproduceArgs {
    /// Scale: smoke (seconds, tests), small (every dataset and view mode, one seed, a 2-core CPU),
    /// mechanism (the paper's mechanism on a 2-core CPU, twelve seeds sized for 90 % power:
    /// suppression and its cure by feature dropout, Holm-corrected, plus the theory sweep), cures
    /// (feature dropout, IFM, a projection head, a wider embedding and the viewmaker compared, five
    /// seeds), destruction (do the viewmaker's views destroy the digit's label more than the
    /// photo's after 30 epochs? six seeds on a 2-core CPU), paper (real data, one GPU per run,
    /// hours). Default: paper on a CUDA machine with the real data present, mechanism otherwise.
    #[arg(long, value_parser = SCALES)]
    pub scale: Option<String>,
    /// An experiment file to run instead of `experiments/<scale>.json`.
    #[arg(long)]
    pub experiment: Option<PathBuf>,
    /// Run only the cells whose id (`<dataset>/<view-mode>/seed-<n>`) contains this text.
    #[arg(long)]
    pub only: Option<String>,
    /// Device for every run: auto, cpu, cuda, cuda:N.
    #[arg(long, value_parser = parse_device)]
    pub device: Option<String>,
    /// Run up to N cells at once (local executor). Default: the experiment's `jobs`, else one cell
    /// per GPU (see --devices) when the cells run on CUDA, and on a CPU one cell per core. The
    /// cores are split evenly: each cell's libtorch gets cores / N threads (OMP_NUM_THREADS and
    /// MKL_NUM_THREADS of its processes), unless OMP_NUM_THREADS is set for `reproduce`, which
    /// every cell then gets. Results do not depend on N, only on each cell's thread count.
    #[arg(long, value_name = "N", value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// The GPUs the cells run on, one cell per GPU at a time: indices as `cargo xtask doctor`
    /// lists them, e.g. `--devices 0,2`. Default: every usable visible GPU (with `--device cuda:N`,
    /// GPU N alone). A cell sees its GPU alone, as cuda:0 (CUDA_VISIBLE_DEVICES), whatever index
    /// its config names, and its status record says which GPU it ran on. Local executor only.
    #[arg(long, value_name = "LIST", value_parser = parse_gpu_list)]
    pub devices: Option<GpuList>,
    /// Root of the run directories.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Where the report goes.
    #[arg(long, default_value = "report")]
    pub report: PathBuf,
    /// Skip the theory sweep.
    #[arg(long)]
    pub no_theory: bool,
    /// Use already-built featdrop binaries from this folder instead of building them (release).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Plan only: resolve the grid, write each cell's config (validated by featdrop-train) and
    /// `<out>/<experiment>/jobs.json`, print the cells and whether each is finished, then stop;
    /// nothing is trained, probed or reported.
    #[arg(long)]
    pub dry_run: bool,
    /// Cells (and the theory sweep) whose results were made with another config than the
    /// experiment now gives them are an error; with this flag their results are deleted and they
    /// run again.
    #[arg(long)]
    pub rerun_changed: bool,
    /// Where cells run: `local` (here, up to `--jobs` at once) or `slurm` (one job array of the
    /// unfinished cells, submitted with sbatch; see README "Running on a Slurm cluster").
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    pub executor: Executor,
    #[command(flatten)]
    pub slurm: slurm::SlurmArgs,
}

/// Where `reproduce` runs the cells.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executor {
    Local,
    Slurm,
}

/// The release binaries a study runs.
pub struct Bins {
    dir: PathBuf,
}

impl Bins {
    /// Builds the per-crate binaries (release) and returns where they are.
    pub fn build(lt: &libtorch::Libtorch) -> Result<Self> {
        eprintln!("building featdrop-train, featdrop-eval, featdrop-theory, featdrop-doctor (release)…");
        let mut cmd = paths::cargo(&lt.root);
        cmd.args(["build", "--release", "-q", "--bins"]);
        for p in ["featdrop-contrastive", "featdrop-eval", "featdrop-theory", "featdrop-core"] {
            cmd.args(["-p", p]);
        }
        ensure!(cmd.status()?.success(), "building the study's binaries failed");
        Ok(Self { dir: paths::repo_root().join("target/release") })
    }

    /// Binaries built before (e.g. by `cargo test --workspace`), checked to be there.
    pub fn existing(dir: &Path) -> Result<Self> {
        // featdrop-doctor is needed only to pick the scale and resolve devices other than `cpu`,
        // and is checked where it is used.
        for name in ["featdrop-train", "featdrop-eval", "featdrop-theory"] {
            ensure!(
                dir.join(name).is_file(),
                "--bin-dir {}: {name} is missing; build the workspace's binaries first",
                dir.display()
            );
        }
        Ok(Self { dir: dir.to_path_buf() })
    }

    /// The folder of the binaries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A command for one binary. No library path is set: every binary finds libtorch through
    /// the rpath its build script bakes in, as it does when a user runs it by hand. The process
    /// ends when this one ends (see [`die_with_parent`]).
    pub fn cmd(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.dir.join(name));
        die_with_parent(&mut cmd);
        cmd
    }
}

/// Makes the child get SIGKILL when this process ends, however it ends (Linux: the parent-death
/// signal): a `reproduce` killed with SIGKILL takes its trainer with it, instead of leaving it to
/// write a run directory that the next `reproduce` gives to a second trainer.
#[cfg(target_os = "linux")]
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the hook runs in the forked child before exec and calls only async-signal-safe
    // functions (prctl, getppid), allocating nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between the fork and the prctl: no signal would come.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Elsewhere there is no parent-death signal; children may outlive a killed `reproduce`.
#[cfg(not(target_os = "linux"))]
pub fn die_with_parent(_cmd: &mut Command) {}

/// `--devices`' GPU indices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuList(pub Vec<usize>);

impl std::fmt::Display for GpuList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self.0.iter().map(usize::to_string).collect();
        write!(f, "{}", list.join(","))
    }
}

fn parse_gpu_list(s: &str) -> Result<GpuList, String> {
    slots::parse_devices(s).map(GpuList)
}

/// `--jobs`: a whole number ≥ 1.
fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a number of cells to run at once: expected a whole number ≥ 1")),
    }
}

/// Checks a `--device` value with the run config's own parser.
fn parse_device(s: &str) -> Result<String, String> {
    s.parse::<featdrop_core::DeviceChoice>().map(|d| d.to_string())
}

/// Resolves absolute paths against the checkout (cargo runs xtask from anywhere in it).
pub(crate) fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { paths::repo_root().join(p) }
}

pub fn run(args: &ReproduceArgs) -> Result<()> {
    let mut clock = costs::Stopwatch::start();
    let lt = libtorch::setup()?;
    let bins = match &args.bin_dir {
        Some(dir) => Bins::existing(&absolute(dir))?,
        None => Bins::build(&lt)?,
    };
    clock.lap("setup");
    let mut doctor = devices::Lazy::new(&bins);
    let (exp_path, why) = choose_experiment(args, &mut doctor)?;
    let exp = Experiment::load(&exp_path)?;
    eprintln!("experiment `{}` ({}): {why}", exp.name, exp_path.display());
    let out = absolute(&args.out);
    let grid = exp.cells(&out, args.device.as_deref())?;
    let twins = twins::find(&grid);
    let (mut planned, outside) =
        twins::plan(&grid, &twins, |c| args.only.as_deref().is_none_or(|pat| c.id.contains(pat)));
    if let Some(pat) = &args.only {
        ensure!(!planned.is_empty(), "--only {pat}: no cell of `{}` matches", exp.name);
    }
    // A twin is never run: its results are its twin's (see `twins`).
    let mut cells: Vec<Cell> = planned.iter().filter(|c| !twins.contains_key(&c.id)).cloned().collect();
    let exp_dir = out.join(&exp.name);
    let theory = exp.theory.as_ref().filter(|_| !args.no_theory);
    preflight::check_tool_args(&exp, &exp_dir, &cells, &bins, theory.is_some())?;
    let mut placement = cells::Placement::default();
    match args.executor {
        Executor::Local => {
            placement = place(args, &exp, &mut cells, &mut doctor)?;
            // The configs written are the placed ones (a GPU cell sees its GPU as `cuda:0`).
            for p in planned.iter_mut() {
                if let Some(c) = cells.iter().find(|c| c.id == p.id) {
                    *p = c.clone();
                }
            }
            preflight::check_memory(&exp, &cells, placement.slots(&placement.on_gpu).len())?;
        }
        Executor::Slurm => {
            for (flag, given) in [("--jobs", args.jobs.is_some()), ("--devices", args.devices.is_some())] {
                ensure!(
                    !given,
                    "{flag} is for the local executor; a Slurm array's tasks run side by side as the cluster \
                     gives them resources (see `--gpus` and the experiment's `slurm` section)"
                );
            }
            let gpus = slurm::gpus_per_task(&exp, &cells, &args.slurm);
            devices::check_slurm(&exp, &cells, args.device.as_deref(), gpus)?;
        }
    }
    // Held until the study ends; released by the system if this process is killed.
    let _lock = locks::experiment(&exp_dir)?;
    let Some(_cells_lock) = prepare(args, &exp, &exp_dir, &planned, &outside, &twins)? else { return Ok(()) };
    let unfinished = cells.iter().filter(|c| !cells::finished(&exp, c)).count();
    clock.lap("planning");
    // Some: the theory sweep ran beside the cells (its outcome, if any).
    let mut beside = None;
    match args.executor {
        // The sweep is a process of its own that needs no cell: beside the cells it takes the
        // cores they leave idle (process starts, probes, files) instead of adding its time after
        // them.
        Executor::Local => {
            beside = Some(std::thread::scope(|s| {
                let sweep = theory.map(|t| s.spawn(|| run_theory(&exp_dir, t, &bins)));
                let ran = run_cells(&exp, &exp_dir, &cells, &bins, &placement);
                let swept = sweep.map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("its thread panicked"))));
                ran.map(|_| swept)
            })?);
        }
        Executor::Slurm => {
            if slurm::submit(&exp, &exp_path, &out, &cells, &bins, args)?.is_none() {
                return Ok(());
            }
        }
    }
    clock.lap("cells");
    let mut problems = failed_cells(&exp, &exp_dir, &planned, &twins);
    let swept = beside.unwrap_or_else(|| theory.map(|t| run_theory(&exp_dir, t, &bins)));
    if let Some(Err(e)) = swept {
        // The cells' results are reported all the same.
        eprintln!("FAILED theory sweep: {e:#}");
        problems.push(format!("the theory sweep failed (log: {})", exp_dir.join("theory.log").display()));
    }
    clock.lap("theory");
    let report = absolute(&args.report);
    // The study ends when the report's tables are made: the report shows the figures printed here.
    let study = std::cell::RefCell::new(None);
    let snapshot = || {
        let s = clock.snapshot("report", unfinished, planned.len());
        *study.borrow_mut() = Some(s.clone());
        s
    };
    match crate::report::write_with_study(&out, &report, &exp.name, &snapshot) {
        Ok(()) => {
            let rendered = study.borrow_mut().take();
            let study = rendered.unwrap_or_else(snapshot);
            study.write(&exp_dir)?;
            eprintln!("study finished in {:.0} s; report in {}", study.wall_s, report.display())
        }
        // With failures to tell, the report's own complaint (often: no finished run) comes first
        // and the failures are the last word.
        Err(e) if !problems.is_empty() => eprintln!("no report written: {e:#}"),
        Err(e) => return Err(e),
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

/// The local executor's devices, checked and said (see [`devices::check_local`]), and how many
/// cells run at once on them. A cell on a GPU is given one GPU alone (see [`slots::child_env`]),
/// which it sees as `cuda:0`: its config says so.
fn place(
    args: &ReproduceArgs,
    exp: &Experiment,
    cells: &mut [Cell],
    doctor: &mut devices::Lazy,
) -> Result<cells::Placement> {
    let devices = args.devices.as_ref().map(|d| (d.to_string(), d.0.as_slice()));
    let (on_gpu, gpus) = devices::check_local(exp, cells, args.device.as_deref(), devices, doctor)?;
    for (c, _) in cells.iter_mut().zip(&on_gpu).filter(|(_, g)| **g) {
        c.config.device = featdrop_core::DeviceChoice::Cuda(0);
    }
    let threads = slots::threads_from_env(std::env::var("OMP_NUM_THREADS").ok().as_deref())?;
    let jobs = args.jobs.or(exp.jobs);
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    Ok(cells::Placement { on_gpu, gpus, jobs, cores: slots::cores(), threads, visible })
}

/// Holding the experiment's lock, before any cell runs: tidies the folder, checks the results on
/// disk against the experiment (refused, or deleted with `--rerun-changed`), writes the configs
/// and the job list (a dry run prints its plan and stops: `None`), and the twins' records. Returns
/// the cells lock to hold while the cells run (a local run's; a Slurm array's tasks need it free).
fn prepare(
    args: &ReproduceArgs,
    exp: &Experiment,
    exp_dir: &Path,
    cells: &[Cell],
    outside: &[Cell],
    twins: &BTreeMap<String, twins::Twin>,
) -> Result<Option<Option<featdrop_core::lock::DirLock>>> {
    let cells_lock = take_cells_lock(exp_dir, args.executor)?;
    if cells_lock.is_some() {
        locks::tidy_up(exp_dir, cells.iter().chain(outside).map(|c| c.run_dir.as_path()))?;
    }
    // A twin's folder (left by an older version, which ran it) is never read: nothing to check.
    let runnable: Vec<Cell> = cells.iter().filter(|c| !twins.contains_key(&c.id)).cloned().collect();
    let mut stale = changed::cells(exp, &runnable)?;
    if let Some(t) = exp.theory.as_ref().filter(|_| !args.no_theory) {
        stale.extend(changed::theory(exp_dir, t)?);
    }
    let stale_outside = changed::cells(exp, outside)?;
    if args.dry_run {
        write_configs(exp_dir, cells)?;
        write_job_list(exp_dir, exp, cells, twins)?;
        print_plan(exp, exp_dir, cells, twins, args.no_theory, &stale, &stale_outside);
        return Ok(None);
    }
    // Refusals come before anything is written: a refused run leaves configs/ and jobs.json as
    // they were.
    if let Some(pat) = &args.only {
        changed::refuse_outside_only(exp, pat, &stale_outside)?;
    }
    ensure!(
        !args.rerun_changed || stale.is_empty() || cells_lock.is_some(),
        "{}: results of another config cannot be deleted while cells of this experiment are running \
         (`cargo xtask cell` tasks hold {}); wait for them to end (squeue) or cancel them, then run again",
        exp_dir.display(),
        exp_dir.join(locks::CELLS_LOCK).display()
    );
    changed::handle(exp, exp_dir, &stale, args.rerun_changed)?;
    write_configs(exp_dir, cells)?;
    write_job_list(exp_dir, exp, cells, twins)?;
    twins::write_records(exp_dir, cells, twins)?;
    record::assemble(exp_dir)?;
    Ok(Some(match args.executor {
        Executor::Local => cells_lock,
        Executor::Slurm => None,
    }))
}

/// The cells lock (see [`locks`]): a local run holds it throughout and fails without it; a Slurm
/// run takes it if no cell task holds it (to tidy, and to delete changed results), else goes on
/// without it.
fn take_cells_lock(exp_dir: &Path, executor: Executor) -> Result<Option<featdrop_core::lock::DirLock>> {
    match (locks::cells_exclusive(exp_dir), executor) {
        (Ok(lock), _) => Ok(Some(lock)),
        (Err(e), Executor::Local) => Err(e),
        (Err(e), Executor::Slurm) => {
            eprintln!("note: {e:#}; stale temp files and unreadable status records are left for later");
            Ok(None)
        }
    }
}

/// "N cell(s) failed: …" for the cells left unfinished once every cell has run, or nothing. A
/// twin is unfinished when the cell it is the same as is.
fn failed_cells(
    exp: &Experiment,
    exp_dir: &Path,
    cells: &[Cell],
    twins: &BTreeMap<String, twins::Twin>,
) -> Vec<String> {
    let finished = |c: &Cell| match twins.get(&c.id) {
        Some(t) => cells.iter().find(|o| o.id == t.same_as).is_some_and(|o| cells::finished(exp, o)),
        None => cells::finished(exp, c),
    };
    let failed: Vec<&str> = cells.iter().filter(|c| !finished(c)).map(|c| c.id.as_str()).collect();
    if failed.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "{} cell(s) failed (of {}): {}; their errors are in {}",
        failed.len(),
        cells.len(),
        failed.join(", "),
        exp_dir.join("status.json").display()
    )]
}

/// The experiment to run, and why it was picked.
fn choose_experiment(args: &ReproduceArgs, doctor: &mut devices::Lazy) -> Result<(PathBuf, String)> {
    if let Some(p) = &args.experiment {
        return Ok((absolute(p), "given with --experiment".into()));
    }
    let file = |s: &str| paths::repo_root().join("experiments").join(format!("{s}.json"));
    if let Some(s) = &args.scale {
        return Ok((file(s), format!("scale `{s}` given with --scale")));
    }
    let cuda = doctor.get().context("picking the scale (or pass --scale)")?.cuda_usable;
    let missing = crate::fetch::missing_real_data(&paths::repo_root().join("data/raw"));
    let (scale, why) = default_scale(cuda, &missing);
    Ok((file(scale), why))
}

/// The scale `reproduce` runs without `--scale`, and why: `paper` needs CUDA and the real data;
/// anywhere else `mechanism`, the CPU study that shows the paper's mechanism with statistics.
fn default_scale(cuda: bool, missing: &[String]) -> (&'static str, String) {
    match (cuda, missing.is_empty()) {
        (true, true) => ("paper", "scale `paper`: CUDA is usable and the real data is in data/raw".into()),
        (false, _) => ("mechanism", "scale `mechanism`: CUDA is not usable here (pass --scale to choose)".into()),
        (true, false) => (
            "mechanism",
            format!(
                "scale `mechanism`: CUDA is usable but real data is missing: {} (cargo xtask fetch)",
                missing.join("; ")
            ),
        ),
    }
}

/// Writes each cell's resolved, validated config: the one file its binaries are given.
fn write_configs(exp_dir: &Path, cells: &[Cell]) -> Result<()> {
    let dir = exp_dir.join("configs");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for c in cells {
        write_json_atomic(&config_file(exp_dir, c), &c.config)?;
    }
    Ok(())
}

/// Where a cell's config file is written.
fn config_file(exp_dir: &Path, c: &Cell) -> PathBuf {
    exp_dir.join("configs").join(format!("{}.json", c.id.replace('/', "__")))
}

/// The job list: every cell's resolved config and commands, as JSON, so cells can be run elsewhere;
/// a twin has no commands and names the cell whose results are its own (`same_as`).
fn write_job_list(
    exp_dir: &Path,
    exp: &Experiment,
    cells: &[Cell],
    twins: &BTreeMap<String, twins::Twin>,
) -> Result<()> {
    let job = |c: &Cell| match twins.get(&c.id) {
        Some(t) => json!({"id": c.id, "run_dir": c.run_dir, "config": c.config, "steps": [], "same_as": t.same_as}),
        None => json!({"id": c.id, "run_dir": c.run_dir, "config": c.config, "steps": steps(exp, c, exp_dir)}),
    };
    let jobs: Vec<Value> = cells.iter().map(job).collect();
    write_json_atomic(&exp_dir.join("jobs.json"), &json!({"experiment": exp.name, "jobs": jobs}))
}

/// `--dry-run`: what a real invocation would do, on stdout.
fn print_plan(
    exp: &Experiment,
    exp_dir: &Path,
    cells: &[Cell],
    twins: &BTreeMap<String, twins::Twin>,
    no_theory: bool,
    changed: &[changed::Changed],
    outside: &[changed::Changed],
) {
    let runnable: Vec<&Cell> = cells.iter().filter(|c| !twins.contains_key(&c.id)).collect();
    let done = runnable.iter().filter(|c| cells::finished(exp, c)).count();
    let same = cells.len() - runnable.len();
    let same_text =
        if same > 0 { format!(", {same} twin(s) never run (the same as another cell)") } else { String::new() };
    println!(
        "plan for experiment `{}`: {} cell(s), {done} finished, {} to run{same_text}",
        exp.name,
        cells.len(),
        runnable.len() - done
    );
    for c in cells {
        if let Some(t) = twins.get(&c.id) {
            println!("  twin      {}  = {}: {}", c.id, t.same_as, t.why);
            continue;
        }
        let state = if cells::finished(exp, c) { "finished" } else { "to run" };
        println!("  {state:<8}  {}  ({} step(s))", c.id, steps(exp, c, exp_dir).len());
    }
    for c in changed {
        println!("  changed   {}: {} (a run stops here; --rerun-changed reruns it)", c.id, c.fields.join(", "));
    }
    for c in outside {
        println!(
            "  changed   {} (outside --only): {} (a run stops here: the report would mix configs)",
            c.id,
            c.fields.join(", ")
        );
    }
    let theory = if exp.theory.is_some() && !no_theory { "then the theory sweep, " } else { "" };
    println!("{theory}then the report");
    println!("configs: {}", exp_dir.join("configs").display());
    println!("jobs:    {}", exp_dir.join("jobs.json").display());
    println!("dry run: nothing was run");
}

/// The commands of one cell: pretraining, probes, destruction.
fn steps(exp: &Experiment, c: &Cell, exp_dir: &Path) -> Vec<Vec<String>> {
    let cfg = config_file(exp_dir, c);
    let run = c.run_dir.display().to_string();
    // The view modes of a dataset share its task classifiers (the trainer's destruction monitor
    // and the destruction analysis): trained once per experiment and budget.
    let cache = exp_dir.join("classifiers").display().to_string();
    let mut s = vec![
        vec![
            "featdrop-train".into(),
            "-q".into(),
            "--config".into(),
            cfg.display().to_string(),
            "--run-dir".into(),
            run.clone(),
            "--classifier-cache".into(),
            cache.clone(),
            "--record-costs".into(),
        ],
        // The probe protocol (features, epochs, schedule) is the run's config.json; nothing here
        // overrides it.
        vec!["featdrop-eval".into(), "probe".into(), "-q".into(), "--record-costs".into(), "--run".into(), run.clone()],
    ];
    // The earlier checkpoints the run keeps (the published probe epochs at paper scale) are probed too.
    for e in cells::earlier_kept_epochs(c) {
        let probe = ["featdrop-eval", "probe", "-q", "--record-costs", "--run", &run, "--epoch", &e.to_string()];
        s.push(probe.map(String::from).to_vec());
    }
    if exp.destruction {
        let mut d: Vec<String> =
            ["featdrop-eval", "destruction", "-q", "--record-costs", "--run", &run].map(String::from).to_vec();
        d.extend(["--classifier-cache".into(), cache]);
        d.extend(exp.destruction_args.iter().cloned());
        s.push(d);
    }
    s
}

mod cells;
use cells::{run_cells, run_theory};

#[cfg(test)]
mod tests {
    use super::*;

    /// Without `--scale`, only a CUDA machine holding the real data runs `paper`; a CPU, or a GPU
    /// without the data, runs the mechanism study, and the reason names what decided it.
    #[test]
    fn the_default_scale_is_the_mechanism_study_unless_cuda_and_real_data() {
        assert_eq!(default_scale(true, &[]).0, "paper");
        let (scale, why) = default_scale(false, &[]);
        assert_eq!(scale, "mechanism");
        assert!(why.contains("CUDA is not usable"), "{why}");
        let missing = vec!["MNIST (cargo xtask fetch mnist)".to_string()];
        let (scale, why) = default_scale(true, &missing);
        assert_eq!(scale, "mechanism");
        assert!(why.contains("MNIST (cargo xtask fetch mnist)"), "{why}");
        for scale in SCALES {
            assert!(paths::repo_root().join("experiments").join(format!("{scale}.json")).is_file(), "{scale}");
        }
    }
}
