//! Asking Slurm: `sbatch` on PATH, what `squeue` still holds, how `sacct` (where the cluster
//! keeps accounting) or the task's own log says a task ended.

use anyhow::{Result, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Finds a program on PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

/// A Slurm client command, with a clear error when Slurm is not installed here.
pub fn slurm_cmd(name: &str) -> Result<Command> {
    match on_path(name) {
        Some(p) => Ok(Command::new(p)),
        None => bail!(
            "`{name}` was not found on PATH: --executor slurm needs Slurm's client commands (sbatch, squeue, \
             scancel) on this machine, e.g. a cluster's login node; or use --executor local"
        ),
    }
}

/// Tasks of `job` still in the queue: array task id → Slurm state (PENDING, RUNNING, …).
pub fn queued_tasks(job: u64) -> Result<HashMap<u64, String>> {
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
pub fn sacct_states(job: u64) -> Option<HashMap<u64, String>> {
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
pub fn state_from_log(err_log: &Path) -> Option<String> {
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

pub fn log_paths(slurm_dir: &Path, job: u64, task: u64) -> [PathBuf; 2] {
    ["out", "err"].map(|ext| slurm_dir.join(format!("{job}_{task}.{ext}")))
}

#[cfg(test)]
mod tests {
    use super::*;

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
