//! Synthetic sources of the audio dataset (docs/PROTOCOL.md §2.2): spoken-digit-like clips and three
//! background-noise textures, deterministic from a seed, made with batched tensor ops.
//!
//! A digit is a source-filter "word": a glottal sawtooth at a pitch contour and breath/fricative
//! noise, shaped frame by frame in the STFT domain by a formant envelope whose three formants move
//! through the digit's own targets (a vowel-like trajectory), with the digit's own fricatives and
//! pauses. A synthetic speaker sets pitch, speaking rate, vocal-tract length (formant scale),
//! brightness and breathiness; every repetition jitters them a little.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

/// Sample rate of everything made here.
pub const RATE: f64 = 48_000.0;
/// Synthesis STFT size and hop (about 21 ms and 11 ms): fine enough for formant motion.
const SYN_FFT: i64 = 1024;
const SYN_HOP: i64 = 512;
/// Clips synthesised per tensor batch (bounds memory at about 64 × 45 000 samples per buffer).
const CHUNK: usize = 64;

/// How one digit is "pronounced": formant targets, pitch shape, timing and fricatives.
#[derive(Clone, Copy, Debug)]
struct DigitShape {
    /// (F1, F2) in Hz at the start, middle and end of the voiced part.
    formants: [(f64, f64); 3],
    /// Pitch multipliers at the start, middle and end of the voiced part.
    pitch: [f64; 3],
    /// Voiced part as fractions of the word: [start, end].
    voiced: [f64; 2],
    /// Centre (Hz) of the fricative before the voicing, 0 for none.
    onset_fric: f64,
    /// Centre (Hz) of the fricative after the voicing, 0 for none.
    coda_fric: f64,
    /// Whether the voicing dips in the middle (two syllables).
    two_syllables: bool,
    /// Base duration in seconds.
    seconds: f64,
}

const fn shape(f: [(f64, f64); 3], p: [f64; 3], v: [f64; 2], on: f64, coda: f64, two: bool, s: f64) -> DigitShape {
    DigitShape { formants: f, pitch: p, voiced: v, onset_fric: on, coda_fric: coda, two_syllables: two, seconds: s }
}

/// Loosely modelled on English "zero" … "nine" (vowel formants, s/f/θ/t fricatives and bursts).
const DIGITS: [DigitShape; 10] = [
    shape([(400., 2000.), (450., 1300.), (450., 850.)], [1.1, 1.0, 0.85], [0.22, 1.0], 6000., 0., true, 0.60),
    shape([(300., 700.), (650., 1200.), (400., 1700.)], [1.0, 1.12, 0.9], [0.0, 1.0], 0., 0., false, 0.45),
    shape([(350., 1700.), (300., 900.), (300., 850.)], [1.15, 1.0, 0.8], [0.12, 1.0], 4000., 0., false, 0.45),
    shape([(450., 1300.), (300., 2200.), (270., 2300.)], [0.9, 1.05, 1.15], [0.25, 1.0], 3500., 0., false, 0.50),
    shape([(600., 900.), (600., 950.), (450., 1300.)], [1.1, 1.0, 0.85], [0.2, 1.0], 2500., 0., false, 0.50),
    shape([(750., 1200.), (550., 1700.), (300., 2200.)], [1.0, 1.15, 0.85], [0.2, 0.85], 2500., 2500., false, 0.60),
    shape([(400., 2000.), (420., 1900.), (400., 1950.)], [1.2, 1.2, 1.1], [0.3, 0.6], 6500., 6500., false, 0.55),
    shape([(550., 1800.), (450., 1300.), (500., 1500.)], [1.1, 0.95, 0.85], [0.2, 1.0], 6500., 0., true, 0.65),
    shape([(500., 1900.), (350., 2200.), (300., 2300.)], [1.05, 1.0, 0.9], [0.0, 0.75], 0., 4000., false, 0.45),
    shape([(300., 1500.), (750., 1200.), (300., 2100.)], [0.95, 1.1, 0.85], [0.0, 1.0], 0., 0., false, 0.55),
];

/// A synthetic speaker's voice.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Voice {
    /// Mean pitch in Hz (85–260).
    pub f0: f64,
    /// Duration multiplier (0.8–1.25; larger is slower).
    pub rate: f64,
    /// Formant multiplier (0.85–1.2; vocal-tract length).
    pub formant_scale: f64,
    /// Spectral tilt exponent (0.5–1.5; larger is darker).
    pub tilt: f64,
    /// Breath noise level relative to voicing (0.02–0.12).
    pub breath: f64,
}

