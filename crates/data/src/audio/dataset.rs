//! `speech+noise` (docs/PROTOCOL.md §2.2): speech crops and noise segments gathered, mixed and turned
//! into log-mel spectrograms on the device, a whole batch at a time.
//!
//! Real layout (`--source real`, the folder given as `data_dir` / `--audio-dir`, default
//! `data/raw/audio` of the checkout):
//!
//! ```text
//! DIR/01/0_01_0.wav … DIR/60/9_60_49.wav   AudioMNIST: <speaker>/<digit>_<speaker>_<rep>.wav
//!                                           (also found under DIR/data/, as in its repository)
//! DIR/noise/babble.wav, traffic.wav, machinery.wav   (or .flac)
//! ```

use super::mel::{LogMel, MelConfig};
use super::{SPEECH_NOISE, TEST_SPEAKERS, split_speakers, synth, wav};
use crate::dataset::{DatasetSpec, PairNoise, Source};
use crate::{MultiTaskDataset, Pair, with_seed};
use anyhow::{Context, Result, bail, ensure};
use featdrop_core::{Batch, Modality, Seeds, Split, Stream, TaskSet, catalogue};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Counters of the data stream reserved for building the dataset (far from per-step counters).
const BUILD_COUNTER: u64 = (1 << 48) + 100;
/// Synthetic repetitions per (speaker, digit) when a split size is 0.
pub const SYNTH_REPS: usize = 3;
/// Length of each synthetic noise recording in seconds (two 50 000-sample ends that differ).
const SYNTH_NOISE_SECONDS: f64 = 3.0;
/// Digit class names.
pub const DIGIT_NAMES: [&str; 10] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];

/// Settings of `speech+noise`; the defaults are the published ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioConfig {
    /// The log-mel front end.
    pub mel: MelConfig,
    /// Samples per mixed example: 50 000.
    pub clip_samples: i64,
    /// Peak |amplitude| each noise recording is scaled to: 0.05.
    pub noise_peak: f64,
    /// How pairs get their second view's noise.
    pub pair_noise: PairNoise,
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self { mel: MelConfig::default(), clip_samples: 50_000, noise_peak: 0.05, pair_noise: PairNoise::Independent }
    }
}

/// The speech clips of one split, concatenated on the device.
#[derive(Debug)]
struct Speech {
    /// All clips end to end, float.
    flat: Tensor,
    /// `[M]` int64 start of each clip in `flat`.
    offsets: Tensor,
    /// `[M]` int64 length of each clip.
    lengths: Tensor,
    /// `[M]` int64 digit labels.
    digits: Tensor,
    /// Speaker of each clip.
    speakers: Vec<i64>,
}

impl Speech {
    fn new(clips: Tensor, lengths: &[i64], digits: &[i64], speakers: Vec<i64>, device: Device) -> Self {
        let offsets: Vec<i64> = lengths.iter().scan(0, |acc, &l| Some(std::mem::replace(acc, *acc + l))).collect();
        Self {
            flat: clips.to_kind(Kind::Float).to_device(device),
            offsets: Tensor::from_slice(&offsets).to_device(device),
            lengths: Tensor::from_slice(lengths).to_device(device),
            digits: Tensor::from_slice(digits).to_device(device),
            speakers,
        }
    }

    fn len(&self) -> usize {
        self.speakers.len()
    }
}

/// One batch's noise choice: class `[B]` int64 and whether the last segment is used `[B]` bool.
#[derive(Debug)]
struct NoiseDraw {
    class: Tensor,
    last: Tensor,
}

impl NoiseDraw {
    fn select(&self, keep_other: &Tensor, other: &NoiseDraw) -> NoiseDraw {
        NoiseDraw {
            class: other.class.where_self(keep_other, &self.class),
            last: other.last.where_self(keep_other, &self.last),
        }
    }
}

/// A batch of mixed waveforms `[B, clip_samples]` and labels (digit, noise).
#[derive(Debug)]
pub struct Mix {
    /// Speech plus noise, `[B, clip_samples]` on the device.
    pub waves: Tensor,
    /// The speech crop alone, `[B, clip_samples]`.
    pub speech: Tensor,
    /// `[B]` digit labels.
    pub digit: Tensor,
    /// `[B]` noise labels.
    pub noise: Tensor,
}

