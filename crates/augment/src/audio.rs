//! The two published expert audio variants (docs/PROTOCOL.md §3.1): *waveform* (crop to a fraction and
//! coloured noise, in random order, on `[N, samples]`) and *spectral* (a frequency and a time mask
//! plus Gaussian noise, on the `[N, 1, F, T]` normalised log-mel). Implements the audio views of
//! the published code of Tamkin et al., "Feature Dropout" (NeurIPS 2023).

use crate::{check_prob, check_range, coin, per_sample, uniform, with_seed};
use anyhow::{Result, ensure};
use featdrop_core::ViewFamily;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// The waveform recipe. The crop range is the published one; the noise ranges (SNR U[3, 30] dB,
/// spectral slope U[−2, 2], i.e. violet to brown) follow torch-audiomentations' `AddColoredNoise`
/// defaults, the usual choice when the paper gives none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WaveformRecipe {
    /// Probability of the crop: 1.
    pub crop_p: f64,
    /// Fraction of the clip kept, U[lo, hi]: [0.08, 1].
    pub crop_fraction: [f64; 2],
    /// Probability of the noise: 1.
    pub noise_p: f64,
    /// Signal-to-noise ratio in dB, U[lo, hi]: [3, 30].
    pub noise_snr_db: [f64; 2],
    /// Spectral slope: noise power ∝ f^(−slope), U[lo, hi]: [−2, 2] (0 white, 1 pink, 2 brown).
    pub noise_slope: [f64; 2],
}

impl Default for WaveformRecipe {
    fn default() -> Self {
        Self {
            crop_p: 1.0,
            crop_fraction: [0.08, 1.0],
            noise_p: 1.0,
            noise_snr_db: [3.0, 30.0],
            noise_slope: [-2.0, 2.0],
        }
    }
}

impl WaveformRecipe {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        check_prob("crop_p", self.crop_p)?;
        check_range("crop_fraction", self.crop_fraction, f64::MIN_POSITIVE, 1.0)?;
        check_prob("noise_p", self.noise_p)?;
        check_range("noise_snr_db", self.noise_snr_db, -200.0, 200.0)?;
        check_range("noise_slope", self.noise_slope, -10.0, 10.0)
    }
}

/// Contiguous windows for `n` clips of `samples`: `(start, len)` int64 `[N]`, with
/// `len = clamp(round(fraction · samples), 1, samples)` for `fraction` (`[N]`) and the start uniform
/// over the positions where the window fits.
pub fn sample_windows(fraction: &Tensor, samples: i64) -> (Tensor, Tensor) {
    let len = (fraction * samples as f64).round().clamp(1.0, samples as f64);
    sample_windows_with_len(len, samples)
}

/// Bool `[N, size]`: true inside each row's window `start .. start + len` (int64 `[N]`).
pub fn window_mask(start: &Tensor, len: &Tensor, size: i64) -> Tensor {
    let idx = Tensor::arange(size, (Kind::Int64, start.device())).unsqueeze(0);
    let start = start.unsqueeze(1);
    idx.ge_tensor(&start).logical_and(&idx.lt_tensor(&(&start + len.unsqueeze(1))))
}

/// Coloured noise `[N, samples]` with unit mean power per row: white Gaussian noise whose spectrum
/// is shaped so that power ∝ f^(−slope) (`slope` `[N]`); the DC bin keeps weight 1.
pub fn coloured_noise(slope: &Tensor, samples: i64) -> Tensor {
    let n = slope.size()[0];
    let device = slope.device();
    let white = Tensor::randn([n, samples], (Kind::Float, device));
    let bins = samples / 2 + 1;
    let freq = Tensor::arange(bins, (Kind::Float, device)).clamp_min(1.0).unsqueeze(0);
    // Amplitude is the square root of power, hence the half slope.
    let gain = freq.pow(&(slope.unsqueeze(1) * -0.5));
    let shaped = (white.fft_rfft(samples, -1, "backward") * gain).fft_irfft(samples, -1, "backward");
    let power = shaped.square().mean_dim(-1, true, Kind::Float);
    shaped / (power + 1e-12).sqrt()
}

