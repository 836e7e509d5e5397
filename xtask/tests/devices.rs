//! `reproduce` decides every cell's device before the first cell (issue 30 items 1 and 5), with
//! the GPUs `featdrop-doctor` finds here: an index past them, or `cuda` where there is none, stops
//! it up front naming the flag or field, and nothing is written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_xtask")).parent().unwrap().to_path_buf();
    for name in ["featdrop-train", "featdrop-eval", "featdrop-theory", "featdrop-doctor"] {
        assert!(dir.join(name).is_file(), "{name} is missing from {}: build the workspace's binaries", dir.display());
    }
    dir
}

/// CUDA devices the doctor sees here.
fn visible_gpus() -> u64 {
    let out = Command::new(bin_dir().join("featdrop-doctor")).arg("--json").output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["cuda_device_count"].as_u64().unwrap()
}

fn reproduce(out: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["reproduce", "--dry-run", "--bin-dir"])
        .arg(bin_dir())
        .arg("--out")
        .arg(out)
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap()
}

fn tiny_experiment(dir: &Path) -> PathBuf {
    let exp = serde_json::json!({"name": "tiny", "datasets": ["photos"], "view_modes": ["expert"], "seeds": [0],
        "run": {"encoder": {"arch": "small", "width": 4}, "train": {"epochs": 1}},
        "destruction": false, "theory": null});
    let file = dir.join("tiny.json");
    std::fs::write(&file, exp.to_string()).unwrap();
    file
}

#[test]
fn a_cuda_index_past_the_visible_gpus_is_refused_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny_experiment(tmp.path());
    let n = visible_gpus();
    let flag = format!("cuda:{n}");
    let out = tmp.path().join("runs");
    let o = reproduce(&out, &["--experiment", exp.to_str().unwrap(), "--device", &flag]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains(&format!("--device {flag}: ")), "{err}");
    if n == 0 {
        assert!(err.contains("no CUDA device is visible here"), "{err}");
    } else {
        assert!(err.contains(&format!("only {n} CUDA device(s) are visible")), "{err}");
    }
    assert!(err.contains("--device cpu") && !err.contains("panicked"), "{err}");
    assert!(!out.exists(), "nothing is written before the devices are settled");

    // `auto` is said: which device every cell will use.
    let o = reproduce(&out, &["--experiment", exp.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let want = if n == 0 {
        "device: every cell (1) will run on the CPU (`auto`"
    } else {
        "device: every cell (1) will run on cuda:0"
    };
    assert!(err.contains(want), "{err}");
}

/// The paper grid asks for `cuda`: without a usable GPU it stops before anything, saying what
/// was asked, what is here, and how to override.
#[test]
fn the_paper_scale_without_cuda_fails_up_front() {
    if visible_gpus() > 0 {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("runs");
    let o = reproduce(&out, &["--scale", "paper"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("paper.json (cell photos/expert/seed-0): field `device` = cuda:0: no CUDA device"), "{err}");
    assert!(err.contains("pass --device cpu"), "{err}");
    assert!(!out.exists(), "nothing is written");
}