/// The `speech+noise` dataset.
#[derive(Debug)]
pub struct SpeechNoiseDataset {
    config: AudioConfig,
    tasks: TaskSet,
    device: Device,
    mel: LogMel,
    train: Speech,
    test: Speech,
    /// `[3, 2, clip_samples]`: per class its first and last segment, scaled to `noise_peak`.
    segments: Tensor,
    /// `[3]` peak |amplitude| of each scaled noise recording (should equal `noise_peak`).
    noise_peaks: Vec<f64>,
    /// The test split's noise classes, drawn once from the run seed.
    test_noise: Tensor,
    /// One line per source used, for logs and `stats`.
    pub sources: Vec<String>,
}

impl SpeechNoiseDataset {
    /// Builds `speech+noise` from `spec` with the published settings.
    pub fn build(spec: &DatasetSpec) -> Result<Self> {
        Self::build_with(spec, AudioConfig { pair_noise: spec.pair_noise, ..AudioConfig::default() })
    }

    /// Builds `speech+noise` from `spec` with `config`.
    pub fn build_with(spec: &DatasetSpec, config: AudioConfig) -> Result<Self> {
        ensure!(spec.name == SPEECH_NOISE, "dataset `{}` is not {SPEECH_NOISE}", spec.name);
        ensure!(config.clip_samples > 0 && config.noise_peak > 0.0, "clip_samples and noise_peak must be positive");
        let seeds = Seeds::new(spec.seed);
        let t0 = std::time::Instant::now();
        let (train, test, recordings, what) = match spec.source {
            Source::Synthetic => synthetic_sources(spec, &seeds)?,
            Source::Real => real_sources(spec, &config)?,
        };
        let sources = vec![format!(
            "{what}: {} train + {} test clips in {:.1} s",
            train.len(),
            test.len(),
            t0.elapsed().as_secs_f64()
        )];
        let recordings: Vec<Tensor> = recordings.iter().map(|r| r.to_device(spec.device)).collect();
        let (segments, noise_peaks) = noise_segments(&recordings, &config)?;
        let n_test = test.len() as i64;
        let test_noise = with_seed(seeds.derive(Stream::Data, BUILD_COUNTER + 3), || {
            Tensor::randint(3, [n_test], (Kind::Int64, spec.device))
        });
        for s in &sources {
            tracing::info!(dataset = SPEECH_NOISE, "source: {s}");
        }
        Ok(Self {
            mel: LogMel::new(config.mel.clone(), spec.device),
            config,
            tasks: catalogue::lookup(SPEECH_NOISE).map_err(anyhow::Error::msg)?.task_set(),
            device: spec.device,
            train,
            test,
            segments,
            noise_peaks,
            test_noise,
            sources,
        })
    }

    /// The settings.
    pub fn config(&self) -> &AudioConfig {
        &self.config
    }

    /// Sets how pairs get their second view's noise.
    pub fn set_pair_noise(&mut self, mode: PairNoise) {
        self.config.pair_noise = mode;
    }

    /// The log-mel front end (on the dataset's device).
    pub fn log_mel(&self) -> &LogMel {
        &self.mel
    }

    /// Speaker of every example of `split`, in index order.
    pub fn speakers(&self, split: Split) -> &[i64] {
        &self.split(split).speakers
    }

    /// Peak |amplitude| of each scaled noise recording (babble, traffic, machinery).
    pub fn noise_peaks(&self) -> &[f64] {
        &self.noise_peaks
    }

    /// Noise segment `[clip_samples]` of `class`, its last one if `last`, as mixed in.
    pub fn noise_segment(&self, class: i64, last: bool) -> Tensor {
        self.segments.get(class).get(last as i64)
    }

    fn split(&self, split: Split) -> &Speech {
        match split {
            Split::Train => &self.train,
            Split::Test => &self.test,
        }
    }

