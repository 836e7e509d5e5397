//! Per-op self time from a Chrome trace of libtorch's (Kineto) profiler — the file featdrop's train
//! bench saves with `FEATDROP_BENCH_TRACE` and `torch.profiler`'s `export_chrome_trace` writes for
//! the PyTorch pipeline — so the two implementations' steps can be compared op by op.
//!
//! An op's *self* time is its duration less the durations of the ops it called (its direct
//! children on the same thread): `aten::conv2d` calls `aten::convolution`, which calls
//! `aten::mkldnn_convolution`, and only the innermost one does the work.

use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Seconds of self time per op name, summed over the whole trace, and the trace's wall span.
#[derive(Debug, Default)]
pub struct OpTimes {
    pub self_s: BTreeMap<String, f64>,
    pub wall_s: f64,
}

struct Event {
    name: String,
    start: f64,
    dur: f64,
}

/// Reads a Chrome trace and sums each CPU op's self time.
pub fn op_times(path: &Path) -> Result<OpTimes> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the trace {}", path.display()))?;
    let json: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let events = json["traceEvents"]
        .as_array()
        .with_context(|| format!("{}: no `traceEvents` array (not a Chrome trace)", path.display()))?;
    let mut threads: HashMap<String, Vec<Event>> = HashMap::new();
    for e in events.iter().filter(|e| e["ph"] == "X" && e["cat"] == "cpu_op") {
        let (Some(name), Some(start), Some(dur)) = (e["name"].as_str(), e["ts"].as_f64(), e["dur"].as_f64()) else {
            continue;
        };
        let thread = format!("{}/{}", e["pid"], e["tid"]);
        threads.entry(thread).or_default().push(Event { name: name.to_string(), start, dur });
    }
    let mut times = OpTimes::default();
    let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
    for list in threads.values_mut() {
        for e in list.iter() {
            first = first.min(e.start);
            last = last.max(e.start + e.dur);
        }
        for (name, s) in self_times(list) {
            *times.self_s.entry(name).or_default() += s;
        }
    }
    times.wall_s = if last > first { (last - first) * 1e-6 } else { 0.0 };
    Ok(times)
}

/// Self time (seconds) of each event of one thread: events nest, so a stack of open events finds
/// each one's parent, whose self time loses the child's duration.
fn self_times(events: &mut [Event]) -> Vec<(String, f64)> {
    // Parents first: earlier start, and the longer one when two start together.
    events.sort_by(|a, b| a.start.total_cmp(&b.start).then(b.dur.total_cmp(&a.dur)));
    let mut self_us: Vec<f64> = events.iter().map(|e| e.dur).collect();
    let mut open: Vec<usize> = Vec::new();
    for i in 0..events.len() {
        while let Some(&top) = open.last() {
            if events[i].start >= events[top].start + events[top].dur {
                open.pop();
            } else {
                break;
            }
        }
        if let Some(&parent) = open.last() {
            self_us[parent] -= events[i].dur;
        }
        open.push(i);
    }
    events.iter().zip(self_us).map(|(e, us)| (e.name.clone(), us.max(0.0) * 1e-6)).collect()
}

/// The ops that do the arithmetic of convolutional networks (convolution, batch/instance norm and
/// matrix products, forward and backward): the kernels both implementations share, as opposed to
/// the ops around them (copies, element-wise updates, view making).
pub fn is_compute_kernel(op: &str) -> bool {
    ["convolution", "batch_norm", "addmm", "aten::mm", "aten::bmm"].iter().any(|k| op.contains(k))
}