/// Adds unit-power `noise` (`[N, samples]`) to `waves`, scaled so each row's signal-to-noise ratio
/// is `snr_db` (`[N]`); a silent row stays silent.
pub fn add_noise_at_snr(waves: &Tensor, noise: &Tensor, snr_db: &Tensor) -> Tensor {
    let signal_power = waves.square().mean_dim(-1, true, waves.kind());
    let ratio = (snr_db.unsqueeze(1) * (std::f64::consts::LN_10 / 10.0)).exp();
    waves + noise * (signal_power / ratio).sqrt()
}

/// The waveform variant of the expert audio views. Its inputs are waveforms, not the
/// `[N, 1, 64, 64]` log-mel, so it is not a [`ViewFamily`]; [`Self::view_waveform`] follows the
/// same seeding rule.
#[derive(Clone, Debug)]
pub struct ExpertWaveform {
    recipe: WaveformRecipe,
}

impl ExpertWaveform {
    /// The variant for a validated recipe.
    pub fn new(recipe: WaveformRecipe) -> Result<Self> {
        recipe.validate()?;
        Ok(Self { recipe })
    }

    /// `expert-waveform`.
    pub fn name(&self) -> String {
        "expert-waveform".into()
    }

    /// One view of each waveform `[N, samples]`, seeding libtorch from `seed` first.
    pub fn view_waveform(&self, waves: &Tensor, seed: u64) -> Tensor {
        with_seed(seed, || self.augment(waves))
    }

    /// One view drawn from libtorch's current generator state: per sample the crop (the rest
    /// zeroed) and the noise are each applied with their probability, in a random order. Both
    /// orders are computed with the same draws and one is selected per sample.
    pub fn augment(&self, waves: &Tensor) -> Tensor {
        let s = waves.size();
        assert!(s.len() == 2, "expected waveforms [N, samples]; got shape {s:?}");
        let (n, samples, device) = (s[0], s[1], waves.device());
        let r = &self.recipe;
        let crop_on = per_sample(&coin(n, r.crop_p, device), 1);
        let (start, len) = sample_windows(&uniform(n, r.crop_fraction, device), samples);
        let keep = window_mask(&start, &len, samples).logical_or(&crop_on.logical_not());
        let noise_on = per_sample(&coin(n, r.noise_p, device), 1);
        let noise = coloured_noise(&uniform(n, r.noise_slope, device), samples).to_kind(waves.kind());
        let snr = uniform(n, r.noise_snr_db, device);
        let crop_first = per_sample(&coin(n, 0.5, device), 1);
        let crop = |w: &Tensor| w.zeros_like().where_self(&keep.logical_not(), w);
        let add = |w: &Tensor| add_noise_at_snr(w, &noise, &snr).where_self(&noise_on, w);
        add(&crop(waves)).where_self(&crop_first, &crop(&add(waves)))
    }
}

/// The spectral recipe (published values as defaults).
///
/// The published noise is Gaussian with std 0.25 × 11.799 dB added to the log-mel *before*
/// normalisation. The inputs here are already normalised, `(log-mel − mean) / 11.799`, which
/// divides that noise's std by 11.799 too, so the noise added to the normalised spectrogram has
/// std `noise_std_db / log_mel_std` = 0.25. Both numbers are fields so a different dataset
/// normalisation keeps the same noise in dB.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpectralRecipe {
    /// Largest frequency-mask width in mel bins (width uniform in 0..=max): 40.
    pub freq_mask_max: i64,
    /// Largest time-mask width in frames: 40.
    pub time_mask_max: i64,
    /// Value written into masked bins, in normalised units: 0 (the dataset mean level).
    pub mask_value: f64,
    /// Noise std in dB on the unnormalised log-mel: 0.25 × 11.799.
    pub noise_std_db: f64,
    /// The dataset's log-mel normalisation std in dB: 11.799 (docs/PROTOCOL.md §2.2).
    pub log_mel_std: f64,
}

