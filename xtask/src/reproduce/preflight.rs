//! Everything an experiment says, checked before its first cell starts: the extra arguments it
//! passes to `featdrop-eval destruction` and `featdrop-theory sweep` (by those binaries' own
//! parsers, in a check-only mode), whether each cell fits in this machine's memory, and whether
//! results already on disk were made with the config the experiment now gives their cell.

use super::experiment::{Cell, Experiment};
use super::{Bins, steps};
use anyhow::{Context, Result, bail};
use featdrop_core::RunConfig;
use featdrop_core::config::changed_fields;
use std::path::{Path, PathBuf};

/// Checks `destruction_args` and (unless the sweep is skipped) `theory` with the binaries that
/// will be given them, in the very command lines the study will run.
pub fn check_tool_args(exp: &Experiment, exp_dir: &Path, cells: &[Cell], bins: &Bins, theory: bool) -> Result<()> {
    if let (true, Some(first)) = (exp.destruction, cells.first()) {
        let step = steps(exp, first, exp_dir).pop().expect("destruction is the last step");
        // `featdrop-eval destruction --check-args …`: parse and validate, read no run.
        let mut check = step.clone();
        check.insert(2, "--check-args".into());
        run_check(bins, &check)
            .map_err(|e| anyhow::anyhow!("{}: field `destruction_args`: {e}", exp.file.display()))?;
    }
    if let (true, Some(extra)) = (theory, &exp.theory) {
        let mut check = super::cells::theory_step(exp_dir, extra);
        check.insert(3, "--check".into());
        run_check(bins, &check).map_err(|e| anyhow::anyhow!("{}: field `theory`: {e}", exp.file.display()))?;
    }
    Ok(())
}

/// Runs a check-only command; its refusal is the error (clap's usage lines left out).
fn run_check(bins: &Bins, step: &[String]) -> Result<(), String> {
    let out = bins.cmd(&step[0]).args(&step[1..]).output().map_err(|e| format!("starting {}: {e}", step[0]))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = err
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let cmd = step.iter().skip(1).filter(|a| *a != "--check-args" && *a != "--check").cloned().collect::<Vec<_>>();
    Err(format!("{} {} refuses them: {}", step[0], cmd.join(" "), said.join(" ")))
}

/// Refuses a grid with a cell that cannot fit in this machine's available memory.
pub fn check_memory(exp: &Experiment, cells: &[Cell]) -> Result<()> {
    for c in cells {
        let origin = format!("{} (cell {})", exp.file.display(), c.id);
        featdrop_core::memory::check(&c.config, &origin)?;
    }
    Ok(())
}

/// A cell whose run directory was made with another config than the experiment now gives it.
pub struct Changed {
    pub id: String,
    pub run_dir: PathBuf,
    /// `field old → new`, one per difference.
    pub fields: Vec<String>,
}

/// The cells whose `config.json` differs from the config they resolve to now (the device aside).
pub fn changed_cells(cells: &[Cell]) -> Result<Vec<Changed>> {
    let mut out = Vec::new();
    for c in cells {
        let path = c.run_dir.join("config.json");
        if !path.exists() {
            continue;
        }
        let old = RunConfig::from_file(&path)
            .with_context(|| format!("{} is not a run config this version reads", path.display()))?;
        let fields = changed_fields(&old, &c.config);
        if !fields.is_empty() {
            out.push(Changed { id: c.id.clone(), run_dir: c.run_dir.clone(), fields });
        }
    }
    Ok(out)
}

/// The theory sweep, as a changed "cell", when its finished output was made with other
/// arguments than the experiment's `theory` now gives (recorded next to it by `run_theory`).
pub fn changed_theory(exp_dir: &Path, extra: &[String]) -> Result<Option<Changed>> {
    let dir = exp_dir.join("theory");
    let recorded = dir.join(super::cells::THEORY_ARGS);
    if !dir.join("theory.json").exists() || !recorded.exists() {
        return Ok(None);
    }
    let old: Vec<String> = featdrop_core::io::read_json(&recorded)?;
    if old == extra {
        return Ok(None);
    }
    let field = format!("theory {} → {}", serde_json::json!(old), serde_json::json!(extra));
    Ok(Some(Changed { id: "theory sweep".into(), run_dir: dir, fields: vec![field] }))
}

/// Changed cells are an error naming each cell and field, unless `rerun` (`--rerun-changed`):
/// then each one's run directory and record are removed, so it runs again from the start.
pub fn handle_changed(exp: &Experiment, exp_dir: &Path, changed: &[Changed], rerun: bool) -> Result<()> {
    if changed.is_empty() {
        return Ok(());
    }
    if !rerun {
        let list: Vec<String> =
            changed.iter().map(|c| format!("  {} ({}): {}", c.id, c.run_dir.display(), c.fields.join(", "))).collect();
        bail!(
            "{}: {} cell(s) hold results made with another config than the experiment now gives them:\n{}\n\
             their results would be reported as this config's; pass --rerun-changed to delete those cells' \
             results and run them again, or restore the experiment's values (or give it another `name`)",
            exp.file.display(),
            changed.len(),
            list.join("\n")
        );
    }
    for c in changed {
        eprintln!("rerun {}: its config changed ({}); deleting {}", c.id, c.fields.join(", "), c.run_dir.display());
        std::fs::remove_dir_all(&c.run_dir).with_context(|| format!("deleting {}", c.run_dir.display()))?;
        let record = super::record::path(exp_dir, &c.id);
        if record.exists() {
            std::fs::remove_file(&record).with_context(|| format!("deleting {}", record.display()))?;
        }
    }
    Ok(())
}
