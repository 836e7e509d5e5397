//! End-to-end checks of evaluation at smoke scale (CPU): label-destruction rates of known view
//! families, and probe + destruction on a freshly pretrained run through the library API.

use featdrop_augment::Identity;
use featdrop_contrastive::{StopAfter, Trainer};
use featdrop_core::{BaseViews, DeviceChoice, RunConfig, RunDir, Seeds, checkpoint};
use featdrop_data::DatasetSpec;
use featdrop_eval::classifier::{ClassifierCache, SmallCnn};
use featdrop_eval::destruction::measure_task;
use featdrop_eval::report::read_report;
use featdrop_eval::{
    DestructionConfig, DestructionOptions, DestructionReport, FeatureMode, FrozenRun, ProbeOptions, ProbeReport,
    ViewSource, run_destruction, run_probe,
};

/// libtorch's random generator is global to the process: tests that train seeded models and
/// compare results must not interleave their draws.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn identity_destroys_nothing_and_dropout_destroys_the_overlay_label() {
    let _serial = serial();
    let data = featdrop_data::open(&DatasetSpec::synthetic("photos+digits", 1024, 1024, 3)).unwrap();
    let digit = data.tasks().index_of("digit").unwrap();
    let identity = Identity::default();
    let sources = [ViewSource::Family(&identity), ViewSource::Dropout(1.0)];
    let cfg = DestructionConfig { epochs: 2, batch_size: 64, lr: 5e-3, width: 8 };
    let r = measure_task(data.as_ref(), digit, &sources, &cfg, &Seeds::new(1), false).unwrap();
    assert!(r.clean_accuracy > 0.5, "the classifier did not learn the digits: {}", r.clean_accuracy);
    assert_eq!(r.families["identity"].destruction_rate, 0.0);
    assert_eq!(r.families["identity"].accuracy, r.clean_accuracy);
    // A re-drawn digit is independent of the pair's label, so it matches 1 time in 10 whatever the
    // classifier says: the expected accuracy is chance, and the rate 1 − chance / clean.
    let chance = 0.1;
    let expected = 1.0 - chance / r.clean_accuracy;
    let got = r.families["dropout:1"].destruction_rate;
    let tolerance = 3.5 * (chance * (1.0 - chance) / 1024.0).sqrt() / r.clean_accuracy;
    assert!(
        (got - expected).abs() < tolerance,
        "dropout:1 rate {got}, expected {expected} ± {tolerance} (clean {})",
        r.clean_accuracy
    );
}

fn tiny_config(mode: BaseViews, train: usize) -> RunConfig {
    let mut cfg = RunConfig::new("test", "photos+digits", mode, 0);
    cfg.device = DeviceChoice::Cpu;
    cfg.data.train_size = train;
    cfg.data.test_size = 256;
    cfg.data.monitor_size = 128;
    cfg.encoder.arch = featdrop_core::config::Arch::Small;
    cfg.encoder.width = 8;
    cfg.train.epochs = 1;
    cfg.train.batch_size = 32;
    cfg.train.knn_k = 10;
    cfg.train.view_grid_every = 0;
    cfg.viewmaker.width_mult = 0.125;
    cfg.probe.epochs = 2;
    cfg
}

fn pretrain(cfg: RunConfig, dir: &std::path::Path) -> RunDir {
    let run = RunDir::at(dir);
    Trainer::from_config(cfg, run.clone()).unwrap().run(StopAfter(None)).unwrap();
    run
}