    /// Speech crops `[B, clip]`: the clip's first `clip` samples or, where `from_end` and the clip
    /// is longer than the window, its last `clip` samples. A clip shorter than the window always
    /// starts at sample 0 and is zero-padded at the end, as published (docs/PROTOCOL.md §2.2).
    fn speech(&self, split: Split, idx: &Tensor, from_end: &Tensor) -> Tensor {
        let sp = self.split(split);
        let clip = self.config.clip_samples;
        let len = sp.lengths.index_select(0, idx).unsqueeze(1);
        let crop_end = from_end.unsqueeze(1).logical_and(&len.gt(clip));
        let start = (&len - clip).where_self(&crop_end, &len.zeros_like());
        let mut pos = Tensor::arange(clip, (Kind::Int64, self.device)).unsqueeze(0) + start;
        let valid = pos.ge(0).logical_and(&pos.lt_tensor(&len));
        // In place: `[B, clip]` int64 is 0.4 MB an example, so one buffer, not four temporaries.
        let _ = pos.clamp_min_(0);
        let _ = pos.g_add_(&sp.offsets.index_select(0, idx).unsqueeze(1));
        let _ = pos.clamp_(0, sp.flat.size()[0] - 1);
        let mut crop = sp.flat.take(&pos);
        drop(pos);
        let _ = crop.g_mul_(&valid);
        crop
    }

    fn noise(&self, d: &NoiseDraw) -> Tensor {
        self.segments
            .view([-1, self.config.clip_samples])
            .index_select(0, &(&d.class * 2 + d.last.to_kind(Kind::Int64)))
    }

    /// A fresh uniform noise draw for `b` examples (class and segment end).
    fn fresh_noise(&self, b: i64) -> NoiseDraw {
        let class = Tensor::randint(3, [b], (Kind::Int64, self.device));
        NoiseDraw { class, last: Tensor::rand([b], (Kind::Float, self.device)).lt(0.5) }
    }

    /// Speech choice and noise of `idx`: random in training, fixed in test.
    fn draw(&self, split: Split, idx: &Tensor) -> (Tensor, NoiseDraw) {
        let b = idx.size()[0];
        match split {
            Split::Train => (Tensor::rand([b], (Kind::Float, self.device)).lt(0.5), self.fresh_noise(b)),
            Split::Test => {
                let no = Tensor::zeros([b], (Kind::Bool, self.device));
                (no.shallow_clone(), NoiseDraw { class: self.test_noise.index_select(0, idx), last: no })
            }
        }
    }

    /// Mixed waveforms of `idx` (`[B]` int64), drawn as [`MultiTaskDataset::batch`] draws them.
    pub fn waves(&self, split: Split, indices: &Tensor, seed: u64) -> Mix {
        with_seed(seed, || {
            let idx = indices.to_device(self.device).to_kind(Kind::Int64);
            let (from_end, nd) = self.draw(split, &idx);
            self.mix(split, &idx, &from_end, &nd)
        })
    }

    fn mix(&self, split: Split, idx: &Tensor, from_end: &Tensor, nd: &NoiseDraw) -> Mix {
        let speech = self.speech(split, idx, from_end);
        let waves = &speech + self.noise(nd);
        Mix { waves, speech, digit: self.split(split).digits.index_select(0, idx), noise: nd.class.shallow_clone() }
    }

    /// Both views' waveforms of a pair (see [`MultiTaskDataset::pair`]): `(first, second)`, the
    /// second's noise labels in `second.noise`.
    pub fn pair_waves(&self, split: Split, indices: &Tensor, redraw_p: f64, seed: u64) -> (Mix, Mix) {
        with_seed(seed, || {
            let idx = indices.to_device(self.device).to_kind(Kind::Int64);
            let (from_end, nd) = self.draw(split, &idx);
            let b = idx.size()[0];
            let p = if self.config.pair_noise == PairNoise::Independent { 1.0 } else { redraw_p };
            let fresh = self.fresh_noise(b);
            let redraw = Tensor::rand([b], (Kind::Float, self.device)).lt(p);
            let first = self.mix(split, &idx, &from_end, &nd);
            let nd2 = nd.select(&redraw, &fresh);
            let second = Mix {
                waves: &first.speech + self.noise(&nd2),
                speech: first.speech.shallow_clone(),
                digit: first.digit.shallow_clone(),
                noise: nd2.class,
            };
            (first, second)
        })
    }

    /// Normalised log-mel `[B, 1, 64, 64]` of waveforms `[B, clip_samples]`.
    pub fn features(&self, waves: &Tensor) -> Tensor {
        self.mel.features(waves)
    }
}

impl MultiTaskDataset for SpeechNoiseDataset {
    fn name(&self) -> &str {
        SPEECH_NOISE
    }

    fn tasks(&self) -> &TaskSet {
        &self.tasks
    }

