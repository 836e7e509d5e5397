//! Issue 25 item 4: the channels-last layout (of the encoder and the viewmaker) is a speed option
//! that `train.channels_last = "auto"` (the default) picks per device. A training step computes the
//! same losses and gradients in it as in the NCHW layout, up to float rounding, and the run's
//! `config.json` records the layout that ran.

use featdrop_contrastive::{StopAfter, Trainer};
use featdrop_core::config::{Arch, ChannelsLast, UpdateOrder};
use featdrop_core::io::{JsonLines, read_json};
use featdrop_core::{BaseViews, DeviceChoice, RunConfig, RunDir};
use std::collections::BTreeMap;
use tch::Tensor;

/// One epoch of one step (32 examples, batch 32) of a viewmaker run in the published alternating
/// order: the encoder's step and the viewmaker's, whose gradient flows back through the encoder.
fn one_step_config(channels_last: ChannelsLast) -> RunConfig {
    let mut cfg = RunConfig::new("test", "photos+digits", BaseViews::Viewmaker, 0);
    cfg.device = DeviceChoice::Cpu;
    (cfg.data.train_size, cfg.data.test_size, cfg.data.monitor_size) = (32, 32, 32);
    (cfg.encoder.arch, cfg.encoder.width) = (Arch::Small, 8);
    (cfg.train.epochs, cfg.train.batch_size, cfg.train.update) = (1, 32, UpdateOrder::Alternating);
    (cfg.train.knn_k, cfg.train.view_grid_every, cfg.train.destruction.batch) = (5, 0, 0);
    cfg.viewmaker.width_mult = 0.125;
    cfg.train.channels_last = channels_last;
    cfg
}

struct Step {
    /// (encoder loss, viewmaker loss) of the step.
    losses: (f64, f64),
    /// Every tensor of the checkpoint after the step, contiguous, by name.
    state: BTreeMap<String, Tensor>,
    /// `train.channels_last` as the run's `config.json` records it.
    recorded: serde_json::Value,
    /// Whether the encoder's convolution weights are channels-last.
    encoder_channels_last: bool,
    /// Whether the viewmaker's convolution weights are channels-last.
    viewmaker_channels_last: bool,
}

fn train_one_step(channels_last: ChannelsLast) -> Step {
    let dir = tempfile::tempdir().unwrap();
    let mut trainer = Trainer::from_config(one_step_config(channels_last), RunDir::at(dir.path())).unwrap();
    trainer.run(StopAfter::default()).unwrap();
    let (records, _) = JsonLines::read_complete::<serde_json::Value>(&dir.path().join("metrics.jsonl")).unwrap();
    let step: Vec<_> = records.iter().filter(|r| r["kind"] == "step").collect();
    assert_eq!(step.len(), 1, "one step: {records:?}");
    let losses = (step[0]["loss"].as_f64().unwrap(), step[0]["viewmaker_loss"].as_f64().unwrap());
    let layout_of = |prefix: &str| {
        let convs: Vec<_> =
            trainer.state_tensors().into_iter().filter(|(n, t)| n.starts_with(prefix) && t.dim() == 4).collect();
        assert!(!convs.is_empty());
        convs.iter().all(|(_, t)| featdrop_torch_ext::is_channels_last(t))
    };
    let (encoder_channels_last, viewmaker_channels_last) = (layout_of("enc."), layout_of("views."));
    let state = trainer.state_tensors().into_iter().map(|(n, t)| (n, t.contiguous())).collect();
    let config: serde_json::Value = read_json(&dir.path().join("config.json")).unwrap();
    let recorded = config["train"]["channels_last"].clone();
    Step { losses, state, recorded, encoder_channels_last, viewmaker_channels_last }
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

#[test]
fn a_channels_last_step_computes_the_default_layouts_losses_and_gradients() {
    let nchw = train_one_step(ChannelsLast::Fixed(false));
    let cl = train_one_step(ChannelsLast::Fixed(true));
    assert!(cl.encoder_channels_last && !nchw.encoder_channels_last, "each run used the layout it asked for");
    assert!(cl.viewmaker_channels_last && !nchw.viewmaker_channels_last, "the viewmaker's too");
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * a.abs().max(1.0);
    assert!(close(nchw.losses.0, cl.losses.0), "encoder loss {:?} vs {:?}", nchw.losses, cl.losses);
    assert!(close(nchw.losses.1, cl.losses.1), "viewmaker loss {:?} vs {:?}", nchw.losses, cl.losses);
    assert_eq!(nchw.state.keys().collect::<Vec<_>>(), cl.state.keys().collect::<Vec<_>>());
    // After one step, SGD's momentum buffers hold the encoder's gradients (plus weight decay) and
    // Adam's first moments 0.1 × the viewmaker's; the encoder's weights and batch-norm statistics
    // have taken the step.
    let compared: Vec<&String> = nchw
        .state
        .keys()
        .filter(|n| n.starts_with("enc.") || n.starts_with("sgd.") || (n.starts_with("adam.") && n.ends_with(".m")))
        .collect();
    assert!(compared.iter().any(|n| n.starts_with("sgd.")) && compared.iter().any(|n| n.starts_with("adam.")));
    // Within 1e-3 of each tensor's own scale; a gradient that is zero but for rounding (the
    // viewmaker's convolution biases, which its instance norms cancel) is held to 1e-5 of the
    // largest gradient of its optimiser instead.
    let group_max = |prefix: &str| {
        nchw.state.iter().filter(|(n, _)| n.starts_with(prefix)).map(|(_, t)| max_abs(t)).fold(0.0, f64::max)
    };
    for name in compared {
        let (a, b) = (&nchw.state[name], &cl.state[name]);
        let group = group_max(name.split('.').next().unwrap());
        let (d, tolerance) = (max_abs(&(a - b)), 1e-3 * max_abs(a) + 1e-5 * group);
        assert!(d <= tolerance, "{name}: the layouts differ by {d:e} (tolerance {tolerance:e}, largest {group:e})");
    }
}

/// The default `auto` is resolved before the run starts and `config.json` holds the boolean that
/// ran; a resumed run keeps the recorded layout even where `auto` would now pick the other one.
#[test]
fn config_json_records_the_layout_auto_resolved_to_and_a_resume_keeps_it() {
    let auto = train_one_step(ChannelsLast::Auto);
    let picked = ChannelsLast::Auto.resolve(false, Arch::Small);
    assert_eq!(auto.recorded, serde_json::Value::Bool(picked), "config.json records what ran, not \"auto\"");
    assert_eq!(auto.encoder_channels_last, picked);

    let dir = tempfile::tempdir().unwrap();
    let mut first = one_step_config(ChannelsLast::Fixed(!picked));
    first.train.epochs = 2;
    let mut trainer = Trainer::from_config(first.clone(), RunDir::at(dir.path())).unwrap();
    trainer.run(StopAfter(Some(1))).unwrap();
    drop(trainer);
    let resumed = RunConfig {
        train: featdrop_core::config::TrainConfig { channels_last: ChannelsLast::Auto, ..first.train },
        ..first
    };
    let mut trainer = Trainer::from_config(resumed, RunDir::at(dir.path())).expect("auto matches the recorded layout");
    assert_eq!(trainer.config().train.channels_last, ChannelsLast::Fixed(!picked), "the recorded layout is kept");
    assert_eq!(trainer.run(StopAfter::default()).unwrap().epochs, 2);
    let config: serde_json::Value = read_json(&dir.path().join("config.json")).unwrap();
    assert_eq!(config["train"]["channels_last"], !picked);
}