#[test]
fn probe_and_destruction_on_a_pretrained_run() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = pretrain(tiny_config(BaseViews::Expert, 256), tmp.path());
    let frozen = FrozenRun::load(&run, None).unwrap();

    // Resumable per task: a second call computes only what is missing.
    let only_photo = ProbeOptions { tasks: Some(vec!["photo".into()]), ..Default::default() };
    let cached = ProbeOptions { features: Some(FeatureMode::Cached), ..only_photo };
    let first = run_probe(&frozen, &cached).unwrap();
    assert_eq!(first.tasks.keys().collect::<Vec<_>>(), ["photo"]);
    let all = run_probe(&frozen, &ProbeOptions { tasks: None, ..cached.clone() }).unwrap();
    assert_eq!(all.tasks.keys().collect::<Vec<_>>(), ["digit", "photo"]);
    assert_eq!(all.tasks["photo"], first.tasks["photo"], "a finished task was recomputed");
    let on_disk: ProbeReport = read_report(&run.probe()).unwrap();
    assert_eq!((&on_disk.protocol, on_disk.tasks.len()), (&all.protocol, 2));
    for (name, t) in &on_disk.tasks {
        // JSON keeps accuracies (k / n) exactly; the loss may lose its last bit.
        assert_eq!(t.top1, all.tasks[name].top1);
        assert!((t.final_train_loss - all.tasks[name].final_train_loss).abs() < 1e-12);
    }
    assert_eq!((on_disk.protocol.features.as_str(), on_disk.protocol.epochs), ("cached", 2));
    assert_eq!(on_disk.protocol.feature_dim, 64 * 4 * 4);
    assert_eq!((on_disk.protocol.train_size, on_disk.protocol.test_size), (256, 256));
    for t in on_disk.tasks.values() {
        assert!((0.0..=1.0).contains(&t.top1) && t.final_train_loss.is_finite(), "{t:?}");
    }

    // Another protocol over an existing file needs --force, and then replaces every task.
    let views = ProbeOptions { features: Some(FeatureMode::Views), tasks: None, ..Default::default() };
    let e = run_probe(&frozen, &views).unwrap_err().to_string();
    assert!(e.contains("another protocol") && e.contains("--force"), "{e}");
    let redone = run_probe(&frozen, &ProbeOptions { force: true, ..views }).unwrap();
    assert_eq!((redone.protocol.features.as_str(), redone.protocol.view_family.as_str()), ("views", "expert"));
    assert_eq!(redone.tasks.len(), 2);

    let classifier = DestructionConfig { epochs: 1, batch_size: 64, lr: 3e-3, width: 4 };
    let opts = DestructionOptions { tasks: None, classifier, grid_rows: 4, ..Default::default() };
    let d = run_destruction(&frozen, &opts).unwrap();
    let on_disk: DestructionReport = read_report(&run.destruction()).unwrap();
    assert_eq!(
        (&on_disk.classifier, on_disk.tasks.keys().map(String::as_str).collect::<Vec<_>>()),
        (&d.classifier, vec!["digit", "photo"])
    );
    assert_eq!(d.checkpoint, None, "an expert run has no viewmaker");
    assert_eq!(d.dropout_p, 1.0);
    let fams: Vec<&String> = d.tasks["digit"].families.keys().collect();
    assert_eq!(fams, ["dropout:1", "expert", "identity"]);
    assert!(run.root().join("destruction.png").exists());
    // Finished: a second call recomputes nothing and keeps the file as it is.
    let before = std::fs::read(run.destruction()).unwrap();
    run_destruction(&frozen, &opts).unwrap();
    assert_eq!(std::fs::read(run.destruction()).unwrap(), before);

    // A classifier cache: the first use trains and stores (same numbers as without it) ...
    let cache = tmp.path().join("classifiers");
    let cached = DestructionOptions { force: true, classifier_cache: Some(cache.clone()), ..opts.clone() };
    assert_eq!(run_destruction(&frozen, &cached).unwrap().tasks, d.tasks);
    let entry = |task: &str, budget: &DestructionConfig| {
        ClassifierCache::new(&cache, &frozen.cfg, tch::Device::Cpu, task, budget).weights()
    };
    let weights = entry("digit", &opts.classifier);
    assert!(weights.exists() && weights.with_extension("json").exists());
    // ... a later use loads instead of training: weights swapped behind its back change the score.
    let other = SmallCnn::new(3, 10, 4, tch::Device::Cpu, 99);
    other.save(&weights).unwrap();
    let swapped = run_destruction(&frozen, &cached).unwrap();
    assert_ne!(swapped.tasks["digit"].clean_accuracy, d.tasks["digit"].clean_accuracy);
    assert_eq!(swapped.tasks["photo"], d.tasks["photo"]);
    // ... and other classifier settings are another classifier: retrained and stored.
    let longer = DestructionConfig { epochs: 2, ..opts.classifier.clone() };
    let retrained =
        run_destruction(&frozen, &DestructionOptions { classifier: longer.clone(), ..cached.clone() }).unwrap();
    assert_ne!(retrained.tasks["digit"].clean_accuracy, swapped.tasks["digit"].clean_accuracy);
    // Stored beside the first (a file per key), not over it.
    let retrained_weights = entry("digit", &longer);
    assert_ne!(retrained_weights, weights);
    assert!(retrained_weights.exists() && weights.exists());
}

