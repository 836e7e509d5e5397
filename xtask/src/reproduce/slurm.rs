//! `reproduce --executor slurm`: the cells still to do become one Slurm job array. Each array
//! task runs `xtask cell --experiment … --index $SLURM_ARRAY_TASK_ID` (its index in the grid)
//! from the checkout, which the cluster's nodes see on a shared filesystem, and writes its own
//! status record (see `record`). `--wait` follows the array with `squeue` (and `sacct` where the
//! cluster keeps accounting), then the caller runs the theory sweep and the report as locally.
//!
//! Files, all under `<runs>/<experiment>/slurm/`: `array.sbatch` (the last script submitted),
//! `experiment.<hash>.json` (the experiment file the tasks read, frozen at submission),
//! `submissions/<job>.json` (which cells each array holds) and the tasks' `%A_%a.{out,err}` logs.

use super::cells::{finished, run_one};
use super::experiment::{Cell, Experiment};
use super::record::{self, Record};
use super::{Bins, ReproduceArgs, absolute};
use crate::libtorch;
use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The experiment file's optional `slurm` section: resources of every array task. Flags win.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSection {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--time`, Slurm's time-limit syntax (e.g. `12:00:00`, `1-00:00:00`).
    pub time: Option<String>,
    /// GPUs per cell (`--gres=gpu:N`); default 1, or 0 when the cells' device is `cpu`.
    pub gpus: Option<u32>,
    /// `--cpus-per-task`.
    pub cpus: Option<u32>,
    /// `--mem`, per cell (e.g. `16G`).
    pub mem: Option<String>,
    /// How many cells run at once (the array's `%M`).
    pub max_running: Option<u32>,
    /// Further `sbatch` arguments, one per entry (e.g. `--qos=long`).
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

/// `reproduce` flags for `--executor slurm`.
#[derive(clap::Args, Debug, Default)]
#[command(next_help_heading = "Slurm (--executor slurm; flags override the experiment's `slurm` section)")]
pub struct SlurmArgs {
    /// Partition to submit to.
    #[arg(long)]
    pub partition: Option<String>,
    /// Account to charge.
    #[arg(long)]
    pub account: Option<String>,
    /// Time limit per cell (Slurm syntax, e.g. 12:00:00).
    #[arg(long)]
    pub time: Option<String>,
    /// GPUs per cell (default 1; 0 when the device is cpu).
    #[arg(long)]
    pub gpus: Option<u32>,
    /// CPUs per cell.
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Memory per cell (e.g. 16G).
    #[arg(long)]
    pub mem: Option<String>,
    /// At most this many cells at once (the array's %M).
    #[arg(long)]
    pub max_running: Option<u32>,
    /// A further sbatch argument (repeatable), e.g. --sbatch-arg=--qos=long.
    #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// Follow the array until every task has ended, then run the theory sweep and the report.
    #[arg(long)]
    pub wait: bool,
    /// Seconds between two looks at the queue while waiting.
    #[arg(long, default_value_t = 10)]
    pub poll_seconds: u64,
}

/// The resources every task asks for, flags over the experiment file over defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Resources {
    pub section: SlurmSection,
    pub gpus: u32,
}

impl Resources {
    pub fn resolve(file: Option<&SlurmSection>, flags: &SlurmArgs, cpu_only: bool) -> Self {
        let f = file.cloned().unwrap_or_default();
        let mut sbatch_args = f.sbatch_args;
        sbatch_args.extend(flags.sbatch_args.iter().cloned());
        let section = SlurmSection {
            partition: flags.partition.clone().or(f.partition),
            account: flags.account.clone().or(f.account),
            time: flags.time.clone().or(f.time),
            gpus: flags.gpus.or(f.gpus),
            cpus: flags.cpus.or(f.cpus),
            mem: flags.mem.clone().or(f.mem),
            max_running: flags.max_running.or(f.max_running),
            sbatch_args,
        };
        let gpus = section.gpus.unwrap_or(if cpu_only { 0 } else { 1 });
        Self { section, gpus }
    }

