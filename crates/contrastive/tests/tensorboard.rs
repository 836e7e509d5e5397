//! TensorBoard event files of a training run (issue 29): written from the same records as
//! `metrics.jsonl`, and still one point per step after a kill and a resume.

use featdrop_contrastive::tensorboard::{self, Scalar, scalars_of};
use featdrop_contrastive::{StopAfter, Trainer};
use featdrop_core::{RunConfig, RunDir, ViewMode};
use serde_json::Value;
use std::path::Path;
use tfrecord::protobuf::event::What;
use tfrecord::protobuf::summary::value::Value as Kind;
use tfrecord::{EventIter, RecordReaderConfig};

/// A viewmaker run (losses of both players, both learning rates, destruction rates) small enough
/// for a test: 2 steps an epoch, a grid every epoch.
fn config(epochs: usize) -> RunConfig {
    let mut cfg = RunConfig::new("tb", "photos+digits", ViewMode::from(featdrop_core::BaseViews::Viewmaker), 0);
    cfg.device = featdrop_core::DeviceChoice::Cpu;
    (cfg.data.train_size, cfg.data.test_size, cfg.data.monitor_size) = (64, 64, 32);
    cfg.encoder.arch = featdrop_core::config::Arch::Small;
    cfg.encoder.width = 4;
    (cfg.train.epochs, cfg.train.batch_size, cfg.train.knn_k) = (epochs, 32, 5);
    (cfg.train.checkpoint_every, cfg.train.view_grid_every) = (1, 1);
    cfg.train.destruction.batch = 32;
    (cfg.train.destruction.epochs, cfg.train.destruction.width) = (1, 4);
    cfg.viewmaker.width_mult = 0.125;
    cfg
}

fn train(cfg: &RunConfig, dir: &Path, stop: Option<usize>) {
    let mut trainer = Trainer::from_config(cfg.clone(), RunDir::at(dir)).unwrap();
    trainer.run(StopAfter(stop)).unwrap();
}

/// An image point: tag, step, PNG bytes.
type ImagePoint = (String, i64, Vec<u8>);

/// Scalars and images of one event file, in file order.
fn read(path: &Path) -> (Vec<Scalar>, Vec<ImagePoint>) {
    let (mut scalars, mut images) = (Vec::new(), Vec::new());
    for event in EventIter::open(path, RecordReaderConfig::default()).unwrap() {
        let event = event.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let Some(What::Summary(summary)) = event.what else { continue };
        for v in summary.value {
            match v.value {
                Some(Kind::SimpleValue(x)) => scalars.push(Scalar { tag: v.tag, step: event.step, value: x }),
                Some(Kind::Image(i)) => images.push((v.tag, event.step, i.encoded_image_string)),
                other => panic!("{}: unexpected value {other:?}", path.display()),
            }
        }
    }
    (scalars, images)
}

fn metrics(dir: &Path) -> Vec<Value> {
    featdrop_core::io::JsonLines::read_all(&dir.join("metrics.jsonl")).unwrap()
}

/// The run's one trainer event file holds exactly the scalars of its `metrics.jsonl`, in order,
/// each (tag, step) once, and the view grid of every epoch once.
fn assert_matches_metrics(dir: &Path, epochs: usize) {
    let files = tensorboard::files(dir, tensorboard::TRAIN).unwrap();
    assert_eq!(files.len(), 1, "one trainer event file: {files:?}");
    let (scalars, images) = read(&files[0]);
    let mut seen = std::collections::BTreeSet::new();
    for s in &scalars {
        assert!(seen.insert((s.tag.clone(), s.step)), "{} at step {} written twice", s.tag, s.step);
    }
    let expected: Vec<Scalar> = metrics(dir).iter().flat_map(scalars_of).collect();
    assert_eq!(scalars, expected, "the event file and metrics.jsonl disagree");
    for tag in ["loss/encoder", "loss/viewmaker", "loss/epoch", "knn/photo", "knn/digit", "destruction/photo"] {
        assert!(scalars.iter().any(|s| s.tag == tag), "no {tag}");
    }
    for tag in ["lr/encoder", "lr/viewmaker", "speed/images_per_s"] {
        let steps: Vec<i64> = scalars.iter().filter(|s| s.tag == tag).map(|s| s.step).collect();
        assert_eq!(steps, (1..=epochs as i64).collect::<Vec<_>>(), "{tag} once per epoch");
    }
    let lr: Vec<f32> = scalars.iter().filter(|s| s.tag == "lr/viewmaker").map(|s| s.value).collect();
    assert!(lr.iter().all(|&v| v == config(1).viewmaker.lr as f32), "{lr:?}");
    let steps: Vec<i64> = images.iter().map(|(_, s, _)| *s).collect();
    assert_eq!(steps, (1..=epochs as i64).collect::<Vec<_>>(), "one view grid per epoch");
    for (tag, step, png) in &images {
        assert_eq!(tag, "views");
        let file = std::fs::read(dir.join(format!("views/epoch-{step:04}.png"))).unwrap();
        assert!(*png == file, "the view grid of epoch {step} is not the PNG the trainer wrote");
    }
}

/// Issue 29 item 2: a run killed after logging an epoch it had not checkpointed resumes from the
/// epoch before, and redoes that epoch: its event file holds each step once, as `metrics.jsonl`
/// does — not the killed attempt's points and then the redone ones.
#[test]
fn a_resumed_run_has_each_step_once_in_its_event_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(4);
    cfg.train.keep_epochs = vec![2];
    train(&cfg, dir.path(), Some(3));
    assert_matches_metrics(dir.path(), 3);
    // A kill after epoch 3 was logged, before its checkpoint was written.
    for ext in ["json", "safetensors"] {
        std::fs::remove_file(dir.path().join(format!("checkpoints/epoch-0003.{ext}"))).unwrap();
    }
    let logged = metrics(dir.path()).len();
    train(&cfg, dir.path(), None);
    assert!(metrics(dir.path()).len() > logged, "epochs 3 and 4 were trained");
    assert_matches_metrics(dir.path(), 4);
}

/// Issue 29 item 3: `train.tensorboard = false` writes no event file, and removes the trainer's
/// from a run that had them (they would no longer follow `metrics.jsonl`).
#[test]
fn train_tensorboard_off_writes_no_event_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(2);
    train(&cfg, dir.path(), Some(1));
    assert_eq!(tensorboard::files(dir.path(), tensorboard::TRAIN).unwrap().len(), 1);
    cfg.train.tensorboard = false;
    train(&cfg, dir.path(), None);
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tfevents"))
        .collect();
    assert!(left.is_empty(), "event files left with train.tensorboard off: {left:?}");
}
