//! Bad input, as a user meets it (issue 19): the binaries run on real-format files — CIFAR-10
//! binary, MNIST IDX raw and gzip, AudioMNIST-layout WAV folders — broken one way at a time. Each
//! case must end in an error that names the file or flag, what was expected and what was found:
//! no panic, no silent fallback, no late failure after the expensive work, no stray log lines.

use featdrop_tests::{bin, repo_root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Bytes per CIFAR-10 record (a label byte and 3×32×32 pixels) and records per file.
const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;
const CIFAR_RECORDS: usize = 10_000;
const CIFAR_FILES: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];
/// AudioMNIST speakers: 1 trains, 5 tests (docs/PROTOCOL.md §2.2).
const TRAIN_SPEAKER: u32 = 1;
const TEST_SPEAKER: u32 = 5;
/// The rate the audio files are written at (the dataset's own, so nothing is resampled).
const RATE: u32 = 48_000;

fn data() -> Command {
    Command::new(bin("featdrop-data"))
}

/// Runs `cmd` and checks it failed as an ordinary error (exit 1, not a panic's 101) whose message
/// holds every one of `needles`; returns stderr.
fn fails_with(cmd: &mut Command, needles: &[&str]) -> String {
    let out: Output = cmd.output().expect("the binary runs");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "expected an ordinary error (exit 1):\n{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` missing from:\n{err}");
    }
    assert!(!err.contains("panicked"), "a panic:\n{err}");
    err
}

