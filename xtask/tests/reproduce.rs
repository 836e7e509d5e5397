//! End-to-end: `cargo xtask reproduce --scale smoke` into a temporary folder, with the workspace's
//! already-built binaries (`cargo xtask test` builds every target before running tests).

use featdrop_tests::{alive, live_processes};
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
    assert!(!cell.join("costs-train.json").exists(), "costs are recorded only with --record-costs");

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
    // Destruction keeps its task classifiers per experiment, for the other view modes to reuse.
    for task in ["digit", "photo"] {
        // The file name ends in a hash of the classifier's key (its budget among others).
        let prefix = format!("photos-digits.seed-0.{task}.");
        let names: Vec<String> = std::fs::read_dir(runs.join("classifiers"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let found = names.iter().any(|n| n.starts_with(&prefix) && n.ends_with(".safetensors"));
        assert!(found, "no {task} classifier in {names:?}; log:\n{log}");
    }

    let report = std::fs::read_to_string(tmp.path().join("report/REPORT.md")).unwrap();
    let rows = probe_rows(&report);
    assert_eq!(rows.len(), 1, "{report}");
    // The protocol table, read from the runs' config.json: the run's 2 epochs (set above) are marked.
    assert!(report.contains("### Protocol: the runs' values against the published ones"), "{report}");
    assert!(report.contains("| §4 | pretraining epochs | 200 | 2 | **differs** |"), "{report}");
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
    costs_add_up(&runs, "photos+digits__expert__seed-0", &report);

    // A second invocation finds every cell finished and recomputes nothing.
    let done = cell.join("pretrain.done.json");
    let (before, probe_before) = (mtime(&done), mtime(&cell.join("probe.json")));
    let out = reproduce(tmp.path(), &["--experiment", exp_arg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("skip photos+digits/expert/seed-0: finished"), "{err}");
    assert_eq!(mtime(&done), before);
    assert_eq!(mtime(&cell.join("probe.json")), probe_before);
}

/// Issue 25 item 3, on a real run: the cell's record breaks its wall time down, every part its
/// steps measure is there, and they account for the wall time within a few % (`other`, the
/// rest, is small); the study's parts sum to its wall time and the report shows them. Not a
/// timed test: it compares parts against their own total.
fn costs_add_up(exp_dir: &Path, record: &str, report: &str) {
    let text = std::fs::read_to_string(exp_dir.join("status").join(format!("{record}.json"))).unwrap();
    let rec: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (wall, costs) = (rec["seconds"].as_f64().unwrap(), &rec["costs"]);
    for part in ["process_start", "data", "pretraining", "probes", "destruction", "classifiers"] {
        assert!(costs[part].as_f64().is_some_and(|s| s > 0.0), "{part} not measured: {rec}");
    }
    let other = costs["other"].as_f64().unwrap();
    assert!(other.abs() <= 0.05 * wall, "the measured parts leave {other:.2} s of {wall:.2} s unaccounted: {rec}");
    let study: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exp_dir.join("study.json")).unwrap()).unwrap();
    let parts: f64 = study["parts"].as_array().unwrap().iter().map(|p| p["seconds"].as_f64().unwrap()).sum();
    let study_wall = study["wall_s"].as_f64().unwrap();
    assert!((parts - study_wall).abs() < 1e-6 && study_wall >= wall, "{study}");
    assert!(report.contains(&format!("took **{study_wall:.1} s**")), "the report shows the study's time");
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

/// A custom experiment grid, planned with `--dry-run`: every cell of the grid (filtered by
/// `--only`) is in jobs.json with its resolved config (shared `run` values, the per-dataset layer,
/// then the cell's own dataset, view mode and seed), the configs pass featdrop-train's check, and
/// nothing is trained.
#[test]
fn a_custom_grid_is_planned_with_dry_run() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = serde_json::json!({
        "name": "my-grid",
        "datasets": ["photos+shapes", "photos+letters"],
        "view_modes": ["expert", "dropout:0.25", "none"],
        "seeds": [3, 7],
        "run": {"device": "cpu", "encoder": {"arch": "small", "width": 4}, "train": {"epochs": 2, "lr": 0.05}},
        "per_dataset": {"photos+letters": {"train": {"batch_size": 16}, "viewmaker": {"epsilon": 0.2}}},
        "destruction": false,
        "theory": null
    });
    let file = tmp.path().join("my-grid.json");
    std::fs::write(&file, exp.to_string()).unwrap();
    let runs = tmp.path().join("runs");
    let dry_run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["reproduce", "--dry-run", "--bin-dir"])
            .arg(bin_dir())
            .arg("--experiment")
            .arg(&file)
            .arg("--out")
            .arg(&runs)
            .arg("--report")
            .arg(tmp.path().join("report"))
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "dry run failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let read_jobs = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(runs.join("my-grid/jobs.json")).unwrap()).unwrap()
    };
    // --only narrows the plan and the job list to the matching cells.
    let stdout = dry_run(&["--only", "letters/none"]);
    assert!(stdout.contains("plan for experiment `my-grid`: 2 cell(s), 0 finished, 2 to run"), "{stdout}");
    let only: Vec<serde_json::Value> =
        read_jobs()["jobs"].as_array().unwrap().iter().map(|j| j["id"].clone()).collect();
    assert_eq!(only, ["photos+letters/none/seed-3", "photos+letters/none/seed-7"]);

    let stdout = dry_run(&[]);
    assert!(stdout.contains("plan for experiment `my-grid`: 12 cell(s), 0 finished, 12 to run"), "{stdout}");
    assert!(stdout.contains("to run    photos+letters/dropout-0.25/seed-7  (2 step(s))"), "{stdout}");

    let jobs = read_jobs();
    assert_eq!(jobs["experiment"], "my-grid");
    let jobs = jobs["jobs"].as_array().unwrap();
    let ids: Vec<&str> = jobs.iter().map(|j| j["id"].as_str().unwrap()).collect();
    let mut expected = Vec::new();
    for d in ["photos+shapes", "photos+letters"] {
        for m in ["expert", "dropout-0.25", "none"] {
            for s in [3, 7] {
                expected.push(format!("{d}/{m}/seed-{s}"));
            }
        }
    }
    assert_eq!(ids, expected, "every cell, in grid order");
    for job in jobs {
        let (id, cfg) = (job["id"].as_str().unwrap(), &job["config"]);
        let letters = id.starts_with("photos+letters/");
        assert_eq!(cfg["experiment"], "my-grid");
        assert_eq!(
            format!(
                "{}/{}/seed-{}",
                cfg["dataset"].as_str().unwrap(),
                cfg["view_mode"].as_str().unwrap().replace(':', "-"),
                cfg["seed"]
            ),
            id
        );
        assert_eq!((cfg["train"]["epochs"].as_u64(), cfg["train"]["lr"].as_f64()), (Some(2), Some(0.05)), "{id}");
        // The per-dataset layer, else the catalogue's published value — resolved, never null.
        assert_eq!(cfg["train"]["batch_size"].as_u64(), Some(if letters { 16 } else { 256 }), "{id}");
        assert_eq!(cfg["viewmaker"]["epsilon"].as_f64(), Some(if letters { 0.2 } else { 0.05 }), "{id}");
        assert_eq!(cfg["encoder"]["width"], 4);
        let file = runs.join("my-grid/configs").join(format!("{}.json", id.replace('/', "__")));
        let on_disk: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(&on_disk, cfg, "{id}: jobs.json and the config file agree");
        let steps: Vec<&str> = job["steps"].as_array().unwrap().iter().map(|s| s[0].as_str().unwrap()).collect();
        assert_eq!(steps, ["featdrop-train", "featdrop-eval"], "{id}: destruction is off in this grid");
        assert!(!Path::new(job["run_dir"].as_str().unwrap()).exists(), "{id}: a dry run trains nothing");
    }
    assert!(!tmp.path().join("report").exists() && !runs.join("my-grid/status.json").exists());
}

