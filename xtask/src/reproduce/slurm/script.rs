//! The batch script of a Slurm array and the resources its tasks ask for: the experiment file's
//! `slurm` section, overridden by `reproduce`'s flags.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The experiment file's optional `slurm` section: resources of every array task. Flags win.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSection {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--time`, Slurm's time-limit syntax (e.g. `12:00:00`, `1-00:00:00`).
    pub time: Option<String>,
    /// GPUs per cell (`--gres=gpu:N`); default 1, or 0 when the cells' device is `cpu`.
    pub gpus: Option<u32>,
    /// `--cpus-per-task`.
    pub cpus: Option<u32>,
    /// `--mem`, per cell (e.g. `16G`).
    pub mem: Option<String>,
    /// How many cells run at once (the array's `%M`).
    pub max_running: Option<u32>,
    /// Further `sbatch` arguments, one per entry (e.g. `--qos=long`).
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

/// `reproduce` flags for `--executor slurm`.
#[derive(clap::Args, Debug, Default)]
#[command(next_help_heading = "Slurm (--executor slurm; flags override the experiment's `slurm` section)")]
pub struct SlurmArgs {
    /// Partition to submit to.
    #[arg(long)]
    pub partition: Option<String>,
    /// Account to charge.
    #[arg(long)]
    pub account: Option<String>,
    /// Time limit per cell (Slurm syntax, e.g. 12:00:00).
    #[arg(long)]
    pub time: Option<String>,
    /// GPUs per cell (default 1; 0 when the device is cpu).
    #[arg(long)]
    pub gpus: Option<u32>,
    /// CPUs per cell.
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Memory per cell (e.g. 16G).
    #[arg(long)]
    pub mem: Option<String>,
    /// At most this many cells at once (the array's %M).
    #[arg(long)]
    pub max_running: Option<u32>,
    /// A further sbatch argument (repeatable), e.g. --sbatch-arg=--qos=long.
    #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// Follow the array until every task has ended, then run the theory sweep and the report.
    #[arg(long)]
    pub wait: bool,
    /// Seconds between two looks at the queue while waiting.
    #[arg(long, default_value_t = 10)]
    pub poll_seconds: u64,
}

/// The resources every task asks for, flags over the experiment file over defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Resources {
    pub section: SlurmSection,
    pub gpus: u32,
}

impl Resources {
    pub fn resolve(file: Option<&SlurmSection>, flags: &SlurmArgs, cpu_only: bool) -> Self {
        let f = file.cloned().unwrap_or_default();
        let mut sbatch_args = f.sbatch_args;
        sbatch_args.extend(flags.sbatch_args.iter().cloned());
        let section = SlurmSection {
            partition: flags.partition.clone().or(f.partition),
            account: flags.account.clone().or(f.account),
            time: flags.time.clone().or(f.time),
            gpus: flags.gpus.or(f.gpus),
            cpus: flags.cpus.or(f.cpus),
            mem: flags.mem.clone().or(f.mem),
            max_running: flags.max_running.or(f.max_running),
            sbatch_args,
        };
        let gpus = section.gpus.unwrap_or(if cpu_only { 0 } else { 1 });
        Self { section, gpus }
    }

    /// The `#SBATCH` lines for these resources (the array, name and logs come separately).
    fn lines(&self) -> Vec<String> {
        let s = &self.section;
        let mut out = Vec::new();
        let mut opt = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push(format!("--{k}={v}"));
            }
        };
        opt("partition", &s.partition);
        opt("account", &s.account);
        opt("time", &s.time);
        opt("cpus-per-task", &s.cpus.map(|c| c.to_string()));
        opt("mem", &s.mem);
        if self.gpus > 0 {
            out.push(format!("--gres=gpu:{}", self.gpus));
        }
        out.extend(s.sbatch_args.iter().cloned());
        out
    }
}

/// What the batch script runs: this very xtask binary, so tasks need no cargo on the nodes.
pub struct TaskCommand {
    pub checkout: PathBuf,
    pub xtask: PathBuf,
    pub experiment: PathBuf,
    pub out: PathBuf,
    pub bin_dir: PathBuf,
}

