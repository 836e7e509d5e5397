//! Batches/s of composing 256 `photos+letters` examples on the CPU: the batched tensor path
//! against a per-image loop (the same code called with one index at a time). docs/PROTOCOL.md §2.1 says
//! composition must be batched so re-drawing overlays every epoch is free.
//!
//! `cargo bench -p featdrop-data --bench compose`

use featdrop_core::Split;
use featdrop_data::{DatasetSpec, open};
use std::time::{Duration, Instant};
use tch::{Kind, Tensor};

const BATCH: i64 = 256;

/// Calls `f` until `budget` has passed (at least 3 times); returns calls per second.
fn rate(budget: Duration, mut f: impl FnMut(u64)) -> f64 {
    f(0); // warm-up
    let t = Instant::now();
    let mut n = 0;
    while n < 3 || t.elapsed() < budget {
        f(n + 1);
        n += 1;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    tch::set_num_threads(1);
    let ds = open(&DatasetSpec::synthetic("photos+letters", 2048, 16, 0)).expect("dataset");
    let idx = Tensor::randperm(2048, (Kind::Int64, tch::Device::Cpu)).narrow(0, 0, BATCH);
    let one: Vec<Tensor> = (0..BATCH).map(|i| idx.narrow(0, i, 1)).collect();
    let budget = Duration::from_secs(3);
    let batched = rate(budget, |s| {
        std::hint::black_box(ds.batch(Split::Train, &idx, s));
    });
    let looped = rate(budget, |s| {
        for (i, ix) in one.iter().enumerate() {
            std::hint::black_box(ds.batch(Split::Train, ix, s * 1000 + i as u64));
        }
    });
    let ratio = batched / looped;
    println!(
        "compose photos+letters, {BATCH} examples, CPU (1 thread): batched {batched:.1} batches/s \
         ({:.0} images/s), per-image loop {looped:.2} batches/s ({:.0} images/s), {ratio:.1}x",
        batched * BATCH as f64,
        looped * BATCH as f64
    );
    println!(
        "{}",
        serde_json::json!({"bench": "data", "dataset": "photos+letters", "batch": BATCH, "device": "cpu", "threads": 1,
            "batched_batches_per_s": batched, "per_image_batches_per_s": looped, "ratio": ratio})
    );
}