impl Voice {
    /// The voice of synthetic speaker `speaker`, fixed by `(seed, speaker)`.
    pub fn of_speaker(seed: u64, speaker: i64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (speaker as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        Self {
            f0: (rng.random_range(85f64.ln()..260f64.ln())).exp(),
            rate: rng.random_range(0.8..1.25),
            formant_scale: rng.random_range(0.85..1.2),
            tilt: rng.random_range(0.5..1.5),
            breath: rng.random_range(0.02..0.12),
        }
    }
}

/// One clip to make: digit, voice and per-repetition jitter already applied.
#[derive(Clone, Copy, Debug)]
struct Utterance {
    digit: usize,
    f0: f64,
    formant_scale: f64,
    tilt: f64,
    breath: f64,
    samples: i64,
    peak: f64,
}

impl Utterance {
    fn new(digit: usize, voice: &Voice, rng: &mut ChaCha8Rng) -> Self {
        let d = &DIGITS[digit];
        let mut jit = |s: f64| 1.0 + rng.random_range(-s..s);
        Self {
            digit,
            f0: voice.f0 * jit(0.05),
            formant_scale: voice.formant_scale * jit(0.03),
            tilt: voice.tilt * jit(0.1),
            breath: voice.breath * jit(0.2),
            samples: (d.seconds * voice.rate * jit(0.08) * RATE) as i64,
            peak: rng.random_range(0.1..0.4),
        }
    }
}

/// `[B, 1, T]` piecewise-linear interpolation through three per-clip control points `[B, 3]` at
/// positions 0, ½, 1 of `u` (`[1 or B, 1, T]`, clamped to [0, 1]).
fn three_point(points: &Tensor, u: &Tensor) -> Tensor {
    let u = u.clamp(0.0, 1.0);
    let p = |i: i64| points.narrow(1, i, 1).unsqueeze(-1);
    let first = p(0) + (p(1) - p(0)) * (&u * 2.0);
    let second = p(1) + (p(2) - p(1)) * (&u * 2.0 - 1.0);
    first.where_self(&u.lt(0.5), &second)
}

/// Smooth 0→1→0 gate over `u ∈ [a, b]` (raised-cosine edges of width `edge`).
fn gate(u: &Tensor, a: &Tensor, b: &Tensor, edge: f64) -> Tensor {
    let rise = ((u - a) / edge).clamp(0.0, 1.0);
    let fall = ((b - u) / edge).clamp(0.0, 1.0);
    let g = rise.minimum(&fall);
    (1.0 - (g * std::f64::consts::PI).cos()) * 0.5
}

/// Per-clip parameters of a batch of utterances as tensors on the device.
struct Columns<'a> {
    utts: &'a [Utterance],
    device: Device,
}

impl Columns<'_> {
    /// One value per clip, `[B, 1, 1]` (broadcasts over bins and time).
    fn get(&self, f: impl Fn(&Utterance, &DigitShape) -> f64) -> Tensor {
        let v: Vec<f64> = self.utts.iter().map(|u| f(u, &DIGITS[u.digit])).collect();
        Tensor::from_slice(&v).to_kind(Kind::Float).to_device(self.device).view([-1, 1, 1])
    }

    /// Three control points per clip, `[B, 3]`.
    fn points(&self, f: impl Fn(&Utterance, &DigitShape) -> [f64; 3]) -> Tensor {
        let v: Vec<f64> = self.utts.iter().flat_map(|u| f(u, &DIGITS[u.digit])).collect();
        Tensor::from_slice(&v).to_kind(Kind::Float).to_device(self.device).view([-1, 3])
    }
}

/// Glottal source `[B, S]`: a sawtooth following each digit's pitch contour over its voiced part.
fn glottal(c: &Columns, t: &Tensor, len: &Tensor, v0: &Tensor, v1: &Tensor) -> Tensor {
    let u_voiced = (t / len - v0) / (v1 - v0).clamp_min(1e-3);
    let f0 = three_point(&c.points(|u, d| d.pitch.map(|p| p * u.f0)), &u_voiced).squeeze_dim(1);
    let phase = (f0 / RATE).cumsum(-1, Kind::Float);
    (&phase - phase.floor()) * 2.0 - 1.0
}

