//! End-to-end checks of the trainer at smoke scale (CPU): learning happens, the adversarial
//! updates pull in opposite directions, and resume is exact.

use featdrop_contrastive::classifier::ClassifierCache;
use featdrop_contrastive::optim::{Adam, Sgd};
use featdrop_contrastive::trainer::{classifier_budget, named_trainable};
use featdrop_contrastive::views::ViewmakerViews;
use featdrop_contrastive::{Encoder, EncoderSpec, ResNet, Stem, StopAfter, Trainer, simclr_published};
use featdrop_core::{BaseViews, RunConfig, RunDir, Split, ViewFamily};
use featdrop_data::DatasetSpec;
use featdrop_viewmaker::ViewmakerSpec;
use tch::{Device, Kind, Tensor, nn::VarStore};

/// libtorch's random generator is global to the process: tests that seed it and compare results
/// must not run at the same time as each other.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn smoke_config(mode: BaseViews, train: usize, epochs: usize) -> RunConfig {
    let mut cfg = RunConfig::new("test", "photos+digits", mode, 0);
    cfg.device = featdrop_core::DeviceChoice::Cpu;
    cfg.data.train_size = train;
    cfg.data.test_size = 256;
    cfg.data.monitor_size = 256;
    cfg.encoder.arch = featdrop_core::config::Arch::Small;
    cfg.encoder.width = 8;
    cfg.train.epochs = epochs;
    cfg.train.batch_size = 32;
    cfg.train.knn_k = 20;
    cfg.train.checkpoint_every = 1;
    cfg.train.view_grid_every = 0;
    cfg.viewmaker.width_mult = 0.125;
    cfg
}

fn loss_of(enc: &ResNet, views: &dyn ViewFamily, x: &Tensor) -> f64 {
    let (v1, v2) = (views.view(x, 1), views.view(x, 2));
    f64::try_from(simclr_published(&enc.embed(&v1, true), &enc.embed(&v2, true), 0.07)).unwrap()
}

/// On one fixed batch and fixed view seeds: an encoder step lowers the loss, a viewmaker step
/// (maximising it) raises it.
#[test]
fn encoder_step_lowers_and_viewmaker_step_raises_the_loss() {
    let _serial = serial();
    tch::manual_seed(0);
    let data = featdrop_data::open(&DatasetSpec::synthetic("photos+digits", 64, 64, 0)).unwrap();
    let x = data.batch(Split::Train, &Tensor::arange(32, (Kind::Int64, Device::Cpu)), 7).inputs;
    let vs = VarStore::new(Device::Cpu);
    let enc = ResNet::new(&vs.root(), EncoderSpec::small(3, Stem::SmallImage, 8));
    let vm_spec = ViewmakerSpec { width_mult: 0.25, ..ViewmakerSpec::published(3, 0.05) };
    let views = ViewmakerViews::new("viewmaker", vm_spec, Device::Cpu, None, Some(Default::default())).unwrap();
    let mut sgd = Sgd::new(named_trainable(&vs), 0.05, 0.9, 0.0);
    let mut adam = Adam::new(views.trainable(), 1e-3);

    let before = loss_of(&enc, &views, &x);
    sgd.zero_grad();
    let (v1, v2) = tch::no_grad(|| (views.view(&x, 1), views.view(&x, 2)));
    simclr_published(&enc.embed(&v1, true), &enc.embed(&v2, true), 0.07).backward();
    sgd.step();
    let after_encoder = loss_of(&enc, &views, &x);
    assert!(after_encoder < before, "encoder step: {before} -> {after_encoder}");

    adam.zero_grad();
    let (v1, v2) = (views.view(&x, 1), views.view(&x, 2));
    (simclr_published(&enc.embed(&v1, true), &enc.embed(&v2, true), 0.07) * -1.0).backward();
    adam.step();
    let after_viewmaker = loss_of(&enc, &views, &x);
    assert!(after_viewmaker > after_encoder, "viewmaker step: {after_encoder} -> {after_viewmaker}");
}

