//! PyTorch's own Python beside featdrop's libtorch: the interpreter of the torch wheel featdrop
//! installed, and the few packages the interop tests (torchvision, safetensors), the TensorBoard
//! test (tensorboard) and the reference bench (torchvision, pillow) add to it. `cargo xtask
//! reproduce` never needs them.

use crate::libtorch::Libtorch;
use anyhow::{Context, Result, ensure};
use std::path::PathBuf;
use std::process::Command;

/// torchvision release built for torch 2.11.
pub const TORCHVISION: &str = "torchvision==0.26.*";

/// The TensorBoard release whose loader reads featdrop's event files back in
/// crates/eval/tests/tensorboard.rs (and whose server `xtask/scripts/tensorboard-screenshot.sh`
/// runs).
pub const TENSORBOARD: &str = "tensorboard==2.21.0";

/// What the interop and TensorBoard tests import: (module, requirement). torchvision's own imports
/// need numpy and pillow; tensorboard's loader protobuf and absl-py, its server the rest (pinned:
/// installed without their dependencies, so each is listed).
pub const TEST_PACKAGES: [(&str, &str); 12] = [
    ("numpy", "numpy"),
    ("PIL", "pillow"),
    ("torchvision", TORCHVISION),
    ("safetensors", "safetensors"),
    ("tensorboard", TENSORBOARD),
    ("google.protobuf", "protobuf==7.36.2"),
    ("absl", "absl-py==2.5.1"),
    ("werkzeug", "werkzeug==3.1.9"),
    ("markdown", "markdown==3.11.4"),
    ("grpc", "grpcio==1.85.4"),
    ("packaging", "packaging==26.4"),
    ("tensorboard_data_server", "tensorboard-data-server==0.7.2"),
];

/// The Python whose site-packages hold `lt`: `FEATDROP_PYTHON` when set, else the venv of the torch
/// wheel (`<venv>/lib/pythonX.Y/site-packages/torch` → `<venv>/bin/python`).
pub fn python(lt: &Libtorch) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("FEATDROP_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let venv = lt.root.ancestors().nth(4).map(|v| v.join("bin/python"));
    venv.filter(|p| p.exists()).with_context(|| {
        format!(
            "libtorch at {} is not inside a Python environment with torch ({} source); set FEATDROP_PYTHON to a \
             python that has torch 2.11, for the PyTorch interop tests and the reference bench",
            lt.root.display(),
            lt.source
        )
    })
}

/// Installs into `python`'s environment each `(module, requirement)` whose module cannot be
/// imported. `--no-deps`, so that pip never replaces the torch featdrop links against.
pub fn ensure(python: &PathBuf, packages: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(module, _)| {
            // find_spec only looks the module up: importing torchvision would fail on a missing pillow.
            let probe = format!("import importlib.util, sys; sys.exit(importlib.util.find_spec('{module}') is None)");
            !Command::new(python).args(["-c", &probe]).output().is_ok_and(|o| o.status.success())
        })
        .map(|(_, req)| *req)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing {} into {}'s environment", missing.join(" "), python.display());
    let status = Command::new(python)
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-deps"])
        .args(&missing)
        .status()
        .with_context(|| format!("running {}", python.display()))?;
    ensure!(status.success(), "pip could not install {} ({status}); check that PyPI is reachable", missing.join(" "));
    Ok(())
}