    /// The `#SBATCH` lines for these resources (the array, name and logs come separately).
    fn lines(&self) -> Vec<String> {
        let s = &self.section;
        let mut out = Vec::new();
        let mut opt = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push(format!("--{k}={v}"));
            }
        };
        opt("partition", &s.partition);
        opt("account", &s.account);
        opt("time", &s.time);
        opt("cpus-per-task", &s.cpus.map(|c| c.to_string()));
        opt("mem", &s.mem);
        if self.gpus > 0 {
            out.push(format!("--gres=gpu:{}", self.gpus));
        }
        out.extend(s.sbatch_args.iter().cloned());
        out
    }
}

/// What one submission holds: `slurm/submissions/<job>.json`, written once, by the submitter.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Submission {
    job_id: u64,
    /// (grid index = array task id, cell id).
    cells: Vec<(usize, String)>,
    script: String,
}

/// What the batch script runs: this very xtask binary, so tasks need no cargo on the nodes.
struct TaskCommand {
    checkout: PathBuf,
    xtask: PathBuf,
    experiment: PathBuf,
    out: PathBuf,
    bin_dir: PathBuf,
}

/// The batch script: the array of grid indices, its logs, resources, and the one task command.
fn batch_script(exp: &str, array: &[usize], res: &Resources, slurm_dir: &Path, task: &TaskCommand) -> String {
    let list: Vec<String> = array.iter().map(|i| i.to_string()).collect();
    let limit = res.section.max_running.map(|m| format!("%{m}")).unwrap_or_default();
    let mut s = String::from("#!/bin/bash\n");
    s += &format!(
        "# featdrop: experiment `{exp}`, {} cell(s), written by `cargo xtask reproduce --executor slurm`.\n\
         # Each array task id is a cell's index in the grid; resubmit with `sbatch` on this file.\n",
        array.len()
    );
    s += &format!("#SBATCH --job-name=featdrop-{exp}\n#SBATCH --array={}{limit}\n", list.join(","));
    s += &format!("#SBATCH --output={}\n", slurm_dir.join("%A_%a.out").display());
    s += &format!("#SBATCH --error={}\n", slurm_dir.join("%A_%a.err").display());
    for line in res.lines() {
        s += &format!("#SBATCH {line}\n");
    }
    s += "set -euo pipefail\n";
    s += &format!("cd {}\n", sh_quote(&task.checkout));
    s += &format!(
        "exec {} cell --experiment {} --out {} --bin-dir {} --index \"$SLURM_ARRAY_TASK_ID\"\n",
        sh_quote(&task.xtask),
        sh_quote(&task.experiment),
        sh_quote(&task.out),
        sh_quote(&task.bin_dir)
    );
    s
}

/// Single-quotes a path for bash.
fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// Finds a program on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

/// A Slurm client command, with a clear error when Slurm is not installed here.
fn slurm_cmd(name: &str) -> Result<Command> {
    match on_path(name) {
        Some(p) => Ok(Command::new(p)),
        None => bail!(
            "`{name}` was not found on PATH: --executor slurm needs Slurm's client commands (sbatch, squeue, \
             scancel) on this machine, e.g. a cluster's login node; or use --executor local"
        ),
    }
}

/// Tasks of `job` still in the queue: array task id → Slurm state (PENDING, RUNNING, …).
fn queued_tasks(job: u64) -> Result<HashMap<u64, String>> {
    let out = slurm_cmd("squeue")?.args(["-h", "-r", "-o", "%i %T", "-j", &job.to_string()]).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // A job that left the queue a while ago is unknown to squeue: nothing of it is queued.
        if err.contains("Invalid job id") {
            return Ok(HashMap::new());
        }
        bail!("squeue -j {job} failed ({}): {}", out.status, err.trim());
    }
    let mut tasks = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (id, state) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        if let Some(task) = id.split_once('_').and_then(|(_, t)| t.parse().ok()) {
            tasks.insert(task, state.to_string());
        }
    }
    Ok(tasks)
}