/// A short run lowers the loss and its kNN monitor reads the overlay task well above chance.
/// Identity views are used because at this size (a few dozen steps) they are the ones that learn
/// fast: the easy overlay feature is exactly what an instance-discriminating encoder picks first.
#[test]
fn smoke_run_learns_the_overlay_task() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = smoke_config(BaseViews::None, 768, 4);
    (cfg.encoder.width, cfg.train.batch_size) = (16, 64);
    let mut trainer = Trainer::from_config(cfg, RunDir::at(dir.path())).unwrap();
    let before = trainer.monitor();
    let s = trainer.run(StopAfter::default()).unwrap();
    let first = s.first_epoch_loss.unwrap();
    assert!(s.last_epoch_loss < first - 0.1, "loss {first} -> {}", s.last_epoch_loss);
    let digit = s.knn["digit"];
    assert!(digit > 0.1 + 0.1, "kNN digit accuracy {digit} (chance 0.1; before training {})", before["digit"]);
    assert!(dir.path().join("pretrain.done.json").exists());
    let records: Vec<serde_json::Value> =
        featdrop_core::io::JsonLines::read_all(&dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(records.iter().filter(|r| r["kind"] == "epoch").count(), 4);
}

/// Issue 28 item 1: a run with the IFM objective learns as the published one does (loss falls,
/// kNN on the overlay task well above chance), at the same size as the test above.
#[test]
fn an_ifm_run_learns() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = smoke_config(BaseViews::None, 768, 4);
    (cfg.encoder.width, cfg.train.batch_size) = (16, 64);
    cfg.train.objective = featdrop_core::config::Objective::Ifm;
    let mut trainer = Trainer::from_config(cfg, RunDir::at(dir.path())).unwrap();
    let s = trainer.run(StopAfter::default()).unwrap();
    let first = s.first_epoch_loss.unwrap();
    assert!(s.last_epoch_loss < first - 0.1, "loss {first} -> {}", s.last_epoch_loss);
    let digit = s.knn["digit"];
    assert!(digit > 0.1 + 0.1, "kNN digit accuracy {digit} (chance 0.1)");
    let written = featdrop_core::RunConfig::from_file(&dir.path().join("config.json")).unwrap();
    assert_eq!((written.train.objective.to_string(), written.train.ifm_epsilon), ("ifm".into(), 0.1));
}

/// A run stopped after one epoch and resumed ends bit-identical to one run straight through.
#[test]
fn resumed_run_is_bit_identical() {
    let _serial = serial();
    let cfg = smoke_config(BaseViews::Viewmaker, 128, 2);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut straight = Trainer::from_config(cfg.clone(), RunDir::at(a.path())).unwrap();
    straight.run(StopAfter::default()).unwrap();

    let mut first = Trainer::from_config(cfg.clone(), RunDir::at(b.path())).unwrap();
    first.run(StopAfter(Some(1))).unwrap();
    drop(first);
    let mut resumed = Trainer::from_config(cfg, RunDir::at(b.path())).unwrap();
    assert_eq!(resumed.epochs_done(), 1);
    resumed.run(StopAfter::default()).unwrap();

    let (sa, sb) = (straight.state_tensors(), resumed.state_tensors());
    assert_eq!(sa.len(), sb.len());
    assert!(sa.iter().any(|(n, _)| n.starts_with("views.")), "viewmaker weights are part of the state");
    for ((na, ta), (nb, tb)) in sa.iter().zip(&sb) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "tensor {na} differs after resume");
    }
}

