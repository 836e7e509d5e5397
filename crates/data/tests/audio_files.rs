//! Real audio sources (docs/PROTOCOL.md §2.2): WAV decoding, mono mix-down, band-limited resampling, the
//! AudioMNIST + noise folder layout, and errors that name the file. Every file is written here.

use featdrop_core::Split;
use featdrop_data::audio::resample::resample;
use featdrop_data::audio::wav::{decode, load_mono, write_wav};
use featdrop_data::{DatasetSpec, MultiTaskDataset, Source, SpeechNoiseDataset};
use std::f64::consts::PI;
use std::path::Path;

fn tone(freq: f64, rate: u32, n: usize, amp: f64) -> Vec<f64> {
    (0..n).map(|i| amp * (2.0 * PI * freq * i as f64 / rate as f64).sin()).collect()
}

fn write(path: &Path, spec: hound::WavSpec, frames: &[Vec<f64>]) {
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for frame in frames {
        for &v in frame {
            match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, _) => w.write_sample(v as f32).unwrap(),
                (_, 16) => w.write_sample((v * 32767.0).round() as i16).unwrap(),
                (_, bits) => w.write_sample((v * ((1i64 << (bits - 1)) - 1) as f64).round() as i32).unwrap(),
            }
        }
    }
    w.finalize().unwrap();
}

fn spec(channels: u16, rate: u32, bits: u16, float: bool) -> hound::WavSpec {
    let sample_format = if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int };
    hound::WavSpec { channels, sample_rate: rate, bits_per_sample: bits, sample_format }
}

fn mono(samples: &[f64]) -> Vec<Vec<f64>> {
    samples.iter().map(|&v| vec![v]).collect()
}

#[test]
fn decodes_16_24_bit_and_float_wav() {
    let dir = tempfile::tempdir().unwrap();
    let x = tone(440.0, 48_000, 4800, 0.5);
    for (bits, float, tol) in [(16, false, 1e-4), (24, false, 1e-6), (32, true, 1e-7)] {
        let path = dir.path().join(format!("t{bits}.wav"));
        write(&path, spec(1, 48_000, bits, float), &mono(&x));
        let clip = decode(&path).unwrap();
        assert_eq!((clip.sample_rate, clip.channels, clip.samples.len()), (48_000, 1, 4800), "{bits} bit");
        let err = clip.samples.iter().zip(&x).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
        assert!(err < tol, "{bits} bit: error {err}");
    }
}

#[test]
fn stereo_is_mixed_to_mono() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stereo.wav");
    let frames: Vec<Vec<f64>> = (0..1000).map(|i| vec![0.5, if i % 2 == 0 { 0.1 } else { -0.3 }]).collect();
    write(&path, spec(2, 44_100, 16, false), &frames);
    let clip = decode(&path).unwrap();
    assert_eq!((clip.channels, clip.samples.len()), (2, 1000));
    assert!((clip.samples[0] - 0.3).abs() < 1e-4 && (clip.samples[1] - 0.1).abs() < 1e-4, "{:?}", &clip.samples[..2]);
}

/// Index of the largest magnitude in a naive DFT over `0..max_bin` (enough for a low tone).
fn peak_bin(x: &[f32], max_bin: usize) -> usize {
    let n = x.len() as f64;
    (0..max_bin)
        .map(|k| {
            let (re, im) = x.iter().enumerate().fold((0.0, 0.0), |(re, im), (i, &v)| {
                let a = 2.0 * PI * k as f64 * i as f64 / n;
                (re + v as f64 * a.cos(), im - v as f64 * a.sin())
            });
            re * re + im * im
        })
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap()
        .0
}

#[test]
fn resampling_44_1_to_48_khz_keeps_frequency_and_length_ratio() {
    // 1 kHz over 4410 samples (0.1 s) is bin 100; at 48 kHz, 4800 samples over 0.1 s: bin 100 again.
    let x: Vec<f32> = tone(1000.0, 44_100, 4410, 0.8).iter().map(|&v| v as f32).collect();
    let y = resample(&x, 44_100, 48_000);
    assert_eq!(y.len(), 4800);
    assert_eq!(peak_bin(&x, 200), 100);
    assert_eq!(peak_bin(&y, 200), 100);
    // The amplitude survives away from the edges (passband gain ≈ 1).
    let peak = y[400..4400].iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!((peak - 0.8).abs() < 0.01, "{peak}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.wav");
    write(&path, spec(1, 44_100, 16, false), &mono(&tone(1000.0, 44_100, 4410, 0.8)));
    assert_eq!(load_mono(&path, 48_000).unwrap().len(), 4800);
}