/// Prints the per-op comparison of one configuration, seconds per step: the ops that take the most
/// time on either side, then the totals that matter — the share of each step spent in the shared
/// compute kernels, and (for PyTorch) the time outside torch ops (Python, PIL, the data loader).
/// Returns the JSON record of it.
/// `gflop` is the arithmetic of one step where it is known (the paper expert step), to state the
/// rate achieved over the whole step next to the rate of the compute kernels alone.
pub fn print_comparison(
    config: &str,
    (ours, theirs): (&OpTimes, &OpTimes),
    steps: usize,
    rows: usize,
    gflop: Option<f64>,
) -> Value {
    let per_step = |t: &OpTimes, op: &str| t.self_s.get(op).copied().unwrap_or(0.0) / steps as f64;
    let mut ops: Vec<&String> = ours.self_s.keys().chain(theirs.self_s.keys()).collect();
    ops.sort();
    ops.dedup();
    ops.sort_by(|a, b| {
        let key = |op: &str| per_step(ours, op).max(per_step(theirs, op));
        key(b).total_cmp(&key(a))
    });
    println!("\n{config}: self time per step, by op (libtorch's profiler, {steps} steps)");
    println!("| op | featdrop s | PyTorch s | featdrop / PyTorch time |");
    println!("|---|---:|---:|---:|");
    for op in ops.iter().take(rows) {
        let (a, b) = (per_step(ours, op), per_step(theirs, op));
        println!("| `{op}` | {a:.3} | {b:.3} | {:.2} |", a / b);
    }
    let summary = |t: &OpTimes| {
        let ops: f64 = t.self_s.values().sum::<f64>() / steps as f64;
        let kernels: f64 = t.self_s.iter().filter(|(k, _)| is_compute_kernel(k)).map(|(_, v)| v).sum::<f64>();
        let wall = t.wall_s / steps as f64;
        (wall, ops, kernels / steps as f64)
    };
    // featdrop's time in ops the PyTorch step runs too (its own extras, e.g. batched view ops
    // PyTorch does in PIL, fall outside), and PyTorch's time in those same ops.
    let shared: Vec<&String> = ours.self_s.keys().filter(|k| theirs.self_s.contains_key(*k)).collect();
    let in_shared = |t: &OpTimes| shared.iter().map(|k| t.self_s[*k]).sum::<f64>() / steps as f64;
    let (os, ts) = (in_shared(ours), in_shared(theirs));
    let (ow, oo, ok) = summary(ours);
    let (tw, to, tk) = summary(theirs);
    println!("| **all ops** | {oo:.3} | {to:.3} | {:.2} |", oo / to);
    println!("| **compute kernels (conv, norm, matmul)** | {ok:.3} | {tk:.3} | {:.2} |", ok / tk);
    println!("| **ops both steps run** | {os:.3} | {ts:.3} | {:.2} |", os / ts);
    println!("| **step, first op to last** | {ow:.3} | {tw:.3} | {:.2} |", ow / tw);
    println!(
        "featdrop's step: {:.1} % in ops PyTorch's step runs too, {:.1} % in compute kernels (PyTorch's: {:.1} %); \
         outside torch ops (Python, PIL, loader): featdrop {:.1} %, PyTorch {:.1} %",
        100.0 * os / ow,
        100.0 * ok / ow,
        100.0 * tk / tw,
        100.0 * (ow - oo).max(0.0) / ow,
        100.0 * (tw - to).max(0.0) / tw
    );
    if let Some(g) = gflop {
        println!(
            "{g:.0} GFLOP per step: featdrop {:.1} GFLOP/s over the step, {:.1} in its compute kernels; PyTorch {:.1} \
             over the step, {:.1} in its compute kernels",
            g / ow,
            g / ok,
            g / tw,
            g / tk
        );
    }
    serde_json::json!({"featdrop": {"step_s": ow, "ops_s": oo, "compute_kernels_s": ok, "shared_ops_s": os},
        "pytorch": {"step_s": tw, "ops_s": to, "compute_kernels_s": tk, "shared_ops_s": ts},
        "compute_kernel_share": {"featdrop": ok / ow, "pytorch": tk / tw}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(events: &[(&str, u64, f64, f64)]) -> String {
        let list: Vec<Value> = events
            .iter()
            .map(|(name, tid, ts, dur)| {
                serde_json::json!({"ph": "X", "cat": "cpu_op", "name": name, "pid": 1, "tid": tid, "ts": ts, "dur": dur})
            })
            .chain([serde_json::json!({"ph": "X", "cat": "python_function", "name": "step", "pid": 1, "tid": 1, "ts": 0.0, "dur": 1e6})])
            .collect();
        serde_json::json!({"traceEvents": list}).to_string()
    }

    #[test]
    fn self_time_subtracts_direct_children_on_the_same_thread_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        // conv2d [0, 100) calls convolution [10, 90) which calls mkldnn_convolution [20, 80);
        // a second thread runs an mm [50, 150) that must not count as anyone's child.
        let events = [
            ("aten::conv2d", 1, 0.0, 100.0),
            ("aten::convolution", 1, 10.0, 80.0),
            ("aten::mkldnn_convolution", 1, 20.0, 60.0),
            ("aten::add_", 1, 100.0, 5.0),
            ("aten::mm", 2, 50.0, 100.0),
        ];
        std::fs::write(&path, trace(&events)).unwrap();
        let t = op_times(&path).unwrap();
        let us = |k: &str| (t.self_s[k] * 1e6).round();
        assert_eq!(us("aten::conv2d"), 20.0);
        assert_eq!(us("aten::convolution"), 20.0);
        assert_eq!(us("aten::mkldnn_convolution"), 60.0);
        assert_eq!(us("aten::add_"), 5.0);
        assert_eq!(us("aten::mm"), 100.0);
        assert!(!t.self_s.contains_key("step"), "only cpu_op events count");
        assert!((t.wall_s * 1e6 - 150.0).abs() < 1e-6);
    }

    #[test]
    fn a_file_that_is_not_a_chrome_trace_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, "{\"events\": []}").unwrap();
        let err = format!("{:#}", op_times(&path).unwrap_err());
        assert!(err.contains("bad.json") && err.contains("traceEvents"), "{err}");
    }

    #[test]
    fn compute_kernels_are_the_convolution_norm_and_matmul_ops() {
        for op in [
            "aten::mkldnn_convolution",
            "aten::convolution_backward",
            "aten::native_batch_norm",
            "aten::addmm",
            "aten::mm",
        ] {
            assert!(is_compute_kernel(op), "{op}");
        }
        for op in ["aten::add_", "aten::copy_", "aten::grid_sampler_2d", "aten::mul"] {
            assert!(!is_compute_kernel(op), "{op}");
        }
    }
}
