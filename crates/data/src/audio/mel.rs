//! Log-mel spectrograms on the device (docs/PROTOCOL.md §2.2): the published librosa defaults, spelled
//! out as tensor ops — STFT (n_fft 2048, Hann, hop 788, centred with reflect padding), power
//! |X|², a Slaney-scale, Slaney-normalised mel filterbank, then `10·log10(max(S², 1e-10))` of the
//! squared mel power clipped 80 dB under each example's maximum, and a fixed normalisation.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Below this frequency the Slaney mel scale is linear.
const SLANEY_BREAK_HZ: f64 = 1000.0;
/// Hz per mel in the linear part (200/3).
const SLANEY_HZ_PER_MEL: f64 = 200.0 / 3.0;
/// The mel value at the break: 1000 / (200/3) = 15.
const SLANEY_BREAK_MEL: f64 = SLANEY_BREAK_HZ / SLANEY_HZ_PER_MEL;

/// Log step of the Slaney scale above 1 kHz: ln(6.4) / 27 per mel.
fn slaney_log_step() -> f64 {
    6.4f64.ln() / 27.0
}

/// Hz to mel on the Slaney (Auditory Toolbox) scale: linear below 1 kHz, logarithmic above.
pub fn hz_to_mel(hz: f64) -> f64 {
    if hz < SLANEY_BREAK_HZ {
        hz / SLANEY_HZ_PER_MEL
    } else {
        SLANEY_BREAK_MEL + (hz / SLANEY_BREAK_HZ).ln() / slaney_log_step()
    }
}

/// Mel to Hz on the Slaney scale (inverse of [`hz_to_mel`]).
pub fn mel_to_hz(mel: f64) -> f64 {
    if mel < SLANEY_BREAK_MEL {
        mel * SLANEY_HZ_PER_MEL
    } else {
        SLANEY_BREAK_HZ * ((mel - SLANEY_BREAK_MEL) * slaney_log_step()).exp()
    }
}

/// The `n_mels + 2` band edges in Hz: equally spaced in Slaney mel from `f_min` to `f_max`.
pub fn mel_edges(n_mels: usize, f_min: f64, f_max: f64) -> Vec<f64> {
    let (lo, hi) = (hz_to_mel(f_min), hz_to_mel(f_max));
    (0..n_mels + 2).map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64)).collect()
}

/// Slaney-normalised triangular mel filterbank `[n_mels][n_fft/2 + 1]` (librosa's `mel` with
/// `htk=False, norm='slaney'`): band `m` rises from edge `m` to `m+1` and falls to `m+2`, and is
/// scaled by `2 / (edge[m+2] − edge[m])` so every filter has (about) the same area.
pub fn mel_filterbank(sample_rate: f64, n_fft: usize, n_mels: usize, f_min: f64, f_max: f64) -> Vec<Vec<f64>> {
    let bins = n_fft / 2 + 1;
    let freqs: Vec<f64> = (0..bins).map(|k| k as f64 * sample_rate / n_fft as f64).collect();
    let edges = mel_edges(n_mels, f_min, f_max);
    (0..n_mels)
        .map(|m| {
            let (lo, mid, hi) = (edges[m], edges[m + 1], edges[m + 2]);
            let norm = 2.0 / (hi - lo);
            freqs.iter().map(|&f| norm * ((f - lo) / (mid - lo)).min((hi - f) / (hi - mid)).max(0.0)).collect()
        })
        .collect()
}

/// Complex one-sided STFT `[N, n_fft/2 + 1, 1 + samples/hop]` of `[N, samples]` with centred
/// frames: reflect padding of `n_fft/2` on both sides, then uncentred frames. (Spelled out because
/// tch passes `align_to_window` as set, which libtorch refuses together with `center = true`.)
pub fn centred_stft(x: &Tensor, n_fft: i64, hop: i64, window: &Tensor) -> Tensor {
    let padded = x.unsqueeze(1).reflection_pad1d([n_fft / 2, n_fft / 2]).squeeze_dim(1);
    padded.stft(n_fft, hop, n_fft, Some(window), false, true, true, false)
}

/// Examples per STFT call in [`LogMel::features`].
pub const FEATURE_CHUNK: i64 = 256;