    fn modality(&self) -> Modality {
        Modality::Audio
    }

    fn device(&self) -> Device {
        self.device
    }

    fn len(&self, split: Split) -> usize {
        self.split(split).len()
    }

    fn class_names(&self, task: usize) -> Vec<String> {
        match task {
            0 => DIGIT_NAMES.map(String::from).to_vec(),
            1 => synth::NOISE_CLASSES.map(String::from).to_vec(),
            _ => Vec::new(),
        }
    }

    /// Inputs are the mixed waveforms `[B, clip_samples]`: every audio view family (the clean one
    /// included) starts from the waveform, because the published waveform views act before the
    /// log-mel (docs/PROTOCOL.md §3.1).
    fn batch(&self, split: Split, indices: &Tensor, seed: u64) -> Batch {
        let m = self.waves(split, indices, seed);
        Batch { inputs: m.waves, labels: vec![m.digit, m.noise] }
    }

    fn pair(&self, split: Split, indices: &Tensor, redraw_p: f64, seed: u64) -> Pair {
        let (a, b) = self.pair_waves(split, indices, redraw_p, seed);
        let first = Batch { inputs: a.waves, labels: vec![a.digit, a.noise] };
        Pair { first, second: b.waves, second_labels: vec![b.digit, b.noise] }
    }
}

/// Scales each recording to peak `noise_peak` and cuts its own first and last segments (each
/// recording keeps its length: the published code cuts each from its own ends).
fn noise_segments(recordings: &[Tensor], config: &AudioConfig) -> Result<(Tensor, Vec<f64>)> {
    let clip = config.clip_samples;
    let (mut segs, mut peaks) = (Vec::with_capacity(recordings.len()), Vec::with_capacity(recordings.len()));
    for rec in recordings {
        let len = rec.size()[0];
        ensure!(len >= clip, "noise recordings hold {len} samples; at least {clip} are needed");
        let scaled = rec / rec.abs().max().clamp_min(1e-12) * config.noise_peak;
        peaks.push(scaled.abs().max().double_value(&[]));
        segs.push(Tensor::stack(&[scaled.narrow(0, 0, clip), scaled.narrow(0, len - clip, clip)], 0));
    }
    Ok((Tensor::stack(&segs, 0), peaks))
}

/// `(speakers, digits)` of `n` synthetic examples of a split: digits cycle fastest, then speakers,
/// then repetitions, so any prefix is balanced.
fn synthetic_plan(split: Split, n: usize) -> (Vec<i64>, Vec<i64>) {
    let speakers = split_speakers(split);
    (0..n).map(|i| (speakers[(i / 10) % speakers.len()], (i % 10) as i64)).unzip()
}

/// Train and test speech, the three noise recordings (each `[L_i]`), and a line saying where they
/// came from.
type Sources = (Speech, Speech, Vec<Tensor>, String);

fn synthetic_sources(spec: &DatasetSpec, seeds: &Seeds) -> Result<Sources> {
    let size = |n: usize, split| if n == 0 { split_speakers(split).len() * 10 * SYNTH_REPS } else { n };
    let make = |split: Split, n: usize, counter: u64| {
        let (speakers, digits) = synthetic_plan(split, n);
        let seed = seeds.derive(Stream::Data, BUILD_COUNTER + counter);
        let (flat, lens) = with_seed(seed, || synth::spoken_digits(&speakers, &digits, seed, spec.device));
        Speech::new(flat, &lens, &digits, speakers, spec.device)
    };
    let train = make(Split::Train, size(spec.train_size, Split::Train), 0);
    let test = make(Split::Test, size(spec.test_size, Split::Test), 1);
    let seed = seeds.derive(Stream::Data, BUILD_COUNTER + 2);
    let samples = (SYNTH_NOISE_SECONDS * synth::RATE) as i64;
    let noise = with_seed(seed, || synth::noise_recordings(samples, seed, spec.device)).unbind(0);
    Ok((train, test, noise, "speech and noise: synthetic".into()))
}