/// How array tasks of `job` ended according to `sacct`; None where the cluster keeps no accounting
/// ("accounting storage is disabled") or sacct is missing.
fn sacct_states(job: u64) -> Option<HashMap<u64, String>> {
    let out =
        slurm_cmd("sacct").ok()?.args(["-n", "-P", "-X", "-o", "JobID,State", "-j", &job.to_string()]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let mut states = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((id, state)) = line.split_once('|') else { continue };
        if let Some(task) = id.split_once('_').and_then(|(_, t)| t.parse().ok()) {
            // "CANCELLED by 0" → CANCELLED
            states.insert(task, state.split_whitespace().next().unwrap_or_default().to_string());
        }
    }
    Some(states)
}

/// Without accounting, the task's stderr says why Slurm ended it (slurmstepd writes one line).
fn state_from_log(err_log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(err_log).ok()?;
    let line = text.lines().rev().find(|l| l.contains("*** JOB") || l.contains("oom-kill"))?;
    Some(
        if line.contains("DUE TO TIME LIMIT") {
            "TIMEOUT"
        } else if line.contains("DUE TO PREEMPTION") {
            "PREEMPTED"
        } else if line.contains("oom-kill") {
            "OUT_OF_MEMORY"
        } else if line.contains("CANCELLED") {
            "CANCELLED"
        } else {
            "FAILED"
        }
        .to_string(),
    )
}

fn log_paths(slurm_dir: &Path, job: u64, task: u64) -> [PathBuf; 2] {
    ["out", "err"].map(|ext| slurm_dir.join(format!("{job}_{task}.{ext}")))
}

fn read_submissions(slurm_dir: &Path) -> Result<Vec<Submission>> {
    let dir = slurm_dir.join("submissions");
    let mut subs = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(subs) };
    for e in entries {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(&p)?;
            subs.push(
                serde_json::from_str(&text).with_context(|| format!("{}: not a submission record", p.display()))?,
            );
        }
    }
    subs.sort_by_key(|s: &Submission| s.job_id);
    Ok(subs)
}

/// For each cell, the latest array task it was submitted as: cell id → (job, task).
fn latest_tasks(subs: &[Submission]) -> BTreeMap<String, (u64, u64)> {
    let mut latest = BTreeMap::new();
    for s in subs {
        for (index, id) in &s.cells {
            latest.insert(id.clone(), (s.job_id, *index as u64));
        }
    }
    latest
}

/// Cells whose latest task is still queued or running: cell id → (job, task).
fn live_cells(latest: &BTreeMap<String, (u64, u64)>) -> Result<BTreeMap<String, (u64, u64)>> {
    let mut queues: HashMap<u64, HashMap<u64, String>> = HashMap::new();
    let mut live = BTreeMap::new();
    for (id, &(job, task)) in latest {
        let queued = match queues.entry(job) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(queued_tasks(job)?),
        };
        if queued.contains_key(&task) {
            live.insert(id.clone(), (job, task));
        }
    }
    Ok(live)
}

