//! Running the grid cells, several at once when the machine has room (see [`super::slots`]), with
//! one overall progress display and a status file.

use super::experiment::{Cell, Experiment};
use super::record::{self, Record};
use super::slots::{Demand, Event, Slot, run_pool};
use super::{Bins, changed, costs, steps, wall};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// The files a finished cell holds, its probe.json with every probed checkpoint.
pub fn finished(exp: &Experiment, c: &Cell) -> bool {
    let mut needed = vec!["pretrain.done.json", "probe.json"];
    if exp.destruction {
        needed.push("destruction.json");
    }
    needed.iter().all(|f| c.run_dir.join(f).exists())
        && earlier_epochs_probed(c)
        && (!exp.destruction || destruction_has_every_task(c))
}

/// Whether destruction.json holds every task probe.json does: older versions wrote it after each
/// task, so one cut short between two tasks holds only the first (issue 27 item 1).
fn destruction_has_every_task(c: &Cell) -> bool {
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(c.run_dir.join(f)).unwrap_or_default()).unwrap_or_default()
    };
    let (probe, destruction) = (read("probe.json"), read("destruction.json"));
    let Some(tasks) = probe["tasks"].as_object() else { return false };
    tasks.keys().all(|t| destruction["tasks"].get(t).is_some())
}

/// The epochs of `train.keep_epochs` before the last: their checkpoints are probed too.
pub fn earlier_kept_epochs(c: &Cell) -> Vec<usize> {
    let t = &c.config.train;
    t.keep_epochs.iter().copied().filter(|e| *e != t.epochs).collect()
}

/// Whether probe.json holds results for every earlier kept epoch (its `epochs` entries).
fn earlier_epochs_probed(c: &Cell) -> bool {
    let epochs = earlier_kept_epochs(c);
    if epochs.is_empty() {
        return true;
    }
    let text = std::fs::read_to_string(c.run_dir.join("probe.json")).unwrap_or_default();
    let probe: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    epochs.iter().all(|e| probe["epochs"][e.to_string()]["tasks"].as_object().is_some_and(|t| !t.is_empty()))
}

/// Runs one step, appending its output to the cell's log; the error carries what the step said
/// (its panic message, or the tail of its output). A log that cannot be written (a full disk)
/// never hides the step's own error: see [`keep_first_cause`].
pub fn run_step(bins: &Bins, step: &[String], log: &Path) -> Result<()> {
    run_step_with(bins, step, log, &[])
}

/// [`run_step`] with `env` added to the step's environment (its slot's threads and GPU).
pub fn run_step_with(bins: &Bins, step: &[String], log: &Path, env: &[(String, String)]) -> Result<()> {
    let mut cmd = bins.cmd(&step[0]);
    cmd.args(&step[1..]).envs(env.iter().map(|(k, v)| (k, v)));
    let out = cmd.output().with_context(|| format!("starting {}", step[0]))?;
    let logged = append_log(log, step, &out);
    let outcome = if out.status.success() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "{} failed ({}): {}",
            step[0],
            out.status,
            failure_summary(&String::from_utf8_lossy(&out.stderr))
        ))
    };
    keep_first_cause(outcome, logged)
}

/// Appends a step's command line and output to the log.
fn append_log(log: &Path, step: &[String], out: &std::process::Output) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening log {}", log.display()))?;
    (|| -> std::io::Result<()> {
        writeln!(f, "$ {}", step.join(" "))?;
        f.write_all(&out.stdout)?;
        f.write_all(&out.stderr)
    })()
    .with_context(|| format!("writing log {}", log.display()))
}

