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
use crate::config::{Arch, Source};
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
    // The projection head's hidden layer (8·width → 8·width) before the last linear map.
    let head = if cfg.encoder.projection_head { cin * cin } else { 0 };
    n + head + cin * cfg.encoder.embed_dim as u64
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

/// Bytes in the largest unit that keeps a number ≥ 1 (decimal units: 1 GB = 10⁹ bytes).
pub fn human(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.1} {}", units[i])
}

/// Whole-split sizes (train, test) of a built-in dataset: what `data.train_size` / `test_size`
/// = 0 stands for. The same numbers as `featdrop-data`'s (`DEFAULT_SIZES`; AudioMNIST's 48
/// training and 12 test speakers × 500 clips; 3 synthetic clips per speaker and digit), which
/// this crate cannot import (held equal by a test there: `whole_split_tests`).
pub fn whole_splits(info: &catalogue::DatasetInfo, source: Source) -> (u64, u64) {
    match (info.modality, source) {
        (Modality::Image, _) => (50_000, 10_000),
        (Modality::Audio, Source::Real) => (48 * 500, 12 * 500),
        (Modality::Audio, Source::Synthetic) => (48 * 10 * 3, 12 * 10 * 3),
    }
}

/// Samples of the longest clip a dataset holds on the device: AudioMNIST clips are at most 1 s
/// at 48 kHz (47 998 samples), as are the synthetic ones.
pub const MAX_CLIP_SAMPLES: u64 = 48_000;

/// What a run keeps on its device: examples per split (0s resolved to whole splits) and the
/// bytes each one takes there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataSizes {
    /// Training examples.
    pub train: u64,
    /// Test examples.
    pub test: u64,
    /// Bytes per example on the device (inputs and labels).
    pub bytes_per_example: u64,
}

/// The sizes of `cfg`'s dataset as it will sit on the device: images as `u8` (3 × 32 × 32),
/// audio clips as float32 of at most [`MAX_CLIP_SAMPLES`], each with one `i64` label per task;
/// `None` for a dataset the catalogue does not know.
pub fn data_sizes(cfg: &RunConfig) -> Option<DataSizes> {
    let info = catalogue::find(&cfg.dataset)?;
    let (whole_train, whole_test) = whole_splits(info, cfg.data.source);
    let size = |n: usize, whole: u64| if n == 0 { whole } else { n as u64 };
    let [c, h, w] = info.input_shape;
    let input = match info.modality {
        Modality::Image => (c * h * w) as u64,
        Modality::Audio => 4 * MAX_CLIP_SAMPLES,
    };
    Some(DataSizes {
        train: size(cfg.data.train_size, whole_train),
        test: size(cfg.data.test_size, whole_test),
        bytes_per_example: input + 8 * info.tasks.len() as u64,
    })
}

/// What a run needs of its GPU, in bytes: an estimate, not a bound (activations depend on
/// libtorch's kernels), to say before the first step and to refuse runs that cannot fit at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceEstimate {
    /// The whole dataset, which lives on the device by design.
    pub dataset: u64,
    /// The encoder's float32 weights, gradients and SGD momentum.
    pub model: u64,
    /// The encoder's saved activations for one step of `train.batch_size` pairs.
    pub activations: u64,
}

impl DeviceEstimate {
    /// Everything counted.
    pub fn total(&self) -> u64 {
        self.dataset.saturating_add(self.model).saturating_add(self.activations)
    }
}

/// The device estimate of `cfg` with its dataset's `sizes` (a pure function of both).
pub fn device_estimate(cfg: &RunConfig, sizes: DataSizes) -> DeviceEstimate {
    let info = catalogue::find(&cfg.dataset);
    let channels = info.map_or(3, |d| d.input_shape[0] as u64);
    let audio = info.is_some_and(|d| d.modality == Modality::Audio);
    let weights = encoder_weights(cfg, channels, if audio { 7 } else { 3 });
    let [_, h, w] = info.map_or([3, 32, 32], |d| d.input_shape);
    // Three tensors saved per convolution (its input, the batch norm's, the ReLU's), float32,
    // for both views of every pair.
    let per_image = activation_values(cfg, h as u64, w as u64, audio).saturating_mul(3 * 4);
    let examples = sizes.train.saturating_add(sizes.test);
    DeviceEstimate {
        dataset: sizes.bytes_per_example.saturating_mul(examples),
        model: weights.saturating_mul(4 * 3),
        activations: per_image.saturating_mul(2 * cfg.train.batch_size as u64),
    }
}