/// The batch script: the array of grid indices, its logs, resources, and the one task command.
pub fn batch_script(exp: &str, array: &[usize], res: &Resources, slurm_dir: &Path, task: &TaskCommand) -> String {
    let list: Vec<String> = array.iter().map(|i| i.to_string()).collect();
    let limit = res.section.max_running.map(|m| format!("%{m}")).unwrap_or_default();
    let mut s = String::from("#!/bin/bash\n");
    s += &format!(
        "# featdrop: experiment `{exp}`, {} cell(s), written by `cargo xtask reproduce --executor slurm`.\n\
         # Each array task id is a cell's index in the grid; resubmit with `sbatch` on this file.\n",
        array.len()
    );
    s += &format!("#SBATCH --job-name=featdrop-{exp}\n#SBATCH --array={}{limit}\n", list.join(","));
    s += &format!("#SBATCH --output={}\n", slurm_dir.join("%A_%a.out").display());
    s += &format!("#SBATCH --error={}\n", slurm_dir.join("%A_%a.err").display());
    for line in res.lines() {
        s += &format!("#SBATCH {line}\n");
    }
    s += "set -euo pipefail\n";
    s += &format!("cd {}\n", sh_quote(&task.checkout));
    s += &format!(
        "exec {} cell --experiment {} --out {} --bin-dir {} --index \"$SLURM_ARRAY_TASK_ID\"\n",
        sh_quote(&task.xtask),
        sh_quote(&task.experiment),
        sh_quote(&task.out),
        sh_quote(&task.bin_dir)
    );
    s
}

/// Single-quotes a path for bash.
fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_gpus_default_by_device() {
        let file = SlurmSection {
            partition: Some("gpu".into()),
            time: Some("12:00:00".into()),
            mem: Some("16G".into()),
            sbatch_args: vec!["--qos=long".into()],
            ..Default::default()
        };
        let flags = SlurmArgs {
            partition: Some("debug".into()),
            max_running: Some(4),
            sbatch_args: vec!["--constraint=a100".into()],
            ..Default::default()
        };
        let r = Resources::resolve(Some(&file), &flags, false);
        assert_eq!(r.gpus, 1, "cuda/auto cells get one GPU unless told otherwise");
        assert_eq!(
            r.lines(),
            ["--partition=debug", "--time=12:00:00", "--mem=16G", "--gres=gpu:1", "--qos=long", "--constraint=a100"]
        );
        assert_eq!(Resources::resolve(None, &SlurmArgs::default(), true).gpus, 0, "cpu cells get none");
        let two = SlurmArgs { gpus: Some(2), ..Default::default() };
        assert_eq!(Resources::resolve(Some(&file), &two, true).gpus, 2, "an explicit count wins");
    }

    #[test]
    fn the_script_runs_each_task_by_grid_index_with_its_logs() {
        let res =
            Resources::resolve(None, &SlurmArgs { max_running: Some(2), cpus: Some(1), ..Default::default() }, true);
        let task = TaskCommand {
            checkout: "/shared/featdrop".into(),
            xtask: "/shared/featdrop/target/debug/xtask".into(),
            experiment: "/shared/runs/x/slurm/experiment.ab.json".into(),
            out: "/shared/runs".into(),
            bin_dir: "/shared/featdrop/target/release".into(),
        };
        let s = batch_script("x", &[0, 3, 5], &res, Path::new("/shared/runs/x/slurm"), &task);
        for want in [
            "#SBATCH --array=0,3,5%2\n",
            "#SBATCH --output=/shared/runs/x/slurm/%A_%a.out\n",
            "#SBATCH --error=/shared/runs/x/slurm/%A_%a.err\n",
            "#SBATCH --cpus-per-task=1\n",
            "--index \"$SLURM_ARRAY_TASK_ID\"\n",
        ] {
            assert!(s.contains(want), "{want:?} missing from\n{s}");
        }
        assert!(!s.contains("--gres"), "{s}");
    }
}
