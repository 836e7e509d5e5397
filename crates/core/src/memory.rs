//! Will a run fit in memory? A lower bound of what a run config needs (the dataset's tensors and
//! the encoder's weights and gradients), checked against the memory this machine has available,
//! before any data is built: a config asking for 10⁸ training examples is refused at once, naming
//! the field, instead of growing for minutes until the system kills it.
//!
//! The estimate counts only what is certain to be allocated — one byte per input value (images
//! and spectrograms are at least stored as `u8`), one `i64` label per task, four bytes per
//! convolution weight and as much again for its gradient — so a refusal is never a false alarm.
//! Sizes of 0 ("the whole split") count as nothing here: the split's size is known only to the
//! data source.

use crate::RunConfig;
use crate::catalogue;
use crate::config::Arch;
use crate::task::Modality;
use anyhow::{Result, bail};

/// A run's memory needs, in bytes (lower bounds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Estimate {
    /// Bytes per example of the dataset (inputs and labels).
    pub per_example: u64,
    /// The dataset's tensors: `data.train_size + data.test_size` examples.
    pub dataset: u64,
    /// The encoder's convolution and head weights, with their gradients.
    pub model: u64,
}

impl Estimate {
    /// Everything counted.
    pub fn total(&self) -> u64 {
        self.dataset.saturating_add(self.model)
    }
}

/// The lower bound of what `cfg` needs (nothing for the dataset when it is not catalogued).
pub fn estimate(cfg: &RunConfig) -> Estimate {
    let info = catalogue::find(&cfg.dataset);
    let per_example = info.map_or(0, |d| {
        let [c, h, w] = d.input_shape;
        (c * h * w) as u64 + 8 * d.tasks.len() as u64
    });
    let examples = (cfg.data.train_size as u64).saturating_add(cfg.data.test_size as u64);
    let channels = info.map_or(3, |d| d.input_shape[0] as u64);
    let audio = info.is_some_and(|d| d.modality == Modality::Audio);
    let weights = encoder_weights(cfg, channels, if audio { 7 } else { 3 });
    Estimate { per_example, dataset: per_example.saturating_mul(examples), model: weights.saturating_mul(4 * 2) }
}

/// Convolution and head weights of the ResNet family (stages of width × 1, 2, 4, 8), batch-norm
/// parameters left out.
fn encoder_weights(cfg: &RunConfig, in_channels: u64, stem_kernel: u64) -> u64 {
    let w = cfg.encoder.width as u64;
    let blocks = match cfg.encoder.arch {
        Arch::Resnet18 => 2,
        Arch::Small => 1,
    };
    let mut n = in_channels * w * stem_kernel * stem_kernel;
    let mut cin = w;
    for cout in [w, 2 * w, 4 * w, 8 * w] {
        n += 9 * (cin * cout + cout * cout) + if cin == cout { 0 } else { cin * cout };
        n += (blocks - 1) * 18 * cout * cout;
        cin = cout;
    }
    n + cin * cfg.encoder.embed_dim as u64
}

/// `MemAvailable` of `/proc/meminfo`, in bytes (`None` where there is no such file).
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses `cfg` when its estimate exceeds this machine's available memory (see [`check_fits`]);
/// passes where the available memory cannot be read.
pub fn check(cfg: &RunConfig, origin: &str) -> Result<()> {
    match available() {
        Some(bytes) => check_fits(cfg, origin, bytes, "MemAvailable in /proc/meminfo"),
        None => Ok(()),
    }
}

/// Refuses `cfg` when its estimate exceeds `available` bytes, naming the field that asks for the
/// most (`origin` names the config's file; `source` says where `available` was read).
pub fn check_fits(cfg: &RunConfig, origin: &str, available: u64, source: &str) -> Result<()> {
    let e = estimate(cfg);
    if e.total() <= available {
        return Ok(());
    }
    let d = &cfg.data;
    let (field, value, advice) = if e.dataset >= e.model {
        if d.train_size >= d.test_size {
            ("data.train_size", d.train_size, "lower data.train_size")
        } else {
            ("data.test_size", d.test_size, "lower data.test_size")
        }
    } else {
        ("encoder.width", cfg.encoder.width, "lower encoder.width")
    };
    bail!(
        "{origin}: field `{field}` = {value} does not fit in memory: this run needs at least {} \
         ({} for {} examples of {} bytes, {} for the encoder's weights and gradients), more than the {} \
         available ({source}); {advice}",
        human(e.total()),
        human(e.dataset),
        d.train_size as u64 + d.test_size as u64,
        e.per_example,
        human(e.model),
        human(available)
    )
}

/// Bytes in the largest unit that keeps a number ≥ 1.
fn human(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.1} {}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ViewMode;
    use crate::view_mode::BaseViews;

    fn cfg(train: usize, arch: Arch, width: usize) -> RunConfig {
        let mut c = RunConfig::new("t", "photos+digits", ViewMode::from(BaseViews::Expert), 0);
        (c.data.train_size, c.data.test_size) = (train, 64);
        (c.encoder.arch, c.encoder.width) = (arch, width);
        c
    }

    #[test]
    fn the_estimate_is_a_lower_bound_of_known_sizes() {
        // ResNet-18 at width 64 with a 128-d head: 11.16 M convolution weights, 65 536 in the head
        // (torchvision's, with a 1000-way head and batch norms: 11.69 M).
        let weights = estimate(&cfg(0, Arch::Resnet18, 64)).model / 8;
        assert_eq!(weights, 11_224_768);
        // A 3×32×32 image stored as u8 and two i64 labels.
        let e = estimate(&cfg(1000, Arch::Small, 8));
        assert_eq!((e.per_example, e.dataset), (3072 + 16, 1064 * 3088));
    }

    #[test]
    fn a_run_too_big_for_memory_names_the_field() {
        let available = 8_000_000_000;
        check_fits(&cfg(50_000, Arch::Resnet18, 64), "exp.json", available, "test").unwrap();
        let e = check_fits(&cfg(100_000_000, Arch::Small, 8), "exp.json", available, "test").unwrap_err().to_string();
        assert!(e.starts_with("exp.json: field `data.train_size` = 100000000 does not fit in memory"), "{e}");
        assert!(e.contains("at least 308.8 GB") && e.contains("than the 8.0 GB available (test)"), "{e}");
        let e = check_fits(&cfg(1000, Arch::Resnet18, 1024), "exp.json", available, "test").unwrap_err().to_string();
        assert!(e.contains("field `encoder.width` = 1024"), "{e}");
    }

    #[test]
    fn available_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(available().is_some_and(|b| b > 0));
        }
    }
}
