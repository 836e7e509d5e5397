//! Geometric operations: random resized crop (one affine grid + `grid_sample` for the whole batch)
//! and horizontal flip (docs/PROTOCOL.md §3.1).

use tch::{Device, Kind, Tensor};

/// Per-sample crop boxes in input pixels: float `[N]` tensors holding whole numbers, with
/// `0 <= top`, `top + height <= H`, `0 <= left`, `left + width <= W`, `height, width >= 1`.
#[derive(Debug)]
pub struct CropBoxes {
    /// First row of each box.
    pub top: Tensor,
    /// First column of each box.
    pub left: Tensor,
    /// Rows in each box.
    pub height: Tensor,
    /// Columns in each box.
    pub width: Tensor,
}

/// Draws torchvision's `RandomResizedCrop` boxes for `n` images of `height`×`width`.
///
/// Per sample, up to `attempts` draws of area fraction ~ U(`scale`) and aspect ratio
/// (width/height) log-uniform in `ratio`; the box size is `round(sqrt(area·ratio))` ×
/// `round(sqrt(area/ratio))`, and the first draw that fits the image wins. The draws are made for
/// all samples and attempts at once and the first fitting one is picked with an argmax, which is
/// the same as torchvision's loop. A sample with no fitting draw falls back to the central crop
/// (the whole image, cut to the nearest allowed ratio). The position is uniform over the places the
/// box fits.
pub fn sample_crop_boxes(
    n: i64,
    (height, width): (i64, i64),
    scale: [f64; 2],
    ratio: [f64; 2],
    attempts: i64,
    device: Device,
) -> CropBoxes {
    let opts = (Kind::Float, device);
    let (h, w) = (height as f64, width as f64);
    let area = Tensor::rand([n, attempts], opts) * (scale[1] - scale[0]) + scale[0];
    let area = area * (h * w);
    let (lr0, lr1) = (ratio[0].ln(), ratio[1].ln());
    let aspect = (Tensor::rand([n, attempts], opts) * (lr1 - lr0) + lr0).exp();
    let cw = (&area * &aspect).sqrt().round();
    let ch = (&area / &aspect).sqrt().round();
    let fits = cw.gt(0.0).logical_and(&cw.le(w)).logical_and(&ch.gt(0.0)).logical_and(&ch.le(h));
    // Weight fitting draws by how early they come, so argmax finds the first one.
    let rank = Tensor::arange_start_step(attempts, 0, -1, opts);
    let first = (fits.to_kind(Kind::Float) * rank).argmax(1, true);
    let any = fits.any_dim(1, false);
    let (fh, fw) = fallback_size(h, w, ratio);
    let bh = ch.gather(1, &first, false).squeeze_dim(1).where_scalarother(&any, fh);
    let bw = cw.gather(1, &first, false).squeeze_dim(1).where_scalarother(&any, fw);
    let top = random_offset(&(h - &bh), device).where_self(&any, &((h - &bh) / 2.0).floor());
    let left = random_offset(&(w - &bw), device).where_self(&any, &((w - &bw) / 2.0).floor());
    CropBoxes { top, left, height: bh, width: bw }
}

/// torchvision's fallback box size: the whole image, cut to the nearest ratio in range.
fn fallback_size(h: f64, w: f64, [r0, r1]: [f64; 2]) -> (f64, f64) {
    let in_ratio = w / h;
    if in_ratio < r0 {
        ((w / r0).round(), w)
    } else if in_ratio > r1 {
        (h, (h * r1).round())
    } else {
        (h, w)
    }
}

/// Uniform integers in `0..=slack` per sample (`slack` a float `[N]` of whole numbers).
fn random_offset(slack: &Tensor, device: Device) -> Tensor {
    let u = Tensor::rand(slack.size(), (Kind::Float, device));
    // Clamp guards against u·(slack+1) rounding up to slack+1 in float.
    (u * (slack + 1.0)).floor().minimum(slack)
}

/// Resamples each image's box to `out` = (height, width) with bilinear interpolation.
///
/// `images` `[N, C, H, W]` float; result `[N, C, out.0, out.1]`. One affine grid for the batch maps
/// output pixel centres onto the box (`align_corners = false`, i.e. the box edges are pixel
/// edges, as in torchvision's resize); border padding only matters for the half pixel at the
/// box edges. No antialiasing: with 32×32 inputs the crop is never shrunk.
pub fn resized_crop(images: &Tensor, boxes: &CropBoxes, out: (i64, i64)) -> Tensor {
    let size = images.size();
    let (n, c, h, w) = (size[0], size[1], size[2] as f64, size[3] as f64);
    let sx = &boxes.width / w;
    let sy = &boxes.height / h;
    let cx = (&boxes.left * 2.0 + &boxes.width) / w - 1.0;
    let cy = (&boxes.top * 2.0 + &boxes.height) / h - 1.0;
    let zero = sx.zeros_like();
    let theta = Tensor::stack(&[sx, zero.shallow_clone(), cx, zero, sy, cy], 1).view([n, 2, 3]).to_kind(images.kind());
    let grid = Tensor::affine_grid_generator(&theta, [n, c, out.0, out.1], false);
    // Modes: 0 = bilinear interpolation, 1 = border padding.
    images.grid_sampler(&grid, 0, 1, false)
}