/// What a kill leaves behind does not stop a resume: a torn last metrics line is dropped, an
/// unreadable checkpoint is skipped (here the only one, so the run starts over), the log is
/// trimmed to the restart point (no epoch twice), and a finished run keeps its recorded costs.
#[test]
fn kills_leave_nothing_that_stops_or_skews_a_resume() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = smoke_config(BaseViews::None, 64, 2);
    let epochs = |dir: &std::path::Path| -> Vec<u64> {
        let recs: Vec<serde_json::Value> = featdrop_core::io::JsonLines::read_all(&dir.join("metrics.jsonl")).unwrap();
        recs.iter().filter(|r| r["kind"] == "epoch").map(|r| r["epoch"].as_u64().unwrap()).collect()
    };
    Trainer::from_config(cfg.clone(), RunDir::at(dir.path())).unwrap().run(StopAfter(Some(1))).unwrap();
    // A kill mid-append, then a checkpoint cut short.
    let metrics = dir.path().join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    text.push_str(r#"{"kind":"step","epoch":2,"st"#);
    std::fs::write(&metrics, text).unwrap();
    let weights = dir.path().join("checkpoints/epoch-0001.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();

    let mut again = Trainer::from_config(cfg.clone(), RunDir::at(dir.path())).unwrap();
    assert_eq!(again.epochs_done(), 0, "the only checkpoint is unreadable: start over");
    assert_eq!(std::fs::read_to_string(&metrics).unwrap(), "", "records past the restart point are dropped");
    let first = again.run(StopAfter::default()).unwrap();
    assert_eq!(epochs(dir.path()), [1, 2], "every epoch logged exactly once");

    // Restarting a finished run trains nothing and keeps the recorded costs.
    drop(again);
    let done = dir.path().join("pretrain.done.json");
    let before = std::fs::read_to_string(&done).unwrap();
    let again = Trainer::from_config(cfg, RunDir::at(dir.path())).unwrap().run(StopAfter::default()).unwrap();
    assert_eq!(std::fs::read_to_string(&done).unwrap(), before);
    assert_eq!((again.seconds, again.images_per_s), (first.seconds, first.images_per_s));
    assert!(again.images_per_s > 0.0 && again.first_epoch_loss.is_some());
    assert_eq!(epochs(dir.path()), [1, 2]);
}

/// `train.keep_epochs` (issue 15.8): those epochs get a checkpoint even off the `checkpoint_every`
/// beat, and it is not pruned when a newer one is saved; the others still are.
#[test]
fn kept_epochs_keep_their_checkpoints() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = smoke_config(BaseViews::None, 64, 3);
    (cfg.train.checkpoint_every, cfg.train.keep_epochs) = (2, vec![1]);
    Trainer::from_config(cfg, RunDir::at(dir.path())).unwrap().run(StopAfter::default()).unwrap();
    let mut tags: Vec<String> = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".safetensors").map(str::to_string))
        .collect();
    tags.sort();
    assert_eq!(tags, ["epoch-0001", "epoch-0003"], "epoch 1 kept, epoch 2 pruned, the last kept");
    let latest = featdrop_core::checkpoint::latest(&dir.path().join("checkpoints")).unwrap();
    assert_eq!(latest.as_deref(), Some("epoch-0003"));
}

/// A run directory holding another config is refused rather than mixed, naming what changed.
#[test]
fn a_run_directory_with_another_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = smoke_config(BaseViews::None, 64, 1);
    let old = RunConfig {
        seed: 9,
        train: featdrop_core::config::TrainConfig { lr: 0.5, ..cfg.train.clone() },
        ..cfg.clone()
    };
    featdrop_core::io::write_json_atomic(&dir.path().join("config.json"), &old).unwrap();
    let err = Trainer::from_config(cfg.clone(), RunDir::at(dir.path())).err().expect("must refuse").to_string();
    assert!(err.contains("holds a different config (changed: seed 9 → 0, train.lr 0.5 → "), "{err}");
}

/// Weights without the config.json they were trained with are not resumed under a new config
/// (the old trainer wrote the new config and resumed them).
#[test]
fn checkpoints_without_their_config_are_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = smoke_config(BaseViews::None, 64, 2);
    Trainer::from_config(cfg.clone(), RunDir::at(dir.path())).unwrap().run(StopAfter(Some(1))).unwrap();
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let changed = RunConfig { train: featdrop_core::config::TrainConfig { lr: 0.5, ..cfg.train.clone() }, ..cfg };
    let err = Trainer::from_config(changed, RunDir::at(dir.path())).err().expect("must refuse").to_string();
    assert!(err.contains("config.json is missing but") && err.contains("epoch-0001.safetensors"), "{err}");
    assert!(err.contains("put that run's config.json back, or delete"), "{err}");
    assert!(!dir.path().join("config.json").exists(), "nothing written for the refused config");
}

/// One trainer per run directory: a second is refused at once, naming the holder's pid; when
/// the first is gone the directory is free again.
#[test]
fn a_second_trainer_on_one_run_directory_is_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = smoke_config(BaseViews::None, 64, 1);
    let first = Trainer::from_config(cfg.clone(), RunDir::at(dir.path())).unwrap();
    let err = Trainer::from_config(cfg.clone(), RunDir::at(dir.path())).err().expect("must refuse").to_string();
    assert!(err.contains(&format!("featdrop-train (pid {}) holds its lock", std::process::id())), "{err}");
    drop(first);
    Trainer::from_config(cfg, RunDir::at(dir.path())).unwrap();
}

