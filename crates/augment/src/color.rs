//! Colour operations on `[N, 3, H, W]` RGB batches in [0, 1], with per-sample factors, following
//! torchvision's definitions (docs/PROTOCOL.md §3.1): brightness, contrast, saturation, hue, grayscale.

use crate::per_sample;
use tch::{Device, Kind, Tensor};

/// ITU-R 601 luma weights (R, G, B), as torchvision's `rgb_to_grayscale`.
pub const LUMA: [f64; 3] = [0.299, 0.587, 0.114];

/// Luma `[N, 1, H, W]` of RGB images `[N, 3, H, W]`.
pub fn luma(images: &Tensor) -> Tensor {
    let w = crate::consts::constant(&LUMA, &[1, 3, 1, 1], images.kind(), images.device());
    (images * w).sum_dim_intlist(1, true, images.kind())
}

/// Grayscale images `[N, 3, H, W]`: the luma copied into all three channels.
pub fn grayscale(images: &Tensor) -> Tensor {
    luma(images).expand_as(images).contiguous()
}

/// `ratio·a + (1 − ratio)·b`, clamped to [0, 1]; `ratio` is `[N]`.
fn blend(a: &Tensor, b: &Tensor, ratio: &Tensor) -> Tensor {
    let r = per_sample(ratio, 3);
    (a * &r + b * (r.neg() + 1.0)).clamp(0.0, 1.0)
}

/// Multiplies each image by its factor (`[N]`, ≥ 0) and clamps to [0, 1].
pub fn adjust_brightness(images: &Tensor, factor: &Tensor) -> Tensor {
    (images * per_sample(factor, 3)).clamp(0.0, 1.0)
}

/// Blends each image with its mean gray level by `factor` (`[N]`; 0 = flat gray, 1 = unchanged).
pub fn adjust_contrast(images: &Tensor, factor: &Tensor) -> Tensor {
    let mean = luma(images).mean_dim([1i64, 2, 3].as_slice(), true, images.kind());
    blend(images, &mean, factor)
}

/// Blends each image with its grayscale version by `factor` (`[N]`; 0 = gray, 1 = unchanged).
pub fn adjust_saturation(images: &Tensor, factor: &Tensor) -> Tensor {
    blend(images, &luma(images), factor)
}

/// Rotates each image's hue by `shift` turns (`[N]`, torchvision allows [−0.5, 0.5]) in HSV.
pub fn adjust_hue(images: &Tensor, shift: &Tensor) -> Tensor {
    let hsv = rgb_to_hsv(images);
    let h = (hsv.narrow(1, 0, 1) + per_sample(shift, 3)).remainder(1.0);
    hsv_to_rgb(&Tensor::cat(&[h, hsv.narrow(1, 1, 2)], 1))
}

/// RGB `[N, 3, H, W]` in [0, 1] to HSV with every component in [0, 1] (torchvision's `_rgb2hsv`).
pub fn rgb_to_hsv(images: &Tensor) -> Tensor {
    let (r, g, b) = (images.narrow(1, 0, 1), images.narrow(1, 1, 1), images.narrow(1, 2, 1));
    let maxc = images.amax([1i64].as_slice(), true);
    let minc = images.amin([1i64].as_slice(), true);
    // Gray pixels (max = min) have no hue; dividing by 1 there keeps everything finite.
    let gray = maxc.eq_tensor(&minc);
    let ones = maxc.ones_like();
    let cr = &maxc - &minc;
    let s = &cr / ones.where_self(&gray, &maxc);
    let crd = ones.where_self(&gray, &cr);
    let (rc, gc, bc) = ((&maxc - &r) / &crd, (&maxc - &g) / &crd, (&maxc - &b) / &crd);
    let is_r = maxc.eq_tensor(&r);
    let is_g = maxc.eq_tensor(&g).logical_and(&is_r.logical_not());
    let is_b = is_r.logical_or(&is_g).logical_not();
    let f = |m: &Tensor| m.to_kind(images.kind());
    let h = f(&is_r) * (&bc - &gc) + f(&is_g) * (&rc - &bc + 2.0) + f(&is_b) * (&gc - &rc + 4.0);
    let h = (h / 6.0 + 1.0).remainder(1.0);
    Tensor::cat(&[h, s, maxc], 1)
}