#[test]
fn bad_files_give_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wav");
    std::fs::write(&garbage, b"this is not a wav file at all, just text padding padding").unwrap();
    let e = format!("{:#}", decode(&garbage).unwrap_err());
    assert!(e.contains("garbage.wav"), "{e}");
    let good = dir.path().join("good.wav");
    write(&good, spec(1, 48_000, 16, false), &mono(&tone(440.0, 48_000, 20_000, 0.5)));
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.wav");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = format!("{:#}", decode(&cut).unwrap_err());
    assert!(e.contains("cut.wav") && e.contains("truncated"), "{e}");
    let e = format!("{:#}", decode(&dir.path().join("missing.wav")).unwrap_err());
    assert!(e.contains("missing.wav"), "{e}");
}

fn real_spec(dir: &Path) -> DatasetSpec {
    DatasetSpec {
        source: Source::Real,
        data_dir: Some(dir.to_path_buf()),
        ..DatasetSpec::synthetic("speech+noise", 0, 0, 0)
    }
}

#[test]
fn real_folder_layout_loads_and_errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Speakers 1 and 2 train, 5 tests; 0.5 s clips at 48 kHz, one 0.6 s clip so crops differ.
    for (speaker, digit) in [(1, 3), (1, 7), (2, 3), (5, 9)] {
        let folder = root.join(format!("{speaker:02}"));
        std::fs::create_dir_all(&folder).unwrap();
        let n = if digit == 7 { 60_000 } else { 24_000 };
        let x = tone(300.0 + 100.0 * digit as f64, 48_000, n, 0.4);
        write(&folder.join(format!("{digit}_{speaker:02}_0.wav")), spec(1, 48_000, 16, false), &mono(&x));
    }
    std::fs::create_dir_all(root.join("noise")).unwrap();
    let e = format!("{:#}", SpeechNoiseDataset::build(&real_spec(root)).unwrap_err());
    assert!(e.contains("babble"), "a missing noise file is named: {e}");
    for (i, name) in ["babble", "traffic", "machinery"].iter().enumerate() {
        let x = tone(100.0 * (i + 1) as f64, 44_100, 60_000, 0.9);
        let frames: Vec<Vec<f64>> = x.iter().map(|&v| vec![v, v * 0.5]).collect();
        write(&root.join("noise").join(format!("{name}.wav")), spec(2, 44_100, 16, false), &frames);
    }
    let ds = SpeechNoiseDataset::build(&real_spec(root)).unwrap();
    assert_eq!((ds.len(Split::Train), ds.len(Split::Test)), (3, 1));
    assert_eq!(ds.speakers(Split::Test), [5]);
    for p in ds.noise_peaks() {
        assert!((p - 0.05).abs() < 1e-6, "{p}");
    }
    let b = ds.batch(Split::Test, &tch::Tensor::from_slice(&[0i64]), 0);
    assert_eq!(ds.features(&b.inputs).size(), [1, 1, 64, 64]);
    assert_eq!(b.labels[0].int64_value(&[0]), 9);
    // A badly named file is an error naming it.
    let bad = root.join("02").join("x_02_0.wav");
    std::fs::copy(root.join("02").join("3_02_0.wav"), &bad).unwrap();
    let e = format!("{:#}", SpeechNoiseDataset::build(&real_spec(root)).unwrap_err());
    assert!(e.contains("x_02_0.wav"), "{e}");
    std::fs::remove_file(&bad).unwrap();
    let e = format!("{:#}", SpeechNoiseDataset::build(&real_spec(&root.join("nowhere"))).unwrap_err());
    assert!(e.contains("nowhere"), "a missing folder is named: {e}");
}

#[test]
fn written_wav_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.wav");
    let x: Vec<f32> = tone(440.0, 48_000, 1000, 0.5).iter().map(|&v| v as f32).collect();
    write_wav(&path, &x, 48_000).unwrap();
    let clip = decode(&path).unwrap();
    assert_eq!((clip.sample_rate, clip.samples.len()), (48_000, 1000));
    assert!(clip.samples.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-4));
}