/// Output values of every convolution of the ResNet family for one `h × w` input: the image stem
/// keeps the resolution, the audio stem (7×7 stride 2, then a stride-2 max-pool) quarters it;
/// each later stage halves it.
fn activation_values(cfg: &RunConfig, h: u64, w: u64, audio: bool) -> u64 {
    let width = cfg.encoder.width as u64;
    let convs_per_stage = match cfg.encoder.arch {
        Arch::Resnet18 => 4,
        Arch::Small => 2,
    };
    let (mut h, mut w, mut n) = if audio { (h / 4, w / 4, width * (h / 2) * (w / 2)) } else { (h, w, width * h * w) };
    for (stage, cout) in [width, 2 * width, 4 * width, 8 * width].into_iter().enumerate() {
        if stage > 0 {
            (h, w) = (h.div_ceil(2), w.div_ceil(2));
        }
        n += convs_per_stage * cout * h * w;
    }
    n
}

/// What [`check_device_fits`] says of a run it does not refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fit {
    /// The line to say before the first step.
    pub line: String,
    /// Whether it is a warning (more than the free memory, or nothing known to check).
    pub warning: bool,
}

/// Refuses `cfg` when its device estimate exceeds the device's `total` memory, naming the field
/// that asks for the most; otherwise what to say before the first step (a warning when the
/// estimate exceeds the `free` memory: another process holds the rest).
pub fn check_device_fits(cfg: &RunConfig, origin: &str, device: &str, total: u64, free: Option<u64>) -> Result<Fit> {
    let Some(sizes) = data_sizes(cfg) else {
        let line = format!("{device}: the memory of dataset `{}` is not known here", cfg.dataset);
        return Ok(Fit { line, warning: true });
    };
    let e = device_estimate(cfg, sizes);
    let parts = format!(
        "about {} ({} for {} examples of the dataset, {} for the encoder's weights, gradients and momentum, \
         {} for the activations of a batch of {} pairs)",
        human(e.total()),
        human(e.dataset),
        sizes.train + sizes.test,
        human(e.model),
        human(e.activations),
        cfg.train.batch_size
    );
    if e.total() > total {
        let (field, value) = if e.dataset >= e.activations.max(e.model) {
            if sizes.train >= sizes.test { ("data.train_size", sizes.train) } else { ("data.test_size", sizes.test) }
        } else if e.activations >= e.model {
            ("train.batch_size", cfg.train.batch_size as u64)
        } else {
            ("encoder.width", cfg.encoder.width as u64)
        };
        bail!(
            "{origin}: this run does not fit on {device}: it needs {parts}, more than the device's {} in all; \
             field `{field}` = {value} asks for the most: lower it, or use a GPU with more memory",
            human(total)
        );
    }
    let mut line = format!("{device}: this run needs {parts} of GPU memory; {} in all", human(total));
    let warning = free.is_some_and(|f| e.total() > f);
    if let Some(free) = free {
        line += &format!(", {} free", human(free));
    }
    if warning {
        line += " — WARNING: more than is free (another process holds the rest); it may run out of memory";
    }
    Ok(Fit { line, warning })
}

