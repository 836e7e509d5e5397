//! The `featdrop-train` binary: loud device errors, view previews, bad flags.

use std::process::Command;

fn train() -> Command {
    Command::new(env!("CARGO_BIN_EXE_featdrop-train"))
}

const SMALL: [&str; 10] =
    ["--train-size", "64", "--test-size", "32", "--encoder", "small", "--width", "8", "--viewmaker-width", "0.25"];

/// PNG width and height from the IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn cuda_without_a_gpu_is_an_error_not_a_cpu_run() {
    if tch::Cuda::is_available() {
        return; // on a GPU machine `--device cuda` is legitimately usable
    }
    let dir = tempfile::tempdir().unwrap();
    let out =
        train().args(SMALL).args(["--device", "cuda", "--epochs", "1", "--run-dir"]).arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("device `cuda:0` was asked for but CUDA is not usable"), "{err}");
    assert!(!dir.path().join("metrics.jsonl").exists(), "nothing may have trained");
}

#[test]
fn preview_writes_a_grid_of_view_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("views.png");
    for mode in ["expert", "viewmaker", "expert+viewmaker"] {
        let status = train()
            .args(SMALL)
            .args(["--dataset", "photos+shapes", "--view-mode", mode, "--preview-count", "3", "-q", "--preview-views"])
            .arg(&png)
            .status()
            .unwrap();
        assert!(status.success(), "{mode}");
        let (w, h) = png_size(&std::fs::read(&png).unwrap());
        // Four 96-pixel cells per row (32 px × 3) and three rows with captions under each.
        assert!((4 * 96..4 * 96 + 60).contains(&w), "{mode}: width {w}");
        assert!(h >= 3 * 96, "{mode}: height {h}");
    }
}

/// Issue 19.7: on `speech+noise` the preview exited 0, logged "wrote view preview" and wrote
/// nothing. Now: rows of spectrograms, original | view 1 | view 2 | |δ|, each 64×64 at 2×.
#[test]
fn preview_of_audio_views_is_a_grid_of_spectrograms_whose_views_differ() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("audio-views.png");
    let out = train()
        .args(SMALL)
        .args(["--dataset", "speech+noise", "--view-mode", "expert", "--preview-count", "3", "-q", "--preview-views"])
        .arg(&png)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let img = image::open(&png).expect("a valid PNG").to_rgb8();
    // Grid geometry (featdrop_data::grid): 4-px gaps, 128-px cells, two caption lines of 14 px + 2.
    let (gap, cell, caption) = (4u32, 128u32, 2 * 14 + 2);
    assert_eq!((img.width(), img.height()), (4 * (cell + gap) + gap, 3 * (cell + caption + gap) + gap));
    let block = |row: u32, col: u32| -> Vec<f64> {
        let (x0, y0) = (gap + col * (cell + gap), gap + row * (cell + caption + gap));
        (0..cell * cell).flat_map(|i| img.get_pixel(x0 + i % cell, y0 + i / cell).0.map(f64::from)).collect()
    };
    let mean_diff = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64;
    for row in 0..3 {
        let (x, v1, v2, delta) = (block(row, 0), block(row, 1), block(row, 2), block(row, 3));
        let spread = x.iter().cloned().fold(f64::MIN, f64::max) - x.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread > 100.0, "row {row}: the original spectrogram is flat (spread {spread})");
        assert!(mean_diff(&x, &v1) > 1.0 && mean_diff(&x, &v2) > 1.0, "row {row}: a view equals the original");
        assert!(mean_diff(&v1, &v2) > 1.0, "row {row}: the two views are the same");
        assert!(delta.iter().any(|&p| p > 128.0), "row {row}: the |δ| column is blank");
    }
}

#[test]
fn bad_flags_name_what_is_accepted() {
    let out = train().args(["--view-mode", "sideways"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("accepted: expert, viewmaker"));
    let out = train()
        .args(SMALL)
        .args(["--dataset", "photos+emoji", "--epochs", "1", "--run-dir", "/tmp/featdrop-never"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown dataset `photos+emoji`"));
}

#[test]
fn flags_and_set_overrides_reach_the_run_config() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = train()
        .args(SMALL)
        .args([
            "--dataset",
            "photos+letters",
            "--view-mode",
            "viewmaker+dropout:0.5",
            "--epochs",
            "3",
            "--batch-size",
            "32",
        ])
        .args(["--set", "train.lr=0.05", "--set", "probe.lr_milestones=[5, 7]", "--set", "data.pair_noise=independent"])
        .args(["--stop-after-epoch", "0", "-q", "--run-dir"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["train"]["lr"], 0.05);
    assert_eq!(cfg["probe"]["lr_milestones"], serde_json::json!([5, 7]));
    assert_eq!(
        (cfg["data"]["pair_noise"].as_str(), cfg["encoder"]["arch"].as_str()),
        (Some("independent"), Some("small"))
    );
    assert_eq!(cfg["view_mode"], "viewmaker+dropout:0.5");
    assert_eq!(cfg["viewmaker"]["epsilon"], 0.1, "the letters' published budget, resolved and recorded");

    // A misspelt field is named, and nothing is made.
    let typo = dir.path().join("typo");
    let out = train().args(["--set", "train.lernrate=0.1", "--run-dir"]).arg(&typo).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("field `train.lernrate`") && err.contains("unknown field"), "{err}");
    assert!(!typo.exists());
    // --font and --data-dir reach the dataset: each missing one is named.
    let out = train()
        .args(SMALL)
        .args(["--dataset", "photos+letters", "--font", "/no/such/font.ttf", "--stop-after-epoch", "0", "--run-dir"])
        .arg(dir.path().join("font"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("/no/such/font.ttf"), "{err}");
    let empty = dir.path().join("no-data");
    std::fs::create_dir_all(&empty).unwrap();
    let out = train()
        .args(SMALL)
        .args(["--source", "real", "--data-dir"])
        .arg(&empty)
        .args(["--stop-after-epoch", "0", "--run-dir"])
        .arg(dir.path().join("real"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&empty.display().to_string()), "{err}");
}

#[test]
fn the_heap_setting_changes_no_number() {
    // featdrop_core::heap changes where freed tensors' bytes live, never a result: a run with the
    // setting (the default) and one without it write the same losses and the same weights.
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, keep: &str| {
        let run = dir.path().join(name);
        let out = train()
            .args(SMALL)
            .args(["--view-mode", "viewmaker", "--epochs", "2", "--batch-size", "32", "-q", "--run-dir"])
            .arg(&run)
            .env(featdrop_core::heap::ENV, keep)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        run
    };
    let (kept, system) = (run("kept", "1"), run("system", "0"));
    let losses = |run: &std::path::Path| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter_map(|mut v| v.get_mut("loss").map(serde_json::Value::take))
            .collect()
    };
    assert!(!losses(&kept).is_empty(), "no losses logged");
    assert_eq!(losses(&kept), losses(&system));
    let weights = |run: &std::path::Path| std::fs::read(run.join("checkpoints/epoch-0002.safetensors")).unwrap();
    assert!(weights(&kept) == weights(&system), "the weights differ");
}
