//! `cargo xtask test`: the one test command (README, .ci/run).

use crate::{libtorch, paths, pytorch};
use anyhow::{Result, ensure};
use std::process::Command;
use std::time::Instant;

/// Runs `cmd`, failing with `what` when it fails.
fn step(what: &str, mut cmd: Command) -> Result<()> {
    let start = Instant::now();
    eprintln!("==> {what}");
    let status = cmd.status()?;
    ensure!(status.success(), "{what} failed ({status})");
    eprintln!("==> {what}: ok ({:.0}s)", start.elapsed().as_secs_f64());
    Ok(())
}

/// The programs the Slurm executor's tests run a real single-node Slurm with.
const SLURM_PROGRAMS: [&str; 6] = ["sbatch", "squeue", "scancel", "slurmctld", "slurmd", "munged"];

fn have(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    // Daemons live in /usr/sbin, which a user's PATH may lack.
    std::env::split_paths(&path).chain(["/usr/sbin".into(), "/usr/bin".into()]).any(|d| d.join(program).is_file())
}

/// Installs Debian's `slurm-wlm` and `munge` when missing (CI machines start without them): the
/// Slurm tests (xtask/tests/slurm.rs) bring up a real single-node Slurm, no stand-in.
fn ensure_slurm() -> Result<()> {
    let missing: Vec<&str> = SLURM_PROGRAMS.into_iter().filter(|p| !have(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false);
    ensure!(
        root && have("apt-get"),
        "the Slurm tests need {} (Debian packages slurm-wlm and munge); install them as root with \
         `apt-get install -y slurm-wlm munge`, or run `cargo xtask test` as root on Debian to have it done",
        missing.join(", ")
    );
    let mut update = Command::new("apt-get");
    update.arg("update");
    step("apt-get update (for slurm-wlm, munge)", update)?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "--no-install-recommends", "slurm-wlm", "munge"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    step("apt-get install slurm-wlm munge", install)
}

pub fn run(lint: bool, cargo_args: &[String]) -> Result<()> {
    let lt = libtorch::setup()?;
    ensure_slurm()?;
    // The PyTorch interop tests (crates/eval/tests/torch_interop.rs) run torchvision in torch's Python.
    let python = pytorch::python(&lt)?;
    pytorch::ensure(&python, &pytorch::TEST_PACKAGES)?;
    let cargo = || paths::cargo(&lt.root);
    if lint {
        let mut fmt = cargo();
        fmt.args(["fmt", "--all", "--check"]);
        step("cargo fmt --check", fmt)?;
    }
    // `--all-targets` also runs the library examples: their `[[example]]` entries say
    // `test = true, harness = false`, so each example's main is a test.
    let mut test = cargo();
    // A filter in `cargo_args` would reach every target; benches and the examples (harness-free
    // binaries with arguments of their own) would take it for theirs, so they sit those runs out.
    let targets: &[&str] = if cargo_args.is_empty() { &["--all-targets"] } else { &["--lib", "--bins", "--test", "*"] };
    test.args(["test", "--workspace"]).args(targets).args(cargo_args).env("FEATDROP_PYTHON", &python);
    step("unit and integration tests", test)?;
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--doc"]);
    step("doc tests", doc)?;
    let mut rustdoc = cargo();
    rustdoc.args(["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings");
    step("cargo doc (warnings are errors)", rustdoc)?;
    if lint {
        let mut clippy = cargo();
        clippy.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
        step("cargo clippy -D warnings", clippy)?;
    }
    eprintln!("all tests passed");
    Ok(())
}
