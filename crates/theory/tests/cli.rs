//! The `featdrop-theory` binary: help, JSON output of each subcommand, and bad input.

use std::process::{Command, Output};

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_featdrop-theory")).args(args).env_remove("RUST_LOG").output().expect("binary runs")
}

fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "exit {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[test]
fn help_explains_every_option() {
    let out = bin(&["sweep", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--out",
        "--config",
        "--p-values",
        "--ratios",
        "--ks",
        "--seeds",
        "--infonce-ks",
        "--gd-ks",
        "--no-infonce",
        "--strength-a",
        "--aug-noise",
        "--dropout-group",
        "--steps",
        "--temperature",
        "--json",
        "--threads",
        "--verbose",
        "--quiet",
    ] {
        let lines: Vec<&str> = help.lines().collect();
        let i = lines
            .iter()
            .position(|l| l.trim_start().starts_with(flag) || l.contains(&format!(", {flag}")))
            .unwrap_or_else(|| panic!("help lacks {flag}"));
        // Every option carries a description (`--help` puts it on the next line).
        let next = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
        assert!(
            next.split_whitespace().count() >= 2 && !next.starts_with('-'),
            "{flag} has no description: {} / {next}",
            lines[i]
        );
    }
    for sub in ["point", "predict", "default-config"] {
        assert!(bin(&[sub, "--help"]).status.success(), "{sub} --help");
    }
}

#[test]
fn point_and_predict_print_json() {
    let v = stdout_json(&bin(&[
        "point",
        "--ratio",
        "0.33",
        "-p",
        "0.3",
        "-k",
        "4",
        "--probe-train",
        "300",
        "--probe-test",
        "300",
        "--compact",
    ]));
    let r = &v["result"];
    assert!(r["acc_b"].as_f64().unwrap() > 0.8, "{v}");
    assert!(r["overlap_b"].as_f64().unwrap() > 0.99);
    assert_eq!(v["config"]["k"], 4);
    assert!(r.get("weights").is_none());

    let with_w = stdout_json(&bin(&["point", "--weights", "--probe-train", "50", "--probe-test", "50"]));
    assert_eq!(with_w["result"]["weights"].as_array().unwrap().len(), 4);

    let p = stdout_json(&bin(&["predict", "--ratio", "0.33", "-k", "4"]));
    let onset = p["prediction"]["onset_p"].as_f64().unwrap();
    assert!(onset > 0.1 && onset < 0.2, "{p}");

    let cfg = stdout_json(&bin(&["default-config"]));
    assert!(cfg["closed_form"]["p_values"].as_array().unwrap().len() > 10);
}

#[test]
fn small_sweep_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("sweep");
    let v = stdout_json(&bin(&[
        "-q",
        "sweep",
        "--out",
        out_dir.to_str().unwrap(),
        "--ks",
        "4",
        "--ratios",
        "0.2,0.4",
        "--p-values",
        "0:0.6:0.2",
        "--seeds",
        "0",
        "--no-infonce",
        "--no-gd-check",
        "--probe-train",
        "200",
        "--probe-test",
        "200",
        "--no-figures",
        "--no-progress",
        "--json",
    ]));
    assert_eq!(v["points"], 8);
    assert!(out_dir.join("theory.json").is_file());
    assert!(out_dir.join("summary.md").is_file());
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("theory.json")).unwrap()).unwrap();
    assert_eq!(file["config"]["closed_form"]["ks"][0], 4);
    assert!(file["config"]["info_nce"].is_null());

    // The written config reproduces the sweep through --config.
    let cfg_path = dir.path().join("cfg.json");
    std::fs::write(&cfg_path, serde_json::to_string(&file["config"]).unwrap()).unwrap();
    let again_dir = dir.path().join("again");
    stdout_json(&bin(&[
        "-q",
        "sweep",
        "--out",
        again_dir.to_str().unwrap(),
        "--config",
        cfg_path.to_str().unwrap(),
        "--no-figures",
        "--no-progress",
        "--json",
    ]));
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(again_dir.join("theory.json")).unwrap()).unwrap();
    assert_eq!(again["points"], file["points"]);
}

#[test]
fn bad_input_fails_with_a_message() {
    for args in [
        vec!["point", "-p", "1.5"],
        vec!["point", "-k", "0"],
        vec!["point", "--solver", "info-nce", "-k", "1"],
        vec!["sweep", "--out", "/tmp/never", "--p-values", "1:0:0.1"],
        vec!["sweep", "--out", "/tmp/never", "--config", "/nonexistent/cfg.json"],
    ] {
        let out = bin(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.len() > 10, "{args:?}: no message");
    }
    let out = bin(&["point", "--solver", "info-nce", "-k", "1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("k ≥ 2"));
}