/// HSV `[N, 3, H, W]` (components in [0, 1]) back to RGB (torchvision's `_hsv2rgb`).
pub fn hsv_to_rgb(hsv: &Tensor) -> Tensor {
    let (h, s, v) = (hsv.narrow(1, 0, 1), hsv.narrow(1, 1, 1), hsv.narrow(1, 2, 1));
    let h6 = h * 6.0;
    let sector = h6.floor();
    let f = &h6 - &sector;
    let sector = sector.remainder(6.0).to_kind(Kind::Int64);
    let p = (&v * (s.neg() + 1.0)).clamp(0.0, 1.0);
    let q = (&v * ((&s * &f).neg() + 1.0)).clamp(0.0, 1.0);
    let t = (&v * ((&s * (f.neg() + 1.0)).neg() + 1.0)).clamp(0.0, 1.0);
    // Each output channel picks one of (v, q, p, t) by the hue's sextant.
    let pick = |cands: [&Tensor; 6]| Tensor::cat(&cands, 1).gather(1, &sector, false);
    let r = pick([&v, &q, &p, &p, &t, &v]);
    let g = pick([&t, &v, &v, &q, &p, &p]);
    let b = pick([&p, &p, &t, &v, &v, &q]);
    Tensor::cat(&[r, g, b], 1)
}

/// Per-sample colour-jitter parameters, all `[N]` on the batch's device.
#[derive(Debug)]
pub struct JitterParams {
    /// Whether jitter is applied at all (bool).
    pub apply: Tensor,
    /// Brightness factors, U[max(0, 1 − b), 1 + b].
    pub brightness: Tensor,
    /// Contrast factors, U[max(0, 1 − c), 1 + c].
    pub contrast: Tensor,
    /// Saturation factors, U[max(0, 1 − s), 1 + s].
    pub saturation: Tensor,
    /// Hue shifts in turns, U[−hue, hue].
    pub hue: Tensor,
    /// `[N, 4]` int64: a random permutation of the ops per sample (0 brightness, 1 contrast,
    /// 2 saturation, 3 hue); column k is the op applied k-th.
    pub order: Tensor,
}

impl JitterParams {
    /// Draws parameters for `n` samples: jitter with probability `p`, strengths
    /// `[brightness, contrast, saturation, hue]` as in torchvision's `ColorJitter`.
    pub fn sample(n: i64, p: f64, strength: [f64; 4], device: Device) -> Self {
        let around_one = |s: f64| crate::uniform(n, [(1.0 - s).max(0.0), 1.0 + s], device);
        Self {
            apply: crate::coin(n, p, device),
            brightness: around_one(strength[0]),
            contrast: around_one(strength[1]),
            saturation: around_one(strength[2]),
            hue: crate::uniform(n, [-strength[3], strength[3]], device),
            // Sorting uniform keys gives a uniform random permutation per row.
            order: Tensor::rand([n, 4], (Kind::Float, device)).argsort(1, false),
        }
    }
}

/// A colour op taking images and one factor per sample.
type PerSampleOp = fn(&Tensor, &Tensor) -> Tensor;

/// Applies colour jitter: at each of the 4 positions, every sample gets the op its `order` names
/// there; samples with `apply` false are unchanged. The loop is over positions (and ops), never
/// over samples; how samples are selected follows [`crate::masked_selection`].
pub fn color_jitter(images: &Tensor, params: &JitterParams) -> Tensor {
    if crate::masked_selection(images.device()) {
        jitter_masked(images, params)
    } else {
        jitter_selected(images, params)
    }
}

/// Each op runs once per position on the samples that chose it: 16 (position, op) pairs.
fn jitter_selected(images: &Tensor, params: &JitterParams) -> Tensor {
    let ops: [(PerSampleOp, &Tensor); 4] = [
        (adjust_brightness, &params.brightness),
        (adjust_contrast, &params.contrast),
        (adjust_saturation, &params.saturation),
        (adjust_hue, &params.hue),
    ];
    let mut x = images.shallow_clone();
    for k in 0..4 {
        let at_k = params.order.select(1, k);
        for (j, (op, factor)) in ops.iter().enumerate() {
            let mask = at_k.eq(j as i64).logical_and(&params.apply);
            x = crate::on_selected(&x, &mask, |sel, pick| op(sel, &pick(factor)));
        }
    }
    x
}