/// A 16-bit mono WAV of `samples` at `rate`.
fn write_wav(path: &Path, samples: &[f32], rate: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec =
        hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        w.write_sample((s * i16::MAX as f32) as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// A tone of `n` samples at `freq` Hz.
fn tone(freq: f32, n: usize) -> Vec<f32> {
    (0..n).map(|i| 0.4 * (std::f32::consts::TAU * freq * i as f32 / RATE as f32).sin()).collect()
}

/// `dir/noise/{babble,traffic,machinery}.wav`, each `n` samples long.
fn write_noise(dir: &Path, n: usize) {
    for (i, name) in ["babble", "traffic", "machinery"].iter().enumerate() {
        write_wav(&dir.join("noise").join(format!("{name}.wav")), &tone(90.0 * (i + 1) as f32, n), RATE);
    }
}

/// `clips` files `<digit>_<speaker>_<rep>.wav` of `samples` samples in `dir/<speaker>/`.
fn write_speaker(dir: &Path, speaker: u32, clips: usize, samples: usize) {
    for i in 0..clips {
        let (digit, rep) = (i % 10, i / 10);
        let path = dir.join(format!("{speaker:02}")).join(format!("{digit}_{speaker:02}_{rep}.wav"));
        write_wav(&path, &tone(300.0 + 40.0 * digit as f32, samples), RATE);
    }
}

fn audio_stats(dir: &Path) -> Command {
    let mut c = data();
    c.args(["-q", "stats", "--dataset", "speech+noise", "--source", "real", "--audio-dir"]).arg(dir);
    c
}

/// Issue 19.1: a folder of train speakers only (or test speakers only) panicked in `torch.cat`.
#[test]
fn an_audio_folder_with_an_empty_split_names_the_split_and_the_speakers_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    write_noise(dir.path(), 52_000);
    write_speaker(dir.path(), TRAIN_SPEAKER, 2, 4_000);
    fails_with(&mut audio_stats(dir.path()), &["the test split is empty", "[5, 13, 18", "speakers [1]"]);
    std::fs::remove_dir_all(dir.path().join("01")).unwrap();
    write_speaker(dir.path(), TEST_SPEAKER, 2, 4_000);
    fails_with(
        &mut audio_stats(dir.path()),
        &["the train split is empty", "other than the test speakers", "speakers [5]"],
    );
}

/// Issue 19.4: a missing or too-short noise recording was reported only after every speech clip
/// was decoded, and the too-short one without its file. Here a speech clip is broken too: the
/// noise, checked first, must be what the error is about.
#[test]
fn noise_recordings_are_checked_before_speech_is_decoded() {
    let dir = tempfile::tempdir().unwrap();
    write_speaker(dir.path(), TRAIN_SPEAKER, 2, 4_000);
    write_speaker(dir.path(), TEST_SPEAKER, 2, 4_000);
    std::fs::write(dir.path().join("01/0_01_0.wav"), b"RIFF but not really a wave file").unwrap();
    write_noise(dir.path(), 52_000);
    std::fs::remove_file(dir.path().join("noise/traffic.wav")).unwrap();
    let err = fails_with(&mut audio_stats(dir.path()), &["no traffic.wav or traffic.flac"]);
    assert!(!err.contains("0_01_0.wav"), "speech was decoded before the noise was checked:\n{err}");
    write_noise(dir.path(), 52_000);
    write_wav(&dir.path().join("noise/machinery.wav"), &tone(50.0, 21_769), RATE);
    fails_with(
        &mut audio_stats(dir.path()),
        &["noise/machinery.wav: the noise recording holds 21769 samples", "at least 50000"],
    );
    // A truncated recording (half its bytes cut off) is named too, still before the speech.
    write_noise(dir.path(), 52_000);
    let babble = dir.path().join("noise/babble.wav");
    let bytes = std::fs::read(&babble).unwrap();
    std::fs::write(&babble, &bytes[..bytes.len() / 2]).unwrap();
    fails_with(&mut audio_stats(dir.path()), &["noise/babble.wav", "truncated"]);
}

/// Issue 19.8: a PNG renamed `.wav` printed the decoder's own `ERROR` log line before the error.
#[test]
fn a_png_renamed_wav_is_one_clear_error_without_a_stray_decoder_log_line() {
    let dir = tempfile::tempdir().unwrap();
    write_speaker(dir.path(), TRAIN_SPEAKER, 1, 4_000);
    write_speaker(dir.path(), TEST_SPEAKER, 1, 4_000);
    write_noise(dir.path(), 52_000);
    let png = image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, 128]));
    let fake = dir.path().join("noise/babble.wav");
    png.save_with_format(&fake, image::ImageFormat::Png).unwrap();
    // Without -q: the default log level is where the stray line showed.
    let mut cmd = data();
    cmd.args(["stats", "--dataset", "speech+noise", "--source", "real", "--audio-dir"]).arg(dir.path());
    cmd.env_remove("RUST_LOG");
    let err = fails_with(&mut cmd, &["noise/babble.wav", "not a readable WAV or FLAC file"]);
    assert!(!err.contains("ERROR") && !err.contains("probe reach EOF"), "a stray decoder log line:\n{err}");
    assert!(err.trim_end().lines().last().is_some_and(|l| l.starts_with("error: ")), "{err}");
}

