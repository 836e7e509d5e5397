//! `featdrop-data` on `speech+noise`: a spectrogram grid, listenable WAV files, and stats.

use featdrop_data::audio::wav::decode;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_featdrop-data"))
}

#[test]
fn preview_writes_a_spectrogram_grid_and_wav_files() {
    let dir = tempfile::tempdir().unwrap();
    let (png, wavs) = (dir.path().join("grid.png"), dir.path().join("wav"));
    let out = bin()
        .args(["-q", "preview", "--dataset", "speech+noise", "--train-size", "20", "--test-size", "10"])
        .args(["--count", "4", "--pairs", "--dropout", "1", "--out"])
        .arg(&png)
        .arg("--wav")
        .arg(&wavs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let img = image::open(&png).unwrap().to_rgb8();
    // 8 cells (4 pairs) of 64×64 at scale 2 in one row.
    assert_eq!(img.width(), 8 * (128 + 4) + 4);
    assert!(img.height() > 128);
    let mut files: Vec<_> = std::fs::read_dir(&wavs).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 8, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("00_view1_zero_"), "{name}");
    let clip = decode(&files[0]).unwrap();
    assert_eq!((clip.sample_rate, clip.samples.len()), (48_000, 50_000));
    assert!(clip.samples.iter().any(|v| v.abs() > 0.05), "speech is audible above the noise peak");
    let no_wav = bin()
        .args(["-q", "preview", "--dataset", "photos", "--train-size", "8", "--test-size", "8", "--out"])
        .arg(dir.path().join("p.png"))
        .arg("--wav")
        .arg(&wavs)
        .output()
        .unwrap();
    assert!(!no_wav.status.success() && String::from_utf8_lossy(&no_wav.stderr).contains("--wav needs"));
}

#[test]
fn stats_counts_digits_and_noises() {
    let out = bin()
        .args(["-q", "stats", "--dataset", "speech+noise", "--train-size", "30", "--test-size", "20"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tasks"][1]["name"], "noise");
    assert_eq!(v["splits"]["test"]["class_counts"]["digit"], serde_json::json!(vec![2; 10]));
    let noise: i64 =
        v["splits"]["train"]["class_counts"]["noise"].as_array().unwrap().iter().map(|c| c.as_i64().unwrap()).sum();
    assert_eq!(noise, 30);
}

/// Issue 27.21: with `--count` above 8 the `--wav` files were drawn as a batch of 8, so their noise
/// labels disagreed with the grid's (drawn as a batch of `--count`). The files now carry the
/// grid's own draws: the labels of the batch the grid shows, computed here from the library.
#[test]
fn wav_files_carry_the_grids_labels_whatever_the_count() {
    use featdrop_core::{Seeds, Split, Stream};
    use featdrop_data::{DatasetSpec, MultiTaskDataset, PairNoise, SpeechNoiseDataset};
    let dir = tempfile::tempdir().unwrap();
    let spec = DatasetSpec { pair_noise: PairNoise::Shared, ..DatasetSpec::synthetic("speech+noise", 20, 10, 3) };
    let ds = SpeechNoiseDataset::build(&spec).unwrap();
    let idx = tch::Tensor::arange(12, (tch::Kind::Int64, tch::Device::Cpu));
    let seed = Seeds::new(3).derive(Stream::Data, 0);
    let names = ds.class_names(1);
    let labels = |t: &tch::Tensor| -> Vec<String> {
        Vec::<i64>::try_from(t).unwrap().iter().take(8).map(|&c| names[c as usize].clone()).collect()
    };
    let shown = labels(&ds.batch(Split::Train, &idx, seed).labels[1]);
    let (_, second) = ds.pair_waves(Split::Train, &idx, 0.5, seed);
    let shown2 = labels(&second.noise);
    for pairs in [false, true] {
        let wavs = dir.path().join(format!("wav-{pairs}"));
        let mut cmd = bin();
        cmd.args(["-q", "preview", "--dataset", "speech+noise", "--train-size", "20", "--test-size", "10"])
            .args(["--seed", "3", "--count", "12", "--out"])
            .arg(dir.path().join("g.png"))
            .arg("--wav")
            .arg(&wavs);
        if pairs {
            cmd.args(["--pairs", "--dropout", "0.5"]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut files: Vec<String> =
            std::fs::read_dir(&wavs).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        files.sort();
        let view = if pairs { "view2" } else { "" };
        let got: Vec<String> = files
            .iter()
            .filter(|f| f.contains(view))
            .map(|f| f.trim_end_matches(".wav").rsplit('_').next().unwrap().to_string())
            .collect();
        let want = if pairs { &shown2 } else { &shown };
        assert_eq!(&got, want, "pairs: {pairs}; files {files:?}");
    }
}