/// A config whose dataset cannot fit in memory is refused before any data is made, naming the field.
#[test]
fn a_dataset_too_big_for_memory_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = smoke_config(BaseViews::None, 64, 1);
    cfg.data.train_size = 100_000_000_000;
    let t0 = std::time::Instant::now();
    let err = Trainer::from_config(cfg, RunDir::at(dir.path())).err().expect("must refuse").to_string();
    assert!(err.contains("field `data.train_size` = 100000000000 does not fit in memory"), "{err}");
    assert!(t0.elapsed().as_secs() < 5, "refused up front, not after building data");
}

/// The CUDA speed options also run on the CPU (bf16 autocast exists there): training stays finite
/// and the encoder's convolution weights end channels-last.
#[test]
fn bf16_and_channels_last_options_train() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = smoke_config(BaseViews::Expert, 64, 1);
    (cfg.train.bf16, cfg.train.channels_last) = (true, featdrop_core::config::ChannelsLast::Fixed(true));
    let mut trainer = Trainer::from_config(cfg, RunDir::at(dir.path())).unwrap();
    let s = trainer.run(StopAfter::default()).unwrap();
    assert!(s.last_epoch_loss.is_finite());
    let convs: Vec<_> =
        trainer.state_tensors().into_iter().filter(|(n, t)| n.starts_with("enc.") && t.dim() == 4).collect();
    assert!(!convs.is_empty() && convs.iter().all(|(_, t)| featdrop_torch_ext::is_channels_last(t)));
}

/// Audio runs use the spectral recipe and a one-channel viewmaker on the 64×64 log-mel.
#[test]
fn audio_runs_train_with_learned_views() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = smoke_config(BaseViews::ExpertViewmaker, 64, 1);
    cfg.dataset = "speech+noise".into();
    (cfg.data.test_size, cfg.data.monitor_size) = (32, 32);
    let mut trainer = Trainer::from_config(cfg, RunDir::at(dir.path())).unwrap();
    let s = trainer.run(StopAfter::default()).unwrap();
    assert!(s.last_epoch_loss.is_finite());
    assert_eq!(s.knn.keys().collect::<Vec<_>>(), ["digit", "noise"]);
    let vm = trainer.state_tensors().into_iter().find(|(n, _)| n == "views.out.weight").expect("viewmaker output conv");
    assert_eq!(vm.1.size()[0], 1, "the viewmaker maps back to one channel");
}

/// The `destruction` of each epoch record, per task (`None`: the record has none).
fn destruction_per_epoch(dir: &std::path::Path) -> Vec<Option<serde_json::Map<String, serde_json::Value>>> {
    let recs: Vec<serde_json::Value> = featdrop_core::io::JsonLines::read_all(&dir.join("metrics.jsonl")).unwrap();
    let epochs = recs.iter().filter(|r| r["kind"] == "epoch");
    epochs.map(|r| r.get("destruction").map(|d| d.as_object().expect("an object of tasks").clone())).collect()
}

/// A viewmaker run logs a finite destruction rate for every task after every epoch (and keeps its
/// classifiers in the cache under the names `featdrop-eval destruction` uses); a run whose views
/// have nothing to train logs none.
#[test]
fn viewmaker_runs_log_label_destruction_every_epoch() {
    let _serial = serial();
    let (dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = smoke_config(BaseViews::Viewmaker, 128, 2);
    let mut trainer = Trainer::from_config(cfg.clone(), RunDir::at(dir.path())).unwrap();
    assert!(trainer.monitors_destruction());
    trainer.set_classifier_cache(cache.path());
    trainer.run(StopAfter::default()).unwrap();
    let per_epoch = destruction_per_epoch(dir.path());
    assert_eq!(per_epoch.len(), 2);
    for (e, rates) in per_epoch.iter().enumerate() {
        let rates = rates.as_ref().unwrap_or_else(|| panic!("epoch {} has no destruction", e + 1));
        assert_eq!(rates.keys().collect::<Vec<_>>(), ["digit", "photo"]);
        for (task, r) in rates {
            let r = r.as_f64().unwrap_or(f64::NAN);
            assert!(r.is_finite() && (-0.5..=1.0).contains(&r), "epoch {} task {task}: destruction {r}", e + 1);
        }
    }
    let budget = classifier_budget(&cfg.train.destruction);
    for task in ["digit", "photo"] {
        let entry = ClassifierCache::new(cache.path(), &cfg, Device::Cpu, task, &budget);
        assert!(entry.weights().exists(), "{task}: nothing stored at {}", entry.weights().display());
    }

    let plain = tempfile::tempdir().unwrap();
    let mut trainer = Trainer::from_config(smoke_config(BaseViews::Expert, 64, 1), RunDir::at(plain.path())).unwrap();
    assert!(!trainer.monitors_destruction());
    trainer.run(StopAfter::default()).unwrap();
    assert_eq!(destruction_per_epoch(plain.path()), vec![None]);
}

/// `train.destruction.batch = 0` turns the monitor off for a viewmaker run too.
#[test]
fn destruction_monitor_can_be_turned_off() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = smoke_config(BaseViews::Viewmaker, 64, 1);
    cfg.train.destruction.batch = 0;
    let mut trainer = Trainer::from_config(cfg, RunDir::at(dir.path())).unwrap();
    assert!(!trainer.monitors_destruction());
    trainer.run(StopAfter::default()).unwrap();
    assert_eq!(destruction_per_epoch(dir.path()), vec![None]);
}

