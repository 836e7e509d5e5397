//! The audio dataset of docs/PROTOCOL.md §2.2, `speech+noise`: a spoken digit mixed with one of three
//! background noises, as a normalised 1×64×64 log-mel spectrogram, with tasks `digit` (10) and
//! `noise` (3).
//!
//! Waveforms live as tensors on the dataset's device; a batch's speech crops and noise segments
//! are gathered and mixed there ([`dataset`]) and turned into log-mel spectrograms there too
//! ([`mel`]). Sources are synthetic ([`synth`], the default) or real files ([`wav`], resampled by
//! [`resample`]): an AudioMNIST folder and three noise recordings.

pub mod dataset;
pub mod header;
pub mod mel;
pub mod resample;
pub mod synth;
pub mod wav;

pub use dataset::{AudioConfig, SpeechNoiseDataset};
pub use featdrop_core::config::PairNoise;
pub use mel::{LogMel, MelConfig};

use tch::{Kind, Tensor};

/// Name of the audio dataset.
pub const SPEECH_NOISE: &str = "speech+noise";
/// AudioMNIST speakers held out for the test split (docs/PROTOCOL.md §2.2); the other 48 of 1–60 train.
pub const TEST_SPEAKERS: [i64; 12] = [5, 13, 18, 22, 26, 32, 33, 42, 45, 51, 52, 60];
/// Number of AudioMNIST speakers (ids 1–60).
pub const SPEAKERS: i64 = 60;

/// Speaker ids of a split, ascending: the 12 test speakers or the 48 others.
pub fn split_speakers(split: featdrop_core::Split) -> Vec<i64> {
    let test = split == featdrop_core::Split::Test;
    (1..=SPEAKERS).filter(|s| TEST_SPEAKERS.contains(s) == test).collect()
}

/// Spectrograms `[N, 1, F, T]` as RGB images `[N, 3, F, T]` in [0, 1] for grids: each scaled to
/// its own range, low frequencies at the bottom (row 0 of an image is its top), through a
/// black–purple–orange–yellow heat map so quiet detail stays visible.
pub fn spectrogram_images(spec: &Tensor) -> Tensor {
    let x = spec.to_kind(Kind::Float).flip([2]);
    let lo = x.amin([1, 2, 3], true);
    let hi = x.amax([1, 2, 3], true);
    let v = (&x - &lo) / (hi - lo).clamp_min(1e-6);
    let r = (&v * 1.8).clamp(0.0, 1.0);
    let g = (&v * 1.6 - 0.6).clamp(0.0, 1.0);
    let b = ((&v * std::f64::consts::PI * 1.5).sin() * 0.6).clamp(0.0, 1.0) + (&v * 3.0 - 2.0).clamp(0.0, 1.0) * 0.8;
    Tensor::cat(&[r, g, b.clamp(0.0, 1.0)], 1)
}