/// Records, as failed, the tasks that left the queue without writing their final record
/// (cancelled, out of time, killed with their node): state from sacct or from the task's log.
/// Returns the lines it reported.
fn reconcile(exp_dir: &Path, latest: &BTreeMap<String, (u64, u64)>) -> Result<Vec<String>> {
    let slurm_dir = exp_dir.join("slurm");
    let live = live_cells(latest)?;
    let mut accounting: HashMap<u64, Option<HashMap<u64, String>>> = HashMap::new();
    let mut said = Vec::new();
    for (id, &(job, task)) in latest {
        if live.contains_key(id) {
            continue;
        }
        let rec = record::read(exp_dir, id)?;
        let settled = rec.as_ref().is_some_and(|r| {
            // Its own final record, or a newer attempt (a later job, or a local run).
            (r.state != "running" && r.job_id.is_none_or(|j| j >= job)) || r.job_id.is_some_and(|j| j > job)
        });
        if settled {
            continue;
        }
        let [out_log, err_log] = log_paths(&slurm_dir, job, task);
        let sacct = accounting.entry(job).or_insert_with(|| sacct_states(job));
        let state = sacct
            .as_ref()
            .and_then(|s| s.get(&task).cloned())
            .or_else(|| state_from_log(&err_log))
            .unwrap_or_else(|| "ENDED (no accounting here, and its log does not say why)".into());
        let tail = record::tail(&err_log, 10);
        let error = format!("Slurm task {job}_{task} ended {state} before the cell finished; log tail:\n{tail}");
        said.push(format!("{id}: {}", error.lines().next().unwrap_or_default()));
        let rec = Record {
            state: "failed".into(),
            executor: "slurm".into(),
            job_id: Some(job),
            task_id: Some(task),
            slurm_state: Some(state),
            logs: vec![out_log, err_log],
            error: Some(error),
            node: rec.map(|r| r.node).unwrap_or_default(),
            ..Default::default()
        };
        record::write(exp_dir, id, &rec)?;
    }
    Ok(said)
}

/// Submits the unfinished cells of `cells` as one array. Returns the number of failed cells once
/// the array has ended (`--wait`), or None when it was left running.
pub fn submit(
    exp: &Experiment,
    exp_path: &Path,
    out: &Path,
    cells: &[Cell],
    bins: &Bins,
    args: &ReproduceArgs,
) -> Result<Option<usize>> {
    let exp_dir = out.join(&exp.name);
    let slurm_dir = exp_dir.join("slurm");
    let grid = exp.cells(out);
    let index_of = |c: &Cell| grid.iter().position(|g| g.id == c.id).expect("a cell of the grid");
    let latest = latest_tasks(&read_submissions(&slurm_dir)?);
    for line in reconcile(&exp_dir, &latest)? {
        eprintln!("{line}");
    }
    let live = live_cells(&latest)?;
    let mut todo = Vec::new();
    for c in cells {
        if finished(exp, c) {
            eprintln!("skip {}: finished", c.id);
        } else if let Some((job, task)) = live.get(&c.id) {
            eprintln!("skip {}: still queued as Slurm task {job}_{task}", c.id);
        } else {
            todo.push((index_of(c), c.id.clone()));
        }
    }
    let mut tracked: Vec<(String, u64, u64)> = live.iter().map(|(id, &(j, t))| (id.clone(), j, t)).collect();
    if todo.is_empty() {
        println!("nothing to submit: {} cell(s) finished, {} still queued", cells.len() - live.len(), live.len());
    } else {
        let cpu_only = cells.iter().all(|c| c.config["device"].as_str() == Some("cpu"));
        let res = Resources::resolve(exp.slurm.as_ref(), &args.slurm, cpu_only);
        let job = sbatch(exp, exp_path, out, &todo, &res, bins)?;
        let list: Vec<String> = todo.iter().map(|(i, _)| i.to_string()).collect();
        println!("submitted Slurm job array {job}: {} cell(s), grid indices {}", todo.len(), list.join(","));
        println!("task logs: {}", slurm_dir.join(format!("{job}_<index>.{{out,err}}")).display());
        tracked.extend(todo.iter().map(|(i, id)| (id.clone(), job, *i as u64)));
    }
    if !args.slurm.wait {
        let mut again: Vec<String> = std::env::args().skip(1).collect();
        again.push("--wait".into());
        if !tracked.is_empty() {
            let jobs: std::collections::BTreeSet<u64> = tracked.iter().map(|t| t.1).collect();
            let jobs: Vec<String> = jobs.iter().map(u64::to_string).collect();
            println!("follow it: squeue -j {}", jobs.join(","));
        }
        println!(
            "gather later: `cargo xtask {}` (follows what is still queued, resubmits only unfinished cells, \
             then runs the theory sweep and the report), or `cargo xtask report --experiment {}` for the report alone",
            again.join(" "),
            exp.name
        );
        return Ok(None);
    }
    follow(&exp_dir, &tracked, Duration::from_secs(args.slurm.poll_seconds.max(1)))?;
    let latest = latest_tasks(&read_submissions(&slurm_dir)?);
    for line in reconcile(&exp_dir, &latest)? {
        eprintln!("{line}");
    }
    let status = record::assemble(&exp_dir)?;
    let mut failed = 0;
    for c in cells.iter().filter(|c| !finished(exp, c)) {
        failed += 1;
        let why = status.get(&c.id).and_then(|r| r.error.clone()).unwrap_or_else(|| "no record".into());
        eprintln!("FAILED {}: {why}", c.id);
    }
    Ok(Some(failed))
}