/// Writes `name` in `dir` holding `records` CIFAR-10 records plus `extra` bytes (labels cycle 0–9).
fn write_cifar(dir: &Path, name: &str, records: usize, extra: usize) {
    let mut bytes = vec![0u8; records * CIFAR_RECORD + extra];
    for (i, rec) in bytes.chunks_exact_mut(CIFAR_RECORD).enumerate() {
        rec[0] = (i % 10) as u8;
    }
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// Issue 19.8: a folder without `data_batch_1.bin` was "no CIFAR-10 binary files"; one byte too
/// many was "a truncated one of 1 bytes".
#[test]
fn cifar_files_missing_or_with_extra_bytes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for name in &CIFAR_FILES[1..] {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    let mut cmd = data();
    cmd.args(["-q", "stats", "--dataset", "photos", "--source", "real", "--data-dir"]).arg(dir.path());
    fails_with(&mut cmd, &["missing CIFAR-10 file data_batch_1.bin"]);
    write_cifar(dir.path(), CIFAR_FILES[0], CIFAR_RECORDS, 1);
    let err = fails_with(
        &mut cmd,
        &["data_batch_1.bin", "expected 30730000 bytes", "found 30730001: 1 extra byte after the last record"],
    );
    assert!(!err.contains("truncated"), "{err}");
}

/// IDX bytes of `n` 28×28 images (magic 0x803) or `n` labels (magic 0x801).
fn idx(n: u32, images: bool) -> Vec<u8> {
    let dims: &[u32] = if images { &[n, 28, 28] } else { &[n] };
    let mut b = (0x800u32 + dims.len() as u32).to_be_bytes().to_vec();
    dims.iter().for_each(|d| b.extend(d.to_be_bytes()));
    b.extend((0..dims.iter().product::<u32>()).map(|i| if images { (i % 251) as u8 } else { (i % 10) as u8 }));
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Issue 19.2: garbage appended after a gzip IDX file's stream was silently ignored. (The raw
/// file with the same garbage is caught by its length, as before.)
#[test]
fn an_idx_file_with_bytes_after_its_gzip_stream_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mnist = dir.path().join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    let mut images = gzip(&idx(20, true));
    images.extend_from_slice(b"appended garbage");
    std::fs::write(mnist.join("train-images-idx3-ubyte.gz"), &images).unwrap();
    std::fs::write(mnist.join("train-labels-idx1-ubyte.gz"), gzip(&idx(20, false))).unwrap();
    let mut cmd = data();
    cmd.args(["-q", "stats", "--dataset", "photos+digits", "--source", "real", "--data-dir"]).arg(dir.path());
    fails_with(&mut cmd, &["train-images-idx3-ubyte.gz: 16 bytes of something else after the gzip stream"]);
    std::fs::remove_file(mnist.join("train-images-idx3-ubyte.gz")).unwrap();
    let mut raw = idx(20, true);
    raw.extend_from_slice(b"appended garbage");
    std::fs::write(mnist.join("train-images-idx3-ubyte"), &raw).unwrap();
    fails_with(&mut cmd, &["train-images-idx3-ubyte", "expected 15680 data bytes", "found 15696"]);
}

/// Issue 19.3: a data folder without `--source real` ran on synthetic data and said nothing. A
/// folder now means the real source; with `--source synthetic` as well it is a conflict. The same
/// for `featdrop-train`'s `--data-dir`.
#[test]
fn a_data_folder_means_the_real_source() {
    let dir = tempfile::tempdir().unwrap();
    let shown = dir.path().display().to_string();
    for (flag, dataset, needle) in
        [("--data-dir", "photos+digits", "no MNIST"), ("--audio-dir", "speech+noise", "no audio folder")]
    {
        let mut cmd = data();
        cmd.args(["-q", "stats", "--dataset", dataset, flag]).arg(dir.path());
        fails_with(&mut cmd, &[&shown, needle]);
        cmd.args(["--source", "synthetic"]);
        fails_with(&mut cmd, &[flag, "--source synthetic", "drop one of the two"]);
    }
    let png = dir.path().join("views.png");
    let mut train = Command::new(bin("featdrop-train"));
    train
        .args(["-q", "--dataset", "photos+digits", "--encoder", "small", "--width", "8", "--train-size", "64"])
        .args(["--test-size", "32", "--data-dir"])
        .arg(dir.path())
        .arg("--preview-views")
        .arg(&png);
    fails_with(&mut train, &[&shown, "no MNIST"]);
    train.args(["--source", "synthetic"]);
    fails_with(&mut train, &["field `data.source` = \"synthetic\"", "when data.data_dir names a folder of real data"]);
    assert!(!png.exists(), "nothing may have been made from synthetic data");
}

/// Issue 19.8: `featdrop-data` printed a full backtrace for an ordinary error under
/// RUST_BACKTRACE=1 (`featdrop-train` does not).
#[test]
fn ordinary_errors_print_no_backtrace_even_with_rust_backtrace_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = data();
    cmd.args(["-q", "stats", "--dataset", "photos", "--source", "real", "--data-dir"]).arg(dir.path());
    cmd.env("RUST_BACKTRACE", "1");
    let err = fails_with(&mut cmd, &["no CIFAR-10"]);
    assert!(!err.to_lowercase().contains("backtrace"), "a backtrace for an ordinary error:\n{err}");
    assert!(err.starts_with("error: ") && err.lines().count() == 1, "one line, as featdrop-train prints:\n{err}");
}

