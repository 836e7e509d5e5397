//! A smoke run's TensorBoard event files read back by the real TensorBoard (issue 29 item 4): its
//! own loader (`EventAccumulator`, in `read_tensorboard.py`) finds every tag, step and value of
//! `metrics.jsonl` and `probe.json`, the view grids, and nothing else.
//!
//! Python is featdrop's (torch's) own: `FEATDROP_PYTHON`, which `cargo xtask test` sets after
//! installing tensorboard there, or else the venv that `.libtorch/torch` lies in. A Python without
//! tensorboard fails the test: it is never skipped.

use featdrop_contrastive::tensorboard::scalars_of;
use featdrop_contrastive::{StopAfter, Trainer};
use featdrop_core::{BaseViews, RunConfig, RunDir, ViewMode};
use featdrop_eval::{FeatureMode, FrozenRun, ProbeOptions, probe_scalars, run_probe};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

/// The tensorboard release `cargo xtask test` installs (xtask/src/pytorch.rs).
const TENSORBOARD: &str = "2.21";

/// featdrop's Python, checked to have tensorboard.
fn python() -> PathBuf {
    let check = format!("import tensorboard; assert tensorboard.__version__.startswith('{TENSORBOARD}')");
    let pip = format!("'tensorboard=={TENSORBOARD}.0' 'protobuf==7.36.2' 'absl-py==2.5.1'");
    common::python_with(&check, &format!("tensorboard {TENSORBOARD}"), &pip)
}

/// (tag → [(step, value)]) as TensorBoard reads `run`, and (tag → [(step, width, height)]).
type Scalars = BTreeMap<String, Vec<(i64, f32)>>;
type Images = BTreeMap<String, Vec<(i64, u32, u32)>>;

fn tensorboard_reads(run: &Path) -> (Scalars, Images) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/read_tensorboard.py");
    let out = Command::new(python()).arg(&script).arg(run).output().unwrap();
    assert!(out.status.success(), "read_tensorboard.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let scalars = v["scalars"].as_object().unwrap().iter().map(|(t, pts)| {
        let pts = pts.as_array().unwrap().iter().map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap() as f32));
        (t.clone(), pts.collect())
    });
    let images = v["images"].as_object().unwrap().iter().map(|(t, pts)| {
        let dim = |p: &Value, i: usize| p[i].as_u64().unwrap() as u32;
        (t.clone(), pts.as_array().unwrap().iter().map(|p| (p[0].as_i64().unwrap(), dim(p, 1), dim(p, 2))).collect())
    });
    (scalars.collect(), images.collect())
}

#[test]
fn tensorboard_reads_every_metric_of_a_smoke_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = RunConfig::new("tb", "photos+digits", ViewMode::from(BaseViews::Viewmaker), 0);
    cfg.device = featdrop_core::DeviceChoice::Cpu;
    (cfg.data.train_size, cfg.data.test_size, cfg.data.monitor_size) = (64, 64, 32);
    (cfg.encoder.arch, cfg.encoder.width) = (featdrop_core::config::Arch::Small, 4);
    (cfg.train.epochs, cfg.train.batch_size, cfg.train.knn_k, cfg.train.view_grid_every) = (3, 32, 5, 1);
    (cfg.train.keep_epochs, cfg.train.checkpoint_every) = (vec![2], 1);
    (cfg.train.destruction.batch, cfg.train.destruction.epochs, cfg.train.destruction.width) = (32, 1, 4);
    cfg.viewmaker.width_mult = 0.125;
    (cfg.probe.epochs, cfg.probe.batch_size) = (1, 32);
    let run = RunDir::at(dir.path());
    // Stopped after epoch 2 and resumed, as a long run is.
    Trainer::from_config(cfg.clone(), run.clone()).unwrap().run(StopAfter(Some(2))).unwrap();
    Trainer::from_config(cfg, run.clone()).unwrap().run(StopAfter(None)).unwrap();
    let opts = ProbeOptions { features: Some(FeatureMode::Cached), ..Default::default() };
    for epoch in [Some(2), None] {
        run_probe(&FrozenRun::load_at(&run, None, None, epoch).unwrap(), &opts).unwrap();
    }

    let records: Vec<Value> = featdrop_core::io::JsonLines::read_all(&run.metrics()).unwrap();
    let probe: featdrop_eval::ProbeReport = featdrop_core::io::read_json(&run.probe()).unwrap();
    let mut expected = Scalars::new();
    for s in records.iter().flat_map(scalars_of).chain(probe_scalars(&probe)) {
        expected.entry(s.tag).or_default().push((s.step, s.value));
    }
    let (scalars, images) = tensorboard_reads(dir.path());
    assert_eq!(scalars, expected, "TensorBoard reads other scalars than metrics.jsonl and probe.json hold");
    let tags: Vec<&str> = scalars.keys().map(String::as_str).collect();
    for tag in ["loss/encoder", "loss/viewmaker", "knn/photo", "destruction/digit", "lr/encoder", "speed/images_per_s"]
    {
        assert!(tags.contains(&tag), "no {tag} in {tags:?}");
    }
    assert_eq!(scalars["probe/photo"].iter().map(|p| p.0).collect::<Vec<_>>(), [2, 3], "probes at epochs 2 and 3");
    let steps = records.iter().filter(|r| r["kind"] == "step").count();
    assert_eq!(scalars["loss/encoder"].len(), steps, "one loss point per step");
    let grid = image::image_dimensions(dir.path().join("views/epoch-0003.png")).unwrap();
    assert_eq!(images["views"], [1, 2, 3].map(|e| (e, grid.0, grid.1)), "one view grid per epoch");
}
