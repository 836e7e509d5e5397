//! `cargo xtask doctor`: set-up, then the doctor binary that links libtorch the way every featdrop
//! binary does, so what it reports (CUDA included: the driver, and each GPU having run a kernel
//! and a bf16 convolution) is what a training run will see.

use crate::{libtorch, paths};
use anyhow::{Result, ensure};

pub fn run(json: bool) -> Result<()> {
    let lt = libtorch::setup()?;
    let mut cmd = paths::cargo(&lt.root);
    cmd.args(["run", "--quiet", "-p", "featdrop-core", "--bin", "featdrop-doctor", "--"]);
    if json {
        cmd.arg("--json");
    }
    let status = cmd.status()?;
    ensure!(status.success(), "featdrop-doctor failed ({status})");
    Ok(())
}
