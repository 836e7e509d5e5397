//! Issue 30 item 7: a training step must not make the host wait for the device. Every op that
//! needs a device value on the host (a count, a scalar) forces a synchronisation on CUDA — the GPU
//! drains, the host stalls, the queue of launched kernels runs dry. The step is recorded with
//! libtorch's profiler on the CPU, where the same aten ops run and are visible, and those ops are
//! counted. The views select samples per device (`featdrop_augment::masked_selection`: `nonzero`
//! on a CPU, where it waits for nothing); the CPU is made to take the CUDA path here.

use featdrop_contrastive::Trainer;
use featdrop_core::config::UpdateOrder;
use featdrop_core::{BaseViews, DeviceChoice, RunConfig, RunDir};
use std::collections::BTreeMap;

/// The aten ops whose result the host must see before it can go on, i.e. that synchronise with a
/// CUDA device:
/// * `aten::_local_scalar_dense`: every scalar read (`item()`, tch's `int64_value`,
///   `double_value`); `aten::item` is only its caller, so it is not counted twice;
/// * `aten::nonzero`, `aten::argwhere`, `aten::masked_select`, `aten::unique*`, `aten::_unique*`,
///   `aten::repeat_interleave` (without an output size), `aten::bincount`, `aten::histc`: the
///   size of their output depends on the data, so the host needs it to allocate (boolean-mask
///   indexing goes through `aten::nonzero` and is counted there);
/// * `aten::is_nonzero`, `aten::equal`, `aten::allclose`: they return a host bool.
///
/// Bulk copies to the host (`Tensor::to(cpu)`) also synchronise, but on the CPU they are no-ops
/// or dtype casts that a CPU trace cannot tell apart; the step returns its losses as device
/// tensors, so its only copy, the losses', is the logger's, once per log interval.
fn is_sync(op: &str) -> bool {
    const EXACT: [&str; 11] = [
        "aten::_local_scalar_dense",
        "aten::nonzero",
        "aten::nonzero_numpy",
        "aten::argwhere",
        "aten::masked_select",
        "aten::repeat_interleave",
        "aten::bincount",
        "aten::histc",
        "aten::is_nonzero",
        "aten::equal",
        "aten::allclose",
    ];
    EXACT.contains(&op) || op.starts_with("aten::unique") || op.starts_with("aten::_unique")
}

/// The profiler is process-wide and records every thread's ops: one test at a time.
static PROFILER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The synchronising ops of one training step (after a warm-up step), by name.
fn syncs_per_step(mode: BaseViews, update: UpdateOrder) -> BTreeMap<String, usize> {
    let _one_at_a_time = PROFILER.lock().unwrap_or_else(|e| e.into_inner());
    featdrop_augment::force_masked_selection(true);
    let mut cfg = RunConfig::new("test", "photos+digits", mode, 0);
    cfg.device = DeviceChoice::Cpu;
    (cfg.data.train_size, cfg.data.test_size, cfg.data.monitor_size) = (64, 64, 64);
    cfg.encoder.arch = featdrop_core::config::Arch::Small;
    cfg.encoder.width = 8;
    (cfg.train.batch_size, cfg.train.update, cfg.train.view_grid_every) = (32, update, 0);
    cfg.viewmaker.width_mult = 0.125;
    let (dir, traces) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut trainer = Trainer::from_config(cfg, RunDir::at(dir.path())).unwrap();
    // Warm-up: what happens once per run (e.g. Adam reading its restored step count) is not the
    // step's.
    trainer.time_steps(1);
    let trace = traces.path().join("trace.json");
    featdrop_torch_ext::profile(&trace, false, || trainer.time_steps(1)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let mut counts = BTreeMap::new();
    let events = json["traceEvents"].as_array().expect("a Chrome trace");
    let ops: Vec<&str> = events.iter().filter(|e| e["cat"] == "cpu_op").filter_map(|e| e["name"].as_str()).collect();
    // The trace holds the step: its convolutions and the views' ops are there.
    assert!(ops.iter().any(|o| o.contains("convolution")) && ops.contains(&"aten::where"), "ops: {ops:?}");
    for op in ops.into_iter().filter(|o| is_sync(o)) {
        *counts.entry(op.to_string()).or_default() += 1;
    }
    counts
}

/// Expert views: none. Before: 19 `nonzero` per view (16 colour-jitter selections, grayscale,
/// blur, flip) and the blur radius's `_local_scalar_dense`, 40 per step.
#[test]
fn an_expert_step_synchronises_with_the_device_nowhere() {
    let syncs = syncs_per_step(BaseViews::Expert, UpdateOrder::Alternating);
    assert!(syncs.is_empty(), "an expert step still waits for the device: {syncs:?}");
}

/// Expert views then the viewmaker, in both update orders (the alternating one makes four views
/// per step): none. Before: 81 (alternating), 41 (simultaneous) — the views' as for `expert`,
/// plus Adam reading its step count.
#[test]
fn an_expert_viewmaker_step_synchronises_with_the_device_nowhere() {
    for update in [UpdateOrder::Alternating, UpdateOrder::Simultaneous] {
        let syncs = syncs_per_step(BaseViews::ExpertViewmaker, update);
        assert!(syncs.is_empty(), "an expert+viewmaker step ({update:?}) still waits for the device: {syncs:?}");
    }
}
