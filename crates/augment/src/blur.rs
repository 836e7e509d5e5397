//! Gaussian blur with a different σ per sample (docs/PROTOCOL.md §3.1), as one grouped separable
//! convolution over the whole batch.

use tch::{Kind, Tensor};

/// Kernel radius in pixels for `sigma` covering ±`truncate`·σ, capped at `cap`.
pub fn radius(sigma: f64, truncate: f64, cap: i64) -> i64 {
    ((truncate * sigma).ceil() as i64).clamp(1, cap.max(1))
}

/// Normalised 1-D Gaussian kernels `[N, 2R + 1]`, one per σ in `sigma` (`[N]`, > 0), with taps at
/// `−R ..= R`. Row `i` is non-zero only within its own radius `radii[i]` (`[N]` int64, ≤ R), so a
/// batch shares one tensor of the largest size while each sample keeps the Gaussian of its σ.
pub fn gaussian_kernels(sigma: &Tensor, radii: &Tensor, big_r: i64) -> Tensor {
    let taps = Tensor::arange_start(-big_r, big_r + 1, (sigma.kind(), sigma.device()));
    let two_var = (sigma * sigma * 2.0).unsqueeze(1);
    let inside = taps.abs().unsqueeze(0).le_tensor(&radii.to_kind(sigma.kind()).unsqueeze(1));
    let k = (-(taps.square().unsqueeze(0)) / two_var).exp() * inside.to_kind(sigma.kind());
    &k / k.sum_dim_intlist(1, true, k.kind())
}

/// Blurs each image `[N, C, H, W]` with a full Gaussian of its own σ (`[N]`): the kernel covers
/// ±`truncate`·σ (radius rounded up; odd size capped at the image size), as PIL's blur of radius σ
/// does with a full Gaussian (docs/PROTOCOL.md §3.1).
///
/// All samples share one kernel tensor of the size `max_sigma` needs (an upper bound on `sigma`
/// known on the host, the recipe's range: reading the largest drawn σ back from the device would
/// cost a synchronisation per view, issue 30 item 7) with per-sample weights, zero outside each
/// sample's radius, so the batch is folded into channels and a single grouped separable
/// convolution does it, first along rows then along columns. A σ above `max_sigma` is cut at
/// `max_sigma`'s radius. Reflect padding keeps the image size and avoids dark borders.
pub fn gaussian_blur(images: &Tensor, sigma: &Tensor, truncate: f64, max_sigma: f64) -> Tensor {
    let s = images.size();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    // Largest odd size that fits the image: reflect padding of R needs R < H, W.
    let cap = (h.min(w) - 1) / 2;
    // In f32 as the device computes the per-sample radii, so a σ equal to `max_sigma` gets the
    // same radius on both sides.
    let big_r = (((truncate as f32) * (max_sigma as f32)).ceil() as i64).clamp(1, cap.max(1));
    let sigma = sigma.to_kind(Kind::Float);
    let radii = (&sigma * truncate).ceil().clamp(1.0, big_r as f64).to_kind(Kind::Int64);
    let size = 2 * big_r + 1;
    let k = gaussian_kernels(&sigma, &radii, big_r).to_kind(images.kind());
    let k = k.unsqueeze(1).expand([n, c, size], false).reshape([n * c, 1, size]);
    let kv = k.view([n * c, 1, size, 1]);
    let kh = k.view([n * c, 1, 1, size]);
    let x = images.reshape([1, n * c, h, w]).reflection_pad2d([big_r, big_r, big_r, big_r]);
    let x = x.conv2d(&kv, None::<Tensor>, [1, 1], [0, 0], [1, 1], n * c);
    let x = x.conv2d(&kh, None::<Tensor>, [1, 1], [0, 0], [1, 1], n * c);
    x.reshape([n, c, h, w])
}