#[test]
fn each_noise_recording_gives_its_own_first_and_last_segments() {
    // Recordings of different lengths (as the published three are): the "last" segment of each
    // ends at its own last sample, not at the shortest recording's.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (speaker, digit) in [(1, 3), (5, 9)] {
        let folder = root.join(format!("{speaker:02}"));
        std::fs::create_dir_all(&folder).unwrap();
        let x = tone(400.0, 48_000, 24_000, 0.4);
        write(&folder.join(format!("{digit}_{speaker:02}_0.wav")), spec(1, 48_000, 32, true), &mono(&x));
    }
    std::fs::create_dir_all(root.join("noise")).unwrap();
    let lengths = [60_000usize, 75_000, 52_000];
    let ramps: Vec<Vec<f64>> = lengths.iter().map(|&n| (0..n).map(|i| (i + 1) as f64 / n as f64).collect()).collect();
    for (name, ramp) in ["babble", "traffic", "machinery"].iter().zip(&ramps) {
        write(&root.join("noise").join(format!("{name}.wav")), spec(1, 48_000, 32, true), &mono(ramp));
    }
    let ds = SpeechNoiseDataset::build(&real_spec(root)).unwrap();
    for (class, ramp) in ramps.iter().enumerate() {
        let n = ramp.len();
        // Peak-scaled to 0.05: the ramp's last sample is its peak (1.0).
        let want_last: Vec<f32> = ramp[n - 50_000..].iter().map(|v| (v * 0.05) as f32).collect();
        let want_first: Vec<f32> = ramp[..50_000].iter().map(|v| (v * 0.05) as f32).collect();
        let got = |last| Vec::<f32>::try_from(ds.noise_segment(class as i64, last)).unwrap();
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(&got(true), &want_last), "class {class}: the last segment ends at its own end");
        assert!(close(&got(false), &want_first), "class {class}: the first segment");
    }
}

/// A folder of speakers 1 (train) and 5 (test), two 0.5 s clips each, and three 1.25 s noise
/// recordings, all 16-bit mono at 48 kHz.
fn good_folder(root: &Path) {
    for speaker in [1, 5] {
        let folder = root.join(format!("{speaker:02}"));
        std::fs::create_dir_all(&folder).unwrap();
        for digit in [2, 4] {
            let x = tone(300.0 + 100.0 * digit as f64, 48_000, 24_000, 0.4);
            write(&folder.join(format!("{digit}_{speaker:02}_0.wav")), spec(1, 48_000, 16, false), &mono(&x));
        }
    }
    std::fs::create_dir_all(root.join("noise")).unwrap();
    for (i, name) in ["babble", "traffic", "machinery"].iter().enumerate() {
        let x = tone(100.0 * (i + 1) as f64, 48_000, 60_000, 0.5);
        write(&root.join("noise").join(format!("{name}.wav")), spec(1, 48_000, 16, false), &mono(&x));
    }
}

fn build_err(root: &Path) -> String {
    format!("{:#}", SpeechNoiseDataset::build(&real_spec(root)).unwrap_err())
}

/// Sets the sample rate (and byte rate) of a 16-bit mono WAV written by hound (44-byte header).
fn set_rate(path: &Path, rate: u32) {
    let mut b = std::fs::read(path).unwrap();
    b[24..28].copy_from_slice(&rate.to_le_bytes());
    b[28..32].copy_from_slice(&rate.wrapping_mul(2).to_le_bytes());
    std::fs::write(path, b).unwrap();
}

/// Issue 27.16: a header rate of 0 panicked in symphonia (`TimeBase`) without naming the file;
/// 1 Hz made a 0.5 s clip 66 minutes long, 400 MHz an empty clip. Speech clip or noise recording.
#[test]
fn a_sample_rate_outside_the_sane_range_is_an_error_naming_the_file() {
    for (file, rate) in
        [("01/2_01_0.wav", 0), ("noise/traffic.wav", 0), ("05/4_05_0.wav", 1), ("01/4_01_0.wav", 400_000_000)]
    {
        let dir = tempfile::tempdir().unwrap();
        good_folder(dir.path());
        set_rate(&dir.path().join(file), rate);
        let e = build_err(dir.path());
        assert!(e.contains(file) && e.contains(&format!("sample rate {rate} Hz")) && e.contains("8000–384000"), "{e}");
    }
}