/// The real sources. The cheap checks come first — the file list, both splits non-empty, the
/// noise recordings decoded and long enough — so a broken folder fails in seconds, not after
/// minutes of decoding speech. The audio folder is the one given (or `audio/` in it), never a
/// sibling of it ([`crate::files::locate`]).
fn real_sources(spec: &DatasetSpec, config: &AudioConfig) -> Result<Sources> {
    let rate = config.mel.sample_rate as u32;
    let (dir, given) = match &spec.data_dir {
        Some(d) => (d.clone(), true),
        None => (crate::dataset::default_data_dir().join("audio"), false),
    };
    let has_noise = |p: &Path| p.join("noise").is_dir();
    let missing = "no audio folder (with noise/ and AudioMNIST speaker folders)";
    let hint =
        "run `cargo xtask fetch noise` and `cargo xtask fetch audiomnist`, or pass --audio-dir naming such a folder";
    let root = crate::files::locate(&dir, given, "audio", has_noise, missing, hint)?;
    let speech_root = if root.join("data").is_dir() { root.join("data") } else { root.clone() };
    let files = audiomnist_files(&speech_root)?;
    let train_files = split_files(&files, Split::Train, spec.train_size, &speech_root)?;
    let test_files = split_files(&files, Split::Test, spec.test_size, &speech_root)?;
    let noise = noise_recordings(&root.join("noise"), rate, config.clip_samples)?;
    let train = load_speech(&train_files, rate, spec.device)?;
    let test = load_speech(&test_files, rate, spec.device)?;
    Ok((
        train,
        test,
        noise,
        format!("speech: AudioMNIST from {}; noise from {}/noise", speech_root.display(), root.display()),
    ))
}

/// The first `n` (0: all) files of `split`'s speakers, in (rep, speaker, digit) order. An empty
/// split is an error naming the speaker ids it needs and the ones the folder holds.
fn split_files<'a>(files: &'a [AudioFile], split: Split, n: usize, root: &Path) -> Result<Vec<&'a AudioFile>> {
    let want = split_speakers(split);
    let mut chosen: Vec<&AudioFile> = files.iter().filter(|f| want.contains(&f.speaker)).collect();
    chosen.sort_by_key(|f| (f.rep, f.speaker, f.digit));
    if chosen.is_empty() {
        let held: Vec<i64> =
            files.iter().map(|f| f.speaker).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let needs = match split {
            Split::Test => format!("its test speakers {TEST_SPEAKERS:?}"),
            Split::Train => {
                format!("a speaker of 1–{} other than the test speakers {TEST_SPEAKERS:?}", super::SPEAKERS)
            }
        };
        bail!(
            "{}: the {} split is empty: AudioMNIST's split (docs/PROTOCOL.md §2.2) needs {needs}, and this \
             folder holds only speakers {:?}",
            root.display(),
            if split == Split::Test { "test" } else { "train" },
            held
        );
    }
    if split == Split::Test {
        let missing: Vec<i64> =
            TEST_SPEAKERS.iter().copied().filter(|s| !chosen.iter().any(|f| f.speaker == *s)).collect();
        if !missing.is_empty() {
            tracing::warn!("{}: test speakers {missing:?} are missing", root.display());
        }
    }
    let n = if n == 0 { chosen.len() } else { n };
    ensure!(n <= chosen.len(), "{}: asked for {n} {split:?} clips, only {} there", root.display(), chosen.len());
    chosen.truncate(n);
    Ok(chosen)
}

/// RMS below which a noise recording's segment counts as silent: −80 dBFS, under the dither of a
/// 16-bit file (a silent class would label examples by the absence of noise).
const SILENT_RMS: f64 = 1e-4;