/// A one-cell experiment at the smallest sizes (no destruction, no theory sweep unless set).
fn tiny_experiment() -> serde_json::Value {
    serde_json::json!({
        "name": "tiny",
        "datasets": ["photos+digits"],
        "view_modes": ["expert"],
        "seeds": [0],
        "run": {
            "device": "cpu",
            "data": {"source": "synthetic", "train_size": 64, "test_size": 64, "monitor_size": 32},
            "encoder": {"arch": "small", "width": 4},
            "train": {"epochs": 1, "batch_size": 32, "knn_k": 5, "lr": 0.1, "view_grid_every": 0},
            "probe": {"epochs": 1, "batch_size": 32, "lr_milestones": [], "features": "cached"}
        },
        "destruction": false,
        "theory": null
    })
}

/// `reproduce` of the experiment `exp` (written to `root/tiny.json`) into `root/runs`, whatever
/// its outcome.
fn run_tiny(root: &Path, exp: &serde_json::Value, extra: &[&str]) -> std::process::Output {
    let file = root.join("tiny.json");
    std::fs::write(&file, exp.to_string()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        // One libtorch thread per step: far faster on a small machine shared with other jobs.
        .env("OMP_NUM_THREADS", "1")
        .args(["reproduce", "--bin-dir"])
        .arg(bin_dir())
        .arg("--experiment")
        .arg(&file)
        .arg("--out")
        .arg(root.join("runs"))
        .arg("--report")
        .arg(root.join("report"))
        .args(extra)
        .output()
        .unwrap()
}

fn last_line(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default().to_string()
}

/// Bogus `destruction_args` or `theory` arguments are refused by the binaries' own parsers before
/// the first cell starts (they used to fail after every cell had run), naming file and field.
#[test]
fn bad_tool_arguments_fail_before_any_cell_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("destruction_args", serde_json::json!(["--epoch", "1"]), "unexpected argument '--epoch'"),
        ("destruction_args", serde_json::json!(["--epochs", "0"]), "--epochs = 0 is out of range"),
        ("destruction_args", serde_json::json!(["--run", "elsewhere"]), "'--run <RUN>' cannot be used multiple times"),
        ("theory", serde_json::json!(["--ks", "four"]), "invalid value 'four' for '--ks <KS>'"),
        ("theory", serde_json::json!(["--p-values", "1:0:0.1"]), "range `1:0:0.1` needs start ≤ end"),
    ];
    for (field, value, says) in cases {
        let mut exp = tiny_experiment();
        exp["destruction"] = true.into();
        exp["theory"] = serde_json::json!([]);
        exp[field] = value;
        let t0 = std::time::Instant::now();
        let out = run_tiny(tmp.path(), &exp, &[]);
        let err = last_line(&out);
        assert!(!out.status.success());
        assert!(err.contains(&format!("tiny.json: field `{field}`")) && err.contains(says), "{err}");
        assert!(!tmp.path().join("runs/tiny").exists(), "{field}: nothing may run or be written first");
        assert!(t0.elapsed().as_secs() < 30, "refused up front");
    }
}

