//! Spectrogram throughput (docs/PROTOCOL.md §2.2): normalised 64×64 log-mel features of a batch of 128
//! mixed 50 000-sample clips, computed as one batched tensor pass against a per-example loop of
//! the same code, on one device.
//!
//! `cargo xtask bench audio`, or `cargo bench -p featdrop-data --bench spectrogram -- cpu|cuda|auto`.

use featdrop_core::DeviceChoice;
use featdrop_data::audio::mel::{LogMel, MelConfig};
use std::time::{Duration, Instant};
use tch::{Kind, Tensor};

const BATCH: i64 = 128;
const SAMPLES: i64 = 50_000;

/// Calls `f` until `budget` has passed (at least 3 times, after a warm-up); returns calls per second.
fn rate(budget: Duration, device: tch::Device, mut f: impl FnMut()) -> f64 {
    let sync = || {
        if let tch::Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    f();
    sync();
    let (t, mut n) = (Instant::now(), 0);
    while n < 3 || t.elapsed() < budget {
        f();
        n += 1;
    }
    sync();
    n as f64 / t.elapsed().as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let choice = DeviceChoice::for_bench().map_err(anyhow::Error::msg)?;
    let device = choice.resolve()?;
    let mel = LogMel::new(MelConfig::default(), device);
    let waves = featdrop_data::with_seed(0, || Tensor::randn([BATCH, SAMPLES], (Kind::Float, device)) * 0.05);
    let one: Vec<Tensor> = (0..BATCH).map(|i| waves.narrow(0, i, 1)).collect();
    let budget = Duration::from_secs(3);
    let batched = rate(budget, device, || {
        let _ = std::hint::black_box(mel.features(&waves));
    });
    let looped = rate(budget, device, || {
        for w in &one {
            let _ = std::hint::black_box(mel.features(w));
        }
    });
    let (b, l) = (batched * BATCH as f64, looped * BATCH as f64);
    println!(
        "log-mel of {BATCH} clips on {device:?}: batched {b:.0} examples/s ({batched:.2} batches/s), per-example loop {l:.0} examples/s, {:.1}x",
        b / l
    );
    let record = serde_json::json!({"bench": "audio", "device": format!("{device:?}"), "batch": BATCH,
        "batched_examples_per_s": b, "per_example_examples_per_s": l, "ratio": b / l});
    println!("{record}");
    Ok(())
}
