//! The record of the device a run was trained on, `trained_on.json` in its directory (issue 30
//! item 8). CUDA's random streams differ from the CPU's and its kernels round differently, so the
//! same seed gives other initial weights, views and test-set overlays there: resuming a run on
//! another kind of device, or evaluating it there, silently mixes two computations. Both are
//! refused unless asked for with [`ALLOW_FLAG`] (`featdrop-train` and `featdrop-eval`).
//!
//! The record is separate from `config.json`, which holds the *choice* (`auto` runs anywhere) and
//! is compared field by field on resume; this one holds what the choice resolved to.

use crate::io::{read_json, write_json_atomic};
use crate::layout::RunDir;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use tch::Device;

/// The flag of both binaries that lets a run change device kind.
pub const ALLOW_FLAG: &str = "--allow-device-change";

/// What a run was (last) trained on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainedOn {
    /// The device kind compared on resume and evaluation: `cpu`, `cuda`, `mps` or `vulkan`.
    pub kind: String,
    /// The device itself, e.g. `cuda:0`.
    pub device: String,
    /// Whether `train.deterministic` was on.
    pub deterministic: bool,
}

/// The kind of `device` (the CUDA index does not matter: GPUs of one machine share the streams).
pub fn kind_of(device: Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Mps => "mps",
        Device::Vulkan => "vulkan",
    }
}

fn name_of(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        other => kind_of(other).to_string(),
    }
}

impl TrainedOn {
    /// The record for training on `device`.
    pub fn new(device: Device, deterministic: bool) -> Self {
        Self { kind: kind_of(device).into(), device: name_of(device), deterministic }
    }

    /// The run's record; `None` for a run that has none (trained before records were kept, or
    /// not started).
    pub fn read(run: &RunDir) -> Result<Option<Self>> {
        let path = run.trained_on();
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(read_json(&path)?))
    }

    /// Writes the record, atomically.
    pub fn write(&self, run: &RunDir) -> Result<()> {
        write_json_atomic(&run.trained_on(), self)
    }
}

/// Checks that `device` is of the kind `run` was trained on, before `action` ("resume",
/// "evaluate") uses its weights there: another kind is an error naming both and the way out
/// ([`ALLOW_FLAG`]), or, when `allow` is set, a warning. A run without a record passes.
pub fn check(run: &RunDir, device: Device, action: &str, allow: bool) -> Result<()> {
    let Some(rec) = TrainedOn::read(run)? else { return Ok(()) };
    let here = kind_of(device);
    if rec.kind == here {
        return Ok(());
    }
    if allow {
        tracing::warn!(run = %run.root().display(), trained_on = %rec.device, now = %name_of(device),
            "{action} on another device kind than the run was trained on ({ALLOW_FLAG})");
        return Ok(());
    }
    bail!(
        "{}: the run was trained on {} ({}), and this would {action} it on {here}: the two give different \
         numbers (other random streams and kernels), so the results would mix both; {action} it on a {} \
         device, or pass {ALLOW_FLAG} to {action} it on {here} anyway",
        run.trained_on().display(),
        rec.kind,
        rec.device,
        rec.kind
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_device_kind_is_refused_unless_allowed_and_a_missing_record_passes() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::at(dir.path());
        check(&run, Device::Cpu, "resume", false).unwrap();
        TrainedOn::new(Device::Cuda(1), true).write(&run).unwrap();
        let rec = TrainedOn::read(&run).unwrap().unwrap();
        assert_eq!((rec.kind.as_str(), rec.device.as_str(), rec.deterministic), ("cuda", "cuda:1", true));
        let e = check(&run, Device::Cpu, "evaluate", false).unwrap_err().to_string();
        assert!(e.contains("trained_on.json") && e.contains("cuda:1") && e.contains(ALLOW_FLAG), "{e}");
        check(&run, Device::Cpu, "evaluate", true).unwrap();
        // Another GPU of the same kind is the same computation.
        check(&run, Device::Cuda(0), "resume", false).unwrap();
    }
}
