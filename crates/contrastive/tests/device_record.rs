//! Issue 30 item 8: `train.deterministic` switches libtorch's determinism flags on, and a run
//! records the device it was trained on; resuming it on another device kind is refused unless
//! allowed. Its own test binary: the determinism flags are process-wide.

use featdrop_contrastive::{ResumeOptions, StopAfter, Trainer};
use featdrop_core::trained_on::{ALLOW_FLAG, TrainedOn};
use featdrop_core::{BaseViews, DeviceChoice, RunConfig, RunDir};

fn smoke_config(epochs: usize) -> RunConfig {
    let mut cfg = RunConfig::new("test", "photos+digits", BaseViews::None, 0);
    cfg.device = DeviceChoice::Cpu;
    (cfg.data.train_size, cfg.data.test_size, cfg.data.monitor_size) = (64, 64, 64);
    cfg.encoder.arch = featdrop_core::config::Arch::Small;
    cfg.encoder.width = 8;
    (cfg.train.epochs, cfg.train.batch_size, cfg.train.knn_k, cfg.train.view_grid_every) = (epochs, 32, 5, 0);
    cfg.train.checkpoint_every = 1;
    cfg
}

#[test]
fn a_deterministic_run_switches_libtorch_to_deterministic_mode_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::at(dir.path());
    let mut cfg = smoke_config(1);
    cfg.train.deterministic = true;
    Trainer::from_config(cfg, run.clone()).unwrap().run(StopAfter::default()).unwrap();
    let flags = featdrop_torch_ext::determinism().unwrap();
    assert!(flags.algorithms && !flags.warn_only && flags.cudnn_deterministic, "{flags:?}");
    assert!(!flags.cudnn_benchmark && !flags.tf32_cublas && !flags.tf32_cudnn, "{flags:?}");
    let recorded = TrainedOn::read(&run).unwrap().expect("the trainer records its device");
    assert_eq!(recorded, TrainedOn { kind: "cpu".into(), device: "cpu".into(), deterministic: true });
    assert!(RunConfig::from_file(&run.config()).unwrap().train.deterministic, "config.json records it too");
}

#[test]
fn a_run_trained_on_cuda_is_not_resumed_on_the_cpu_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::at(dir.path());
    let cfg = smoke_config(2);
    Trainer::from_config(cfg.clone(), run.clone()).unwrap().run(StopAfter(Some(1))).unwrap();
    assert_eq!(TrainedOn::read(&run).unwrap().unwrap().kind, "cpu");
    // As if the first epoch had run on a GPU.
    let on_cuda = TrainedOn { kind: "cuda".into(), device: "cuda:0".into(), deterministic: false };
    on_cuda.write(&run).unwrap();
    let err = Trainer::from_config(cfg.clone(), run.clone()).err().expect("must refuse").to_string();
    assert!(err.contains("trained on cuda (cuda:0)") && err.contains("resume it on cpu"), "{err}");
    assert!(err.contains(ALLOW_FLAG) && err.contains("trained_on.json"), "{err}");
    assert_eq!(TrainedOn::read(&run).unwrap().unwrap(), on_cuda, "a refused resume changes nothing");
    // Told to, it resumes, and the record says where the run now trains.
    let allow = ResumeOptions { allow_device_change: true };
    let mut trainer = Trainer::from_config_with(cfg, run.clone(), allow).unwrap();
    assert_eq!(trainer.epochs_done(), 1, "resumed from the checkpoint");
    trainer.run(StopAfter::default()).unwrap();
    assert_eq!(TrainedOn::read(&run).unwrap().unwrap().kind, "cpu");
}