/// Issue 19.8: `data/raw` was looked for under the working directory, so fetched data was found
/// only from the repository root. The default is the checkout's `data/raw`, from anywhere, and
/// an error says where it looked.
#[test]
fn the_default_data_folder_is_the_checkouts_from_any_working_directory() {
    let elsewhere = tempfile::tempdir().unwrap();
    let raw: PathBuf = repo_root().canonicalize().unwrap().join("data/raw");
    let out = data()
        .args(["-q", "stats", "--dataset", "photos", "--source", "real", "--train-size", "10", "--test-size", "10"])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if raw.join("cifar-10-batches-bin").is_dir() {
        assert!(out.status.success(), "the checkout's CIFAR-10 was not found from elsewhere:\n{err}");
    } else {
        assert!(!out.status.success() && err.contains(&raw.display().to_string()), "{err}");
    }
}

/// Peak resident memory (VmHWM) of `cmd` in MiB, read from the kernel when it exits (`wait4`).
#[expect(clippy::zombie_processes, reason = "the child is reaped by wait4, which also reports its peak")]
fn peak_rss_mib(cmd: &mut Command) -> f64 {
    let child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::inherit()).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain FFI on a child this test owns and has not waited for; `usage` is written by
    // the kernel before it is read.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::wait4(pid, &mut status, 0, &mut usage), pid);
        usage
    };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "featdrop-data failed: status {status}");
    usage.ru_maxrss as f64 / 1024.0
}

/// Issue 19.5: `stats` on `speech+noise` held a batch of up to 4 096 mixed clips (with their
/// int64 gather indices and spectrograms) beside three copies of the decoded audio: 5.4 GB for a
/// 3 000-clip folder. Now the clips stream through in bounded batches, so past one full batch the
/// peak grows with the decoded audio only. Measured from 128 to 384 short clips (64 and 192 per
/// split): the old code's peak grew ≈ 215 MiB here (its batch was the whole split), the new one's
/// by about the 8 MiB of extra audio. glibc's mmap threshold is fixed for the child so that heap
/// left over from freed batch tensors (tens of MiB either way) does not blur the comparison.
#[test]
fn audio_stats_peak_memory_grows_with_the_audio_not_with_the_split() {
    const SAMPLES: usize = 8_000; // 1/6 s per clip: the batch work per clip is the same as for long clips
    let peak = |clips: usize| {
        let dir = tempfile::tempdir().unwrap();
        write_noise(dir.path(), 52_000);
        write_speaker(dir.path(), TRAIN_SPEAKER, clips / 2, SAMPLES);
        write_speaker(dir.path(), TEST_SPEAKER, clips / 2, SAMPLES);
        let mut cmd = audio_stats(dir.path());
        cmd.env("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1048576");
        peak_rss_mib(&mut cmd)
    };
    let (small, large) = (peak(128), peak(384));
    let audio_mib = (256 * SAMPLES * 4) as f64 / (1 << 20) as f64;
    eprintln!("peak RSS of stats: 128 clips {small:.0} MiB, 384 clips {large:.0} MiB ({audio_mib:.1} MiB more audio)");
    let bound = 2.0 * audio_mib + 32.0;
    assert!(
        large - small < bound,
        "the peak grew by {:.0} MiB for {audio_mib:.1} MiB more audio (bound {bound:.0} MiB): it scales with the split",
        large - small
    );
}

