//! An experiment folder's two locks. `.lock`: one `reproduce` at a time (it plans, deletes
//! changed results, writes configs, runs the theory sweep and the report). `.cells.lock`: who runs
//! cells — shared by the `cargo xtask cell` tasks of a Slurm array (many at once, each on its own
//! cell), exclusive for a local `reproduce`, which runs the cells itself. A Slurm `reproduce` only
//! submits and follows: it takes the cells lock just for what no running task may see (tidying,
//! deleting changed results), when no task holds it.

use super::{record, tidy};
use anyhow::{Context, Result};
use featdrop_core::lock::{Access, DirLock};
use std::path::Path;

/// The cells lock's file in the experiment folder.
pub const CELLS_LOCK: &str = ".cells.lock";

/// The experiment's `reproduce` lock, held for the whole study.
pub fn experiment(exp_dir: &Path) -> Result<DirLock> {
    DirLock::acquire(exp_dir, "cargo xtask reproduce")
}

/// The cells lock, exclusive: no `cargo xtask cell` task is running a cell of this experiment,
/// and none starts while it is held.
pub fn cells_exclusive(exp_dir: &Path) -> Result<DirLock> {
    DirLock::acquire_file(exp_dir, CELLS_LOCK, "cargo xtask reproduce", Access::Exclusive)
        .context("cells of this experiment are being run by `cargo xtask cell` (Slurm array tasks?)")
}

/// The cells lock, shared, for one `cargo xtask cell`.
pub fn cell_shared(exp_dir: &Path) -> Result<DirLock> {
    DirLock::acquire_file(exp_dir, CELLS_LOCK, "cargo xtask cell", Access::Shared)
        .context("a local `cargo xtask reproduce` is running this experiment's cells")
}

/// With both locks held, no writer of the folder is at work: temp files of interrupted writes
/// are removed and unreadable status records rewritten from their cells' files.
pub fn tidy_up<'a>(exp_dir: &Path, run_dirs: impl IntoIterator<Item = &'a Path>) -> Result<()> {
    tidy::report(&tidy::remove_stale_temps(&tidy::experiment_dirs(exp_dir, run_dirs))?);
    for id in record::repair(exp_dir)? {
        eprintln!("rewrote the status record of {id} (see the warning above)");
    }
    Ok(())
}