/// Spectral envelopes `[B, bins, frames]` for the voiced source and for the noise source: moving
/// formants with the speaker's tilt, gated to the voiced part; fricative bands before and after it.
fn envelopes(c: &Columns, frames: i64, len: &Tensor, v0: &Tensor, v1: &Tensor) -> (Tensor, Tensor) {
    let device = c.device;
    let uf = Tensor::arange(frames, (Kind::Float, device)).view([1, 1, frames]) * SYN_HOP as f64 / len;
    let uvf = (&uf - v0) / (v1 - v0).clamp_min(1e-3);
    let freq = Tensor::arange(SYN_FFT / 2 + 1, (Kind::Float, device)).view([1, -1, 1]) * (RATE / SYN_FFT as f64);
    let scale = c.get(|u, _| u.formant_scale);
    let formant = |i: usize| three_point(&c.points(|_, d| d.formants.map(|f| [f.0, f.1][i])), &uvf) * &scale;
    let resonance = |centre: &Tensor, bw: f64, gain: f64| (((&freq - centre) / bw).square() + 1.0).reciprocal() * gain;
    let f3 = &scale * 2600.0;
    let tilt = (&freq / 1000.0 + 1.0).pow(&(-c.get(|u, _| u.tilt)));
    let envelope =
        (resonance(&formant(0), 90.0, 1.0) + resonance(&formant(1), 120.0, 0.6) + resonance(&f3, 180.0, 0.3)) * tilt;
    // Voicing gate over the voiced part, with a dip between syllables where the digit has two.
    let dip = c.get(|_, d| if d.two_syllables { 0.85 } else { 0.0 });
    let voicing = gate(&uf, v0, v1, 0.08) * (1.0 - dip * (-((&uvf - 0.5) / 0.07).square()).exp());
    // A fricative band (Gaussian around its centre) where the digit has one; centre 1 Hz otherwise
    // keeps the band finite before its zero amplitude removes it.
    let band = |centre: &dyn Fn(&DigitShape) -> f64| {
        let c_hz = c.get(|_, d| centre(d).max(1.0));
        let on = c.get(|_, d| if centre(d) > 0.0 { 1.0 } else { 0.0 });
        (-((&freq - &c_hz) / (&c_hz * 0.35)).square()).exp() * on
    };
    let onset = gate(&uf, &v0.zeros_like(), v0, 0.04) * band(&|d| d.onset_fric);
    let coda = gate(&uf, v1, &v1.ones_like(), 0.04) * band(&|d| d.coda_fric);
    let voiced = &envelope * &voicing;
    let noisy = &voiced * c.get(|u, _| u.breath) * 30.0 + (onset + coda) * 0.15;
    (voiced, noisy)
}

/// Synthesises one batch of utterances as `[B, S]` (S the longest), each scaled to its peak.
fn synth_batch(utts: &[Utterance], device: Device) -> Tensor {
    let (b, s) = (utts.len() as i64, utts.iter().map(|u| u.samples).max().unwrap_or(1));
    let c = Columns { utts, device };
    let len = c.get(|u, _| u.samples as f64);
    let (v0, v1) = (c.get(|_, d| d.voiced[0]), c.get(|_, d| d.voiced[1]));
    let t = Tensor::arange(s, (Kind::Float, device)).view([1, 1, s]);
    // Source-filter synthesis in the STFT domain: each source's frames times its envelope.
    let window = Tensor::hann_window_periodic(SYN_FFT, true, (Kind::Float, device));
    let stft = |x: &Tensor| super::mel::centred_stft(x, SYN_FFT, SYN_HOP, &window);
    let (sv, sn) = (stft(&glottal(&c, &t, &len, &v0, &v1)), stft(&Tensor::randn([b, s], (Kind::Float, device))));
    let (voiced, noisy) = envelopes(&c, sv.size()[2], &len, &v0, &v1);
    let wave = (sv * voiced + sn * noisy).istft(SYN_FFT, SYN_HOP, SYN_FFT, Some(&window), true, false, true, s, false);
    // Silence past each clip's end, then scale to the utterance's peak.
    let wave = wave * t.view([1, s]).lt_tensor(&len.view([b, 1]));
    let peak = c.get(|u, _| u.peak).view([b, 1]);
    &wave / wave.abs().amax([-1], true).clamp_min(1e-8) * peak
}

/// Synthetic spoken digits: for each `(speaker, digit)` one clip, with per-clip jitter drawn from
/// `seed` and the clip's position. Returns the clips concatenated (`[Σ len]` float on `device`)
/// and their lengths. Noise sources draw from libtorch's generator: call inside
/// [`crate::with_seed`] for reproducible clips.
pub fn spoken_digits(speakers: &[i64], digits: &[i64], seed: u64, device: Device) -> (Tensor, Vec<i64>) {
    assert_eq!(speakers.len(), digits.len(), "one speaker per digit");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let utts: Vec<Utterance> = speakers
        .iter()
        .zip(digits)
        .map(|(&s, &d)| Utterance::new(d as usize, &Voice::of_speaker(seed, s), &mut rng))
        .collect();
    let mut parts = Vec::new();
    for chunk in utts.chunks(CHUNK) {
        let batch = synth_batch(chunk, device);
        for (i, u) in chunk.iter().enumerate() {
            parts.push(batch.get(i as i64).narrow(0, 0, u.samples));
        }
    }
    (Tensor::cat(&parts, 0), utts.iter().map(|u| u.samples).collect())
}

