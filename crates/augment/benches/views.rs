//! Batched expert image views against a per-image loop (docs/PROTOCOL.md §3.1: "batched on the device").
//!
//! `cargo bench -p featdrop-augment --bench views [-- DEVICE]`, or `FEATDROP_DEVICE=cuda`;
//! DEVICE is `auto` (default), `cpu`, `cuda` or `cuda:N`, and `cuda` is an error without CUDA.
//! Prints a human line and one JSON line. libtorch's CPU ops use one thread per core; on a machine
//! busy with other work (e.g. parallel builds) its thread pool stalls badly, so compare numbers
//! taken under the same load, or set `OMP_NUM_THREADS=1`.

use anyhow::{Context, Result};
use featdrop_augment::{ExpertImage, ImageRecipe};
use featdrop_core::{DeviceChoice, ViewFamily};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

const BATCH: i64 = 256;

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Views per second of `f` (which makes `views` views per call), over at least `min_s` seconds.
fn rate(device: Device, views: i64, min_s: f64, mut f: impl FnMut(u64)) -> f64 {
    f(0); // warm-up: allocator, kernels, lazy init
    sync(device);
    let start = Instant::now();
    let mut calls = 0u64;
    while calls == 0 || start.elapsed().as_secs_f64() < min_s {
        f(calls + 1);
        calls += 1;
    }
    sync(device);
    (calls as i64 * views) as f64 / start.elapsed().as_secs_f64()
}

fn main() -> Result<()> {
    let choice = DeviceChoice::for_bench().map_err(anyhow::Error::msg)?;
    let device = choice.resolve().context("choosing the benchmark device")?;
    let family = ExpertImage::new(ImageRecipe::default())?;
    let images = featdrop_augment::with_seed(0, || Tensor::rand([BATCH, 3, 32, 32], (Kind::Float, device)));
    let _guard = tch::no_grad_guard();
    let batched = rate(device, BATCH, 2.0, |seed| {
        let _ = family.view(&images, seed);
    });
    let per_image = rate(device, BATCH, 2.0, |seed| {
        for i in 0..BATCH {
            let _ = family.view(&images.narrow(0, i, 1), seed ^ i as u64);
        }
    });
    let name = match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    };
    let ratio = batched / per_image;
    println!(
        "views: batch {BATCH} on {name}: batched {batched:.0} views/s, per-image loop {per_image:.0} views/s ({ratio:.1}x)"
    );
    println!(
        "{{\"bench\":\"views\",\"batch\":{BATCH},\"device\":\"{name}\",\"batched_views_per_s\":{batched:.1},\"per_image_views_per_s\":{per_image:.1},\"ratio\":{ratio:.2}}}"
    );
    Ok(())
}