/// Fonts and experiment files, broken as a user's copy can be: a file that is not a font (a
/// truncated TTF header) given with `--font`, and an experiment file with a JSON syntax error and
/// one with a misspelt field. Each is an error naming the file (and the field), before any work.
#[test]
fn a_broken_font_or_experiment_file_is_named_in_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let font = dir.path().join("Arial.ttf");
    // The first bytes of a TrueType file (version 1.0, 12 tables) and nothing after them.
    std::fs::write(&font, [0u8, 1, 0, 0, 0, 12, 0, 128, 0, 3, 0, 32]).unwrap();
    let mut cmd = data();
    cmd.args(["-q", "stats", "--dataset", "photos+letters", "--source", "real", "--data-dir"]).arg(dir.path());
    cmd.arg("--font").arg(&font);
    fails_with(&mut cmd, &[&font.display().to_string(), "not a usable TTF/OTF font"]);

    let out = dir.path().join("runs");
    for (name, text, needles) in [
        ("syntax.json", "{\"name\": \"x\", \"datasets\": [\"photos\",]", vec!["syntax.json", "line 1"]),
        (
            "field.json",
            "{\"name\": \"x\", \"datasets\": [\"photos\"], \"view_mode\": [\"expert\"]}",
            vec!["field.json", "view_mode"],
        ),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let mut cmd = Command::new(bin("xtask"));
        cmd.args(["reproduce", "--dry-run", "--experiment"]).arg(&file).arg("--out").arg(&out);
        cmd.arg("--bin-dir").arg(featdrop_tests::bin_dir()); // this build's binaries: no release build
        cmd.env("OMP_NUM_THREADS", "1");
        let o = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && !err.contains("panicked"), "{name}: expected an error:\n{err}");
        for n in needles {
            assert!(err.contains(n), "`{n}` missing from the error for {name}:\n{err}");
        }
    }
    assert!(!out.exists(), "nothing may be written for a broken experiment file");
}

/// A good audio folder: speakers 1 (train) and 5 (test), two short clips each, and noise.
fn audio_folder(dir: &Path) {
    write_noise(dir, 52_000);
    write_speaker(dir, TRAIN_SPEAKER, 2, 4_000);
    write_speaker(dir, TEST_SPEAKER, 2, 4_000);
}

/// `featdrop-train` building `speech+noise` from `dir` (a view preview: the dataset is built,
/// nothing is trained), the folder given as `--audio-dir`, featdrop-data's name for it.
fn train_audio(dir: &Path, png: &Path) -> Command {
    let mut c = Command::new(bin("featdrop-train"));
    c.args(["-q", "--dataset", "speech+noise", "--encoder", "small", "--width", "8", "--audio-dir"])
        .arg(dir)
        .arg("--preview-views")
        .arg(png);
    c
}

/// Issue 27.16: a WAV header with sample rate 0 crashed both binaries (exit 101, symphonia's
/// `TimeBase` assertion, no file named). Issue 27.22: `featdrop-train --audio-dir` was an
/// unknown flag; it is accepted as featdrop-data's name of `--data-dir`.
#[test]
fn a_wav_with_sample_rate_0_is_an_error_naming_it_in_both_binaries() {
    let dir = tempfile::tempdir().unwrap();
    audio_folder(dir.path());
    let noise = dir.path().join("noise/traffic.wav");
    let mut b = std::fs::read(&noise).unwrap();
    b[24..32].fill(0); // sample rate and byte rate
    std::fs::write(&noise, b).unwrap();
    let needles = ["noise/traffic.wav", "sample rate 0 Hz", "expected 8000–384000 Hz"];
    fails_with(&mut audio_stats(dir.path()), &needles);
    let png = dir.path().join("views.png");
    fails_with(&mut train_audio(dir.path(), &png), &needles);
    assert!(!png.exists());
}

/// Issue 27.17: a silent noise recording left a noise class without noise; 27.18: `05/` beside
/// `5/` loaded speaker 5 twice.
#[test]
fn a_silent_noise_recording_or_a_speaker_folder_twice_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    audio_folder(dir.path());
    write_wav(&dir.path().join("noise/machinery.wav"), &vec![0.0; 52_000], RATE);
    fails_with(&mut audio_stats(dir.path()), &["noise/machinery.wav: the noise recording is silent"]);
    write_noise(dir.path(), 52_000);
    let (a, b) = (dir.path().join("05"), dir.path().join("5"));
    std::fs::create_dir(&b).unwrap();
    std::fs::copy(a.join("0_05_0.wav"), b.join("0_5_1.wav")).unwrap();
    let both = format!("{} and {}", a.display(), b.display());
    fails_with(&mut audio_stats(dir.path()), &[&both, "both are the folder of speaker 5"]);
}