/// Writes the script and the frozen experiment file, and submits; on a refusal nothing stays
/// behind that looks submitted. Returns the array's job id.
fn sbatch(
    exp: &Experiment,
    exp_path: &Path,
    out: &Path,
    todo: &[(usize, String)],
    res: &Resources,
    bins: &Bins,
) -> Result<u64> {
    let mut cmd = slurm_cmd("sbatch")?;
    let slurm_dir = out.join(&exp.name).join("slurm");
    std::fs::create_dir_all(&slurm_dir)?;
    // Tasks read the experiment as it was at submission, even if the file is edited meanwhile.
    let text = std::fs::read(exp_path).with_context(|| format!("reading {}", exp_path.display()))?;
    let frozen = slurm_dir.join(format!("experiment.{}.json", short_hash(&text)));
    let created = !frozen.exists();
    if created {
        std::fs::write(&frozen, &text)?;
    }
    let task = TaskCommand {
        checkout: crate::paths::repo_root(),
        xtask: std::env::current_exe().context("locating the xtask binary")?,
        experiment: frozen.clone(),
        out: out.to_path_buf(),
        bin_dir: bins.dir().to_path_buf(),
    };
    let indices: Vec<usize> = todo.iter().map(|t| t.0).collect();
    let script = batch_script(&exp.name, &indices, res, &slurm_dir, &task);
    let tmp = slurm_dir.join("array.sbatch.tmp");
    std::fs::write(&tmp, &script)?;
    let result = cmd.arg("--parsable").arg(&tmp).output().context("running sbatch");
    let job = match &result {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            text.trim().split(';').next().and_then(|j| j.parse::<u64>().ok())
        }
        _ => None,
    };
    let Some(job) = job else {
        let _ = std::fs::remove_file(&tmp);
        if created {
            let _ = std::fs::remove_file(&frozen);
        }
        let why = match result {
            Ok(o) => format!(
                "{}: {}{}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim(),
                String::from_utf8_lossy(&o.stdout).trim()
            ),
            Err(e) => format!("{e:#}"),
        };
        bail!("Slurm refused the job array for experiment `{}` (sbatch {why}); nothing was submitted", exp.name);
    };
    std::fs::rename(&tmp, slurm_dir.join("array.sbatch"))?;
    let sub = Submission { job_id: job, cells: todo.to_vec(), script };
    let dir = slurm_dir.join("submissions");
    std::fs::create_dir_all(&dir)?;
    let dest = dir.join(format!("{job}.json"));
    record::write_atomic(&dest, &serde_json::to_string_pretty(&sub)?)?;
    Ok(job)
}