/// Blurs only the images whose `mask` (bool `[N]`) is true, σ ≤ `max_sigma` (see [`gaussian_blur`]).
pub fn blur_where(images: &Tensor, mask: &Tensor, sigma: &Tensor, truncate: f64, max_sigma: f64) -> Tensor {
    crate::on_selected(images, mask, |x, pick| gaussian_blur(x, &pick(sigma), truncate, max_sigma))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{images, max_diff};
    use tch::{Device, Kind};

    /// The reference: a normalised Gaussian of `sigma` on taps `−r ..= r`, in f64.
    fn reference(sigma: f64, r: i64) -> Vec<f64> {
        let g: Vec<f64> = (-r..=r).map(|t| (-(t * t) as f64 / (2.0 * sigma * sigma)).exp()).collect();
        let sum: f64 = g.iter().sum();
        g.iter().map(|v| v / sum).collect()
    }

    #[test]
    fn impulse_response_is_the_full_gaussian_of_each_drawn_sigma() {
        // Before issue 15.5 the kernel was 3×3 whatever σ: at σ = 2 the response differed by ~0.03.
        let sigmas = [0.1f64, 0.5, 1.0, 1.37, 2.0];
        let (n, side, mid) = (sigmas.len() as i64, 33i64, 16i64);
        let x = Tensor::zeros([n, 1, side, side], (Kind::Float, Device::Cpu));
        let _ = x.narrow(2, mid, 1).narrow(3, mid, 1).fill_(1.0);
        let sig = Tensor::from_slice(&sigmas).to_kind(Kind::Float);
        let y = gaussian_blur(&x, &sig, 3.0, 2.0);
        for (i, &s) in sigmas.iter().enumerate() {
            let r = (3.0 * s).ceil() as i64;
            let g = reference(s, r);
            let got = y.get(i as i64).get(0);
            let mut worst = 0f64;
            for a in 0..side {
                for b in 0..side {
                    let (da, db) = (a - mid, b - mid);
                    let want =
                        if da.abs() <= r && db.abs() <= r { g[(da + r) as usize] * g[(db + r) as usize] } else { 0.0 };
                    worst = worst.max((got.double_value(&[a, b]) - want).abs());
                }
            }
            assert!(worst < 1e-4, "σ = {s}: impulse response off the Gaussian by {worst}");
        }
    }

    #[test]
    fn kernel_is_capped_at_the_image_size() {
        // σ = 2 wants 13 taps; an 8×8 image allows 7 (radius 3), still a normalised Gaussian.
        let x = images(2, 8, 8);
        let y = gaussian_blur(&x, &Tensor::from_slice(&[2.0f32, 0.5]), 3.0, 2.0);
        assert_eq!(y.size(), x.size());
        let k = gaussian_kernels(&Tensor::from_slice(&[2.0f32]), &Tensor::from_slice(&[3i64]), 3);
        let want = reference(2.0, 3);
        for (t, w) in want.iter().enumerate() {
            assert!((k.double_value(&[0, t as i64]) - w).abs() < 1e-6);
        }
        assert_eq!(radius(2.0, 3.0, 3), 3);
        assert_eq!(radius(0.1, 3.0, 15), 1);
    }

    #[test]
    fn tiny_sigma_is_almost_identity_and_large_sigma_smooths() {
        let x = images(3, 16, 16);
        let tiny = Tensor::full([3], 0.1, (Kind::Float, Device::Cpu));
        assert!(max_diff(&gaussian_blur(&x, &tiny, 3.0, 2.0), &x) < 1e-6);
        let wide = Tensor::full([3], 2.0, (Kind::Float, Device::Cpu));
        let y = gaussian_blur(&x, &wide, 3.0, 2.0);
        assert_eq!(y.size(), x.size());
        // Smoothing lowers the spread of neighbour differences and keeps the mean.
        let rough = |t: &Tensor| (t.narrow(3, 1, 15) - t.narrow(3, 0, 15)).abs().mean(Kind::Float).double_value(&[]);
        assert!(rough(&y) < 0.7 * rough(&x));
        assert!((y.mean(Kind::Float).double_value(&[]) - x.mean(Kind::Float).double_value(&[])).abs() < 0.01);
    }

    #[test]
    fn each_sample_uses_its_own_sigma() {
        let x = images(2, 16, 16);
        let sigma = Tensor::from_slice(&[0.1f32, 2.0]);
        let y = gaussian_blur(&x, &sigma, 3.0, 2.0);
        let alone = gaussian_blur(&x.narrow(0, 1, 1), &sigma.narrow(0, 1, 1), 3.0, 2.0);
        assert!(max_diff(&y.narrow(0, 1, 1), &alone) < 1e-6);
        assert!(max_diff(&y.narrow(0, 0, 1), &x.narrow(0, 0, 1)) < 1e-6);
        let masked = blur_where(&x, &Tensor::from_slice(&[false, true]), &sigma, 3.0, 2.0);
        assert!(masked.get(0).equal(&x.get(0)));
    }
}