/// Decodes the three noise recordings in `noise_dir` (WAV or FLAC) at `rate`, each checked to
/// hold at least `clip` samples and to be audible in both segments the dataset cuts from it (its
/// first and last `clip` samples, after the mono mix-down). Errors name the file.
fn noise_recordings(noise_dir: &Path, rate: u32, clip: i64) -> Result<Vec<Tensor>> {
    let mut recs = Vec::new();
    for name in synth::NOISE_CLASSES {
        let candidates = ["wav", "flac"].map(|e| noise_dir.join(format!("{name}.{e}")));
        let path = crate::files::first_file(&candidates)?;
        let path = path.with_context(|| format!("{}: no {name}.wav or {name}.flac", noise_dir.display()))?;
        let decoded = wav::decode(&path)?;
        let rec = super::resample::resample(&decoded.samples, decoded.sample_rate, rate);
        ensure!(
            rec.len() as i64 >= clip,
            "{}: the noise recording holds {} samples at {rate} Hz ({:.2} s); at least {clip} ({:.2} s) are needed",
            path.display(),
            rec.len(),
            rec.len() as f64 / rate as f64,
            clip as f64 / rate as f64
        );
        let clip = clip as usize;
        for (which, segment) in [("first", &rec[..clip]), ("last", &rec[rec.len() - clip..])] {
            let rms = (segment.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / clip as f64).sqrt();
            let mix = if decoded.channels > 1 {
                format!(" after mixing its {} channels to mono", decoded.channels)
            } else {
                String::new()
            };
            ensure!(
                rms >= SILENT_RMS,
                "{}: the noise recording is silent{mix}: RMS {rms:.1e} in its {which} {clip} samples, the segment \
                 the dataset mixes in; expected at least {SILENT_RMS:.0e} (−80 dBFS) — the noise class `{name}` \
                 would hold no noise",
                path.display()
            );
        }
        recs.push(Tensor::from_slice(&rec));
    }
    Ok(recs)
}

/// Decoded samples gathered on the CPU before they move into the split's tensor: 64 MiB, above
/// glibc's largest mmap threshold, so each chunk goes back to the system when freed.
const LOAD_CHUNK_SAMPLES: usize = 16 << 20;

/// Decodes `files` at `rate` into one split. Memory stays near the decoded audio itself: clips
/// are gathered in [`LOAD_CHUNK_SAMPLES`] chunks, then copied one chunk at a time into the split's
/// tensor on `device`, each freed once copied (no list of per-clip tensors, no `cat` doubling it).
fn load_speech(files: &[&AudioFile], rate: u32, device: Device) -> Result<Speech> {
    let mut chunks: Vec<Tensor> = Vec::new();
    let mut pending: Vec<f32> = Vec::with_capacity(LOAD_CHUNK_SAMPLES);
    let mut lengths = Vec::with_capacity(files.len());
    for f in files {
        let clip = wav::load_mono(&f.path, rate)?;
        if pending.len() + clip.len() > LOAD_CHUNK_SAMPLES && !pending.is_empty() {
            chunks.push(Tensor::from_slice(&pending));
            pending.clear();
        }
        lengths.push(clip.len() as i64);
        pending.extend_from_slice(&clip);
    }
    chunks.push(Tensor::from_slice(&pending));
    drop(pending);
    let flat = Tensor::empty([lengths.iter().sum::<i64>()], (Kind::Float, device));
    let mut at = 0;
    for chunk in chunks {
        let n = chunk.size()[0];
        flat.narrow(0, at, n).copy_(&chunk);
        at += n;
    }
    let digits: Vec<i64> = files.iter().map(|f| f.digit).collect();
    Ok(Speech::new(flat, &lengths, &digits, files.iter().map(|f| f.speaker).collect(), device))
}

/// One AudioMNIST file and the labels its name carries.
#[derive(Debug)]
struct AudioFile {
    path: PathBuf,
    digit: i64,
    speaker: i64,
    rep: i64,
}

/// Entries the published AudioMNIST `data/` folder (or an audio folder) holds beside the speaker
/// folders: passed over without a word.
const KNOWN_EXTRAS: [&str; 2] = ["audioMNIST_meta.txt", "noise"];

/// Most skipped entries a warning lists by name.
const LISTED: usize = 10;

/// The speaker of a folder named like AudioMNIST's `01` … `60`: digits only (`5` reads as `05`;
/// `spk02`, `+5` are not speaker folders).
fn speaker_id(name: &str) -> Option<i64> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// Whether `path` ends in `.wav`, in any case (`.WAV` is as much a WAV file).
fn is_wav(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("wav"))
}

/// The entries of folder `dir`, sorted by name (so errors and warnings do not depend on the
/// file system's order).
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading folder {}", dir.display()))?;
    let mut paths = entries.map(|e| e.map(|e| e.path())).collect::<std::io::Result<Vec<_>>>()?;
    paths.sort();
    Ok(paths)
}

