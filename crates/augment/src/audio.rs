//! The two published expert audio variants (docs/PROTOCOL.md §3.1): *waveform* (crop to a fraction and
//! additive white noise, in random order, on `[N, samples]`) and *spectral* (a frequency and a time
//! mask on the mel power, then Gaussian noise on the log-mel in dB). Implements the audio views of
//! the published code of Tamkin et al., "Feature Dropout" (NeurIPS 2023). The spectral operations
//! act inside the log-mel front end, which lives in `featdrop-data`; the view families that chain
//! them are assembled in `featdrop-contrastive`.

use crate::{check_prob, check_range, coin, per_sample, uniform, with_seed};
use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// The waveform recipe; the defaults are the published values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WaveformRecipe {
    /// Probability of the crop: 1.
    pub crop_p: f64,
    /// Fraction of the clip kept in place, U[lo, hi]: [0.08, 1].
    pub crop_fraction: [f64; 2],
    /// Probability of the noise: 1.
    pub noise_p: f64,
    /// Multiplier on the published white noise (the inverse real FFT of a standard-normal
    /// spectrum, std ≈ 1/√samples: 0.0045 at 50 000 samples): 1.
    pub noise_scale: f64,
}

impl Default for WaveformRecipe {
    fn default() -> Self {
        Self { crop_p: 1.0, crop_fraction: [0.08, 1.0], noise_p: 1.0, noise_scale: 1.0 }
    }
}

impl WaveformRecipe {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        check_prob("crop_p", self.crop_p)?;
        check_range("crop_fraction", self.crop_fraction, f64::MIN_POSITIVE, 1.0)?;
        check_prob("noise_p", self.noise_p)?;
        let s = self.noise_scale;
        ensure!(s.is_finite() && s >= 0.0, "field `noise_scale` = {s} is out of range; expected a finite number >= 0");
        Ok(())
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

/// The published white noise `[N, samples]`: the inverse real FFT (`backward` norm) of a real
/// standard-normal spectrum of `samples / 2 + 1` bins, so its std is about `1/√samples` (0.0045 at
/// 50 000 samples) whatever the clip's loudness.
pub fn white_noise(n: i64, samples: i64, device: Device) -> Tensor {
    let spectrum = Tensor::randn([n, samples / 2 + 1], (Kind::Float, device));
    spectrum.fft_irfft(samples, -1, "backward")
}

/// The waveform variant of the expert audio views, on waveforms `[N, samples]` (the log-mel that
/// follows is the view family's job, in `featdrop-contrastive`).
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
        let noise = (white_noise(n, samples, device) * r.noise_scale).to_kind(waves.kind());
        let crop_first = per_sample(&coin(n, 0.5, device), 1);
        let crop = |w: &Tensor| w.zeros_like().where_self(&keep.logical_not(), w);
        let add = |w: &Tensor| (w + &noise).where_self(&noise_on, w);
        add(&crop(waves)).where_self(&crop_first, &crop(&add(waves)))
    }
}

/// The spectral recipe (published values as defaults). The masks zero bands of the mel *power*,
/// so after the log they sit at the example's floor (`max(10·log10(amin), peak − top_db)`), not at
/// 0 of the normalised spectrogram; the noise is added to the log-mel in dB, before normalisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpectralRecipe {
    /// Largest frequency-mask width in mel bins (width uniform in 0..=max): 40.
    pub freq_mask_max: i64,
    /// Largest time-mask width in frames: 40.
    pub time_mask_max: i64,
    /// Noise std in dB on the unnormalised log-mel: 0.25 × 11.799 (a quarter of the dataset's
    /// normalisation std, so 0.25 on the normalised spectrogram).
    pub noise_std_db: f64,
}

impl Default for SpectralRecipe {
    fn default() -> Self {
        Self { freq_mask_max: 40, time_mask_max: 40, noise_std_db: 0.25 * 11.799 }
    }
}

impl SpectralRecipe {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("freq_mask_max", self.freq_mask_max), ("time_mask_max", self.time_mask_max)] {
            ensure!(v >= 0, "field `{name}` = {v} is out of range; expected >= 0");
        }
        ensure!(self.noise_std_db.is_finite() && self.noise_std_db >= 0.0, "field `noise_std_db` must be >= 0");
        Ok(())
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

/// The spectral variant of the expert audio views: its two stages, called by the log-mel front end
/// from libtorch's current generator state (the caller seeds): [`Self::mask_power`] on the mel
/// power `[N, F, T]`, then [`Self::add_noise_db`] on the log-mel in dB.
#[derive(Clone, Debug)]
pub struct ExpertSpectral {
    recipe: SpectralRecipe,
}

impl ExpertSpectral {
    /// The operations of a validated recipe.
    pub fn new(recipe: SpectralRecipe) -> Result<Self> {
        recipe.validate()?;
        Ok(Self { recipe })
    }

    /// One frequency band and one time band of each example's mel power `[N, F, T]` set to zero.
    pub fn mask_power(&self, power: &Tensor) -> Tensor {
        let s = power.size();
        assert!(s.len() == 3, "expected mel power [N, F, T]; got shape {s:?}");
        let (n, f, t, device) = (s[0], s[1], s[2], power.device());
        let (fs, fw) = sample_bands(n, f, self.recipe.freq_mask_max, device);
        let (ts, tw) = sample_bands(n, t, self.recipe.time_mask_max, device);
        let in_f = window_mask(&fs, &fw, f).view([n, f, 1]);
        let in_t = window_mask(&ts, &tw, t).view([n, 1, t]);
        power.where_scalarother(&in_f.logical_or(&in_t).logical_not(), 0.0)
    }

    /// Gaussian noise of the recipe's std added to a log-mel in dB.
    pub fn add_noise_db(&self, db: &Tensor) -> Tensor {
        db + Tensor::randn_like(db) * self.recipe.noise_std_db
    }
}
