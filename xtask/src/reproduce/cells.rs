//! Running the grid cells one after another, with one overall progress display and a status file.

use super::experiment::{Cell, Experiment};
use super::{Bins, steps};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// The files a finished cell holds.
pub fn finished(exp: &Experiment, c: &Cell) -> bool {
    let mut needed = vec!["pretrain.done.json", "probe.json"];
    if exp.destruction {
        needed.push("destruction.json");
    }
    needed.iter().all(|f| c.run_dir.join(f).exists())
}

fn read_status(path: &Path) -> Map<String, Value> {
    std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

/// Atomic: a status file is never half-written.
fn write_status(path: &Path, status: &Map<String, Value>) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(status)?)?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Runs one step, appending its output to the cell's log; the error carries the log's tail.
fn run_step(bins: &Bins, step: &[String], log: &Path) -> Result<()> {
    let out = bins.cmd(&step[0]).args(&step[1..]).output().with_context(|| format!("starting {}", step[0]))?;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    writeln!(f, "$ {}", step.join(" "))?;
    f.write_all(&out.stdout)?;
    f.write_all(&out.stderr)?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect();
        anyhow::bail!("{} failed ({}): {}", step[0], out.status, tail.join(" | "));
    }
    Ok(())
}

/// A line above the progress bar (also when stderr is not a terminal and the bar is hidden).
fn say(bar: &ProgressBar, line: String) {
    bar.suspend(|| eprintln!("{line}"));
}

/// Runs every unfinished cell; returns how many failed.
pub fn run_cells(exp: &Experiment, exp_dir: &Path, cells: &[Cell], bins: &Bins) -> Result<usize> {
    let status_path = exp_dir.join("status.json");
    let mut status = read_status(&status_path);
    let bar = ProgressBar::new(cells.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("cells {pos}/{len} {bar:30} elapsed {elapsed_precise} eta {eta_precise}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut failed = 0;
    for c in cells {
        if finished(exp, c) {
            say(&bar, format!("skip {}: finished", c.id));
            bar.inc(1);
            continue;
        }
        bar.set_message(c.id.clone());
        std::fs::create_dir_all(&c.run_dir)?;
        let t0 = Instant::now();
        let result = steps(exp, c, exp_dir).iter().try_for_each(|s| run_step(bins, s, &c.run_dir.join("log.txt")));
        let secs = t0.elapsed().as_secs_f64();
        let record = match &result {
            Ok(()) => json!({"state": "done", "seconds": secs}),
            Err(e) => json!({"state": "failed", "seconds": secs, "error": format!("{e:#}")}),
        };
        match &result {
            Ok(()) => say(&bar, format!("done {} in {secs:.0} s", c.id)),
            Err(e) => {
                failed += 1;
                say(&bar, format!("FAILED {} after {secs:.0} s: {e:#}", c.id));
            }
        }
        status.insert(c.id.clone(), record);
        write_status(&status_path, &status)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(failed)
}

/// The theory sweep, once per experiment.
pub fn run_theory(exp_dir: &Path, extra: &[String], bins: &Bins) -> Result<()> {
    let out = exp_dir.join("theory");
    if out.join("theory.json").exists() {
        eprintln!("skip theory sweep: {} exists", out.join("theory.json").display());
        return Ok(());
    }
    eprintln!("theory sweep…");
    let log = exp_dir.join("theory.log");
    let step: Vec<String> = ["featdrop-theory", "-q", "sweep", "--out"]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .chain(extra.iter().cloned())
        .collect();
    run_step(bins, &step, &log)
}
