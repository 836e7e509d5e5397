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

/// Runs `featdrop-data` with `args` and returns (success, stderr).
fn run(args: &[&str]) -> (bool, String) {
    let out = bin().args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Issue 27.21: `preview --dropout 1.5` / `-3` were accepted (featdrop-train refuses them, and
/// now through the same check), `--dropout` without `--pairs` and `--count 0` were ignored, and
/// `--font` on a dataset without letters went unused. Each is now an error naming the flag.
#[test]
fn preview_refuses_flags_it_would_ignore_or_misread() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.png");
    let out = out.to_str().unwrap();
    let base = ["-q", "preview", "--dataset", "photos+digits", "--train-size", "20", "--test-size", "10", "--out", out];
    let with = |extra: &[&str]| run(&[&base[..], extra].concat());
    for (extra, needles) in [
        (&["--pairs", "--dropout", "1.5"][..], &["--dropout", "p = 1.5 is outside [0, 1]"][..]),
        (&["--pairs", "--dropout", "-3"], &["--dropout", "p = -3 is outside [0, 1]"]),
        (&["--pairs", "--dropout", "NaN"], &["--dropout", "outside [0, 1]"]),
        (&["--dropout", "0.5"], &["--pairs"]),
        (&["--count", "0"], &["--count", "0"]),
        (&["--font", "/no/such/font.ttf"], &["--font", "photos+letters", "photos+digits"]),
    ] {
        let (ok, err) = with(extra);
        assert!(!ok, "{extra:?} was accepted");
        for n in needles {
            assert!(err.contains(n), "{extra:?}: `{n}` missing from:\n{err}");
        }
        assert!(!std::path::Path::new(out).exists(), "{extra:?} wrote a preview");
    }
    let (ok, err) = with(&["--pairs", "--dropout", "1", "--count", "2"]);
    assert!(ok, "{err}");
    // The audio rule of featdrop-train: a dropout probability needs shared pair noise.
    let (ok, err) = run(&[
        "-q",
        "preview",
        "--dataset",
        "speech+noise",
        "--train-size",
        "10",
        "--test-size",
        "10",
        "--pairs",
        "--dropout",
        "0.5",
        "--pair-noise",
        "independent",
        "--out",
        out,
    ]);
    assert!(!ok && err.contains("view_mode") && err.contains("data.pair_noise = independent"), "{err}");
}
