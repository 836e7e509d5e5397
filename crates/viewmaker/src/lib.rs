//! The Viewmaker network (docs/PROTOCOL.md §3.2), after Tamkin, Wu and Goodman, "Viewmaker
//! Networks: Learning Views for Unsupervised Representation Learning" (ICLR 2021): a small
//! image-to-image network that turns an input
//! into a bounded perturbation δ, so that a view is `x + δ` with mean |δ| = ε per example.
//!
//! Structure, for any channel count and any square input whose side is divisible by 4:
//! one channel of uniform noise is concatenated to the input; a down path of 9×9 → 32,
//! 3×3 stride 2 → 64, 3×3 stride 2 → 128 convolutions (reflection padding of kernel/2), each
//! followed by affine instance norm and ReLU; `num_res_blocks` residual blocks, each preceded by
//! one more noise channel (block i works on 128+i channels); an up path of nearest ×2 upsampling
//! with 3×3 convolutions → 64 → 32 (IN, ReLU) and a 9×9 convolution back to the input channels.
//! `δ = tanh(out)`, rescaled per example to the budget. Channel counts scale with `width_mult`
//! (CPU scales use a thin viewmaker; the structure is unchanged).
//!
//! The fresh noise channels make two passes over the same input differ: that is how the two views
//! of a pair come from one network. The budget ε per dataset lives in the dataset catalogue
//! (`featdrop_core::catalogue`), not here.
#![warn(missing_docs)]

mod layers;

use featdrop_core::init;
use layers::{ConvIn, ResBlock};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn};

/// Shape and budget of a viewmaker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewmakerSpec {
    /// Channels of the input (3 for images, 1 for spectrograms).
    pub in_channels: i64,
    /// Residual blocks (the published default is 3; at most 5).
    pub num_res_blocks: usize,
    /// Multiplier on the 32/64/128 channel widths (1.0 = published).
    pub width_mult: f64,
    /// Mean |δ| per example.
    pub epsilon: f64,
    /// Clamp views to [0, 1] (images only; off by default).
    pub clamp: bool,
}

impl ViewmakerSpec {
    /// The published network for `in_channels` channels and budget `epsilon`.
    pub fn published(in_channels: i64, epsilon: f64) -> Self {
        Self { in_channels, num_res_blocks: 3, width_mult: 1.0, epsilon, clamp: false }
    }

    fn widths(&self) -> [i64; 3] {
        [32.0, 64.0, 128.0].map(|w: f64| ((w * self.width_mult).round() as i64).max(1))
    }
}

/// The network. Its parameters live in the `nn::Path` it was built under.
#[derive(Debug)]
pub struct Viewmaker {
    spec: ViewmakerSpec,
    down: Vec<ConvIn>,
    blocks: Vec<ResBlock>,
    up: Vec<ConvIn>,
    out: nn::Conv2D,
}

impl Viewmaker {
    /// Builds the network under `vs`.
    pub fn new(vs: &nn::Path, spec: ViewmakerSpec) -> anyhow::Result<Self> {
        anyhow::ensure!((1..=5).contains(&spec.num_res_blocks), "num_res_blocks must be 1..=5");
        anyhow::ensure!(spec.epsilon > 0.0, "epsilon must be > 0");
        let [w1, w2, w3] = spec.widths();
        let c = spec.in_channels;
        let down = vec![
            ConvIn::new(&(vs / "down0"), c + 1, w1, 9, 1),
            ConvIn::new(&(vs / "down1"), w1, w2, 3, 2),
            ConvIn::new(&(vs / "down2"), w2, w3, 3, 2),
        ];
        let n = spec.num_res_blocks as i64;
        let blocks = (1..=n).map(|i| ResBlock::new(&(vs / format!("res{i}")), w3 + i)).collect();
        let up = vec![ConvIn::new(&(vs / "up0"), w3 + n, w2, 3, 1), ConvIn::new(&(vs / "up1"), w2, w1, 3, 1)];
        let out = init::conv2d(vs / "out", w1, c, 9, Default::default());
        Ok(Self { spec, down, blocks, up, out })
    }

    /// The spec it was built with.
    pub fn spec(&self) -> &ViewmakerSpec {
        &self.spec
    }

    /// The raw perturbation `δ` for `x` `[N, C, H, W]` (H = W divisible by 4), before any clamp:
    /// mean |δ| per example equals ε up to the published `+1e-4` in the rescaling.
    /// Noise comes from torch's global generator (seed it for reproducibility).
    pub fn delta(&self, x: &Tensor) -> Tensor {
        let size = x.size();
        assert!(
            size.len() == 4 && size[2] % 4 == 0 && size[3] % 4 == 0,
            "viewmaker needs [N,C,H,W] with H,W divisible by 4; got {size:?}"
        );
        let mut h = Tensor::cat(&[x.shallow_clone(), noise_like(x)], 1);
        for layer in &self.down {
            h = layer.forward(&h);
        }
        for block in &self.blocks {
            h = block.forward(&Tensor::cat(&[h.shallow_clone(), noise_like(&h)], 1));
        }
        for layer in &self.up {
            let (hh, ww) = (h.size()[2], h.size()[3]);
            h = layer.forward(&h.upsample_nearest2d([hh * 2, ww * 2], None, None));
        }
        let out = layers::reflect_conv(&self.out, &h, 9);
        budget(&out.tanh(), self.spec.epsilon)
    }

    /// The view `x + δ` (clamped to [0, 1] when the spec says so), not normalised.
    pub fn perturb(&self, x: &Tensor) -> Tensor {
        let view = x + self.delta(x);
        if self.spec.clamp { view.clamp(0.0, 1.0) } else { view }
    }
}

/// One channel of U[0, 1) noise shaped like `x`'s first channel, with channels-last strides when
/// `x` has them: libtorch concatenates a channels-last tensor with one whose strides say NCHW into
/// NCHW, which costs the next convolution a copy back. (With one channel both layouts hold the
/// same values in the same order, so the draws do not depend on it; only the strides, which decide
/// the concatenation's layout, do.)
fn noise_like(x: &Tensor) -> Tensor {
    let s = x.size();
    let opts = (x.kind(), x.device());
    if featdrop_torch_ext::is_channels_last(x) {
        Tensor::rand([s[0], s[2], s[3], 1], opts).permute([0, 3, 1, 2])
    } else {
        Tensor::rand([s[0], 1, s[2], s[3]], opts)
    }
}

/// Rescales `delta` per example so that its mean |δ| is `epsilon`: `δ · ε / (mean|δ| + 1e-4)`
/// (the published rule; the 1e-4 guards against an all-zero δ).
pub fn budget(delta: &Tensor, epsilon: f64) -> Tensor {
    let mean = delta.abs().mean_dim([1i64, 2, 3].as_slice(), true, Kind::Float);
    delta * (epsilon / (mean + 1e-4))
}

#[cfg(test)]
mod tests;