impl Default for SpectralRecipe {
    fn default() -> Self {
        Self { freq_mask_max: 40, time_mask_max: 40, mask_value: 0.0, noise_std_db: 0.25 * 11.799, log_mel_std: 11.799 }
    }
}

impl SpectralRecipe {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("freq_mask_max", self.freq_mask_max), ("time_mask_max", self.time_mask_max)] {
            ensure!(v >= 0, "field `{name}` = {v} is out of range; expected >= 0");
        }
        ensure!(self.mask_value.is_finite(), "field `mask_value` = {} must be finite", self.mask_value);
        ensure!(self.noise_std_db.is_finite() && self.noise_std_db >= 0.0, "field `noise_std_db` must be >= 0");
        ensure!(self.log_mel_std.is_finite() && self.log_mel_std > 0.0, "field `log_mel_std` must be > 0");
        Ok(())
    }

    /// Noise std on the normalised spectrogram.
    pub fn noise_std(&self) -> f64 {
        self.noise_std_db / self.log_mel_std
    }
}

/// Mask bands for `n` samples along an axis of `size` bins: `(start, width)` int64 `[N]`, width
/// uniform in `0..=min(max_width, size)` and start uniform over where the band fits.
pub fn sample_bands(n: i64, size: i64, max_width: i64, device: Device) -> (Tensor, Tensor) {
    let top = max_width.min(size);
    let width = (Tensor::rand([n], (Kind::Float, device)) * (top + 1) as f64).floor().clamp_max(top as f64);
    sample_windows_with_len(width, size)
}

/// Uniform starts for given window lengths (float `[N]` of whole numbers, may be 0).
fn sample_windows_with_len(len: Tensor, size: i64) -> (Tensor, Tensor) {
    let slack = size as f64 - &len;
    let u = Tensor::rand(len.size(), (Kind::Float, len.device()));
    let start = (u * (&slack + 1.0)).floor().minimum(&slack);
    (start.to_kind(Kind::Int64), len.to_kind(Kind::Int64))
}

/// The spectral variant of the expert audio views, a [`ViewFamily`] on the normalised log-mel
/// `[N, 1, F, T]`: one frequency mask, one time mask, then Gaussian noise.
#[derive(Clone, Debug)]
pub struct ExpertSpectral {
    recipe: SpectralRecipe,
}

impl ExpertSpectral {
    /// The family for a validated recipe.
    pub fn new(recipe: SpectralRecipe) -> Result<Self> {
        recipe.validate()?;
        Ok(Self { recipe })
    }

    /// One view drawn from libtorch's current generator state.
    pub fn augment(&self, spec: &Tensor) -> Tensor {
        let s = spec.size();
        assert!(s.len() == 4, "expected spectrograms [N, C, F, T]; got shape {s:?}");
        let (n, f, t, device) = (s[0], s[2], s[3], spec.device());
        let (fs, fw) = sample_bands(n, f, self.recipe.freq_mask_max, device);
        let (ts, tw) = sample_bands(n, t, self.recipe.time_mask_max, device);
        let in_f = window_mask(&fs, &fw, f).view([n, 1, f, 1]);
        let in_t = window_mask(&ts, &tw, t).view([n, 1, 1, t]);
        let masked = spec.where_scalarother(&in_f.logical_or(&in_t).logical_not(), self.recipe.mask_value);
        masked + Tensor::randn_like(spec) * self.recipe.noise_std()
    }
}

impl ViewFamily for ExpertSpectral {
    fn name(&self) -> String {
        "expert".into()
    }

    fn view(&self, inputs: &Tensor, seed: u64) -> Tensor {
        with_seed(seed, || self.augment(inputs))
    }
}