/// Issue 27.17: a noise recording of zeros, or of stereo channels that cancel in the mono mix,
/// left a noise class with no noise while the dataset still reported three classes.
#[test]
fn a_silent_noise_recording_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    good_folder(dir.path());
    let babble = dir.path().join("noise/babble.wav");
    write(&babble, spec(1, 48_000, 16, false), &mono(&vec![0.0; 60_000]));
    let e = build_err(dir.path());
    assert!(e.contains("noise/babble.wav: the noise recording is silent") && e.contains("`babble`"), "{e}");
    let x = tone(200.0, 48_000, 60_000, 0.5);
    let cancel: Vec<Vec<f64>> = x.iter().map(|&v| vec![v, -v]).collect();
    write(&babble, spec(2, 48_000, 16, false), &cancel);
    let e = build_err(dir.path());
    assert!(e.contains("babble.wav") && e.contains("silent after mixing its 2 channels to mono"), "{e}");
    // Loud in the middle but silent in the last segment the dataset cuts: still no noise there.
    let mut tail = tone(200.0, 48_000, 120_000, 0.5);
    tail[60_000..].iter_mut().for_each(|v| *v = 0.0);
    write(&babble, spec(1, 48_000, 16, false), &mono(&tail));
    let e = build_err(dir.path());
    assert!(e.contains("babble.wav") && e.contains("in its last 50000 samples"), "{e}");
}

/// Issue 27.18: `05/` beside `5/` loaded speaker 5 twice (its test clips doubled); `spk02/` and
/// `.WAV` files were skipped without a word.
#[test]
fn speaker_folders_are_unique_numbered_and_nothing_is_skipped_silently() {
    let dir = tempfile::tempdir().unwrap();
    good_folder(dir.path());
    let root = dir.path();
    std::fs::create_dir(root.join("5")).unwrap();
    std::fs::copy(root.join("05/2_05_0.wav"), root.join("5/2_5_1.wav")).unwrap();
    let e = build_err(root);
    assert!(e.contains(&format!("{} and {}", root.join("05").display(), root.join("5").display())), "{e}");
    assert!(e.contains("both are the folder of speaker 5"), "{e}");
    std::fs::remove_dir_all(root.join("5")).unwrap();
    // A folder of clips not named by a speaker number: its speaker would be left out.
    std::fs::create_dir(root.join("spk02")).unwrap();
    std::fs::copy(root.join("01/2_01_0.wav"), root.join("spk02/2_02_0.wav")).unwrap();
    let e = build_err(root);
    assert!(e.contains("spk02: a folder of .wav clips whose name is not a speaker number"), "{e}");
    std::fs::remove_dir_all(root.join("spk02")).unwrap();
    // Upper-case `.WAV` is a WAV clip: loaded, not skipped.
    std::fs::rename(root.join("05/4_05_0.wav"), root.join("05/4_05_0.WAV")).unwrap();
    let ds = SpeechNoiseDataset::build(&real_spec(root)).unwrap();
    assert_eq!((ds.len(Split::Train), ds.len(Split::Test)), (2, 2));
    // Two files of one clip.
    std::fs::copy(root.join("05/4_05_0.WAV"), root.join("05/4_5_0.wav")).unwrap();
    let e = build_err(root);
    assert!(e.contains("4_05_0.WAV") && e.contains("4_5_0.wav") && e.contains("both are digit 4 of speaker 5"), "{e}");
}

/// Issue 27.22: a 0-byte WAV was "no suitable format reader"; a folder where a noise file belongs
/// was "no babble.wav"; a WAV whose sizes are 0xFFFFFFFF (ffmpeg writing to a pipe) was
/// "truncated" — it is complete, and is now read to its end.
#[test]
fn empty_files_folders_and_unknown_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let e = format!("{:#}", decode(&empty).unwrap_err());
    assert!(e.contains("empty.wav") && e.contains("an empty file (0 bytes)"), "{e}");
    good_folder(dir.path());
    let babble = dir.path().join("noise/babble.wav");
    std::fs::remove_file(&babble).unwrap();
    std::fs::create_dir(&babble).unwrap();
    let e = build_err(dir.path());
    assert!(e.contains("noise/babble.wav: a folder where a file is expected"), "{e}");
    let piped = dir.path().join("piped.wav");
    let x = tone(440.0, 48_000, 30_001, 0.5);
    write(&piped, spec(1, 48_000, 16, false), &mono(&x));
    let mut b = std::fs::read(&piped).unwrap();
    let data = b.windows(4).position(|w| w == b"data").unwrap();
    b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    b[data + 4..data + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&piped, &b).unwrap();
    let clip = decode(&piped).unwrap();
    assert_eq!(clip.samples.len(), 30_001, "every sample up to the end of the file");
    assert!((clip.samples[30_000] as f64 - x[30_000]).abs() < 1e-4);
}
