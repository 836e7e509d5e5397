//! Everything an experiment says, checked before its first cell starts: the extra arguments it
//! passes to `featdrop-eval destruction` and `featdrop-theory sweep` (by those binaries' own
//! parsers, in a check-only mode) and whether each cell fits in this machine's memory. Whether
//! results already on disk were made with what the experiment now says is [`super::changed`].

use super::experiment::{Cell, Experiment};
use super::{Bins, steps};
use anyhow::Result;
use std::path::Path;

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

/// Refuses a grid with a cell that cannot fit in its share of this machine's available memory:
/// `at_once` cells run side by side (`--jobs`), each may need as much as the largest.
pub fn check_memory(exp: &Experiment, cells: &[Cell], at_once: usize) -> Result<()> {
    let Some(available) = featdrop_core::memory::available() else { return Ok(()) };
    let at_once = at_once.max(1);
    let source = match at_once {
        1 => "MemAvailable in /proc/meminfo".to_string(),
        n => format!("MemAvailable in /proc/meminfo shared by the {n} cells that run at once; or lower --jobs"),
    };
    for c in cells {
        let origin = format!("{} (cell {})", exp.file.display(), c.id);
        featdrop_core::memory::check_fits(&c.config, &origin, available / at_once as u64, &source)?;
    }
    Ok(())
}