fn metrics_of(dir: &std::path::Path) -> Vec<serde_json::Value> {
    featdrop_core::io::JsonLines::read_all(&dir.join("metrics.jsonl")).unwrap()
}

fn epoch_records(dir: &std::path::Path) -> Vec<serde_json::Value> {
    metrics_of(dir).into_iter().filter(|r| r["kind"] == "epoch").collect()
}

fn checkpoint_tags(dir: &std::path::Path) -> Vec<String> {
    featdrop_core::checkpoint::tags(&dir.join("checkpoints")).unwrap()
}

/// Issue 27 items 11 and 13: `--stop-after-epoch N` off the `checkpoint_every` beat stopped
/// without a checkpoint (the rerun silently redid those epochs), and the summary of a resumed run
/// counted only its last session: its time, its images, its first epoch's loss.
#[test]
fn a_stop_checkpoints_and_the_summary_counts_every_attempt() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = smoke_config(BaseViews::None, 64, 3);
    cfg.train.checkpoint_every = 10;
    let stopped = Trainer::from_config(cfg.clone(), RunDir::at(dir.path())).unwrap().run(StopAfter(Some(1))).unwrap();
    assert_eq!(checkpoint_tags(dir.path()), ["epoch-0001"], "the stop is checkpointed");
    let mut resumed = Trainer::from_config(cfg.clone(), RunDir::at(dir.path())).unwrap();
    assert_eq!(resumed.epochs_done(), 1, "the stopped epoch is not redone");
    let s = resumed.run(StopAfter::default()).unwrap();
    assert_eq!(checkpoint_tags(dir.path()), ["epoch-0003"], "the stop's checkpoint is pruned like any other");

    let epochs = epoch_records(dir.path());
    assert_eq!(epochs.iter().map(|r| r["epoch"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(s.first_epoch_loss, epochs[0]["loss"].as_f64(), "the run's first epoch, not the session's");
    assert_eq!(s.first_epoch_loss, stopped.first_epoch_loss);
    let spans: Vec<(usize, usize)> = s.attempts.iter().map(|a| (a.from_epoch, a.to_epoch)).collect();
    assert_eq!(spans, [(0, 1), (1, 3)]);
    assert_eq!(s.seconds, s.attempts.iter().map(|a| a.seconds).sum::<f64>());
    assert!(s.seconds > stopped.seconds && s.attempts[0].seconds == stopped.seconds, "{s:?}");
    // 64 examples in batches of 32, each a pair: 128 images an epoch, over both sessions.
    assert_eq!(s.attempts.iter().map(|a| a.images).sum::<u64>(), 3 * 128);
    assert!((s.images_per_s - 3.0 * 128.0 / s.seconds).abs() < 1e-9, "{s:?}");
    let done: featdrop_contrastive::TrainSummary =
        featdrop_core::io::read_json(&dir.path().join("pretrain.done.json")).unwrap();
    assert_eq!((done.seconds, done.attempts.len()), (s.seconds, 2));

    // A kill between the final checkpoint and pretrain.done.json: the rerun trains nothing and
    // reports the run's costs, not zero.
    drop(resumed);
    std::fs::remove_file(dir.path().join("pretrain.done.json")).unwrap();
    let again = Trainer::from_config(cfg, RunDir::at(dir.path())).unwrap().run(StopAfter::default()).unwrap();
    assert_eq!((again.seconds, again.images_per_s, again.attempts.len()), (s.seconds, s.images_per_s, 2));
    assert_eq!(again.first_epoch_loss, s.first_epoch_loss);
}

/// Issue 27 item 10: a torn last record at an epoch that has a checkpoint was dropped for good
/// (that epoch is not redone); it is put back from the checkpoint. Item 9: a last record that
/// lost only its line end had the next one glued onto it, and the log no longer read.
#[test]
fn a_torn_or_unended_last_record_is_mended_on_resume() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = smoke_config(BaseViews::None, 64, 3);
    let metrics = dir.path().join("metrics.jsonl");
    Trainer::from_config(cfg.clone(), RunDir::at(dir.path())).unwrap().run(StopAfter(Some(1))).unwrap();
    // The epoch-1 record, written just before the epoch-1 checkpoint, loses its line end.
    let text = std::fs::read_to_string(&metrics).unwrap();
    std::fs::write(&metrics, text.trim_end_matches('\n')).unwrap();
    Trainer::from_config(cfg.clone(), RunDir::at(dir.path())).unwrap().run(StopAfter(Some(2))).unwrap();
    let records = epoch_records(dir.path());
    assert_eq!(records.iter().map(|r| r["epoch"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2]);

    // The epoch-2 record is torn in half, though its checkpoint was saved.
    let text = std::fs::read_to_string(&metrics).unwrap();
    let last = text.trim_end_matches('\n').rsplit('\n').next().unwrap().to_string();
    assert!(last.contains(r#""kind":"epoch""#) && last.contains(r#""epoch":2"#), "{last}");
    std::fs::write(&metrics, &text[..text.len() - 1 - last.len() / 2]).unwrap();
    let mut resumed = Trainer::from_config(cfg, RunDir::at(dir.path())).unwrap();
    assert_eq!(resumed.epochs_done(), 2);
    assert_eq!(std::fs::read_to_string(&metrics).unwrap(), text, "the record of epoch 2 is put back as it was");
    resumed.run(StopAfter::default()).unwrap();
    let epochs: Vec<u64> = epoch_records(dir.path()).iter().map(|r| r["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, [1, 2, 3]);
    let steps = metrics_of(dir.path()).iter().filter(|r| r["kind"] == "step").count();
    assert_eq!(steps, 3 * 2, "every step logged once");
}

/// Issue 27 item 12: after a kill at the last epoch the previous checkpoint survived beside the
/// new one, and temp files of interrupted writes were never removed. A resume removes both
/// (temp files of this project's pattern only, and not those of a running process).
#[test]
fn a_resume_removes_what_interrupted_writes_left() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = smoke_config(BaseViews::None, 64, 2);
    cfg.train.keep_epochs = vec![1];
    let ckpts = dir.path().join("checkpoints");
    Trainer::from_config(cfg.clone(), RunDir::at(dir.path())).unwrap().run(StopAfter::default()).unwrap();
    assert_eq!(checkpoint_tags(dir.path()), ["epoch-0001", "epoch-0002"]);
    // Without keep_epochs, epoch 1 would have been pruned after epoch 2 was saved: as a kill
    // between the two leaves it.
    cfg.train.keep_epochs.clear();
    let config = dir.path().join("config.json");
    featdrop_core::io::write_json_atomic(&config, &cfg).unwrap();
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let live = std::os::unix::process::parent_id();
    let stale = [
        ckpts.join(format!(".epoch-0002.safetensors.{dead}.tmp")),
        ckpts.join(format!(".epoch-0002.{dead}.safetensors.tmp")),
        ckpts.join(format!(".latest.json.{dead}.tmp")),
        dir.path().join(format!(".metrics.jsonl.{dead}.tmp")),
    ];
    let kept = [dir.path().join(format!(".probe.json.{live}.tmp")), dir.path().join("notes.tmp")];
    for f in stale.iter().chain(&kept) {
        std::fs::write(f, "half").unwrap();
    }
    let trainer = Trainer::from_config(cfg, RunDir::at(dir.path())).unwrap();
    assert_eq!(trainer.epochs_done(), 2);
    assert_eq!(checkpoint_tags(dir.path()), ["epoch-0002"], "the previous checkpoint is removed");
    for f in &stale {
        assert!(!f.exists(), "{} left", f.display());
    }
    for f in &kept {
        assert!(f.exists(), "{} removed", f.display());
    }
}
