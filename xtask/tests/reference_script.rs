//! The PyTorch pipeline of `cargo xtask bench reference` (benches/reference/simclr_reference.py) at
//! tiny sizes, in both layouts it is timed in (issue 25 item 5): each configuration prints its JSON
//! line, and `--channels-last` really puts the models in channels-last.
//!
//! Python is torch's own: `FEATDROP_PYTHON` (which `cargo xtask test` sets after installing
//! torchvision there), or else the venv that `.libtorch/torch` lies in.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> PathBuf {
    std::env::var_os("FEATDROP_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        let torch =
            workspace().join(".libtorch/torch").canonicalize().expect(".libtorch/torch: run `cargo xtask setup`");
        torch.ancestors().nth(4).expect("torch inside a venv").join("bin/python")
    })
}

fn run_script(extra: &[&str]) -> Vec<Value> {
    let out = Command::new(python())
        .arg(workspace().join("benches/reference/simclr_reference.py"))
        .args(["--config", "small-expert", "--config", "small-alternating", "--steps", "1", "--batch", "4"])
        .args(extra)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn the_pipeline_runs_in_both_layouts() {
    for channels_last in [false, true] {
        let lines = run_script(if channels_last { &["--channels-last"] } else { &[] });
        let configs: Vec<&str> = lines.iter().map(|l| l["config"].as_str().unwrap()).collect();
        assert_eq!(configs, ["small-expert", "small-alternating"]);
        for l in &lines {
            assert!(l["pairs_per_s"].as_f64().is_some_and(|r| r.is_finite() && r > 0.0), "{l}");
            assert_eq!((l["batch"].as_u64(), l["channels_last"].as_bool()), (Some(4), Some(channels_last)), "{l}");
            assert_eq!(l["model_channels_last"], channels_last, "the models' weights are in the layout asked: {l}");
        }
    }
}