/// Flips the images whose `mask` entry (bool `[N]`) is true, left to right; exact.
pub fn flip_where(images: &Tensor, mask: &Tensor) -> Tensor {
    crate::on_selected(images, mask, |x, _| x.flip([3]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{images, max_diff};

    fn to_vec(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.to_kind(Kind::Float)).unwrap()
    }

    #[test]
    fn crop_boxes_follow_their_distributions() {
        let n = 20_000;
        // Up to half the area every draw fits (26 × 20 at most), so no rejection skews the areas.
        let b = crate::with_seed(3, || sample_crop_boxes(n, (32, 32), [0.2, 0.5], [0.75, 4.0 / 3.0], 10, Device::Cpu));
        let (top, left, hh, ww) = (to_vec(&b.top), to_vec(&b.left), to_vec(&b.height), to_vec(&b.width));
        let mut area_sum = 0.0;
        let mut log_ratio_sum = 0.0;
        for i in 0..n as usize {
            assert!(hh[i] >= 1.0 && ww[i] >= 1.0 && top[i] >= 0.0 && left[i] >= 0.0);
            assert!(top[i] + hh[i] <= 32.0 && left[i] + ww[i] <= 32.0, "box {i} leaves the image");
            let area = (hh[i] * ww[i]) as f64 / 1024.0;
            // Rounding each side to whole pixels moves the area a little outside [0.2, 1].
            assert!((0.17..=0.53).contains(&area), "area {area}");
            let r = (ww[i] / hh[i]) as f64;
            assert!((0.7..=1.43).contains(&r), "ratio {r}");
            area_sum += area;
            log_ratio_sum += r.ln();
        }
        // Area fraction ~ U[0.2, 0.5]: mean 0.35.
        let mean_area = area_sum / n as f64;
        assert!((mean_area - 0.35).abs() < 0.005, "mean area {mean_area}");
        // log ratio ~ U[ln 3/4, ln 4/3], symmetric about 0.
        let mean_log_ratio = log_ratio_sum / n as f64;
        assert!(mean_log_ratio.abs() < 0.01, "mean log ratio {mean_log_ratio}");
        // Positions are spread over the image, not stuck at the centre.
        assert!(top.contains(&0.0) && left.contains(&0.0));
    }

    #[test]
    fn impossible_boxes_fall_back_to_the_central_crop() {
        // Ratio 2 on a square never fits at full area: the fallback is 16 rows × 32 columns.
        let b = crate::with_seed(4, || sample_crop_boxes(64, (32, 32), [1.0, 1.0], [2.0, 2.0], 10, Device::Cpu));
        assert!(to_vec(&b.height).iter().all(|&v| v == 16.0));
        assert!(to_vec(&b.width).iter().all(|&v| v == 32.0));
        assert!(to_vec(&b.top).iter().all(|&v| v == 8.0));
        assert!(to_vec(&b.left).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn full_box_crop_is_the_identity_and_a_quarter_box_zooms() {
        let x = images(4, 32, 32);
        let full = |v: f64| Tensor::full([4], v, (Kind::Float, Device::Cpu));
        let whole = CropBoxes { top: full(0.0), left: full(0.0), height: full(32.0), width: full(32.0) };
        assert!(max_diff(&resized_crop(&x, &whole, (32, 32)), &x) < 1e-5);
        // A 16×16 box at (8, 4) upsampled ×2: every output 2×2 block's mean stays near the source
        // pixel, and the output matches plain bilinear resize of the slice.
        let quarter = CropBoxes { top: full(8.0), left: full(4.0), height: full(16.0), width: full(16.0) };
        let y = resized_crop(&x, &quarter, (32, 32));
        let slice = x.narrow(2, 8, 16).narrow(3, 4, 16);
        let reference = slice.upsample_bilinear2d([32, 32], false, None, None);
        // The outermost output pixels differ by design: the crop reads the pixels just outside its
        // box, a resized slice can only repeat its own edge.
        let inner = |t: &Tensor| t.narrow(2, 1, 30).narrow(3, 1, 30);
        assert!(max_diff(&inner(&y), &inner(&reference)) < 1e-5);
        assert!(max_diff(&y, &reference) > 1e-3);
    }

    #[test]
    fn flip_is_exact_and_masked() {
        let x = images(2, 8, 8);
        let mask = Tensor::from_slice(&[true, false]);
        let y = flip_where(&x, &mask);
        assert!(y.get(0).equal(&x.get(0).flip([2])));
        assert!(y.get(1).equal(&x.get(1)));
    }
}
