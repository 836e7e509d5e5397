//! `cargo xtask bench <data|audio|views|train>`: runs a crate's benchmark (release build) after set-up.
//! Each benchmark measures a batched path against a baseline in the same run and prints the ratio,
//! plus one JSON line for other tools.

use crate::{libtorch, paths};
use anyhow::{Result, ensure};

/// (name, package, bench target, what it measures)
pub const BENCHES: [(&str, &str, &str, &str); 4] = [
    ("data", "featdrop-data", "compose", "composing 256 photos+letters examples: batched vs per-image"),
    ("audio", "featdrop-data", "spectrogram", "log-mel features of 128 clips: batched vs per-example"),
    ("views", "featdrop-augment", "views", "expert views of 256 images: batched vs per-image"),
    ("train", "featdrop-contrastive", "train", "training steps (images/s): paper and small configurations"),
];

pub fn run(which: &str, device: &str) -> Result<()> {
    let selected: Vec<_> = BENCHES.iter().filter(|b| which == "all" || b.0 == which).collect();
    ensure!(
        !selected.is_empty(),
        "unknown benchmark `{which}`; accepted: all, {}",
        BENCHES.iter().map(|b| b.0).collect::<Vec<_>>().join(", ")
    );
    let lt = libtorch::setup()?;
    for (name, package, target, what) in selected {
        eprintln!("==> bench {name}: {what} (device {device})");
        let mut cmd = paths::cargo(&lt.root);
        cmd.args(["bench", "-q", "-p", package, "--bench", target, "--", device]);
        cmd.env("FEATDROP_DEVICE", device);
        let status = cmd.status()?;
        ensure!(status.success(), "bench {name} failed ({status})");
    }
    Ok(())
}
