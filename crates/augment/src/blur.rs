//! Gaussian blur with a different σ per sample (docs/PROTOCOL.md §3.1), as one grouped separable
//! convolution over the whole batch.

use tch::Tensor;

/// Normalised 1-D Gaussian kernels `[N, size]`, one per σ in `sigma` (`[N]`, > 0); each row sums to 1.
///
/// `size` must be odd; taps sit at `−(size−1)/2 ..= (size−1)/2`, as torchvision's `gaussian_blur`.
pub fn gaussian_kernels(sigma: &Tensor, size: i64) -> Tensor {
    let half = (size - 1) as f64 / 2.0;
    let taps = Tensor::arange(size, (sigma.kind(), sigma.device())) - half;
    let two_var = (sigma * sigma * 2.0).unsqueeze(1);
    let k = (-(taps.square().unsqueeze(0)) / two_var).exp();
    &k / k.sum_dim_intlist(1, true, k.kind())
}

/// Blurs each image `[N, C, H, W]` with its own σ (`[N]`) and an odd `size`×`size` kernel.
///
/// Reflect padding (needs `size / 2 < H, W`) keeps the image size and avoids dark borders. The
/// batch is folded into channels so a single grouped convolution (one group per image channel)
/// does all samples at once, first along rows then along columns.
pub fn gaussian_blur(images: &Tensor, sigma: &Tensor, size: i64) -> Tensor {
    let s = images.size();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let pad = size / 2;
    let k = gaussian_kernels(&sigma.to_kind(images.kind()), size);
    let k = k.unsqueeze(1).expand([n, c, size], false).reshape([n * c, 1, size]);
    let kv = k.view([n * c, 1, size, 1]);
    let kh = k.view([n * c, 1, 1, size]);
    let x = images.reshape([1, n * c, h, w]).reflection_pad2d([pad, pad, pad, pad]);
    let x = x.conv2d(&kv, None::<Tensor>, [1, 1], [0, 0], [1, 1], n * c);
    let x = x.conv2d(&kh, None::<Tensor>, [1, 1], [0, 0], [1, 1], n * c);
    x.reshape([n, c, h, w])
}

/// Blurs only the images whose `mask` (bool `[N]`) is true.
pub fn blur_where(images: &Tensor, mask: &Tensor, sigma: &Tensor, size: i64) -> Tensor {
    crate::on_selected(images, mask, |sel, idx| gaussian_blur(sel, &sigma.index_select(0, idx), size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{images, max_diff};
    use tch::{Device, Kind};

    #[test]
    fn kernels_sum_to_one_and_are_symmetric() {
        let sigma = Tensor::from_slice(&[0.1f32, 0.5, 1.0, 2.0]);
        for size in [3, 5, 9] {
            let k = gaussian_kernels(&sigma, size);
            assert_eq!(k.size(), [4, size]);
            let sums = k.sum_dim_intlist(1, false, Kind::Float);
            assert!(max_diff(&sums, &sums.ones_like()) < 1e-6);
            assert!(k.equal(&k.flip([1])));
        }
        // Larger σ spreads the weight off the centre tap.
        let k = gaussian_kernels(&sigma, 3);
        let centre = Vec::<f32>::try_from(k.select(1, 1)).unwrap();
        assert!(centre.windows(2).all(|w| w[0] > w[1]), "{centre:?}");
    }

    #[test]
    fn tiny_sigma_is_almost_identity_and_large_sigma_smooths() {
        let x = images(3, 16, 16);
        let tiny = Tensor::full([3], 0.1, (Kind::Float, Device::Cpu));
        assert!(max_diff(&gaussian_blur(&x, &tiny, 3), &x) < 1e-6);
        let wide = Tensor::full([3], 2.0, (Kind::Float, Device::Cpu));
        let y = gaussian_blur(&x, &wide, 5);
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
        let y = gaussian_blur(&x, &sigma, 3);
        let alone = gaussian_blur(&x.narrow(0, 1, 1), &sigma.narrow(0, 1, 1), 3);
        assert!(max_diff(&y.narrow(0, 1, 1), &alone) < 1e-6);
        assert!(max_diff(&y.narrow(0, 0, 1), &x.narrow(0, 0, 1)) < 1e-6);
        let masked = blur_where(&x, &Tensor::from_slice(&[false, true]), &sigma, 3);
        assert!(masked.get(0).equal(&x.get(0)));
    }
}