/// Issue 15.8: an earlier checkpoint kept with `train.keep_epochs` is probed with `--epoch N` (the
/// library's `FrozenRun::load_at`) into its own entry of probe.json, beside the final one.
#[test]
fn kept_epochs_are_probed_into_their_own_entry() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny_config(BaseViews::Expert, 64);
    (cfg.train.epochs, cfg.train.keep_epochs) = (2, vec![1]);
    let run = pretrain(cfg, tmp.path());
    let cached = ProbeOptions { features: Some(FeatureMode::Cached), ..Default::default() };

    let early = FrozenRun::load_at(&run, None, None, Some(1)).unwrap();
    assert_eq!((early.checkpoint.as_str(), early.earlier_epoch), ("epoch-0001", Some(1)));
    let r = run_probe(&early, &cached).unwrap();
    assert_eq!(r.checkpoint, "epoch-0002", "the top level names the final checkpoint");
    assert!(r.tasks.is_empty(), "the final checkpoint is not probed yet");
    assert_eq!(r.epochs.keys().collect::<Vec<_>>(), [&1]);
    assert_eq!(r.epochs[&1].checkpoint, "epoch-0001");
    assert_eq!(r.epochs[&1].tasks.keys().collect::<Vec<_>>(), ["digit", "photo"]);

    let last = FrozenRun::load(&run, None).unwrap();
    let r2 = run_probe(&last, &cached).unwrap();
    assert_eq!(r2.tasks.keys().collect::<Vec<_>>(), ["digit", "photo"]);
    assert_eq!(r2.epochs, r.epochs, "the earlier entry is kept as it was");
    let on_disk: ProbeReport = read_report(&run.probe()).unwrap();
    assert_eq!((on_disk.schema.as_str(), &on_disk), ("featdrop.probe/2", &r2));
    // Two different encoders were probed.
    let x = early.dataset.batch(
        featdrop_core::Split::Test,
        &tch::Tensor::arange(8, (tch::Kind::Int64, tch::Device::Cpu)),
        0,
    );
    assert!(!early.features(&x.inputs).equal(&last.features(&x.inputs)), "epoch 1 and 2 encoders differ");

    // The last epoch by number is the final checkpoint; an epoch that was not kept is named.
    assert_eq!(FrozenRun::load_at(&run, None, None, Some(2)).unwrap().earlier_epoch, None);
    let e = FrozenRun::load_at(&run, None, None, Some(5)).err().unwrap().to_string();
    assert!(
        e.contains("--epoch 5") && e.contains("it has: epoch-0001, epoch-0002") && e.contains("keep_epochs"),
        "{e}"
    );
}

#[test]
fn viewmaker_runs_restore_their_trained_viewmaker() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny_config(BaseViews::Viewmaker, 64);
    cfg.data.test_size = 64;
    cfg.data.monitor_size = 64;
    let run = pretrain(cfg, tmp.path());
    let frozen = FrozenRun::load(&run, None).unwrap();
    assert!(frozen.has_viewmaker());
    let (saved, _): (Vec<(String, tch::Tensor)>, serde_json::Value) =
        checkpoint::load(&run.checkpoints(), &frozen.checkpoint).unwrap();
    let saved: std::collections::HashMap<_, _> = saved.into_iter().collect();
    let params = frozen.views.trainable();
    assert!(!params.is_empty());
    for (name, p) in params {
        assert!(p.equal(&saved[&format!("views.{name}")]), "viewmaker parameter {name} not restored");
        assert!(!p.requires_grad(), "{name} is not frozen");
    }
    let classifier = DestructionConfig { epochs: 1, batch_size: 32, lr: 3e-3, width: 4 };
    let opts = DestructionOptions { tasks: Some(vec!["digit".into()]), classifier, grid_rows: 2, ..Default::default() };
    let d = run_destruction(&frozen, &opts).unwrap();
    assert_eq!(d.checkpoint.as_deref(), Some(frozen.checkpoint.as_str()));
    assert!(d.tasks["digit"].families.contains_key("viewmaker"));
    assert!(!d.tasks.contains_key("photo"));
}