/// Checks `cfg` against the memory of `device` (a CUDA device; nothing to check on the CPU), read
/// from the NVIDIA driver, and logs what it found. Memory the driver cannot tell is warned about
/// and checked no further: libtorch, which found the device, will run.
#[cfg(all(feature = "torch", target_os = "linux"))]
pub fn check_device(cfg: &RunConfig, origin: &str, device: tch::Device) -> Result<()> {
    let tch::Device::Cuda(i) = device else { return Ok(()) };
    let gpus = crate::gpu::Driver::open().and_then(|d| d.gpus());
    let Some(g) = gpus.as_ref().ok().and_then(|gpus| gpus.iter().find(|g| g.index == i)) else {
        let why = gpus.err().unwrap_or_else(|| "the driver lists no such GPU".into());
        tracing::warn!("cuda:{i}: its memory cannot be read ({why}); the GPU memory check is skipped");
        return Ok(());
    };
    let fit = check_device_fits(cfg, origin, &format!("cuda:{i} ({})", g.name), g.memory_total, g.memory_free)?;
    if fit.warning {
        tracing::warn!("{}", fit.line);
    } else {
        tracing::info!("{}", fit.line);
    }
    Ok(())
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
        // Issue 28 item 2: a projection head adds its 512 × 512 hidden layer.
        let mut with_head = cfg(0, Arch::Resnet18, 64);
        with_head.encoder.projection_head = true;
        assert_eq!(estimate(&with_head).model / 8, 11_224_768 + 512 * 512);
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

    fn audio(train: usize, test: usize) -> RunConfig {
        let mut c = RunConfig::new("t", "speech+noise", ViewMode::from(BaseViews::Expert), 0);
        (c.data.source, c.data.train_size, c.data.test_size) = (Source::Real, train, test);
        (c.encoder.arch, c.encoder.width, c.train.batch_size) = (Arch::Resnet18, 64, 128);
        c
    }

    /// Issue 30 item 6: whole splits resolved, audio as float32 clips, and the encoder's step.
    #[test]
    fn the_device_estimate_counts_whole_splits_and_a_step() {
        // Real AudioMNIST, whole splits: 30 000 clips of at most 48 000 float32 samples, two labels.
        let sizes = data_sizes(&audio(0, 0)).unwrap();
        assert_eq!(sizes, DataSizes { train: 24_000, test: 6_000, bytes_per_example: 192_000 + 16 });
        let e = device_estimate(&audio(0, 0), sizes);
        assert_eq!(e.dataset, 30_000 * 192_016);
        assert!((5_000_000_000..7_000_000_000).contains(&e.dataset), "a few GB: {}", human(e.dataset));
        // Synthetic audio and sizes given in the config.
        let mut synth = audio(100, 50);
        synth.data.source = Source::Synthetic;
        assert_eq!(data_sizes(&synth).unwrap().train, 100);
        synth.data.train_size = 0;
        assert_eq!(data_sizes(&synth).unwrap().train, 1440);
        // ResNet-18 on 32×32 images: the weights of the host estimate, three copies; the stem
        // and stages (32², 16², 8², 4²) saved three times, float32, for 2 × 256 images.
        let mut img = cfg(0, Arch::Resnet18, 64);
        img.train.batch_size = 256;
        let e = device_estimate(&img, data_sizes(&img).unwrap());
        assert_eq!(e.dataset, (50_000 + 64) * (3072 + 16), "the whole training split, the 64 test images asked for");
        assert_eq!(e.model, 11_224_768 * 12);
        let per_image = 64 * 1024 + 4 * (64 * 1024 + 128 * 256 + 256 * 64 + 512 * 16);
        assert_eq!(e.activations, per_image * 12 * 512);
        let mut doubled = img.clone();
        doubled.train.batch_size = 512;
        assert_eq!(device_estimate(&doubled, data_sizes(&doubled).unwrap()).activations, 2 * e.activations);
    }

    #[test]
    fn a_run_too_big_for_its_gpu_names_the_field_and_a_tight_one_is_warned_about() {
        let c = audio(0, 0);
        let total = device_estimate(&c, data_sizes(&c).unwrap()).total();
        let fit = check_device_fits(&c, "exp.json", "cuda:0 (T4)", 16_000_000_000, Some(15_000_000_000)).unwrap();
        assert!(
            fit.line.starts_with("cuda:0 (T4): this run needs about ") && fit.line.contains("15.0 GB free"),
            "{fit:?}"
        );
        assert!(!fit.warning && !fit.line.contains("WARNING"), "{fit:?}");
        let fit = check_device_fits(&c, "exp.json", "cuda:0", total + 1, Some(total - 1)).unwrap();
        assert!(fit.warning && fit.line.contains("WARNING: more than is free"), "{fit:?}");
        let e = check_device_fits(&c, "exp.json", "cuda:0 (small)", 4_000_000_000, None).unwrap_err().to_string();
        assert!(e.starts_with("exp.json: this run does not fit on cuda:0 (small)"), "{e}");
        assert!(e.contains("field `data.train_size` = 24000") && e.contains("than the device's 4.0 GB"), "{e}");
        let mut wide = cfg(1000, Arch::Resnet18, 64);
        wide.train.batch_size = 8192;
        let e = check_device_fits(&wide, "exp.json", "cuda:1", 8_000_000_000, None).unwrap_err().to_string();
        assert!(e.contains("field `train.batch_size` = 8192"), "{e}");
    }

    #[test]
    fn available_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(available().is_some_and(|b| b > 0));
        }
    }
}
