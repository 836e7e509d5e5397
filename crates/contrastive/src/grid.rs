//! View grids (§4 monitoring): one row per example — original | view 1 | view 2 | |δ| — where
//! |δ| is |view 1 − original| scaled to its own maximum, shown in grey. Audio examples show as
//! log-mel spectrograms.

use crate::trainer::Trainer;
use anyhow::Result;
use featdrop_augment::Normalize;
use featdrop_core::Modality;
use std::path::Path;
use tch::{Kind, Tensor};

/// A normalised image view shown in [0, 1] (the default normalisation undone, then clamped).
pub fn show(view: &Tensor) -> Tensor {
    Normalize::default().invert(view).clamp(0.0, 1.0)
}

/// |a − b| per example, averaged over channels, scaled to its own maximum and repeated over RGB:
/// the |δ| heat-map column of view grids.
pub fn heat(a: &Tensor, b: &Tensor) -> Tensor {
    let d = (a - b).abs().mean_dim([1i64].as_slice(), true, Kind::Float);
    let max = d.amax([1i64, 2, 3].as_slice(), true).clamp_min(1e-8);
    (d / max).repeat([1, 3, 1, 1])
}

/// Original, view 1 and view 2 of normalised spectrograms `[N, 1, F, T]` as heat-map images
/// `[N, 3, F, T]`, the three of an example on one colour scale (so a view that raises or masks
/// energy shows as brighter or darker, not rescaled away).
pub fn spectrogram_cells(x: &Tensor, v1: &Tensor, v2: &Tensor) -> (Tensor, Tensor, Tensor) {
    let t = x.size()[3];
    let row = featdrop_data::audio::spectrogram_images(&Tensor::cat(&[x, v1, v2], 3));
    (row.narrow(3, 0, t), row.narrow(3, t, t), row.narrow(3, 2 * t, t))
}

/// Writes the grid of `n` training examples to `path`: one row per example, original | view 1 |
/// view 2 | |δ| — photos for images, log-mel spectrograms (low frequencies at the bottom) for audio.
pub fn save_view_grid(trainer: &Trainer, path: &Path, n: i64) -> Result<()> {
    let n = n.min(trainer.dataset().len(featdrop_core::Split::Train) as i64);
    let idx = Tensor::arange(n, (Kind::Int64, tch::Device::Cpu));
    let (x, v1, v2, labels) = trainer.views_for_grid(&idx);
    let (x, s1, s2, d, scale) = match trainer.dataset().modality() {
        Modality::Image => {
            let (s1, s2) = (show(&v1), show(&v2));
            let d = heat(&s1, &x);
            (x, s1, s2, d, 3)
        }
        Modality::Audio => {
            let (x_img, s1, s2) = spectrogram_cells(&x, &v1, &v2);
            (x_img, s1, s2, heat(&v1, &x), 2)
        }
    };
    let rows: Vec<Tensor> = (0..n).flat_map(|i| [&x, &s1, &s2, &d].map(|t| t.get(i))).collect();
    let cells = Tensor::stack(&rows, 0).to_device(tch::Device::Cpu);
    let captions: Vec<String> =
        labels.iter().flat_map(|l| [l.clone(), "view 1".into(), "view 2".into(), "|δ|".into()]).collect();
    featdrop_data::grid::write_grid(path, &cells, &captions, 4, scale)
}