/// Issue 27.22: a complete WAV whose sizes are 0xFFFFFFFF (ffmpeg writing to a pipe) was
/// "truncated"; it loads. A 0-byte clip was "no suitable format reader".
#[test]
fn a_piped_wav_loads_and_an_empty_one_is_called_empty() {
    let dir = tempfile::tempdir().unwrap();
    audio_folder(dir.path());
    let babble = dir.path().join("noise/babble.wav");
    let mut b = std::fs::read(&babble).unwrap();
    let data = b.windows(4).position(|w| w == b"data").unwrap();
    b[4..8].fill(0xFF);
    b[data + 4..data + 8].fill(0xFF);
    std::fs::write(&babble, b).unwrap();
    let out = audio_stats(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(dir.path().join("01/1_01_0.wav"), b"").unwrap();
    fails_with(&mut audio_stats(dir.path()), &["01/1_01_0.wav", "an empty file (0 bytes)"]);
}

/// Issue 27.19: MNIST images of 14 × 56 (the bytes of 28 × 28) were accepted, every digit garbled.
#[test]
fn mnist_images_that_are_not_28_by_28_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mnist = dir.path().join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    let mut images = 0x803u32.to_be_bytes().to_vec();
    [20u32, 14, 56].iter().for_each(|d| images.extend(d.to_be_bytes()));
    images.extend((0..20 * 784).map(|i| (i % 251) as u8));
    std::fs::write(mnist.join("train-images-idx3-ubyte"), images).unwrap();
    std::fs::write(mnist.join("train-labels-idx1-ubyte"), idx(20, false)).unwrap();
    let mut cmd = data();
    cmd.args(["-q", "stats", "--dataset", "photos+digits", "--data-dir"]).arg(dir.path());
    fails_with(&mut cmd, &["train-images-idx3-ubyte", "expected 28×28 images (MNIST), found 14×56"]);
}

/// Issue 27.20: the loaders searched beside the folder given, so `--data-dir …/audio` for
/// `photos+digits` and `--audio-dir …/cifar-10-batches-bin` for `speech+noise` loaded sibling
/// folders. The folder named is the folder used; the error says where it looked. 27.22: a data
/// folder that does not exist is said not to exist.
#[test]
fn a_named_data_folder_is_the_one_used_not_its_siblings() {
    let raw = tempfile::tempdir().unwrap();
    let (audio, mnist, cifar) =
        (raw.path().join("audio"), raw.path().join("mnist"), raw.path().join("cifar-10-batches-bin"));
    audio_folder(&audio);
    std::fs::create_dir_all(&mnist).unwrap();
    std::fs::write(mnist.join("train-images-idx3-ubyte"), idx(20, true)).unwrap();
    std::fs::write(mnist.join("train-labels-idx1-ubyte"), idx(20, false)).unwrap();
    std::fs::create_dir_all(&cifar).unwrap();
    let mut digits = data();
    digits.args(["-q", "stats", "--dataset", "photos+digits", "--data-dir"]).arg(&audio);
    let err = fails_with(&mut digits, &["no MNIST", &audio.join("mnist").display().to_string()]);
    assert!(!err.contains(&mnist.display().to_string()), "the sibling was searched:\n{err}");
    let err = fails_with(&mut audio_stats(&cifar), &["no audio folder", &cifar.join("audio").display().to_string()]);
    assert!(!err.contains(&format!("{}/noise", audio.display())), "the sibling was used:\n{err}");
    let nowhere = raw.path().join("nowhere");
    fails_with(&mut audio_stats(&nowhere), &[&nowhere.display().to_string(), "the data folder given does not exist"]);
}