/// The three noise classes, in label order.
pub const NOISE_CLASSES: [&str; 3] = ["babble", "traffic", "machinery"];

/// White noise `[samples]` shaped in frequency by `gain(f)` (`f` a `[bins]` Hz tensor).
fn shaped_noise(samples: i64, device: Device, gain: impl Fn(&Tensor) -> Tensor) -> Tensor {
    let white = Tensor::randn([samples], (Kind::Float, device));
    let f = Tensor::arange(samples / 2 + 1, (Kind::Float, device)) * (RATE / samples as f64);
    (white.fft_rfft(samples, -1, "backward") * gain(&f)).fft_irfft(samples, -1, "backward")
}

/// Babble: many synthetic voices saying random digits at random times, overlapping.
fn babble(samples: i64, rng: &mut ChaCha8Rng, device: Device) -> Tensor {
    let voices = (samples as f64 / RATE * 8.0).ceil() as usize;
    let speakers: Vec<i64> = (0..voices).map(|_| rng.random_range(10_000..20_000)).collect();
    let digits: Vec<i64> = (0..voices).map(|_| rng.random_range(0..10)).collect();
    let (flat, lens) = spoken_digits(&speakers, &digits, rng.random(), device);
    let out = Tensor::zeros([samples], (Kind::Float, device));
    let mut at = 0;
    for len in lens {
        let clip = flat.narrow(0, at, len);
        at += len;
        let start = rng.random_range(-len / 2..samples - len / 2);
        let (from, to) = (start.max(0), (start + len).min(samples));
        let _ = out.narrow(0, from, to - from).g_add_(&clip.narrow(0, from - start, to - from));
    }
    out
}

/// Traffic: low-frequency rumble with slow swells of passing vehicles and some tyre hiss.
fn traffic(samples: i64, rng: &mut ChaCha8Rng, device: Device) -> Tensor {
    let rumble = shaped_noise(samples, device, |f| (f / 40.0 + 1.0).reciprocal() * (-(f / 350.0)).exp());
    let hiss = shaped_noise(samples, device, |f| (-((f - 1500.0) / 1000.0).square()).exp());
    let t = Tensor::arange(samples, (Kind::Float, device)) / RATE;
    let mut swell = Tensor::full([samples], 0.3, (Kind::Float, device));
    for _ in 0..(samples as f64 / RATE * 2.0).ceil() as usize {
        let (centre, width) = (rng.random_range(0.0..samples as f64 / RATE), rng.random_range(0.3..0.9));
        swell += (-((&t - centre) / width).square()).exp() * rng.random_range(0.5..1.0);
    }
    let rumble = &rumble / rumble.abs().max();
    let hiss = &hiss / hiss.abs().max();
    (rumble + hiss * 0.08) * swell
}

/// Machinery: a stationary harmonic hum (mains-like fundamental) with a periodic mechanical click.
fn machinery(samples: i64, rng: &mut ChaCha8Rng, device: Device) -> Tensor {
    let t = Tensor::arange(samples, (Kind::Float, device)) / RATE;
    let f0 = rng.random_range(45.0..65.0);
    let mut hum = Tensor::zeros([samples], (Kind::Float, device));
    for k in 1..=24 {
        let amp = rng.random_range(0.3..1.0) / k as f64;
        let phase = rng.random_range(0.0..std::f64::consts::TAU);
        hum += ((&t * (std::f64::consts::TAU * f0 * k as f64)) + phase).sin() * amp;
    }
    let period = rng.random_range(0.08..0.15);
    let since = &t - (&t / period).floor() * period;
    let click = Tensor::randn([samples], (Kind::Float, device)) * (-(since / 0.003)).exp();
    let hum = &hum / hum.abs().max();
    hum + click * 0.5 + Tensor::randn([samples], (Kind::Float, device)) * 0.01
}

/// The three synthetic noise recordings `[3, samples]` (babble, traffic, machinery), each scaled
/// to peak 1, deterministic from `seed` when called inside [`crate::with_seed`].
pub fn noise_recordings(samples: i64, seed: u64, device: Device) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let recs =
        [babble(samples, &mut rng, device), traffic(samples, &mut rng, device), machinery(samples, &mut rng, device)];
    let recs: Vec<Tensor> = recs.iter().map(|r| r / r.abs().max().clamp_min(1e-8)).collect();
    Tensor::stack(&recs, 0)
}
