//! A cell's wall time over every attempt (issue 27 item 13): `<run>/wall.json`.
//!
//! A status record is written when an attempt ends, so a killed attempt (SIGKILL, a lost node)
//! leaves none, and the record of the attempt that finishes counted only its own time: a cell
//! killed twice showed a wall time below its own training time. Each attempt therefore opens
//! `wall.json` when it starts and closes it when it ends; an attempt found still open was
//! killed, and it is counted up to its last sign of life (the newest file it wrote in the run
//! folder: `metrics.jsonl` is appended every step), a lower bound of the time it really took.

use anyhow::{Context, Result};
use featdrop_core::io::write_json_atomic;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The file, in the cell's run folder.
pub const FILE: &str = "wall.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Wall {
    /// Seconds of the attempts that ended (or were found killed).
    closed_s: f64,
    /// Attempts counted so far, the open one included.
    attempts: u32,
    /// When the open attempt started (seconds since the epoch); none between attempts.
    open_since: Option<f64>,
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn read(run_dir: &Path) -> Result<Wall> {
    let path = run_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("{}: not a wall-time record", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Wall::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The newest modification time of the run folder's files (`wall.json` aside), in seconds since
/// the epoch.
fn last_sign_of_life(run_dir: &Path) -> Option<f64> {
    std::fs::read_dir(run_dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name() != FILE)
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .filter_map(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .reduce(f64::max)
}

/// Opens an attempt; returns the seconds the cell's earlier attempts took (a killed one's up to
/// its last sign of life).
pub fn begin(run_dir: &Path) -> Result<f64> {
    let mut w = read(run_dir)?;
    if let Some(since) = w.open_since {
        let end = last_sign_of_life(run_dir).unwrap_or(since);
        w.closed_s += (end - since).max(0.0);
    }
    w.attempts += 1;
    w.open_since = Some(now());
    write_json_atomic(&run_dir.join(FILE), &w)?;
    Ok(w.closed_s)
}

/// The seconds of every attempt, an open one (killed) closed at its last sign of life and
/// written so; for a cell found finished whose record was never written.
pub fn close(run_dir: &Path) -> Result<f64> {
    let mut w = read(run_dir)?;
    if let Some(since) = w.open_since.take() {
        let end = last_sign_of_life(run_dir).unwrap_or(since);
        w.closed_s += (end - since).max(0.0);
        write_json_atomic(&run_dir.join(FILE), &w)?;
    }
    Ok(w.closed_s)
}

/// Closes the open attempt at `total` seconds over every attempt.
pub fn end(run_dir: &Path, total: f64) -> Result<()> {
    let w = Wall { closed_s: total, open_since: None, ..read(run_dir)? };
    write_json_atomic(&run_dir.join(FILE), &w)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A killed attempt (opened, never closed) counts up to the newest file it wrote; a closed
    /// one counts what it said; the next attempt adds both.
    #[test]
    fn a_killed_attempt_counts_up_to_its_last_sign_of_life() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        assert_eq!(begin(run).unwrap(), 0.0);
        // Killed: it started 100 s ago and last wrote 40 s later.
        let started = now() - 100.0;
        write_json_atomic(&run.join(FILE), &Wall { closed_s: 5.0, attempts: 2, open_since: Some(started) }).unwrap();
        let metrics = run.join("metrics.jsonl");
        std::fs::write(&metrics, "{}\n").unwrap();
        let at = UNIX_EPOCH + std::time::Duration::from_secs_f64(started + 40.0);
        std::fs::File::options().write(true).open(&metrics).unwrap().set_modified(at).unwrap();
        let earlier = begin(run).unwrap();
        assert!((earlier - 45.0).abs() < 0.01, "5 s closed + 40 s killed: {earlier}");
        end(run, earlier + 2.0).unwrap();
        let w = read(run).unwrap();
        assert_eq!((w.attempts, w.open_since), (3, None));
        assert!((begin(run).unwrap() - 47.0).abs() < 0.01);
    }

    #[test]
    fn a_garbled_record_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(FILE), "{").unwrap();
        let e = format!("{:#}", begin(tmp.path()).unwrap_err());
        assert!(e.contains("wall.json: not a wall-time record"), "{e}");
    }
}
