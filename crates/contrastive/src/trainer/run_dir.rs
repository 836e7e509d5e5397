//! Taking a run directory: one trainer at a time (a lock naming its holder), and only for the
//! config its files were made with — checked before the dataset is built, so a wrong directory
//! fails in a moment, not after minutes of loading.

use anyhow::{Result, bail, ensure};
use featdrop_core::config::{ChannelsLast, changed_fields};
use featdrop_core::lock::DirLock;
use featdrop_core::{RunConfig, RunDir};

/// Locks `run` for this process and checks that what it holds belongs to `cfg`; the lock lasts
/// as long as the returned value.
pub(super) fn claim(cfg: &RunConfig, run: &RunDir) -> Result<DirLock> {
    let lock = DirLock::acquire(run.root(), "featdrop-train")?;
    check_config(cfg, run)?;
    Ok(lock)
}

/// A run directory's files belong to the config in its `config.json`: another config is refused
/// (naming what differs), and checkpoints without a `config.json` are refused too — resuming
/// weights under a config they were not trained with would mix two runs.
fn check_config(cfg: &RunConfig, run: &RunDir) -> Result<()> {
    let path = run.config();
    if path.exists() {
        let old = RunConfig::from_file(&path)?;
        let changed = changed_fields(&old, cfg);
        ensure!(
            changed.is_empty(),
            "{} holds a different config (changed: {}); use a new run directory, or delete that one to start over",
            path.display(),
            changed.join(", ")
        );
        return Ok(());
    }
    if let Some(weights) = any_checkpoint(run) {
        bail!(
            "{} is missing but {} holds trained weights ({weights}): the config they were trained with is \
             unknown, so they are not resumed under this one; put that run's config.json back, or delete {} \
             to start this run over",
            path.display(),
            run.checkpoints().display(),
            run.checkpoints().display()
        );
    }
    Ok(())
}

/// A run with checkpoints is resumed only on the device kind it was trained on, unless `allow`
/// ([`featdrop_core::trained_on::check`]); a run without checkpoints starts over anywhere.
pub(super) fn check_device(run: &RunDir, device: tch::Device, allow: bool) -> Result<()> {
    if any_checkpoint(run).is_none() {
        return Ok(());
    }
    featdrop_core::trained_on::check(run, device, "resume", allow)
}

/// The name of a weights file in the run's checkpoints folder, if it has one.
fn any_checkpoint(run: &RunDir) -> Option<String> {
    let entries = std::fs::read_dir(run.checkpoints()).ok()?;
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.ends_with(".safetensors") && !n.starts_with('.'))
}

/// `cfg` with `train.channels_last = "auto"` made concrete for this run, so that `config.json`
/// records the layout that runs: a run resumed keeps the layout its `config.json` records (its
/// momentum buffers and numbers were made in it); a new one takes the layout measured faster for
/// its device and encoder ([`ChannelsLast::resolve`]).
pub(super) fn resolve_layout(mut cfg: RunConfig, run: &RunDir, device: tch::Device) -> Result<RunConfig> {
    if cfg.train.channels_last != ChannelsLast::Auto {
        return Ok(cfg);
    }
    let path = run.config();
    let recorded = if path.exists() { RunConfig::from_file(&path)?.train.channels_last } else { ChannelsLast::Auto };
    let on = match recorded {
        ChannelsLast::Fixed(on) => on,
        ChannelsLast::Auto => ChannelsLast::Auto.resolve(device.is_cuda(), cfg.encoder.arch),
    };
    tracing::debug!(channels_last = on, "train.channels_last = auto resolved");
    cfg.train.channels_last = ChannelsLast::Fixed(on);
    Ok(cfg)
}