#[test]
fn incomplete_run_names_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(BaseViews::Expert, 64);
    featdrop_core::io::write_json_atomic(&tmp.path().join("config.json"), &cfg).unwrap();
    let e = FrozenRun::load(&RunDir::at(tmp.path()), None).err().unwrap().to_string();
    assert!(e.contains("incomplete") && e.contains("pretrain.done.json (made by featdrop-train"), "{e}");
}

/// The trainer's destruction monitor stores its classifiers under the key `featdrop-eval
/// destruction` looks up: with the same budget and cache folder, the analysis reuses them (a
/// classifier swapped in behind its back changes its clean accuracy) instead of retraining.
#[test]
fn destruction_reuses_the_classifiers_the_trainer_monitor_cached() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("classifiers");
    let cfg = tiny_config(BaseViews::Viewmaker, 64);
    let run = RunDir::at(tmp.path().join("run"));
    let mut trainer = Trainer::from_config(cfg.clone(), run.clone()).unwrap();
    trainer.set_classifier_cache(&cache);
    trainer.run(StopAfter(None)).unwrap();
    drop(trainer);
    // The entry the analysis looks up, for the budget the monitor trains with.
    let frozen = FrozenRun::load(&run, None).unwrap();
    let budget = featdrop_contrastive::trainer::classifier_budget(&cfg.train.destruction);
    let weights = ClassifierCache::new(&cache, &frozen.cfg, tch::Device::Cpu, "digit", &budget).weights();
    assert!(weights.exists(), "the trainer stored no classifier at {}", weights.display());
    SmallCnn::new(3, 10, budget.width, tch::Device::Cpu, 99).save(&weights).unwrap();
    let fresh = DestructionOptions { classifier: budget, ..Default::default() };
    let trained = run_destruction(&frozen, &fresh).unwrap();
    let cached = DestructionOptions { force: true, classifier_cache: Some(cache), ..fresh };
    let reused = run_destruction(&frozen, &cached).unwrap();
    // Retraining would reproduce `trained` exactly; the swapped digit classifier reads otherwise.
    assert_ne!(reused.tasks["digit"].clean_accuracy, trained.tasks["digit"].clean_accuracy);
    // The photo classifier the trainer cached is the one the analysis trains itself.
    assert_eq!(reused.tasks["photo"], trained.tasks["photo"]);
}

/// A `colour` run's own family is scored beside identity and expert: its views keep the overlay
/// in place, so they should destroy far less of the digit label than expert views do.
#[test]
fn destruction_of_a_colour_run_scores_the_colour_family() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = pretrain(tiny_config(BaseViews::Colour, 256), tmp.path());
    let frozen = FrozenRun::load(&run, None).unwrap();
    let classifier = DestructionConfig { epochs: 3, batch_size: 64, lr: 3e-3, width: 8 };
    let d = run_destruction(&frozen, &DestructionOptions { classifier, ..Default::default() }).unwrap();
    let digit = &d.tasks["digit"].families;
    assert_eq!(digit.keys().map(String::as_str).collect::<Vec<_>>(), ["colour", "dropout:1", "expert", "identity"]);
    let (colour, expert) = (digit["colour"].destruction_rate, digit["expert"].destruction_rate);
    assert!(colour < expert - 0.2, "colour views destroy {colour:.3} of the digit label, expert views {expert:.3}");
}

