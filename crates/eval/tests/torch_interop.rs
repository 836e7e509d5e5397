//! featdrop's encoders and PyTorch's, both ways, with the real torch and torchvision: a trained
//! run exported by `featdrop-eval export` loads strictly into `torchvision.models.resnet18` (through
//! the README's own snippet) and computes the same embeddings; a PyTorch-initialised resnet18 is
//! imported, computes the same features in featdrop, and is probed by `featdrop-eval probe
//! --encoder-weights`.
//!
//! Python is torch's own (the wheel featdrop links against): `FEATDROP_PYTHON`, which `cargo xtask
//! test` sets after installing torchvision 0.26 and safetensors there, or else the venv that
//! `.libtorch/torch` lies in.

use featdrop_contrastive::{Encoder, EncoderSpec, ResNet, StopAfter, Trainer};
use featdrop_core::seed::with_torch_seed;
use featdrop_core::{BaseViews, DeviceChoice, RunConfig, RunDir};
use featdrop_eval::interop::{load_torchvision_weights, write_state_dict};
use featdrop_eval::{FrozenRun, ProbeReport};
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{Device, Kind, Tensor, nn::VarStore};

mod common;
use common::workspace;

/// Embeddings of the same weights and inputs in PyTorch and featdrop agree to this.
const TOLERANCE: f64 = 1e-4;

/// torch's Python, checked to have torchvision and safetensors.
fn python() -> PathBuf {
    common::python_with(
        "import torchvision, safetensors; assert torchvision.__version__.startswith('0.26')",
        "torchvision 0.26 or safetensors",
        "'torchvision==0.26.*' numpy pillow safetensors",
    )
}

/// The README's "Using the weights in PyTorch" Python block.
fn readme_snippet() -> String {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let section = readme.split("## Using the weights in PyTorch").nth(1).expect("README has the section");
    let block = section.split("```python\n").nth(1).expect("a ```python block in the section");
    block.split("```").next().unwrap().to_string()
}

fn run_featdrop_eval(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_featdrop-eval")).args(args).output().unwrap();
    assert!(out.status.success(), "featdrop-eval {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn config(train_size: usize, test_size: usize) -> RunConfig {
    let mut cfg = RunConfig::new("interop", "photos+digits", BaseViews::Expert, 0);
    cfg.device = DeviceChoice::Cpu;
    (cfg.data.train_size, cfg.data.test_size, cfg.data.monitor_size) = (train_size, test_size, 32);
    (cfg.train.epochs, cfg.train.batch_size, cfg.train.knn_k, cfg.train.view_grid_every) = (1, 32, 5, 0);
    cfg
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn weights_move_between_featdrop_and_torchvision() {
    let python = python();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();

    // featdrop → PyTorch: a trained ResNet-18 run (one short epoch, so batch norm has statistics).
    let run_dir = work.join("run");
    let mut trainer = Trainer::from_config(config(64, 32), RunDir::at(&run_dir)).unwrap();
    trainer.run(StopAfter::default()).unwrap();
    drop(trainer);
    let exported = work.join("encoder.safetensors");
    run_featdrop_eval(&["export", "--run", run_dir.to_str().unwrap(), "--out", exported.to_str().unwrap(), "-q"]);

    let run = FrozenRun::load(&RunDir::at(&run_dir), None).unwrap();
    let x = with_torch_seed(7, || Tensor::randn([16, 3, 32, 32], (Kind::Float, Device::Cpu)));
    let (eval_embed, eval_features) = tch::no_grad(|| (run.encoder.embed(&x, false), run.encoder.features(&x)));
    // The exported file read back into featdrop, for a training-mode pass (it moves running stats).
    let vs = VarStore::new(Device::Cpu);
    let net = ResNet::new(&vs.root(), EncoderSpec::resnet18_small_images());
    load_torchvision_weights(&vs, &exported).unwrap();
    assert!(tch::no_grad(|| net.embed(&x, false)).equal(&eval_embed), "export → import is exact");
    let train_embed = tch::no_grad(|| net.embed(&x, true));
    let vars = vs.variables();
    let outputs = [
        ("inputs", x.shallow_clone()),
        ("eval_embed", eval_embed),
        ("eval_features", eval_features),
        ("train_embed", train_embed),
        ("bn1.running_mean", vars["bn1.running_mean"].shallow_clone()),
        ("bn1.running_var", vars["bn1.running_var"].shallow_clone()),
    ];
    let outputs: Vec<(String, Tensor)> = outputs.into_iter().map(|(n, t)| (n.to_string(), t)).collect();
    write_state_dict(&outputs, &work.join("featdrop_outputs.safetensors")).unwrap();

    let check = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/torch/check_interop.py"));
    let script = work.join("check.py");
    std::fs::write(&script, format!("{}\n{}", readme_snippet(), check.unwrap())).unwrap();
    let out = Command::new(&python).arg(&script).current_dir(work).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the README snippet and the PyTorch check failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let diffs: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    eprintln!("PyTorch vs featdrop, max abs differences: {diffs}");
    assert!(diffs["embed_scale"].as_f64().unwrap() > 1e-2, "embeddings are not all ~0: {diffs}");
    for key in ["eval_embed", "eval_features", "train_embed", "running_mean", "running_var"] {
        let d = diffs[key].as_f64().unwrap();
        assert!(d <= TOLERANCE, "{key}: PyTorch and featdrop differ by {d:e} (> {TOLERANCE:e})");
    }

    // PyTorch → featdrop: the PyTorch-initialised resnet18 computes the same features here.
    let vs = VarStore::new(Device::Cpu);
    let net = ResNet::new(&vs.root(), EncoderSpec::resnet18_small_images());
    let theirs_file = work.join("pytorch.safetensors");
    load_torchvision_weights(&vs, &theirs_file).unwrap();
    let theirs: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(work.join("pytorch_outputs.safetensors")).unwrap().into_iter().collect();
    let (embed, features) = tch::no_grad(|| (net.embed(&x, false), net.features(&x)));
    for (name, ours) in [("eval_embed", &embed), ("eval_features", &features)] {
        let d = max_diff(ours, &theirs[name]);
        assert!(d <= TOLERANCE, "imported {name}: featdrop and PyTorch differ by {d:e}");
    }

    // …and `featdrop-eval probe --encoder-weights` probes it on a run directory holding only a
    // config. Random convolutional features keep where a stamped digit's strokes are, so even an
    // untrained network's digit probe must be far above chance (10 %).
    let probe_dir = work.join("probe-run");
    std::fs::create_dir_all(&probe_dir).unwrap();
    let mut cfg = config(384, 192);
    (cfg.probe.epochs, cfg.probe.batch_size, cfg.probe.lr_milestones) = (30, 64, vec![20]);
    cfg.probe.features = featdrop_core::config::ProbeFeatures::Cached;
    std::fs::write(probe_dir.join("config.json"), serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    let probe_args =
        ["probe", "--run", probe_dir.to_str().unwrap(), "--encoder-weights", theirs_file.to_str().unwrap()];
    run_featdrop_eval(&[&probe_args[..], &["-q"]].concat());
    let report: ProbeReport =
        serde_json::from_str(&std::fs::read_to_string(probe_dir.join("probe.json")).unwrap()).unwrap();
    eprintln!("probe of the PyTorch-initialised encoder: {:?}", report.tasks);
    assert!(report.checkpoint.starts_with("encoder-weights:"), "{}", report.checkpoint);
    let digit = &report.tasks["digit"];
    assert!(digit.top1 >= digit.chance + 0.25, "digit probe {:.3} (chance {:.3})", digit.top1, digit.chance);
}