/// Without selections (nothing read back to the host, issue 30 item 7). Brightness, contrast
/// and saturation are all `blend(x, target, factor)` (torchvision's definitions), with target 0,
/// the image's mean gray level or its luma: at each position one blend with each sample's own
/// target and factor does whichever of the three the sample drew, and the hue rotation is
/// computed beside it and kept where the sample drew hue.
fn jitter_masked(images: &Tensor, params: &JitterParams) -> Tensor {
    // Columns in op order (0 brightness, 1 contrast, 2 saturation, 3 hue).
    let factors = Tensor::stack(&[&params.brightness, &params.contrast, &params.saturation, &params.hue], 1);
    let mut x = images.shallow_clone();
    for k in 0..4 {
        let op = params.order.select(1, k);
        let factor = factors.gather(1, &op.unsqueeze(1), false).squeeze_dim(1);
        let lum = luma(&x);
        let mean = lum.mean_dim([1i64, 2, 3].as_slice(), true, x.kind());
        let is = |j: i64| per_sample(&op.eq(j), 3);
        let target = mean.expand_as(&lum).where_self(&is(1), &lum.where_scalarother(&is(2), 0.0));
        let blended = blend(&x, &target, &factor);
        let jittered = adjust_hue(&x, &factor).where_self(&is(3), &blended);
        x = jittered.where_self(&per_sample(&params.apply, 3), &x);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{images, max_diff};

    fn full(n: i64, v: f64) -> Tensor {
        Tensor::full([n], v, (Kind::Float, Device::Cpu))
    }

    #[test]
    fn hue_by_zero_and_by_a_full_turn_is_identity() {
        let x = images(4, 16, 16);
        assert!(max_diff(&adjust_hue(&x, &full(4, 0.0)), &x) < 1e-5);
        assert!(max_diff(&adjust_hue(&x, &full(4, 1.0)), &x) < 1e-5);
        // Half a turn is not the identity, and two half turns come back.
        let half = adjust_hue(&x, &full(4, 0.5));
        assert!(max_diff(&half, &x) > 0.1);
        assert!(max_diff(&adjust_hue(&half, &full(4, 0.5)), &x) < 1e-5);
    }

    #[test]
    fn hue_rotation_permutes_primaries() {
        // Pure red rotated by a third of a turn is pure green.
        let red = Tensor::from_slice(&[1.0f32, 0.0, 0.0]).view([1, 3, 1, 1]);
        let green = adjust_hue(&red, &full(1, 1.0 / 3.0));
        assert!(max_diff(&green, &Tensor::from_slice(&[0.0f32, 1.0, 0.0]).view([1, 3, 1, 1])) < 1e-5);
    }

    #[test]
    fn grayscale_has_equal_channels_with_luma_weights() {
        let x = images(3, 8, 8);
        let g = grayscale(&x);
        assert!(g.select(1, 0).equal(&g.select(1, 1)) && g.select(1, 1).equal(&g.select(1, 2)));
        let manual = x.select(1, 0) * 0.299 + x.select(1, 1) * 0.587 + x.select(1, 2) * 0.114;
        assert!(max_diff(&g.select(1, 0), &manual) < 1e-6);
    }

    #[test]
    fn factor_extremes_behave_as_defined() {
        let x = images(2, 8, 8);
        assert!(adjust_brightness(&x, &full(2, 0.0)).abs().max().double_value(&[]) == 0.0);
        assert!(max_diff(&adjust_saturation(&x, &full(2, 0.0)), &grayscale(&x)) < 1e-6);
        let flat = adjust_contrast(&x, &full(2, 0.0));
        // Zero contrast is one gray level per image.
        assert!(flat.amax([1i64, 2, 3].as_slice(), false).equal(&flat.amin([1i64, 2, 3].as_slice(), false)));
        for op in [adjust_brightness, adjust_contrast, adjust_saturation] {
            assert!(max_diff(&op(&x, &full(2, 1.0)), &x) < 1e-6);
            let y = op(&x, &full(2, 1.4));
            assert!(max_diff(&y, &x) > 0.01);
            assert!(y.min().double_value(&[]) >= 0.0 && y.max().double_value(&[]) <= 1.0);
        }
    }

    #[test]
    fn jitter_applies_every_op_once_in_the_drawn_order() {
        let n = 64;
        let x = images(n, 8, 8);
        let mut params = crate::with_seed(5, || JitterParams::sample(n, 1.0, [0.4, 0.4, 0.4, 0.1], Device::Cpu));
        // Each order row is a permutation of 0..4.
        let sorted = params.order.sort(1, false).0;
        assert!(sorted.equal(&Tensor::arange(4, (Kind::Int64, Device::Cpu)).expand([n, 4], false)));
        let y = color_jitter(&x, &params);
        // Sample 0 by hand, in its order.
        let order = Vec::<i64>::try_from(params.order.get(0)).unwrap();
        let mut z = x.narrow(0, 0, 1);
        for op in order {
            let pick = |t: &Tensor| t.narrow(0, 0, 1);
            z = match op {
                0 => adjust_brightness(&z, &pick(&params.brightness)),
                1 => adjust_contrast(&z, &pick(&params.contrast)),
                2 => adjust_saturation(&z, &pick(&params.saturation)),
                _ => adjust_hue(&z, &pick(&params.hue)),
            };
        }
        assert!(max_diff(&y.narrow(0, 0, 1), &z) < 1e-6);
        assert!(max_diff(&y, &x) > 0.05);
        params.apply = params.apply.zeros_like();
        assert!(color_jitter(&x, &params).equal(&x));
    }
}
