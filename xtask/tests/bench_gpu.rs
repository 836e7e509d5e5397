//! Issue 25 item 6: `cargo xtask bench gpu` writes one JSON file of every step's outcome and
//! figures. Here, without a GPU, its CPU dry path (`--device cpu`, tiny sizes) runs the steps that
//! need no cargo build (the study's binaries of this build are given with `--bin-dir`), and the
//! file's schema is checked; `--device cuda` where no GPU is visible stops at once.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_xtask")).parent().unwrap().to_path_buf();
    for name in ["featdrop-train", "featdrop-eval", "featdrop-theory", "featdrop-doctor"] {
        assert!(dir.join(name).is_file(), "{name} is missing from {}: build the workspace's binaries", dir.display());
    }
    dir
}

fn bench_gpu(out: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "gpu", "--out"])
        .arg(out)
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap()
}

/// The one JSON file a run wrote in `out`.
fn the_json(out: &Path) -> Value {
    let files: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap()
}

const ALL_STEPS: [&str; 10] = [
    "build",
    "doctor",
    "train-nchw",
    "train-channels-last",
    "train-bf16",
    "layout",
    "reference",
    "reference-bf16",
    "reproduce-smoke",
    "paper-cell",
];

#[test]
fn the_cpu_dry_path_writes_every_step_with_status_seconds_and_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let bins = bin_dir();
    let ran = ["doctor", "reproduce-smoke", "paper-cell"];
    let o = bench_gpu(tmp.path(), &["--device", "cpu", "--bin-dir", bins.to_str().unwrap(), "--steps", &ran.join(",")]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let record = the_json(tmp.path());
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(printed.trim().ends_with(".json"), "the file's path is printed: {printed}");
    for key in ["bench", "schema", "device", "started_utc", "gpus_visible", "commit", "budget_s", "seconds", "status"] {
        assert!(record.get(key).is_some(), "no `{key}` in {record}");
    }
    assert_eq!((record["device"].as_str(), record["status"].as_str()), (Some("cpu"), Some("ok")));
    let steps = record["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ALL_STEPS, "every step is recorded, run or not");
    for s in steps {
        for key in ["status", "seconds", "figures", "error"] {
            assert!(s.get(key).is_some(), "no `{key}` in step {s}");
        }
        let name = s["name"].as_str().unwrap();
        let expected = if ran.contains(&name) { "ok" } else { "skipped" };
        assert_eq!(s["status"], expected, "{s}");
        if expected == "ok" {
            assert!(s["seconds"].as_f64().unwrap() > 0.0 && s["figures"].as_object().is_some_and(|f| !f.is_empty()));
        }
    }
    let by_name = |n: &str| steps.iter().find(|s| s["name"] == n).unwrap();
    assert!(by_name("doctor")["figures"].get("cuda_device_count").is_some(), "the doctor's JSON");
    let cell = &by_name("paper-cell")["figures"];
    assert_eq!(cell["summary"]["epochs"], 2);
    assert!(cell["channels_last"].is_boolean(), "the layout that ran: {cell}");
    let smoke = &by_name("reproduce-smoke")["figures"];
    assert_eq!(smoke["cells"].as_object().map(|c| c.len()), Some(2), "{smoke}");
}

#[test]
fn without_a_gpu_it_stops_at_once_and_says_how_to_dry_run() {
    let gpus = std::fs::read_dir("/proc/driver/nvidia/gpus").map(|d| d.count()).unwrap_or(0);
    if gpus > 0 {
        eprintln!("this machine has a GPU: nothing to refuse");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let o = bench_gpu(tmp.path(), &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(stderr.contains("no NVIDIA GPU is visible here") && stderr.contains("--device cpu"), "{stderr}");
    let written = std::fs::read_dir(tmp.path()).unwrap().count();
    assert_eq!(written, 0, "nothing was built, run or written");
}

#[test]
fn unknown_steps_and_gpu_options_elsewhere_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let o = bench_gpu(tmp.path(), &["--device", "cpu", "--steps", "doctor,warp-drive"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.contains("--steps: unknown [\"warp-drive\"]"), "{stderr}");
    let o = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["bench", "train", "--steps", "doctor"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.contains("go with `bench gpu` only"), "{stderr}");
}
