//! `cargo xtask cell`: one cell of a grid by its index — the entry point of each Slurm array task
//! (`reproduce --executor slurm`), usable anywhere. It runs the cell's steps as the local executor
//! does and writes the cell's status record. It holds the experiment's cells lock, shared: the
//! array's tasks run side by side, but not beside a local `reproduce` of the same folder (see
//! `super::locks`).

use super::cells::{finished, run_one, write_outcome};
use super::experiment::Experiment;
use super::record::{self, Record};
use super::slurm::log_paths;
use super::{Bins, absolute};
use crate::libtorch;
use anyhow::{Result, bail, ensure};
use std::path::PathBuf;

/// `cargo xtask cell` options.
#[derive(clap::Args, Debug)]
pub struct CellArgs {
    /// The experiment file (a Slurm task gets the copy frozen in `<runs>/<experiment>/slurm/`).
    #[arg(long)]
    pub experiment: PathBuf,
    /// The cell's index in the grid (datasets × view modes × seeds, in the file's order); under
    /// Slurm, `$SLURM_ARRAY_TASK_ID`.
    #[arg(long)]
    pub index: usize,
    /// Root of the run directories.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Use already-built featdrop binaries from this folder instead of building them (release).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

/// Runs one cell; its configs must have been written by `reproduce` (which submits the array).
pub fn run_cell(args: &CellArgs) -> Result<()> {
    let exp = Experiment::load(&absolute(&args.experiment))?;
    let out = absolute(&args.out);
    // The device does not matter here: the cell runs from the config file reproduce wrote.
    let grid = exp.cells(&out, None)?;
    let Some(c) = grid.get(args.index) else {
        bail!(
            "--index {}: experiment `{}` has {} cell(s) (indices 0..{})",
            args.index,
            exp.name,
            grid.len(),
            grid.len()
        );
    };
    let exp_dir = out.join(&exp.name);
    let _lock = super::locks::cell_shared(&exp_dir)?;
    // `reproduce` submits no twin; one asked for by hand is recorded, not run.
    if let Some(t) = super::twins::find(&grid).get(&c.id) {
        record::write(&exp_dir, &c.id, &super::twins::record(t))?;
        eprintln!("{}: the same as {} ({}); nothing to run", c.id, t.same_as, t.why);
        return Ok(());
    }
    let config = exp_dir.join("configs").join(format!("{}.json", c.id.replace('/', "__")));
    ensure!(
        config.is_file(),
        "{} is missing: `cargo xtask reproduce` writes the cells' configs first",
        config.display()
    );
    let lt = libtorch::setup()?;
    let bins = match &args.bin_dir {
        Some(dir) => Bins::existing(&absolute(dir))?,
        None => Bins::build(&lt)?,
    };
    let env_u64 = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let (job, task) = (env_u64("SLURM_ARRAY_JOB_ID"), env_u64("SLURM_ARRAY_TASK_ID"));
    let mut base = Record { executor: "local".into(), node: record::node_name(), ..Default::default() };
    if let (Some(job), Some(task)) = (job, task) {
        base = Record { executor: "slurm".into(), job_id: Some(job), task_id: Some(task), ..base };
        base.logs = log_paths(&exp_dir.join("slurm"), job, task).to_vec();
    }
    // Results made with another config are not "finished" for this one (reproduce reruns them
    // with --rerun-changed before it submits).
    super::changed::handle(&exp, &exp_dir, &super::changed::cells(&exp, std::slice::from_ref(c))?, false)?;
    if finished(&exp, c) {
        eprintln!("{}: finished already; nothing to do", c.id);
        return Ok(());
    }
    let var = |k: &str| std::env::var(k).ok();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (threads, env) = threads(var("OMP_NUM_THREADS"), var("SLURM_CPUS_PER_TASK"), cpus);
    let base = Record { threads, ..base };
    eprintln!("cell {} (grid index {}) on {}", c.id, args.index, base.node);
    record::write(&exp_dir, &c.id, &Record { state: "running".into(), ..base.clone() })?;
    let (mut rec, error) = run_one(&exp, &exp_dir, c, &bins, base, &env);
    rec.device = trained_on(&c.run_dir);
    if error.is_some() && rec.executor == "slurm" {
        rec.slurm_state = Some("FAILED".into());
    }
    write_outcome(&exp_dir, c, &rec)?;
    match error {
        None => {
            eprintln!("cell {} done in {:.0} s", c.id, rec.seconds);
            Ok(())
        }
        Some(e) => bail!("cell {} failed after {:.0} s: {e}", c.id, rec.seconds),
    }
}

/// The libtorch threads of the cell's processes, and what to add to their environment for it: a
/// user's `OMP_NUM_THREADS` as it is; else, as the local executor gives each of its cells a
/// number, the CPUs Slurm gave the task (`SLURM_CPUS_PER_TASK`: OpenMP's own default may count
/// the whole node's cores where the cluster does not bind tasks to their CPUs) or, outside Slurm,
/// the `cpus` this process may run on.
fn threads(omp: Option<String>, slurm_cpus: Option<String>, cpus: usize) -> (Option<usize>, Vec<(String, String)>) {
    if let Some(v) = omp {
        return (v.trim().parse().ok(), Vec::new());
    }
    let n = slurm_cpus.and_then(|v| v.trim().parse().ok()).filter(|&n: &usize| n > 0).unwrap_or(cpus.max(1));
    (Some(n), vec![("OMP_NUM_THREADS".to_string(), n.to_string())])
}

/// The device the cell's run trained on, as its trainer recorded it (`trained_on.json`: `cpu`, or
/// `cuda:K` among the GPUs the task could see); None before training started. Read as plain JSON:
/// `featdrop_core::trained_on` needs libtorch, which xtask is built without (it installs it).
fn trained_on(run_dir: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(run_dir.join("trained_on.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["device"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::threads;

    #[test]
    fn a_cell_gets_a_definite_thread_count_and_a_users_setting_stays() {
        let s = |v: &str| Some(v.to_string());
        let omp = |n: usize| vec![("OMP_NUM_THREADS".to_string(), n.to_string())];
        assert_eq!(threads(s("3"), s("8"), 16), (Some(3), vec![]), "the user's setting, untouched");
        assert_eq!(threads(s("4,2"), None, 16), (None, vec![]), "kept even where it is no plain count");
        assert_eq!(threads(None, s("8"), 16), (Some(8), omp(8)), "Slurm's CPUs for the task");
        assert_eq!(threads(None, s("0"), 16), (Some(16), omp(16)));
        assert_eq!(threads(None, None, 2), (Some(2), omp(2)), "outside Slurm: the CPUs it may use");
    }
}
