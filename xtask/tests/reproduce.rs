//! End-to-end: `cargo xtask reproduce --scale smoke` into a temporary folder, with the workspace's
//! already-built binaries (`cargo xtask test` builds every target before running tests).

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_xtask")).parent().unwrap().to_path_buf()
}

fn reproduce(out: &Path, extra: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["reproduce", "--scale", "smoke", "--bin-dir"])
        .arg(bin_dir())
        .arg("--out")
        .arg(out.join("runs"))
        .arg("--report")
        .arg(out.join("report"))
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "reproduce failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The probe table's data rows: every cell must hold a number.
fn probe_rows(report: &str) -> Vec<String> {
    let after = report.split("### Linear-probe accuracy").nth(1).expect("probe table");
    let table = after.split("\n### ").next().unwrap_or_default();
    table.lines().filter(|l| l.starts_with("| photos")).map(str::to_string).collect()
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn smoke_study_reports_skips_and_resumes() {
    if !bin_dir().join("featdrop-train").exists() {
        panic!(
            "build the workspace's binaries first (cargo xtask test does): {} has no featdrop-train",
            bin_dir().display()
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs/smoke");
    let cell = runs.join("photos+digits/expert/seed-0");

    // A cell interrupted after one of two epochs (as if killed) must resume, not restart.
    let cfg_dir = tmp.path().join("cfg");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let mut exp: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/smoke.json")).unwrap(),
    )
    .unwrap();
    exp["run"]["train"]["epochs"] = 2.into();
    exp["view_modes"] = serde_json::json!(["expert"]);
    let exp_file = cfg_dir.join("smoke.json");
    std::fs::write(&exp_file, exp.to_string()).unwrap();
    let mut cell_cfg = exp["run"].clone();
    for (k, v) in [("experiment", "smoke"), ("dataset", "photos+digits"), ("view_mode", "expert")] {
        cell_cfg[k] = v.into();
    }
    cell_cfg["seed"] = 0.into();
    let cell_cfg_file = cfg_dir.join("cell.json");
    std::fs::write(&cell_cfg_file, cell_cfg.to_string()).unwrap();
    let status = Command::new(bin_dir().join("featdrop-train"))
        .args(["-q", "--stop-after-epoch", "1", "--config"])
        .arg(&cell_cfg_file)
        .arg("--run-dir")
        .arg(&cell)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!cell.join("pretrain.done.json").exists());

    let exp_arg = exp_file.to_str().unwrap();
    reproduce(tmp.path(), &["--experiment", exp_arg]);
    let log = std::fs::read_to_string(cell.join("log.txt")).unwrap_or_default();
    let metrics = std::fs::read_to_string(cell.join("metrics.jsonl")).unwrap();
    let epochs: Vec<u64> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["kind"] == "epoch")
        .map(|r| r["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 2], "epoch 1 kept, epoch 2 added, nothing redone; log:\n{log}");

    let report = std::fs::read_to_string(tmp.path().join("report/REPORT.md")).unwrap();
    let rows = probe_rows(&report);
    assert_eq!(rows.len(), 1, "{report}");
    for row in &rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).filter(|c| !c.is_empty()).skip(2).collect();
        assert!(
            !cells.is_empty()
                && cells.iter().all(|c| c.trim_matches('*').split(' ').next().unwrap().parse::<f64>().is_ok()),
            "{row}"
        );
    }
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("report/results.json")).unwrap()).unwrap();
    assert!(results["experiments"][0]["cells"][0]["probe"]["digit"].is_number());
    assert!(runs.join("jobs.json").exists() && runs.join("theory/theory.json").exists());

    // A second invocation finds every cell finished and recomputes nothing.
    let done = cell.join("pretrain.done.json");
    let (before, probe_before) = (mtime(&done), mtime(&cell.join("probe.json")));
    let out = reproduce(tmp.path(), &["--experiment", exp_arg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("skip photos+digits/expert/seed-0: finished"), "{err}");
    assert_eq!(mtime(&done), before);
    assert_eq!(mtime(&cell.join("probe.json")), probe_before);
}

#[test]
fn a_bad_experiment_names_the_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, r#"{"name": "x", "datasets": ["photos"], "view_modes": ["expert"], "seeds": [0], "run": {"train": {"lr": -1}}}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["reproduce", "--bin-dir"])
        .arg(bin_dir())
        .arg("--experiment")
        .arg(&bad)
        .arg("--out")
        .arg(tmp.path().join("runs"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.json resolves to an invalid run config") && err.contains("field `train.lr` = -1"),
        "{err}"
    );
}
