//! Temp files that interrupted atomic writes leave behind (a write killed between its temp file
//! and the rename). Nothing ever reads them, but nothing removed them either: they piled up in
//! the experiment's folders. They are removed when their writer cannot be at work any more — a
//! name's pid no longer runs here — and only by a process holding the locks that keep the
//! folder's other writers out (see `super::locks`).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Whether a file name is an atomic write's temp file, and if so the pid of its writer when the
/// name holds one. The names: `.<name>.<pid>.tmp` (`featdrop_core::io`),
/// `<stem>.tmp-<pid>-<thread>` (status records, `super::record`), `<name>.tmp` (older writers,
/// the Slurm script before submission).
pub fn temp_writer(name: &str) -> Option<Option<u32>> {
    if let Some((_, pid)) = featdrop_core::io::parse_temp_name(name) {
        return Some(Some(pid));
    }
    if let Some((_, rest)) = name.split_once(".tmp-") {
        return Some(rest.split('-').next().and_then(|p| p.parse().ok()));
    }
    name.strip_suffix(".tmp").map(|_| None)
}

/// Removes the temp files (not folders) directly in each of `dirs` whose writer is not running;
/// returns what it removed. Missing folders are skipped.
pub fn remove_stale_temps(dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries {
            let e = e.with_context(|| format!("listing {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = temp_writer(&name).is_some_and(|pid| !pid.is_some_and(featdrop_core::io::process_runs));
            if stale && e.file_type().is_ok_and(|t| t.is_file()) {
                let p = e.path();
                std::fs::remove_file(&p).with_context(|| format!("removing stale temp file {}", p.display()))?;
                removed.push(p);
            }
        }
    }
    Ok(removed)
}

/// Says what [`remove_stale_temps`] removed, if anything.
pub fn report(removed: &[PathBuf]) {
    if removed.is_empty() {
        return;
    }
    let names: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
    eprintln!("removed {} stale temp file(s) of interrupted writes: {}", removed.len(), names.join(", "));
}

/// The folders of an experiment that xtask writes through temp files: the experiment folder,
/// `configs/`, `status/`, `theory/`, `slurm/`, `slurm/submissions/`, and each run directory
/// (`destruction-args.json`).
pub fn experiment_dirs<'a>(exp_dir: &Path, run_dirs: impl IntoIterator<Item = &'a Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        ["", "configs", "status", "theory", "slurm", "slurm/submissions"].iter().map(|d| exp_dir.join(d)).collect();
    dirs.extend(run_dirs.into_iter().map(Path::to_path_buf));
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_with_their_writer() {
        assert_eq!(temp_writer(".probe.json.4242.tmp"), Some(Some(4242)));
        assert_eq!(temp_writer("photos__expert__seed-0.tmp-4242-ThreadId(3)"), Some(Some(4242)));
        assert_eq!(temp_writer("array.sbatch.tmp"), Some(None));
        assert_eq!(temp_writer(".REPORT.md.tmp"), Some(None));
        for kept in ["status.json", ".lock", ".cells.lock", "photos__expert__seed-0.json", "summary.md"] {
            assert_eq!(temp_writer(kept), None, "{kept}");
        }
    }

    /// Issue 27.12: temp files of dead writers are removed, those of a live writer (this
    /// process) and every real file are kept.
    #[test]
    fn stale_temps_are_removed_and_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let status = tmp.path().join("status");
        std::fs::create_dir_all(&status).unwrap();
        // A pid that ran and ended: its writes can never finish.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        let stale = [
            status.join(format!("a__b__seed-0.tmp-{dead}-ThreadId(1)")),
            tmp.path().join(format!(".jobs.json.{dead}.tmp")),
            tmp.path().join("array.sbatch.tmp"),
        ];
        let kept = [
            status.join(format!("a__b__seed-1.tmp-{me}-ThreadId(1)")),
            status.join("a__b__seed-0.json"),
            tmp.path().join(".lock"),
        ];
        for p in stale.iter().chain(&kept) {
            std::fs::write(p, "x").unwrap();
        }
        std::fs::create_dir_all(tmp.path().join(".figures.tmp")).unwrap();
        let dirs = experiment_dirs(tmp.path(), []);
        let mut removed = remove_stale_temps(&dirs).unwrap();
        removed.sort();
        let mut want = stale.to_vec();
        want.sort();
        assert_eq!(removed, want);
        assert!(stale.iter().all(|p| !p.exists()) && kept.iter().all(|p| p.exists()));
        assert!(tmp.path().join(".figures.tmp").is_dir(), "folders are not touched");
    }
}
