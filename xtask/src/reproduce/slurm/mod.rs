//! `reproduce --executor slurm`: the cells still to do become one Slurm job array. Each array
//! task runs `xtask cell --experiment … --index $SLURM_ARRAY_TASK_ID` (its index in the grid)
//! from the checkout, which the cluster's nodes see on a shared filesystem, and writes its own
//! status record (`super::record`; the entry point is `super::cell`). `--wait` follows the array
//! with `squeue` (and `sacct` where the cluster keeps accounting), then the caller runs the theory
//! sweep and the report as locally.
//!
//! Files, all under `<runs>/<experiment>/slurm/`: `array.sbatch` (the last script submitted),
//! `experiment.<hash>.json` (the experiment file the tasks read, frozen at submission),
//! `submissions/<job>.json` (which cells each array holds) and the tasks' `%A_%a.{out,err}` logs.

mod queue;
mod script;

pub use script::{SlurmArgs, SlurmSection};

use super::cells::finished;
use super::experiment::{Cell, Experiment};
use super::record::{self, Record};
use super::{Bins, ReproduceArgs};
use anyhow::{Context, Result, bail, ensure};
pub(super) use queue::log_paths;
use queue::{queued_tasks, sacct_states, slurm_cmd, state_from_log};
use script::{Resources, TaskCommand, batch_script};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

/// What one submission holds: `slurm/submissions/<job>.json`, written once, by the submitter.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Submission {
    job_id: u64,
    /// (grid index = array task id, cell id).
    cells: Vec<(usize, String)>,
    script: String,
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

/// GPUs each array task asks for (and sees as `cuda:0 …`), as `submit` resolves them.
pub fn gpus_per_task(exp: &Experiment, cells: &[Cell], flags: &SlurmArgs) -> u32 {
    let cpu_only = cells.iter().all(|c| c.config.device == featdrop_core::DeviceChoice::Cpu);
    Resources::resolve(exp.slurm.as_ref(), flags, cpu_only).gpus
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
    let grid = exp.cells(out, args.device.as_deref())?;
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
        let cpu_only = cells.iter().all(|c| c.config.device == featdrop_core::DeviceChoice::Cpu);
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