/// Settings of the log-mel front end; the defaults are the published ones (docs/PROTOCOL.md §2.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MelConfig {
    /// Sample rate in Hz: 48 000.
    pub sample_rate: f64,
    /// FFT size (and Hann window length): 2048.
    pub n_fft: i64,
    /// Hop between frames: 788 (64 centred frames for 50 000 samples).
    pub hop: i64,
    /// Mel bands: 64.
    pub n_mels: usize,
    /// Lowest band edge in Hz: 0.
    pub f_min: f64,
    /// Highest band edge in Hz: 24 000 (Nyquist).
    pub f_max: f64,
    /// Floor inside the log: 1e-10.
    pub amin: f64,
    /// Dynamic range kept under each example's maximum, in dB: 80.
    pub top_db: f64,
    /// Normalisation mean of the log-mel in dB: −90.293.
    pub mean: f64,
    /// Normalisation std of the log-mel in dB: 11.799.
    pub std: f64,
}

impl Default for MelConfig {
    fn default() -> Self {
        Self {
            sample_rate: 48_000.0,
            n_fft: 2048,
            hop: 788,
            n_mels: 64,
            f_min: 0.0,
            f_max: 24_000.0,
            amin: 1e-10,
            top_db: 80.0,
            mean: -90.293,
            std: 11.799,
        }
    }
}

/// The log-mel front end with its window and filterbank as tensors on one device.
#[derive(Debug)]
pub struct LogMel {
    /// The settings.
    pub config: MelConfig,
    window: Tensor,
    /// `[n_mels, n_fft/2 + 1]` float filterbank.
    filters: Tensor,
}

impl LogMel {
    /// Builds the window and filterbank on `device`.
    pub fn new(config: MelConfig, device: Device) -> Self {
        let c = &config;
        let fb = mel_filterbank(c.sample_rate, c.n_fft as usize, c.n_mels, c.f_min, c.f_max);
        let flat: Vec<f32> = fb.iter().flatten().map(|&w| w as f32).collect();
        let filters = Tensor::from_slice(&flat).view([c.n_mels as i64, c.n_fft / 2 + 1]).to_device(device);
        // Periodic Hann, as scipy's get_window('hann') in librosa.
        let window = Tensor::hann_window_periodic(c.n_fft, true, (Kind::Float, device));
        Self { config, window, filters }
    }

    /// The filterbank `[n_mels, n_fft/2 + 1]`.
    pub fn filters(&self) -> &Tensor {
        &self.filters
    }

    /// Number of frames for `samples` samples: `1 + samples / hop` (centred frames).
    pub fn frames(&self, samples: i64) -> i64 {
        1 + samples / self.config.hop
    }

    /// Power spectrogram |X|² `[N, n_fft/2 + 1, frames]` of waveforms `[N, samples]`.
    pub fn power(&self, waves: &Tensor) -> Tensor {
        let c = &self.config;
        let x = waves.to_device(self.window.device()).to_kind(Kind::Float);
        centred_stft(&x, c.n_fft, c.hop, &self.window).abs().square()
    }

    /// Mel power `[N, n_mels, frames]` of waveforms `[N, samples]`.
    pub fn mel_power(&self, waves: &Tensor) -> Tensor {
        self.filters.matmul(&self.power(waves))
    }

    /// The published log of mel power `[N, F, T]`: `10·log10(max(S², amin))`, clipped from below
    /// at `top_db` under each example's maximum (dB, not yet normalised).
    pub fn log_of_mel(&self, mel: &Tensor) -> Tensor {
        let c = &self.config;
        let db = mel.square().clamp_min(c.amin).log10() * 10.0;
        let peak = db.amax([-2, -1], true);
        db.max_other(&(peak - c.top_db))
    }

    /// Normalised log-mel `[N, 1, n_mels, frames]` of waveforms `[N, samples]`, on the device.
    ///
    /// Works through [`FEATURE_CHUNK`] examples at a time: the complex STFT of one 50 000-sample
    /// example takes about 0.5 MB, so a whole `stats` pass at once would need gigabytes.
    pub fn features(&self, waves: &Tensor) -> Tensor {
        self.features_via(waves, |power| power, |db| db)
    }

    /// [`Self::features`] with an operation on the mel power `[n, F, T]` before the log and one on
    /// the log-mel in dB after it (the spectral expert views' masks and noise), chunk by chunk.
    pub fn features_via(
        &self,
        waves: &Tensor,
        on_power: impl Fn(Tensor) -> Tensor,
        on_db: impl Fn(Tensor) -> Tensor,
    ) -> Tensor {
        let c = &self.config;
        let chunks: Vec<Tensor> = waves
            .split(FEATURE_CHUNK, 0)
            .iter()
            .map(|w| ((on_db(self.log_of_mel(&on_power(self.mel_power(w)))) - c.mean) / c.std).unsqueeze(1))
            .collect();
        Tensor::cat(&chunks, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_round_trip() {
        for hz in [0.0, 300.0, 999.0, 1000.0, 4321.0, 24_000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6 * hz.max(1.0), "{hz}");
        }
    }
}
