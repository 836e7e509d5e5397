//! Smoke tests of the `featdrop-data` binary.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_featdrop-data"))
}

#[test]
fn stats_prints_sizes_and_class_counts() {
    let out = bin()
        .args(["-q", "stats", "--dataset", "photos+shapes", "--train-size", "120", "--test-size", "40"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dataset"], "photos+shapes");
    assert_eq!(v["splits"]["train"]["size"], 120);
    assert_eq!(v["splits"]["test"]["size"], 40);
    let counts = |split: &str, task: &str| -> Vec<i64> {
        v["splits"][split]["class_counts"][task].as_array().unwrap().iter().map(|c| c.as_i64().unwrap()).collect()
    };
    assert_eq!(counts("train", "photo"), vec![12; 10]);
    assert_eq!(counts("test", "shape").len(), 3);
    assert_eq!(counts("test", "shape").iter().sum::<i64>(), 40);
}

#[test]
fn preview_writes_a_png_of_the_right_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("grid.png");
    let status = bin()
        .args([
            "-q",
            "preview",
            "--dataset",
            "photos+digits",
            "--train-size",
            "40",
            "--test-size",
            "10",
            "--count",
            "3",
        ])
        .args(["--pairs", "--dropout", "1", "--scale", "2", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let img = image::open(&out).unwrap();
    // Three pairs = six cells in one row; each 64 px wide plus a 4 px gap.
    assert_eq!(img.width(), 6 * (64 + 4) + 4);
    assert!(img.height() > 64 + 8);
}

#[test]
fn unknown_dataset_is_an_error_listing_the_known_ones() {
    let out = bin().args(["stats", "--dataset", "cifar"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown dataset `cifar`") && err.contains("photos+letters"), "{err}");
}