fn short_hash(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Follows the tasks until none is queued, with a progress line whenever the counts change.
fn follow(exp_dir: &Path, tracked: &[(String, u64, u64)], poll: Duration) -> Result<()> {
    if tracked.is_empty() {
        return Ok(());
    }
    let start = Instant::now();
    let jobs: std::collections::BTreeSet<u64> = tracked.iter().map(|t| t.1).collect();
    let mut last = String::new();
    let mut misses = 0;
    loop {
        let mut queued = HashMap::new();
        let asked: Result<()> = jobs.iter().try_for_each(|&job| {
            queued.extend(queued_tasks(job)?.into_iter().map(|(task, state)| ((job, task), state)));
            Ok(())
        });
        // A busy controller sometimes fails to answer; only a lasting silence ends the wait.
        if let Err(e) = asked {
            misses += 1;
            ensure!(misses < 5, "gave up following the array: {e:#}");
            eprintln!("slurm: {e:#}; asking again");
            std::thread::sleep(poll);
            continue;
        }
        misses = 0;
        let recs = record::read_all(exp_dir)?;
        let [mut done, mut running, mut pending, mut failed] = [0usize; 4];
        for (id, job, task) in tracked {
            match queued.get(&(*job, *task)).map(String::as_str) {
                Some("RUNNING" | "COMPLETING") => running += 1,
                Some(_) => pending += 1,
                None if recs.get(id).is_some_and(|r| r.state == "done" && r.job_id == Some(*job)) => done += 1,
                None => failed += 1,
            }
        }
        let counts = format!("{done} done, {running} running, {pending} pending, {failed} failed of {}", tracked.len());
        let elapsed = start.elapsed().as_secs();
        let ended = done + failed;
        let eta = if ended > 0 && ended < tracked.len() {
            clock(elapsed * (tracked.len() - ended) as u64 / ended as u64)
        } else {
            "?".into()
        };
        if counts != last {
            eprintln!("slurm: cells {counts} · elapsed {} · estimate {eta} left", clock(elapsed));
            last = counts;
        }
        if queued.is_empty() {
            return Ok(());
        }
        std::thread::sleep(poll);
    }
}

fn clock(secs: u64) -> String {
    format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// `cargo xtask cell`: runs one cell of an experiment by its index in the grid, and writes its
/// status record. The Slurm array's tasks run this; it works the same anywhere.
#[derive(clap::Args, Debug)]
pub struct CellArgs {
    /// The experiment file (a Slurm task gets the copy frozen in `<runs>/<experiment>/slurm/`).
    #[arg(long)]
    pub experiment: PathBuf,
    /// The cell's index in the grid (datasets × view modes × seeds, in the file's order); under
    /// Slurm, `$SLURM_ARRAY_TASK_ID`.
    #[arg(long)]
    pub index: usize,
    /// Root of the run directories.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Use already-built featdrop binaries from this folder instead of building them (release).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

/// Runs one cell; its configs must have been written by `reproduce` (which submits the array).
pub fn run_cell(args: &CellArgs) -> Result<()> {
    let exp = Experiment::load(&absolute(&args.experiment))?;
    let out = absolute(&args.out);
    let grid = exp.cells(&out);
    let Some(c) = grid.get(args.index) else {
        bail!(
            "--index {}: experiment `{}` has {} cell(s) (indices 0..{})",
            args.index,
            exp.name,
            grid.len(),
            grid.len()
        );
    };
    let exp_dir = out.join(&exp.name);
    let config = exp_dir.join("configs").join(format!("{}.json", c.id.replace('/', "__")));
    ensure!(
        config.is_file(),
        "{} is missing: `cargo xtask reproduce` writes the cells' configs first",
        config.display()
    );
    let lt = libtorch::setup()?;
    let bins = match &args.bin_dir {
        Some(dir) => Bins::existing(&absolute(dir), &lt)?,
        None => Bins::build(&lt)?,
    };
    let env_u64 = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let (job, task) = (env_u64("SLURM_ARRAY_JOB_ID"), env_u64("SLURM_ARRAY_TASK_ID"));
    let mut base = Record { executor: "local".into(), node: record::node_name(), ..Default::default() };
    if let (Some(job), Some(task)) = (job, task) {
        base = Record { executor: "slurm".into(), job_id: Some(job), task_id: Some(task), ..base };
        base.logs = log_paths(&exp_dir.join("slurm"), job, task).to_vec();
    }
    if finished(&exp, c) {
        eprintln!("{}: finished already; nothing to do", c.id);
        return Ok(());
    }
    eprintln!("cell {} (grid index {}) on {}", c.id, args.index, base.node);
    record::write(&exp_dir, &c.id, &Record { state: "running".into(), ..base.clone() })?;
    let (mut rec, error) = run_one(&exp, &exp_dir, c, &bins, base)?;
    if error.is_some() && rec.executor == "slurm" {
        rec.slurm_state = Some("FAILED".into());
    }
    record::write(&exp_dir, &c.id, &rec)?;
    match error {
        None => {
            eprintln!("cell {} done in {:.0} s", c.id, rec.seconds);
            Ok(())
        }
        Some(e) => bail!("cell {} failed after {:.0} s: {e}", c.id, rec.seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_gpus_default_by_device() {
        let file = SlurmSection {
            partition: Some("gpu".into()),
            time: Some("12:00:00".into()),
            mem: Some("16G".into()),
            sbatch_args: vec!["--qos=long".into()],
            ..Default::default()
        };
        let flags = SlurmArgs {
            partition: Some("debug".into()),
            max_running: Some(4),
            sbatch_args: vec!["--constraint=a100".into()],
            ..Default::default()
        };
        let r = Resources::resolve(Some(&file), &flags, false);
        assert_eq!(r.gpus, 1, "cuda/auto cells get one GPU unless told otherwise");
        assert_eq!(
            r.lines(),
            ["--partition=debug", "--time=12:00:00", "--mem=16G", "--gres=gpu:1", "--qos=long", "--constraint=a100"]
        );
        assert_eq!(Resources::resolve(None, &SlurmArgs::default(), true).gpus, 0, "cpu cells get none");
        let two = SlurmArgs { gpus: Some(2), ..Default::default() };
        assert_eq!(Resources::resolve(Some(&file), &two, true).gpus, 2, "an explicit count wins");
    }

    #[test]
    fn the_script_runs_each_task_by_grid_index_with_its_logs() {
        let res =
            Resources::resolve(None, &SlurmArgs { max_running: Some(2), cpus: Some(1), ..Default::default() }, true);
        let task = TaskCommand {
            checkout: "/shared/featdrop".into(),
            xtask: "/shared/featdrop/target/debug/xtask".into(),
            experiment: "/shared/runs/x/slurm/experiment.ab.json".into(),
            out: "/shared/runs".into(),
            bin_dir: "/shared/featdrop/target/release".into(),
        };
        let s = batch_script("x", &[0, 3, 5], &res, Path::new("/shared/runs/x/slurm"), &task);
        for want in [
            "#SBATCH --array=0,3,5%2\n",
            "#SBATCH --output=/shared/runs/x/slurm/%A_%a.out\n",
            "#SBATCH --error=/shared/runs/x/slurm/%A_%a.err\n",
            "#SBATCH --cpus-per-task=1\n",
            "--index \"$SLURM_ARRAY_TASK_ID\"\n",
        ] {
            assert!(s.contains(want), "{want:?} missing from\n{s}");
        }
        assert!(!s.contains("--gres"), "{s}");
    }

    #[test]
    fn slurm_says_why_it_ended_a_task_in_its_log() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("1_0.err");
        for (line, want) in [
            ("slurmstepd-vm: error: *** JOB 4 ON vm CANCELLED AT 2026-12-02T06:19:06 ***", Some("CANCELLED")),
            (
                "slurmstepd: error: *** JOB 9 ON n1 CANCELLED AT 2026-12-02T06:19:06 DUE TO TIME LIMIT ***",
                Some("TIMEOUT"),
            ),
            ("error: cell failed", None),
        ] {
            std::fs::write(&p, format!("step output\n{line}\n")).unwrap();
            assert_eq!(state_from_log(&p).as_deref(), want, "{line}");
        }
    }
}