/// A step's own error comes first; a failure to log it (a full disk fails both) is added after
/// it, never put in its place. After a step that succeeded, the log's failure is the error.
fn keep_first_cause(outcome: Result<()>, logged: Result<()>) -> Result<()> {
    match (outcome, logged) {
        (Err(e), Err(l)) => Err(anyhow::anyhow!("{e:#} (its output could not be logged either: {l:#})")),
        (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// What a failed step said, in one line for `status.json`: a panic's message and place (which
/// a backtrace would push out of the output's tail), else the last lines of its output.
pub fn failure_summary(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    if let Some(at) = lines.iter().position(|l| l.contains("panicked at")) {
        let message: Vec<&str> = lines[at..]
            .iter()
            .take_while(|l| !l.starts_with("stack backtrace:") && !l.starts_with("note: "))
            .copied()
            .collect();
        return message.join(" | ");
    }
    let tail = &lines[lines.len().saturating_sub(6)..];
    tail.join(" | ")
}

/// A line above the progress bar (also when stderr is not a terminal and the bar is hidden).
fn say(bar: &ProgressBar, line: String) {
    bar.suspend(|| eprintln!("{line}"));
}

/// Runs one cell's steps, `env` added to their environment; returns its record (`base` filled in
/// with the outcome) and the error. Whatever goes wrong in the cell is its error, in its record:
/// nothing here stops the others.
pub fn run_one(
    exp: &Experiment,
    exp_dir: &Path,
    c: &Cell,
    bins: &Bins,
    base: Record,
    env: &[(String, String)],
) -> (Record, Option<String>) {
    let log = c.run_dir.join("log.txt");
    let t0 = Instant::now();
    let made = std::fs::create_dir_all(&c.run_dir).with_context(|| format!("creating {}", c.run_dir.display()));
    let earlier = if made.is_ok() { earlier_attempts(&c.run_dir) } else { 0.0 };
    let result =
        made.and_then(|()| steps(exp, c, exp_dir).iter().try_for_each(|s| run_cell_step(exp, c, bins, s, &log, env)));
    let error = result.err().map(|e| format!("{e:#}"));
    let seconds = earlier + t0.elapsed().as_secs_f64();
    if let Err(e) = wall::end(&c.run_dir, seconds) {
        eprintln!("warning: {}: its wall time over attempts is not recorded: {e:#}", c.id);
    }
    let mut logs = vec![log];
    logs.extend(base.logs.iter().cloned());
    let costs = costs::CellCosts::read(&c.run_dir, seconds)
        .map_err(|e| eprintln!("warning: {}: its costs are not broken down: {e:#}", c.id))
        .ok();
    let rec = Record {
        state: if error.is_none() { "done" } else { "failed" }.into(),
        seconds,
        costs,
        exit_code: Some(if error.is_none() { 0 } else { 1 }),
        logs,
        error: error.clone(),
        ..base
    };
    (rec, error)
}

/// The seconds a cell's earlier attempts took ([`wall`]). A record that cannot be read starts
/// the count anew, said: a cost figure is not worth stopping a cell for.
fn earlier_attempts(run_dir: &Path) -> f64 {
    wall::begin(run_dir).unwrap_or_else(|e| {
        eprintln!("warning: {e:#}; counting this cell's wall time from this attempt");
        let _ = std::fs::remove_file(run_dir.join(wall::FILE));
        wall::begin(run_dir).unwrap_or(0.0)
    })
}

/// Writes the record of a cell found finished without a `done` record of its own: a kill came
/// after its last step and before its record (with cells side by side, while another cell ran).
/// It is made from the cell's files — its wall time over every attempt and its costs — so that
/// the report has its time; a cell with its record is left alone.
pub fn record_unrecorded(exp_dir: &Path, c: &Cell) -> Result<()> {
    if record::read(exp_dir, &c.id)?.is_some_and(|r| r.state == "done") {
        return Ok(());
    }
    let seconds = wall::close(&c.run_dir)?;
    let rec = Record {
        state: "done".into(),
        seconds,
        costs: costs::CellCosts::read(&c.run_dir, seconds).ok(),
        exit_code: Some(0),
        logs: vec![c.run_dir.join("log.txt")],
        note: Some("finished before a kill stopped `reproduce`; recorded by the next run from its files".into()),
        executor: "local".into(),
        node: record::node_name(),
        ..Default::default()
    };
    record::write(exp_dir, &c.id, &rec)
}

/// One step of a cell. The destruction's arguments are recorded before it runs, so its
/// `destruction.json` is never without them (see `super::changed`).
fn run_cell_step(
    exp: &Experiment,
    c: &Cell,
    bins: &Bins,
    step: &[String],
    log: &Path,
    env: &[(String, String)],
) -> Result<()> {
    if step.get(1).is_some_and(|a| a == "destruction") {
        changed::record_args(&c.run_dir.join(changed::DESTRUCTION_ARGS), &exp.destruction_args)?;
    }
    costs::around_step(&c.run_dir, step, || run_step_with(bins, step, log, env))
}

/// Writes a cell's final record. A record that cannot be written (a full disk) is an error that
/// still begins with how the cell itself ended.
pub fn write_outcome(exp_dir: &Path, c: &Cell, rec: &Record) -> Result<()> {
    record::write(exp_dir, &c.id, rec).with_context(|| match &rec.error {
        Some(e) => format!("cell {} failed: {e}; and its status record could not be written", c.id),
        None => format!("cell {} is done, but its status record could not be written", c.id),
    })
}

/// Runs every unfinished cell, up to one per slot at once (see [`super::slots`]); returns how
/// many failed. Each outcome is the cell's own record (the same records Slurm tasks write), and
/// `status.json` is assembled from them — by this thread alone, as the outcomes arrive.
pub fn run_cells(exp: &Experiment, exp_dir: &Path, cells: &[Cell], bins: &Bins, plan: &Placement) -> Result<usize> {
    let bar = ProgressBar::new(cells.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "cells {pos}/{len} done {bar:30} elapsed {elapsed_precise} eta {eta_precise}  {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut todo = Vec::new();
    for (i, c) in cells.iter().enumerate() {
        if finished(exp, c) {
            say(&bar, format!("skip {}: finished", c.id));
            if let Err(e) = record_unrecorded(exp_dir, c) {
                say(&bar, format!("warning: {}: finished, but its record could not be written: {e:#}", c.id));
            }
            bar.inc(1);
        } else {
            todo.push(i);
        }
    }
    // With the records the skipped cells may have had written just now.
    record::assemble(exp_dir)?;
    // The estimate counts the cells that run, not the skipped ones.
    bar.reset_eta();
    longest_first(cells, &mut todo);
    let on_gpu: Vec<bool> = todo.iter().map(|&i| plan.on_gpu[i]).collect();
    let slots = plan.slots(&on_gpu);
    if slots.len() > 1 {
        say(&bar, format!("running up to {} cells at once: {}", slots.len(), describe(&slots)));
    }
    if let Some(j) = plan.jobs.filter(|&j| j > slots.len() && todo.len() > slots.len() && on_gpu.iter().all(|g| *g)) {
        say(
            &bar,
            format!(
                "note: {j} cells at once were asked for, but each GPU runs one cell at a time: {} GPU(s)",
                slots.len()
            ),
        );
    }
    let envs = slots.iter().map(|s| super::slots::child_env(s, plan.visible.as_deref())).collect::<Result<Vec<_>>>()?;
    // (cell id, where it runs) of the running cells, for the progress line.
    let mut running: Vec<(String, String)> = Vec::new();
    let mut failed = 0;
    let run = |k: usize, s: usize| {
        let (c, slot) = (&cells[todo[k]], &slots[s]);
        let base = Record {
            executor: "local".into(),
            node: record::node_name(),
            device: Some(slot.device()),
            threads: Some(slot.threads),
            ..Default::default()
        };
        run_one(exp, exp_dir, c, bins, base, &envs[s])
    };
    run_pool(&on_gpu, &slots, run, |event| {
        match event {
            Event::Started { cell, slot } => running.push((cells[todo[cell]].id.clone(), slots[slot].device())),
            Event::Finished { cell, slot, result: (rec, error) } => {
                let c = &cells[todo[cell]];
                running.retain(|(id, _)| *id != c.id);
                let (secs, place) = (rec.seconds, slots[slot].device());
                match error {
                    None => say(&bar, format!("done {} in {secs:.0} s ({place})", c.id)),
                    Some(e) => {
                        failed += 1;
                        say(&bar, format!("FAILED {} after {secs:.0} s: {e}", c.id));
                    }
                }
                write_outcome(exp_dir, c, &rec)?;
                record::assemble(exp_dir)?;
                bar.inc(1);
            }
        }
        let now: Vec<String> = running.iter().map(|(id, at)| format!("{id} ({at})")).collect();
        bar.set_message(format!("{} running: {}", running.len(), now.join(", ")));
        Ok(())
    })?;
    bar.finish_and_clear();
    Ok(failed)
}

/// "2 × cpu (1 thread each)", "cuda:0, cuda:1 (8 threads each)".
fn describe(slots: &[Slot]) -> String {
    let gpus: Vec<String> = slots.iter().filter(|s| s.gpu.is_some()).map(Slot::device).collect();
    let cpus = slots.iter().filter(|s| s.gpu.is_none()).count();
    let mut parts = Vec::new();
    if !gpus.is_empty() {
        parts.push(gpus.join(", "));
    }
    if cpus > 0 {
        parts.push(format!("{cpus} on the CPU"));
    }
    let t = slots.first().map_or(1, |s| s.threads);
    format!("{} ({t} libtorch thread(s) each)", parts.join(" and "))
}

/// Where the cells may run: which of them need a GPU, the GPUs, the cores and how many at once.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    /// Per cell (in the order of the cells given to [`run_cells`]): whether it runs on a GPU.
    pub on_gpu: Vec<bool>,
    /// The GPUs the cells may use, numbered as this process sees them.
    pub gpus: Vec<usize>,
    /// At most this many cells at once (`--jobs`, else the experiment's `jobs`).
    pub jobs: Option<usize>,
    /// The cores to split between the cells.
    pub cores: usize,
    /// Threads per cell set by the user (`OMP_NUM_THREADS`).
    pub threads: Option<usize>,
    /// This process's `CUDA_VISIBLE_DEVICES`.
    pub visible: Option<String>,
}

impl Placement {
    /// The slots for the cells still to run (`on_gpu` of those).
    pub fn slots(&self, on_gpu: &[bool]) -> Vec<Slot> {
        let gpu_cells = on_gpu.iter().filter(|g| **g).count();
        super::slots::slots(&Demand {
            jobs: self.jobs,
            cores: self.cores,
            gpus: &self.gpus,
            gpu_cells,
            cpu_cells: on_gpu.len() - gpu_cells,
            threads: self.threads,
        })
    }
}

/// Orders the cells to run so that those training a viewmaker (about twice a cell's time without
/// one: a second network and its updates) start first, the grid's order kept otherwise: side by
/// side, the last cells to end are then short ones, and no slot idles long while another finishes
/// a long cell. Where a cell runs never changes its numbers (see `super::slots`).
fn longest_first(cells: &[Cell], todo: &mut [usize]) {
    todo.sort_by_key(|&i| !cells[i].config.view_mode.uses_viewmaker());
}

/// The theory sweep's command.
pub fn theory_step(exp_dir: &Path, extra: &[String]) -> Vec<String> {
    let out = exp_dir.join("theory");
    ["featdrop-theory", "-q", "sweep", "--out"]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .chain(extra.iter().cloned())
        .collect()
}

/// The theory sweep, once per experiment.
pub fn run_theory(exp_dir: &Path, extra: &[String], bins: &Bins) -> Result<()> {
    let out = exp_dir.join("theory");
    // summary.md is written after theory.json: a sweep killed between the two is not finished.
    if out.join("theory.json").exists() && out.join("summary.md").exists() {
        eprintln!("skip theory sweep: {} exists", out.join("theory.json").display());
        return Ok(());
    }
    eprintln!("theory sweep…");
    // Recorded first: outputs are never without the arguments that made them (see `changed`).
    changed::record_args(&out.join(changed::THEORY_ARGS), extra)?;
    run_step(bins, &theory_step(exp_dir, extra), &exp_dir.join("theory.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cell killed after its last step but before its record (seen in the fault-injection test
    /// with two cells at once) was skipped as finished with no record: the report had no time for
    /// it. Now the skip writes its record from its files; a cell's own record is kept.
    #[test]
    fn a_finished_cell_without_its_record_gets_one_from_its_files() {
        let tmp = tempfile::tempdir().unwrap();
        let exp = Experiment::load(&crate::paths::repo_root().join("experiments/smoke.json")).unwrap();
        let c = &exp.cells(tmp.path(), None).unwrap()[0];
        std::fs::create_dir_all(&c.run_dir).unwrap();
        wall::begin(&c.run_dir).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        for f in ["pretrain.done.json", "probe.json"] {
            std::fs::write(c.run_dir.join(f), "{}").unwrap();
        }
        assert!(record::read(tmp.path(), &c.id).unwrap().is_none());
        record_unrecorded(tmp.path(), c).unwrap();
        let rec = record::read(tmp.path(), &c.id).unwrap().expect("a record");
        assert_eq!(rec.state, "done");
        assert!(rec.seconds >= 0.04, "the killed attempt counts up to its last file: {}", rec.seconds);
        let own = Record { state: "done".into(), seconds: 7.0, ..Default::default() };
        record::write(tmp.path(), &c.id, &own).unwrap();
        record_unrecorded(tmp.path(), c).unwrap();
        assert_eq!(record::read(tmp.path(), &c.id).unwrap().unwrap().seconds, 7.0);
    }

    /// Cells that train a viewmaker start first, each group in grid order.
    #[test]
    fn cells_that_train_a_viewmaker_start_first() {
        let tmp = tempfile::tempdir().unwrap();
        let exp = Experiment::load(&crate::paths::repo_root().join("experiments/cures.json")).unwrap();
        let cells = exp.cells(tmp.path(), None).unwrap();
        let mut todo: Vec<usize> = (0..cells.len()).collect();
        longest_first(&cells, &mut todo);
        let vm = cells.iter().filter(|c| c.config.view_mode.uses_viewmaker()).count();
        assert!(vm > 0 && vm < cells.len());
        assert!(todo[..vm].iter().all(|&i| cells[i].config.view_mode.uses_viewmaker()));
        assert!(todo[..vm].windows(2).all(|w| w[0] < w[1]) && todo[vm..].windows(2).all(|w| w[0] < w[1]));
    }

    /// A panic's message survives a long backtrace (only the last lines used to be kept).
    #[test]
    fn a_panic_message_is_kept_whatever_follows_it() {
        let mut stderr = String::from(
            "loading…\nthread 'main' panicked at crates/x/src/lib.rs:3:5:\nindex out of bounds: the len is 0\n\
             stack backtrace:\n",
        );
        for i in 0..40 {
            stderr += &format!("  {i}: frame::{i}\n             at src/x.rs:{i}\n");
        }
        let s = failure_summary(&stderr);
        assert_eq!(s, "thread 'main' panicked at crates/x/src/lib.rs:3:5: | index out of bounds: the len is 0");
        let plain = "a\nb\nc\nd\ne\nf\nerror: reading x.json: not found";
        assert_eq!(failure_summary(plain), "b | c | d | e | f | error: reading x.json: not found");
    }

    /// Issue 15.8: the paper grid probes the published earlier epochs besides the last, and a cell
    /// is finished only once probe.json holds every one of them.
    #[test]
    fn kept_epochs_are_probed_and_needed_to_finish() {
        let tmp = tempfile::tempdir().unwrap();
        let exp = Experiment::load(&crate::paths::repo_root().join("experiments/paper.json")).unwrap();
        let cells = exp.cells(tmp.path(), None).unwrap();
        let epochs_probed = |id: &str| -> (Vec<String>, &Cell) {
            let c = cells.iter().find(|c| c.id == id).unwrap();
            let steps = super::super::steps(&exp, c, &tmp.path().join("paper"));
            let probes = steps.iter().filter(|s| s[..2] == ["featdrop-eval", "probe"]);
            (probes.filter_map(|s| Some(s[s.iter().position(|a| a == "--epoch")? + 1].clone())).collect(), c)
        };
        assert_eq!(epochs_probed("photos+letters/viewmaker/seed-2").0, ["10", "75"]);
        assert_eq!(epochs_probed("photos+digits/expert/seed-0").0, ["100"]);
        assert!(epochs_probed("photos/expert/seed-0").0.is_empty());

        let (_, c) = epochs_probed("photos+letters/expert/seed-0");
        std::fs::create_dir_all(&c.run_dir).unwrap();
        std::fs::write(c.run_dir.join("pretrain.done.json"), "{}").unwrap();
        let task = serde_json::json!({"photo": {"top1": 0.5}});
        std::fs::write(c.run_dir.join("destruction.json"), serde_json::json!({"tasks": task}).to_string()).unwrap();
        let probe = |epochs: serde_json::Value| {
            let v = serde_json::json!({"tasks": task, "epochs": epochs});
            std::fs::write(c.run_dir.join("probe.json"), v.to_string()).unwrap();
        };
        probe(serde_json::json!({"10": {"checkpoint": "epoch-0010", "tasks": task}}));
        assert!(!finished(&exp, c), "epoch 75 is not probed yet");
        probe(serde_json::json!({"10": {"tasks": task}, "75": {"tasks": task}}));
        assert!(finished(&exp, c));
    }

    /// A `Bins` of one shell script named `name`.
    fn script_bins(dir: &Path, name: &str, body: &str) -> Bins {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        Bins { dir: dir.to_path_buf() }
    }

    /// Issue 27.23: on a full disk (`/dev/full` as the log) a step's own error used to be replaced
    /// by "writing log …: No space left on device"; now it comes first, the log's failure after.
    #[test]
    fn a_full_disk_does_not_hide_the_steps_own_error() {
        let tmp = tempfile::tempdir().unwrap();
        let full = Path::new("/dev/full");
        let bins =
            script_bins(tmp.path(), "featdrop-fail", "echo 'error: saving epoch-0001: No space left' >&2; exit 1");
        let e = format!("{:#}", run_step(&bins, &["featdrop-fail".into()], full).unwrap_err());
        assert!(e.starts_with("featdrop-fail failed (exit status: 1): error: saving epoch-0001: No space left"), "{e}");
        assert!(e.contains("(its output could not be logged either: writing log /dev/full"), "{e}");
        let log = tmp.path().join("log.txt");
        let e = format!("{:#}", run_step(&bins, &["featdrop-fail".into()], &log).unwrap_err());
        assert!(!e.contains("logged"), "{e}");
        let bins = script_bins(tmp.path(), "featdrop-ok", "echo fine");
        let e = format!("{:#}", run_step(&bins, &["featdrop-ok".into()], full).unwrap_err());
        assert!(e.starts_with("writing log /dev/full"), "a step's lost output is an error of its own: {e}");
        run_step(&bins, &["featdrop-ok".into()], &log).unwrap();
    }

    /// Issue 27.23: a status record that cannot be written keeps the cell's own error first.
    #[test]
    fn an_unwritable_record_keeps_the_cells_error_first() {
        let tmp = tempfile::tempdir().unwrap();
        let exp = Experiment::load(&crate::paths::repo_root().join("experiments/smoke.json")).unwrap();
        let c = &exp.cells(tmp.path(), None).unwrap()[0];
        // The records' folder cannot be made: a plain file is in the way.
        std::fs::write(tmp.path().join("status"), "x").unwrap();
        let rec = Record {
            state: "failed".into(),
            error: Some("featdrop-train failed: disk full".into()),
            ..Default::default()
        };
        let e = format!("{:#}", write_outcome(tmp.path(), c, &rec).unwrap_err());
        let first = format!(
            "cell {} failed: featdrop-train failed: disk full; and its status record could not be written",
            c.id
        );
        assert!(e.starts_with(&first), "{e}");
    }

    /// Issue 27 item 1: a destruction.json cut short between two tasks (older versions wrote it
    /// after each) counted as finished, and the missing task was never measured.
    #[test]
    fn a_destruction_file_missing_a_probed_task_is_not_finished() {
        let tmp = tempfile::tempdir().unwrap();
        let exp = Experiment::load(&crate::paths::repo_root().join("experiments/paper.json")).unwrap();
        assert!(exp.destruction);
        let cells = exp.cells(tmp.path(), None).unwrap();
        let c = cells.iter().find(|c| c.id == "photos/expert/seed-0").unwrap();
        std::fs::create_dir_all(&c.run_dir).unwrap();
        let write = |f: &str, v: serde_json::Value| std::fs::write(c.run_dir.join(f), v.to_string()).unwrap();
        write("pretrain.done.json", serde_json::json!({}));
        write("probe.json", serde_json::json!({"tasks": {"photo": {"top1": 0.5}, "digit": {"top1": 0.3}}}));
        write("destruction.json", serde_json::json!({"tasks": {"photo": {}}}));
        assert!(!finished(&exp, c), "digit has no destruction rates");
        write("destruction.json", serde_json::json!({"tasks": {"photo": {}, "digit": {}}}));
        assert!(finished(&exp, c));
    }
}