/// Lists `root/<speaker>/<digit>_<speaker>_<rep>.wav`, checking the layout; errors name the file.
///
/// What would change the data silently is an error: two folders of one speaker (`05/` beside `5/`
/// loads the speaker twice), two files of one clip, and a folder of clips whose name is not a
/// speaker number (`spk02/`: its speaker would be left out). Anything else that is not a speaker
/// folder or a WAV clip in one (a README, a `.flac`, stray files) is skipped with one warning
/// naming it: it cannot be taken for data, but the user should know it was not read.
fn audiomnist_files(root: &Path) -> Result<Vec<AudioFile>> {
    let mut out = Vec::new();
    let mut speakers: std::collections::BTreeMap<i64, PathBuf> = Default::default();
    let mut skipped = Vec::new();
    for folder in sorted_entries(root)? {
        let name = folder.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        match (speaker_id(&name), folder.is_dir()) {
            (Some(speaker), true) => {
                ensure!(
                    (1..=super::SPEAKERS).contains(&speaker),
                    "{}: speaker id {speaker} is outside 1–60",
                    folder.display()
                );
                if let Some(first) = speakers.insert(speaker, folder.clone()) {
                    bail!(
                        "{} and {}: both are the folder of speaker {speaker}; keep one (AudioMNIST names it {speaker:02})",
                        first.display(),
                        folder.display()
                    );
                }
                out.extend(speaker_files(&folder, speaker, &mut skipped)?);
            }
            _ if KNOWN_EXTRAS.contains(&name.as_str()) => {}
            (None, true) if sorted_entries(&folder)?.iter().any(|p| is_wav(p)) => bail!(
                "{}: a folder of .wav clips whose name is not a speaker number; AudioMNIST's speaker folders \
                 are named 01 … 60 (rename it, or move it out of {})",
                folder.display(),
                root.display()
            ),
            _ => skipped.push(folder),
        }
    }
    warn_skipped(root, &skipped);
    ensure!(!out.is_empty(), "{}: no AudioMNIST speaker folders (01 … 60) with .wav files", root.display());
    check_unique_clips(&out)?;
    Ok(out)
}

/// The clips in speaker folder `folder`; other entries go to `skipped`.
fn speaker_files(folder: &Path, speaker: i64, skipped: &mut Vec<PathBuf>) -> Result<Vec<AudioFile>> {
    let mut out = Vec::new();
    for path in sorted_entries(folder)? {
        if is_wav(&path) {
            out.push(parse_name(&path, speaker)?);
        } else {
            skipped.push(path);
        }
    }
    Ok(out)
}

/// One warning naming what [`audiomnist_files`] did not read.
fn warn_skipped(root: &Path, skipped: &[PathBuf]) {
    if skipped.is_empty() {
        return;
    }
    let shown: Vec<String> = skipped.iter().take(LISTED).map(|p| p.display().to_string()).collect();
    let more = skipped.len().saturating_sub(LISTED);
    tracing::warn!(
        "{}: skipped {} entr{} that are neither speaker folders (01 … 60) nor .wav clips in one: {}{}",
        root.display(),
        skipped.len(),
        if skipped.len() == 1 { "y" } else { "ies" },
        shown.join(", "),
        if more > 0 { format!(" and {more} more") } else { String::new() }
    );
}

/// Two files of one (digit, speaker, repetition) — `0_05_0.wav` beside `0_5_0.wav` or
/// `0_05_0.WAV` — would put one clip in the split twice.
fn check_unique_clips(files: &[AudioFile]) -> Result<()> {
    let mut seen: std::collections::HashMap<(i64, i64, i64), &Path> = Default::default();
    for f in files {
        if let Some(first) = seen.insert((f.digit, f.speaker, f.rep), &f.path) {
            bail!(
                "{} and {}: both are digit {} of speaker {} repetition {}; keep one",
                first.display(),
                f.path.display(),
                f.digit,
                f.speaker,
                f.rep
            );
        }
    }
    Ok(())
}

fn parse_name(path: &Path, speaker: i64) -> Result<AudioFile> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let parts: Vec<i64> = stem.split('_').map(|p| p.parse::<i64>()).collect::<Result<_, _>>().unwrap_or_default();
    let [digit, spk, rep] = parts[..] else {
        bail!("{}: expected a name <digit>_<speaker>_<rep>.wav", path.display());
    };
    ensure!((0..10).contains(&digit), "{}: digit {digit} is not 0–9", path.display());
    ensure!(spk == speaker, "{}: speaker {spk} in the name, but the file is in folder {speaker}", path.display());
    Ok(AudioFile { path: path.to_path_buf(), digit, speaker, rep })
}