/// A pid no process has: a child that has ended and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Issue 27 item 1: destruction.json was written after each task, and a file there counted as a
/// finished analysis — a failure (a kill, a full disk) between the two tasks left only the first,
/// never completed. Now it is written whole at the end; the finished tasks wait in
/// destruction.partial.json and the rerun resumes after them. Temp files that interrupted writes
/// left are removed (item 12): the analysis's own in the run, old ones in the classifier cache.
#[test]
fn an_interrupted_destruction_analysis_writes_no_partial_result_and_resumes() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = pretrain(tiny_config(BaseViews::Expert, 64), tmp.path());
    let frozen = FrozenRun::load(&run, None).unwrap();
    let cache = tmp.path().join("classifiers");
    let classifier = DestructionConfig { epochs: 1, batch_size: 32, lr: 3e-3, width: 4 };
    let opts = DestructionOptions {
        classifier: classifier.clone(),
        classifier_cache: Some(cache.clone()),
        ..Default::default()
    };
    // The second task fails: its classifier cannot be stored (a folder where its file goes).
    let names = frozen.dataset.tasks().names().into_iter().map(String::from).collect::<Vec<_>>();
    let (first, second) = (&names[0], &names[1]);
    let blocked = ClassifierCache::new(&cache, &frozen.cfg, tch::Device::Cpu, second, &classifier).weights();
    std::fs::create_dir_all(&blocked).unwrap();
    run_destruction(&frozen, &opts).expect_err("storing the second classifier fails");
    assert!(!run.destruction().exists(), "a destruction.json with only `{first}` would count as finished");
    let partial: DestructionReport = read_report(&run.destruction_partial()).unwrap();
    assert_eq!(partial.tasks.keys().collect::<Vec<_>>(), [first]);

    // Leftovers of interrupted writes: a dead writer's temp files, an old and a fresh one in the
    // cache (a fresh one may be another machine's write in progress).
    let dead = dead_pid();
    let stale_run = run.root().join(format!(".destruction.json.{dead}.tmp"));
    let stale_cache = cache.join(format!(".x.seed-0.digit.00.{dead}.tmp.safetensors"));
    let fresh_cache = cache.join(format!(".y.seed-0.digit.00.{dead}.tmp.safetensors"));
    for f in [&stale_run, &stale_cache, &fresh_cache] {
        std::fs::write(f, "half").unwrap();
    }
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&stale_cache).unwrap().set_modified(hour_ago).unwrap();

    // The first task is kept, not recomputed: a value marked in the partial file survives.
    let mut marked = partial.clone();
    marked.tasks.get_mut(first).unwrap().clean_accuracy = 0.123;
    featdrop_core::io::write_json_atomic(&run.destruction_partial(), &marked).unwrap();
    std::fs::remove_dir(&blocked).unwrap();
    let done = run_destruction(&frozen, &DestructionOptions { grid_rows: 2, ..opts }).unwrap();
    let on_disk: DestructionReport = read_report(&run.destruction()).unwrap();
    assert_eq!(on_disk, done);
    assert_eq!(on_disk.tasks.keys().collect::<Vec<_>>(), ["digit", "photo"]);
    assert_eq!(on_disk.tasks[first].clean_accuracy, 0.123, "the finished task was recomputed");
    assert!(run.root().join("destruction.png").exists());
    assert!(!run.destruction_partial().exists(), "the partial file goes once the whole one is written");
    assert!(!stale_run.exists() && !stale_cache.exists(), "temp files of interrupted writes stay");
    assert!(fresh_cache.exists(), "a fresh temp file in the shared cache is left alone");
}

/// Issue 27 item 2: `probe --epochs 0 --force` replaced a finished probe.json by an untrained
/// probe at chance (and without --force recorded chance as done). 0 epochs is refused, and
/// nothing is written.
#[test]
fn a_probe_of_zero_epochs_is_refused_and_writes_nothing() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let run = pretrain(tiny_config(BaseViews::Expert, 64), tmp.path());
    let frozen = FrozenRun::load(&run, None).unwrap();
    let cached = ProbeOptions { features: Some(FeatureMode::Cached), ..Default::default() };
    run_probe(&frozen, &cached).unwrap();
    let before = std::fs::read(run.probe()).unwrap();
    for force in [true, false] {
        let zero = ProbeOptions { epochs: Some(0), force, ..cached.clone() };
        let e = format!("{:#}", run_probe(&frozen, &zero).unwrap_err());
        assert!(e.contains("--epochs = 0 is out of range; expected an integer ≥ 1"), "{e}");
        assert_eq!(std::fs::read(run.probe()).unwrap(), before, "probe.json changed (force: {force})");
    }
    let cfg = featdrop_core::config::ProbeConfig { epochs: 0, ..frozen.cfg.probe.clone() };
    let e = featdrop_eval::probe_encoder(&frozen.frozen(), &cfg).unwrap_err().to_string();
    assert!(e.contains("probe.epochs = 0 is out of range"), "{e}");
    // The command line refuses it before loading the run (this folder holds none).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_featdrop-eval"))
        .args(["probe", "--epochs", "0", "--force", "--run"])
        .arg(tmp.path().join("nowhere"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--epochs = 0 is out of range"), "{stderr}");
}
