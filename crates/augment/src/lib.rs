//! Expert augmentations of featdrop, batched on the device (docs/PROTOCOL.md §3.1, §3.3).
//!
//! * Images: the SimCLR recipe ([`ImageRecipe`]) — random resized crop, colour jitter, grayscale,
//!   Gaussian blur, horizontal flip, per-channel normalisation — drawn with independent random
//!   parameters per sample and applied to the whole `[N, 3, H, W]` batch with tensor ops only.
//!   [`ExpertImage`] is the `expert` view family; [`ExpertImage::augment`] is the same recipe
//!   without the final normalisation (for `expert+viewmaker`), and [`Identity`] is the `none`
//!   family (normalisation only).
//! * [`ColourImage`] is the `colour` family: the photometric ops of the recipe plus pixel noise,
//!   no crop and no flip, so overlays stay in place ([`ColourRecipe`]).
//! * Audio: [`ExpertWaveform`] (crop to a fraction plus white noise, on `[N, samples]`) and
//!   [`ExpertSpectral`] (frequency and time masks on the mel power, Gaussian noise on the log-mel
//!   in dB: stages the log-mel front end calls).
//!
//! Every random draw comes from libtorch's generator on the inputs' device; a view call seeds it
//! from its `seed` ([`with_seed`]) so the same seed gives the same views on the CPU.
#![warn(missing_docs)]

pub mod audio;
pub mod blur;
pub mod color;
pub mod colour;
pub mod consts;
pub mod geometry;
pub mod image;

pub use audio::{ExpertSpectral, ExpertWaveform, SpectralRecipe, WaveformRecipe};
pub use colour::{ColourImage, ColourParams, ColourRecipe};
pub use geometry::CropBoxes;
pub use image::{ExpertImage, Identity, ImageParams, ImageRecipe, Normalize};

use std::sync::atomic::{AtomicBool, Ordering};
use tch::{Device, Kind, Tensor};

pub use featdrop_core::seed::{seed_torch, with_torch_seed as with_seed};

/// `[n]` float samples of U[lo, hi) on `device`.
pub(crate) fn uniform(n: i64, [lo, hi]: [f64; 2], device: Device) -> Tensor {
    Tensor::rand([n], (Kind::Float, device)) * (hi - lo) + lo
}

/// `[n]` booleans, each true with probability `p` (always drawn, so the stream of later draws
/// does not depend on `p`).
pub(crate) fn coin(n: i64, p: f64, device: Device) -> Tensor {
    Tensor::rand([n], (Kind::Float, device)).lt(p)
}

/// Makes [`masked_selection`] true on every device (tests only: a CPU then takes the CUDA path,
/// so that a test can count that path's host round trips on a machine without a GPU).
static FORCE_MASKED: AtomicBool = AtomicBool::new(false);

/// Whether selections of samples on `device` are masked `where`s over the whole batch rather
/// than `nonzero` + `index_select`. On CUDA, `nonzero` reads its count back to the host — a
/// synchronisation per call, ~19 per image view (issue 30 item 7) — so the ops run on every
/// sample and the selected results are kept. On a CPU `nonzero` waits for nothing, and running
/// each op on the samples that drew it makes expert views about 2.7× faster (`cargo bench -p
/// featdrop-augment --bench views`). Both paths give the same numbers.
pub fn masked_selection(device: Device) -> bool {
    device.is_cuda() || FORCE_MASKED.load(Ordering::Relaxed)
}

/// Makes every device take the masked path of [`masked_selection`] (`true`), or each its own
/// (`false`, the default). For tests that count the CUDA path's host round trips on a CPU.
pub fn force_masked_selection(on: bool) {
    FORCE_MASKED.store(on, Ordering::Relaxed);
}

/// Applies `op` to the samples (along dim 0) that `mask` (bool `[N]`) selects; the others are
/// returned untouched, bit for bit.
///
/// `op` gets the samples and `pick`, which turns a per-sample parameter `[N]` into the one for
/// the samples `op` got; it must keep their shape, each sample's result depending on that sample
/// alone. Which samples it gets depends on [`masked_selection`]: all of them (the selected
/// results are kept by a masked `where`, so `op` must not fail on the others; no gradient flows
/// into their inputs here, views being made from data that does not require grad), or only the
/// selected ones.
pub fn on_selected(
    x: &Tensor,
    mask: &Tensor,
    op: impl FnOnce(&Tensor, &dyn Fn(&Tensor) -> Tensor) -> Tensor,
) -> Tensor {
    if masked_selection(x.device()) {
        return op(x, &Tensor::shallow_clone).where_self(&per_sample(mask, x.dim().saturating_sub(1)), x);
    }
    let idx = mask.nonzero().squeeze_dim(1);
    if idx.size()[0] == 0 {
        return x.shallow_clone();
    }
    let y = op(&x.index_select(0, &idx), &|p: &Tensor| p.index_select(0, &idx));
    x.index_copy(0, &idx, &y)
}

/// `[N]` per-sample values reshaped to broadcast over the trailing `dims` dimensions.
pub(crate) fn per_sample(t: &Tensor, dims: usize) -> Tensor {
    let mut shape = vec![-1i64];
    shape.extend(std::iter::repeat_n(1, dims));
    t.view(shape.as_slice())
}

/// Checks that `p` is a probability, naming the field.
pub(crate) fn check_prob(name: &str, p: f64) -> anyhow::Result<()> {
    anyhow::ensure!((0.0..=1.0).contains(&p), "field `{name}` = {p} is out of range; expected a probability in [0, 1]");
    Ok(())
}

/// Checks that `[lo, hi]` is an ordered range inside `[min, max]`, naming the field.
pub(crate) fn check_range(name: &str, [lo, hi]: [f64; 2], min: f64, max: f64) -> anyhow::Result<()> {
    anyhow::ensure!(
        lo.is_finite() && hi.is_finite() && min <= lo && lo <= hi && hi <= max,
        "field `{name}` = [{lo}, {hi}] is out of range; expected {min} <= lo <= hi <= {max}"
    );
    Ok(())
}

#[cfg(test)]
pub(crate) mod testutil {
    use tch::{Device, Kind, Tensor};

    /// Largest absolute difference between two tensors.
    pub fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    /// A deterministic batch of images in [0, 1] with structure in every channel.
    pub fn images(n: i64, h: i64, w: i64) -> Tensor {
        let base = crate::with_seed(1234, || Tensor::rand([n, 3, h, w], (Kind::Float, Device::Cpu)));
        // Smooth the noise a little so crops and blurs change something measurable.
        (base + Tensor::linspace(0.0, 1.0, w, (Kind::Float, Device::Cpu)).view([1, 1, 1, w])) / 2.0
    }
}
