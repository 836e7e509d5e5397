//! `cargo xtask report`: gathers every finished run of an experiment (or of all experiments under
//! `runs/`) into `REPORT.md`, PNG figures and `results.json` (docs/PROTOCOL.md §8).
//!
//! Layout read: `runs/<experiment>/<dataset>/<view-mode-dir>/seed-<n>/` with `config.json`,
//! `metrics.jsonl`, `pretrain.done.json`, `probe.json`, `destruction.json`, `views/epoch-*.png`,
//! `destruction.png`; plus `runs/<experiment>/status.json` and `runs/<experiment>/theory/`.
//! Written: `out/REPORT.md`, `out/results.json`, `out/figures/` (one subfolder per experiment
//! when the report covers several). Files are replaced atomically, so a report being regenerated
//! is never seen half-written, and one writer at a time writes a report folder: a second one
//! (`xtask report` beside a finishing `reproduce`) waits for the first, holding `out/.lock`.

mod cures;
mod figures;
mod load;
mod markdown;
mod mechanism;
mod protocol;
mod results;
mod stats;
#[cfg(test)]
mod tests;
mod welch;

use anyhow::{Context, Result, bail};
use std::path::Path;

pub fn write(runs: &Path, out: &Path, experiment: Option<&str>) -> Result<()> {
    write_report(runs, out, experiment, None)
}

/// The report of experiment `name` at the end of a `reproduce`, whose Costs section shows the
/// study's wall time by part as `study` gives it when the tables are made (after the figures):
/// `reproduce` records that same breakdown in `study.json`.
pub fn write_with_study(
    runs: &Path,
    out: &Path,
    name: &str,
    study: &dyn Fn() -> crate::reproduce::costs::StudyCosts,
) -> Result<()> {
    write_report(runs, out, Some(name), Some(study))
}

fn write_report(
    runs: &Path,
    out: &Path,
    experiment: Option<&str>,
    study: Option<&dyn Fn() -> crate::reproduce::costs::StudyCosts>,
) -> Result<()> {
    let mut experiments = load_all(runs, experiment)?;
    // Two writers shared the staging folder and temp names below and broke each other's report.
    let _lock = featdrop_core::lock::DirLock::wait(out, "cargo xtask report")?;
    let stale = crate::reproduce::tidy::remove_stale_temps(&[out.to_path_buf()])?;
    crate::reproduce::tidy::report(&stale);
    // Figures are drawn into a staging folder and swapped in whole, so an old figure never
    // survives next to a new report.
    let staging = out.join(".figures.tmp");
    remove_dir_if_present(&staging)?;
    let several = experiments.len() > 1;
    let (mut sections, mut json) = (Vec::new(), Vec::new());
    for exp in &mut experiments {
        let sub = if several { format!("/{}", figures::slug(&exp.name)) } else { String::new() };
        let summary = stats::summarise(exp);
        let figs = figures::make(exp, &summary, &staging.join(sub.trim_start_matches('/')), &format!("figures{sub}"))?;
        for w in &figs.warnings {
            eprintln!("warning: figure not drawn: {w}");
        }
        if let Some(study) = study {
            exp.study = Some(study());
        }
        let settings = results::settings(exp);
        let protocol = protocol::rows(exp);
        sections.push(markdown::section(runs, exp, &summary, &figs, &settings, &protocol));
        json.push(results::experiment(exp, &summary, &settings, &protocol));
    }
    swap_in(&staging, &out.join("figures"))?;
    let doc = serde_json::json!({"schema": "featdrop.report/1", "experiments": json});
    write_atomic(&out.join("results.json"), serde_json::to_string_pretty(&doc)?.as_bytes())?;
    write_atomic(&out.join("REPORT.md"), markdown::document(runs, &sections).as_bytes())?;
    eprintln!("report written to {}", out.join("REPORT.md").display());
    Ok(())
}

/// The experiments to report, each holding at least one finished run.
fn load_all(runs: &Path, experiment: Option<&str>) -> Result<Vec<load::Experiment>> {
    if !runs.is_dir() {
        bail!("runs folder {} does not exist (run `cargo xtask reproduce` first)", runs.display());
    }
    if let Some(name) = experiment {
        let dir = runs.join(name);
        if !dir.is_dir() {
            bail!("experiment folder {} does not exist", dir.display());
        }
        let exp = load::load_experiment(&dir, name)?;
        if !exp.has_finished() {
            bail!(
                "{} holds no finished runs (no seed-<n> folder with pretrain.done.json or probe.json)",
                dir.display()
            );
        }
        return Ok(vec![exp]);
    }
    let mut out = Vec::new();
    for name in load::experiment_names(runs)? {
        let exp = load::load_experiment(&runs.join(&name), &name)?;
        if exp.has_finished() {
            out.push(exp);
        }
    }
    if out.is_empty() {
        bail!(
            "{} holds no finished runs (no <experiment>/<dataset>/<view-mode>/seed-<n> folder with \
             pretrain.done.json or probe.json)",
            runs.display()
        );
    }
    Ok(out)
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

/// Replaces `target` by `staging` (the old one moved aside first, then removed).
fn swap_in(staging: &Path, target: &Path) -> Result<()> {
    let old = target.with_file_name(".figures.old");
    remove_dir_if_present(&old)?;
    if target.exists() {
        std::fs::rename(target, &old).with_context(|| format!("moving {} aside", target.display()))?;
    }
    std::fs::rename(staging, target).with_context(|| format!("moving figures into {}", target.display()))?;
    remove_dir_if_present(&old)
}

/// Writes through a temporary file in the same folder, renamed into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    featdrop_core::io::write_atomic(path, bytes)
}