/// A cell is finished only for the config it ran with: a changed `train.lr`/`train.epochs` is an
/// error naming cell and fields (finished cells used to be skipped as finished); with
/// `--rerun-changed` the cell runs again under the new config.
#[test]
fn a_changed_config_is_not_skipped_as_finished() {
    let tmp = tempfile::tempdir().unwrap();
    let mut exp = tiny_experiment();
    let out = run_tiny(tmp.path(), &exp, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cell = tmp.path().join("runs/tiny/photos+digits/expert/seed-0");
    let probe = std::fs::read(cell.join("probe.json")).unwrap();
    let exp_dir = tmp.path().join("runs/tiny");
    let written = || {
        let config = exp_dir.join("configs/photos+digits__expert__seed-0.json");
        (std::fs::read(config).unwrap(), std::fs::read(exp_dir.join("jobs.json")).unwrap())
    };
    let planned = written();
    exp["run"]["train"]["lr"] = 0.2.into();
    exp["run"]["train"]["epochs"] = 2.into();
    let out = run_tiny(tmp.path(), &exp, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("1 cell(s) hold results made with another config"), "{err}");
    assert!(
        err.contains("photos+digits/expert/seed-0") && err.contains("train.epochs 1 → 2, train.lr 0.1 → 0.2"),
        "{err}"
    );
    assert!(err.contains("--rerun-changed"), "{err}");
    assert_eq!(std::fs::read(cell.join("probe.json")).unwrap(), probe, "nothing rerun without the flag");
    // Issue 27.7: the refused run left the configs and the job list of the run it refused to do.
    assert!(written() == planned, "a refused run rewrote configs/ or jobs.json");

    let out = run_tiny(tmp.path(), &exp, &["--rerun-changed"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("rerun photos+digits/expert/seed-0: its config changed"), "{err}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cell.join("config.json")).unwrap()).unwrap();
    assert_eq!((cfg["train"]["lr"].as_f64(), cfg["train"]["epochs"].as_u64()), (Some(0.2), Some(2)));
    let done: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cell.join("pretrain.done.json")).unwrap()).unwrap();
    assert_eq!(done["epochs"], 2);

    // Issue 27.4: a finished cell without its config.json escaped the check (it was skipped as
    // finished and reported under the new config): the config of its results is unknown.
    std::fs::remove_file(cell.join("config.json")).unwrap();
    exp["run"]["train"]["lr"] = 0.3.into();
    let out = run_tiny(tmp.path(), &exp, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("photos+digits/expert/seed-0") && err.contains("config.json is missing beside"), "{err}");
}

/// A grid whose data cannot fit in memory is refused before any cell, naming file, cell and field
/// (it used to grow for minutes).
#[test]
fn a_grid_too_big_for_memory_is_refused_up_front() {
    let tmp = tempfile::tempdir().unwrap();
    let mut exp = tiny_experiment();
    exp["run"]["data"]["train_size"] = 100_000_000_000u64.into();
    let out = run_tiny(tmp.path(), &exp, &[]);
    let err = last_line(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("tiny.json (cell photos+digits/expert/seed-0): field `data.train_size` = 100000000000"),
        "{err}"
    );
    assert!(err.contains("does not fit in memory") && err.contains("MemAvailable"), "{err}");
    assert!(!tmp.path().join("runs/tiny").exists());
}

/// When every cell fails, the last word is which cells failed (it was the report's "holds no
/// finished runs"); a failed theory sweep does not stop the report of the finished cells.
#[test]
fn failures_are_the_last_word_and_do_not_stop_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let mut exp = tiny_experiment();
    let empty = tmp.path().join("no-data");
    std::fs::create_dir_all(&empty).unwrap();
    exp["run"]["data"]["source"] = "real".into();
    exp["run"]["data"]["data_dir"] = empty.display().to_string().into();
    let out = run_tiny(tmp.path(), &exp, &[]);
    let err = last_line(&out);
    assert!(!out.status.success());
    assert!(err.contains("1 cell(s) failed (of 1): photos+digits/expert/seed-0; their errors are in"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    let mut exp = tiny_experiment();
    exp["theory"] = tiny_theory("2");
    // The sweep's output folder cannot be made: a plain file is in the way.
    std::fs::create_dir_all(tmp.path().join("runs/tiny")).unwrap();
    std::fs::write(tmp.path().join("runs/tiny/theory"), "not a folder").unwrap();
    let out = run_tiny(tmp.path(), &exp, &[]);
    let err = last_line(&out);
    assert!(!out.status.success());
    assert!(err.contains("the theory sweep failed (log: ") && err.contains("theory.log"), "{err}");
    assert!(tmp.path().join("report/REPORT.md").exists(), "the cells' report is written all the same");
}

/// OS errors on the output folder name the path: a file where a folder should be, a name too long
/// for the file system, a folder that cannot be created.
#[test]
fn os_errors_on_the_output_folder_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let long = tmp.path().join("x".repeat(300));
    for (out_dir, says) in [
        (file.clone(), "Not a directory"),
        (long.clone(), "File name too long"),
        // Not writable even by root (the exact error depends on the system).
        (PathBuf::from("/sys/featdrop-out"), ""),
    ] {
        let exp = tiny_experiment();
        let f = tmp.path().join("tiny.json");
        std::fs::write(&f, exp.to_string()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["reproduce", "--bin-dir"])
            .arg(bin_dir())
            .arg("--experiment")
            .arg(&f)
            .arg("--out")
            .arg(&out_dir)
            .output()
            .unwrap();
        let err = last_line(&out);
        assert!(!out.status.success());
        assert!(err.contains(&out_dir.join("tiny").display().to_string()) && err.contains(says), "{err}");
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Issue 27.3: changed `destruction_args` were not noticed: the old destruction was reported
/// under the new arguments. Now they are an error naming the field, and `--rerun-changed` redoes
/// the destruction only (the arguments are recorded beside destruction.json).
#[test]
fn changed_destruction_args_are_not_reported_as_finished() {
    let tmp = tempfile::tempdir().unwrap();
    let mut exp = tiny_experiment();
    exp["destruction"] = true.into();
    exp["destruction_args"] = serde_json::json!(["--epochs", "1", "--width", "8", "--batch-size", "32"]);
    let out = run_tiny(tmp.path(), &exp, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cell = tmp.path().join("runs/tiny/photos+digits/expert/seed-0");
    let destruction = std::fs::read(cell.join("destruction.json")).unwrap();
    let pretrained = mtime(&cell.join("pretrain.done.json"));

    exp["destruction_args"][1] = "2".into();
    let out = run_tiny(tmp.path(), &exp, &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "old destruction results taken as the new arguments': {err}");
    assert!(
        err.contains("photos+digits/expert/seed-0") && err.contains(r#"destruction_args ["--epochs","1","#),
        "{err}"
    );
    assert_eq!(std::fs::read(cell.join("destruction.json")).unwrap(), destruction);

    let out = run_tiny(tmp.path(), &exp, &["--rerun-changed"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let recorded: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(cell.join("destruction-args.json")).unwrap()).unwrap();
    assert_eq!(recorded, ["--epochs", "2", "--width", "8", "--batch-size", "32"]);
    assert!(cell.join("destruction.json").exists());
    assert_eq!(mtime(&cell.join("pretrain.done.json")), pretrained, "pretraining is not redone");
}

/// The smallest theory sweep.
fn tiny_theory(ks: &str) -> serde_json::Value {
    serde_json::json!([
        "--p-values",
        "0",
        "--ratios",
        "0.5",
        "--ks",
        ks,
        "--seeds",
        "0",
        "--no-infonce",
        "--no-gd-check",
        "--no-figures",
        "--no-progress"
    ])
}

/// Issue 27.5: a sweep killed after its outputs but before its arguments were recorded (the old
/// order) made later changes of `theory` silently ignored. Outputs without their recorded
/// arguments are now changed, and the arguments are recorded before the sweep runs.
#[test]
fn theory_outputs_without_recorded_arguments_are_not_taken_as_current() {
    let tmp = tempfile::tempdir().unwrap();
    let mut exp = tiny_experiment();
    exp["theory"] = tiny_theory("2");
    let out = run_tiny(tmp.path(), &exp, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let theory = tmp.path().join("runs/tiny/theory");
    assert!(theory.join("summary.md").exists());
    // What the kill left: the outputs, no record.
    std::fs::remove_file(theory.join("reproduce-args.json")).unwrap();
    exp["theory"] = tiny_theory("3");
    let out = run_tiny(tmp.path(), &exp, &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "the changed `theory` was ignored: {err}");
    assert!(err.contains("theory sweep") && err.contains("theory not recorded"), "{err}");

    let out = run_tiny(tmp.path(), &exp, &["--rerun-changed"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(theory.join("reproduce-args.json")).unwrap()).unwrap();
    assert_eq!(recorded, tiny_theory("3"));
}

/// Issue 27.6: `--only` with `--rerun-changed` reran the selected cells and wrote a report
/// mixing them with the other cells' results of the old config, exit 0. Cells outside `--only`
/// holding results of another config are now refused up front, before anything is deleted.
#[test]
fn only_is_refused_when_cells_outside_it_hold_another_config() {
    let tmp = tempfile::tempdir().unwrap();
    let mut exp = tiny_experiment();
    exp["seeds"] = serde_json::json!([0, 1]);
    let out = run_tiny(tmp.path(), &exp, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let seed0 = tmp.path().join("runs/tiny/photos+digits/expert/seed-0");
    let probe = std::fs::read(seed0.join("probe.json")).unwrap();
    exp["run"]["train"]["lr"] = 0.2.into();
    let out = run_tiny(tmp.path(), &exp, &["--only", "seed-0", "--rerun-changed"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "a report mixing two configs was written: {err}");
    assert!(err.contains("--only seed-0: 1 cell(s) outside the selection"), "{err}");
    assert!(err.contains("photos+digits/expert/seed-1") && err.contains("would mix two configs"), "{err}");
    assert_eq!(std::fs::read(seed0.join("probe.json")).unwrap(), probe, "nothing deleted or rerun");
}

/// Issues 27.8 and 27.12: one garbled status record of a finished cell stopped every later
/// `report` and `reproduce` (with cells pending, after running one of them). It is now rebuilt
/// from the cell's files, with a warning naming it; and temp files of interrupted writes are
/// removed when `reproduce` takes the folder's locks.
#[test]
fn a_garbled_status_record_and_stale_temp_files_do_not_stop_the_study() {
    let tmp = tempfile::tempdir().unwrap();
    let mut exp = tiny_experiment();
    let out = run_tiny(tmp.path(), &exp, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let exp_dir = tmp.path().join("runs/tiny");
    let record = exp_dir.join("status/photos+digits__expert__seed-0.json");
    std::fs::write(&record, "{\"id\": \"photos+digits/exp").unwrap();

    let report = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["report", "--experiment", "tiny", "--runs"])
        .arg(tmp.path().join("runs"))
        .arg("--out")
        .arg(tmp.path().join("report"))
        .output()
        .unwrap();
    let err = stderr(&report);
    assert!(report.status.success(), "{err}");
    assert!(err.contains("photos+digits__expert__seed-0.json: not a cell record"), "{err}");

    // Interrupted writes, by a process that has ended.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = [
        exp_dir.join(format!("status/photos+digits__expert__seed-0.tmp-{dead}-ThreadId(1)")),
        exp_dir.join(format!(".jobs.json.{dead}.tmp")),
        exp_dir.join(format!("configs/.photos+digits__expert__seed-0.json.{dead}.tmp")),
    ];
    for p in &stale {
        std::fs::write(p, "half").unwrap();
    }
    // A pending cell besides the finished one.
    exp["seeds"] = serde_json::json!([0, 1]);
    let out = run_tiny(tmp.path(), &exp, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(exp_dir.join("photos+digits/expert/seed-1/probe.json").exists(), "{err}");
    let rewritten: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!((&rewritten["id"], &rewritten["state"]), (&"photos+digits/expert/seed-0".into(), &"done".into()));
    let left: Vec<_> = stale.iter().filter(|p| p.exists()).collect();
    assert!(left.is_empty(), "stale temp files left: {left:?}\n{err}");
    assert!(err.contains("removed 3 stale temp file(s)"), "{err}");
}

/// Issue 27.15: `cargo xtask cell` (a Slurm task) took no lock, so a local `reproduce` of the
/// same folder could run beside it. A cell now shares the experiment's cells lock with other
/// cells and is refused while a local `reproduce` holds it; a local `reproduce` is refused while
/// cells hold it. (The test holds the lock itself, as the other side would.)
#[test]
fn cell_tasks_and_a_local_reproduce_exclude_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny_experiment();
    let out = run_tiny(tmp.path(), &exp, &["--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let exp_dir = tmp.path().join("runs/tiny");
    let lock_file = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(exp_dir.join(".cells.lock"))
            .unwrap()
    };
    let cell = || {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .env("OMP_NUM_THREADS", "1")
            .args(["cell", "--index", "0", "--bin-dir"])
            .arg(bin_dir())
            .arg("--experiment")
            .arg(tmp.path().join("tiny.json"))
            .arg("--out")
            .arg(tmp.path().join("runs"))
            .output()
            .unwrap()
    };
    let run_dir = exp_dir.join("photos+digits/expert/seed-0");

    let local = lock_file();
    local.lock().unwrap();
    let out = cell();
    let err = stderr(&out);
    assert!(!out.status.success(), "a cell ran beside a local reproduce: {err}");
    assert!(err.contains("a local `cargo xtask reproduce` is running this experiment's cells"), "{err}");
    assert!(!run_dir.exists(), "{err}");
    drop(local);

    let other_cell = lock_file();
    other_cell.lock_shared().unwrap();
    let out = run_tiny(tmp.path(), &exp, &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "a local reproduce ran beside cell tasks: {err}");
    assert!(err.contains("other processes share its lock"), "{err}");
    assert!(!run_dir.exists(), "{err}");
    let out = cell();
    assert!(out.status.success(), "cells run side by side: {}", stderr(&out));
    assert!(run_dir.join("probe.json").exists());
    // Its record says where it ran and with how many threads, as a local reproduce's records do.
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(exp_dir.join("status/photos+digits__expert__seed-0.json")).unwrap(),
    )
    .unwrap();
    assert_eq!((record["device"].as_str(), record["threads"].as_u64()), (Some("cpu"), Some(1)), "{record}");

    // A Slurm reproduce goes on beside running tasks, but deletes no results under them.
    let mut changed = exp.clone();
    changed["run"]["train"]["lr"] = 0.2.into();
    let out = run_tiny(tmp.path(), &changed, &["--executor", "slurm", "--rerun-changed"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("cannot be deleted while cells of this experiment are running"), "{err}");
    assert!(run_dir.join("probe.json").exists(), "{err}");
}

/// Four cells of one dataset (two view modes × two seeds) with the destruction analysis: the
/// view modes of a seed share its classifiers.
fn four_cells() -> serde_json::Value {
    let mut exp = tiny_experiment();
    exp["view_modes"] = serde_json::json!(["expert", "dropout:0.5"]);
    exp["seeds"] = serde_json::json!([0, 1]);
    exp["destruction"] = true.into();
    exp["destruction_args"] =
        serde_json::json!(["--epochs", "1", "--width", "4", "--batch-size", "32", "--grid-rows", "0"]);
    exp
}

/// A result file without what depends on the clock.
fn results_of(path: &Path) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| !(k.contains("second") || k.contains("time") || k.ends_with("_s") || k == "created"));
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    strip(&mut v);
    v
}

/// Issue 25 item 1: `--jobs 2` runs two cells at once and gives the numbers `--jobs 1` gives:
/// every probe and destruction result equal. Both runs give each cell one libtorch thread
/// (OMP_NUM_THREADS=1 for `reproduce`, which every cell then gets: results depend on a cell's
/// thread count, not on how many cells run beside it), and each status record says so.
#[test]
fn cells_side_by_side_give_the_same_numbers_as_one_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    let exp = four_cells();
    for (root, jobs) in [(&one, "1"), (&two, "2")] {
        std::fs::create_dir_all(root).unwrap();
        let out = run_tiny(root, &exp, &["--jobs", jobs]);
        assert!(out.status.success(), "--jobs {jobs}: {}", stderr(&out));
        if jobs == "2" {
            let err = stderr(&out);
            assert!(err.contains("running up to 2 cells at once: 2 on the CPU (1 libtorch thread(s) each)"), "{err}");
        }
    }
    for mode in ["expert", "dropout-0.5"] {
        for seed in [0, 1] {
            let id = format!("photos+digits/{mode}/seed-{seed}");
            for file in ["probe.json", "destruction.json"] {
                let [a, b] = [&one, &two].map(|r| results_of(&r.join("runs/tiny").join(&id).join(file)));
                assert!(a["tasks"].as_object().is_some_and(|t| !t.is_empty()), "{id}/{file}: {a}");
                assert_eq!(a, b, "{id}/{file}: --jobs 2 differs from --jobs 1");
            }
            let record = two.join("runs/tiny/status").join(format!("{}.json", id.replace('/', "__")));
            let rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(record).unwrap()).unwrap();
            assert_eq!((&rec["state"], &rec["device"], &rec["threads"]), (&"done".into(), &"cpu".into(), &1.into()));
        }
    }
}

/// `--jobs` and `--devices` refuse what cannot be, naming the flag, before any cell runs.
#[test]
fn jobs_and_devices_are_checked_up_front() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny_experiment();
    let out = run_tiny(tmp.path(), &exp, &["--jobs", "0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("invalid value '0' for '--jobs <N>'"), "{}", stderr(&out));
    let out = run_tiny(tmp.path(), &exp, &["--devices", "0,x"]);
    assert!(stderr(&out).contains("invalid value '0,x' for '--devices <LIST>': `x` is not a GPU index"));
    let out = run_tiny(tmp.path(), &exp, &["--devices", "0"]);
    let err = last_line(&out);
    assert!(!out.status.success());
    assert!(err.contains("--devices 0: every cell runs on the CPU (device `cpu`)"), "{err}");
    let out = run_tiny(tmp.path(), &exp, &["--executor", "slurm", "--jobs", "2"]);
    assert!(last_line(&out).contains("--jobs is for the local executor"), "{}", stderr(&out));
    assert!(!tmp.path().join("runs/tiny/photos+digits").exists());
}

/// The live children of `pid` named `name`.
fn children_named(pid: u32, name: &str) -> Vec<i32> {
    let parent = pid as i32;
    live_processes().into_iter().filter(|p| p.name == name && p.ppid == parent).map(|p| p.pid).collect()
}

/// Issue 25 item 1: with cells side by side, each trainer is started from a worker thread, and
/// the parent-death signal follows the thread that started a child: a SIGKILLed `reproduce --jobs
/// 2` still ends both trainers it runs.
#[test]
fn a_killed_reproduce_ends_every_cell_it_runs_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let mut exp = tiny_experiment();
    exp["view_modes"] = serde_json::json!(["expert", "dropout:0.5"]);
    // Long enough to be found running.
    exp["run"]["train"]["epochs"] = 200.into();
    let file = tmp.path().join("tiny.json");
    std::fs::write(&file, exp.to_string()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .env("OMP_NUM_THREADS", "1")
        .args(["reproduce", "--jobs", "2", "--bin-dir"])
        .arg(bin_dir())
        .arg("--experiment")
        .arg(&file)
        .arg("--out")
        .arg(tmp.path().join("runs"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    let trainers = loop {
        let found = children_named(child.id(), "featdrop-train");
        if found.len() == 2 {
            break found;
        }
        assert!(child.try_wait().unwrap().is_none(), "reproduce ended before its trainers ran");
        if t0.elapsed().as_secs() > 60 {
            child.kill().unwrap();
            panic!("two trainers never ran at once: {found:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let t1 = std::time::Instant::now();
    while trainers.iter().any(|&t| alive(t)) && t1.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let orphans: Vec<i32> = trainers.iter().copied().filter(|&t| alive(t)).collect();
    for &t in &orphans {
        // SAFETY: kill(2) of a process this test's reproduce started.
        unsafe { libc::kill(t, libc::SIGKILL) };
    }
    assert!(orphans.is_empty(), "trainers {orphans:?} outlived the reproduce that started them");
}

/// Issue 25 item 2: `photos` × `colour+dropout:1` is `photos` × `colour` again (no overlay to
/// drop). The dry run lists it with its twin, the job list gives it no commands, and a run never
/// starts it: no folder, a record that names its twin, the report's row showing the twin's
/// numbers marked; `--only` naming it runs its twin.
#[test]
fn a_twin_cell_is_listed_never_run_and_reported_as_its_twin() {
    let tmp = tempfile::tempdir().unwrap();
    let mut exp = tiny_experiment();
    exp["datasets"] = serde_json::json!(["photos"]);
    exp["view_modes"] = serde_json::json!(["colour", "colour+dropout:1"]);
    let out = run_tiny(tmp.path(), &exp, &["--dry-run"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 cell(s), 0 finished, 1 to run, 1 twin(s) never run"), "{stdout}");
    assert!(
        stdout.contains(
            "twin      photos/colour+dropout-1/seed-0  = photos/colour/seed-0: no overlay to drop (`photos` has no \
             overlay task)"
        ),
        "{stdout}"
    );
    let exp_dir = tmp.path().join("runs/tiny");
    let jobs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exp_dir.join("jobs.json")).unwrap()).unwrap();
    let twin = &jobs["jobs"][1];
    assert_eq!(
        (twin["same_as"].as_str(), twin["steps"].as_array().map(Vec::len)),
        (Some("photos/colour/seed-0"), Some(0))
    );

    let out = run_tiny(tmp.path(), &exp, &["--only", "colour+dropout"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(exp_dir.join("photos/colour/seed-0/probe.json").exists(), "the twin's cell ran: {err}");
    assert!(!exp_dir.join("photos/colour+dropout-1").exists(), "the twin never runs: {err}");
    let rec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(exp_dir.join("status/photos__colour+dropout-1__seed-0.json")).unwrap(),
    )
    .unwrap();
    assert_eq!((rec["state"].as_str(), rec["same_as"].as_str()), (Some("same"), Some("photos/colour/seed-0")));
    let report = std::fs::read_to_string(tmp.path().join("report/REPORT.md")).unwrap();
    let row = report.lines().find(|l| l.starts_with("| photos | photo |")).unwrap();
    let cells: Vec<&str> = row.split('|').map(str::trim).filter(|c| !c.is_empty()).skip(2).collect();
    assert_eq!(cells.len(), 2, "{row}");
    assert_eq!(format!("{} (same as `colour`)", cells[0].trim_matches('*')), cells[1], "{row}");
}
