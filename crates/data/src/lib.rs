//! Multi-task datasets of featdrop (docs/PROTOCOL.md §2): every example carries one label per task.
//! Implements the datasets of Tamkin et al., "Feature Dropout" (NeurIPS 2023), over CIFAR-10
//! (Krizhevsky, 2009), MNIST (LeCun et al.) and AudioMNIST (Becker et al.), or built-in sources.
//!
//! The image datasets (§2.1) put an independent synthetic overlay — shape, digit or letter —
//! onto a photograph. Base photos and glyph banks live as tensors on the device and a batch's
//! overlays are drawn there with a few tensor ops ([`overlay`]), so re-drawing them on every read
//! is free. Sources are built in ([`photos`], [`stroke_font`]) or real ([`cifar`], [`idx`], [`ttf`]).
//! [`open`] builds a dataset by name; [`MultiTaskDataset`] is what trainers and probes use, and the
//! audio dataset ([`audio`], `speech+noise`, §2.2) implements it too. [`grid`] writes labelled PNG
//! grids of images.
#![warn(missing_docs)]

pub mod audio;
pub mod cifar;
pub mod dataset;
pub mod files;
pub mod glyphs;
pub mod grid;
pub mod idx;
pub mod overlay;
pub mod photos;
pub mod stroke_font;
pub mod ttf;

pub use audio::{AudioConfig, SpeechNoiseDataset};
pub use dataset::{DatasetSpec, ImageDataset, PairNoise, Source, open};
pub use overlay::{Overlay, OverlayDraw, OverlayKind};

use featdrop_core::{Batch, Modality, Seeds, Split, Stream, TaskSet};
use rand::seq::SliceRandom;
use tch::{Device, Tensor};

/// A positive pair (docs/PROTOCOL.md §2.1, §3.3): two views made from the same photo. Their overlay is
/// shared, except where the feature-dropout control re-drew the second view's overlay.
#[derive(Debug)]
pub struct Pair {
    /// The first view's inputs `[N, C, H, W]` and the pair's labels (the first view's), one
    /// `[N]` int64 tensor per task.
    pub first: Batch,
    /// The second view's inputs, same shape and device.
    pub second: Tensor,
    /// The labels the second view actually shows, per task (differ from `first.labels` only for
    /// the overlay task of re-drawn examples) — for label-destruction checks.
    pub second_labels: Vec<Tensor>,
}

/// A dataset whose examples carry one label per task.
///
/// `indices` are `[B]` int64 example indices (any device) into `split`; batches come back on the
/// dataset's device. `seed` seeds every random choice of the call (`tch::manual_seed`), so the
/// same indices and seed give the same batch; derive it with
/// [`featdrop_core::Seeds::derive`] and [`featdrop_core::Stream::Data`]. The test split's own
/// overlays are fixed when the dataset is built.
///
/// # Example: your own tensors as a dataset
///
/// Two label sets over fixed in-memory images (no overlay to re-draw, so a pair's two inputs are
/// the same example and the view family makes them differ). `examples/custom_dataset.rs` of
/// `featdrop-eval` pretrains and probes such a dataset.
///
/// ```
/// use featdrop_core::{Batch, Modality, Split, TaskSet};
/// use featdrop_data::{MultiTaskDataset, Pair};
/// use tch::{Device, Kind, Tensor};
///
/// struct Mine { tasks: TaskSet, images: Tensor, labels: Vec<Tensor> }
///
/// impl MultiTaskDataset for Mine {
///     fn name(&self) -> &str { "mine" }
///     fn tasks(&self) -> &TaskSet { &self.tasks }
///     fn modality(&self) -> Modality { Modality::Image }
///     fn device(&self) -> Device { Device::Cpu }
///     // One split for brevity; a real dataset keeps train and test apart.
///     fn len(&self, _split: Split) -> usize { self.images.size()[0] as usize }
///     fn class_names(&self, task: usize) -> Vec<String> {
///         (0..self.tasks.0[task].num_classes).map(|c| c.to_string()).collect()
///     }
///     fn batch(&self, _split: Split, indices: &Tensor, _seed: u64) -> Batch {
///         let pick = |t: &Tensor| t.index_select(0, indices);
///         Batch { inputs: pick(&self.images), labels: self.labels.iter().map(pick).collect() }
///     }
///     fn pair(&self, split: Split, indices: &Tensor, _redraw_p: f64, seed: u64) -> Pair {
///         let first = self.batch(split, indices, seed);
///         let second_labels = first.labels.iter().map(Tensor::shallow_clone).collect();
///         Pair { second: first.inputs.shallow_clone(), first, second_labels }
///     }
/// }
///
/// let n = 8;
/// let ds = Mine {
///     tasks: TaskSet::from_pairs(&[("brightness", 2), ("parity", 2)]),
///     images: Tensor::rand([n, 3, 32, 32], (Kind::Float, Device::Cpu)),
///     labels: vec![Tensor::from_slice(&[0i64, 1, 0, 1, 0, 1, 0, 1]), Tensor::zeros([n], (Kind::Int64, Device::Cpu))],
/// };
/// let b = ds.batch(Split::Train, &Tensor::from_slice(&[1i64, 2]), 0);
/// assert_eq!(b.inputs.size(), [2, 3, 32, 32]);
/// assert_eq!(Vec::<i64>::try_from(&b.labels[0]).unwrap(), [1, 0]);
/// ```
pub trait MultiTaskDataset: Send {
    /// Dataset name (`photos+digits`, …).
    fn name(&self) -> &str;
    /// The tasks, in label order.
    fn tasks(&self) -> &TaskSet;
    /// Image or audio.
    fn modality(&self) -> Modality;
    /// Device the batches are made on.
    fn device(&self) -> Device;
    /// Number of examples in `split`.
    fn len(&self, split: Split) -> usize;
    /// Human names of task `task`'s classes, by label (for grids and reports).
    fn class_names(&self, task: usize) -> Vec<String>;
    /// One batch: inputs (images `[B, 3, 32, 32]` in [0, 1]; audio: mixed waveforms
    /// `[B, samples]`, which the view families turn into log-mel spectrograms) and labels per task.
    fn batch(&self, split: Split, indices: &Tensor, seed: u64) -> Batch;
    /// Two views of each example; with probability `redraw_p` the second view's overlay is
    /// re-drawn independently (the `dropout:<p>` control, docs/PROTOCOL.md §3.3), otherwise shared.
    fn pair(&self, split: Split, indices: &Tensor, redraw_p: f64, seed: u64) -> Pair;
}

/// One epoch's shuffled mini-batches of indices `[batch_size]` int64 (CPU), dropping the last
/// partial batch; the order depends only on `(seed, epoch)` (docs/PROTOCOL.md §4).
pub fn epoch_indices(len: usize, batch_size: usize, epoch: u64, seed: u64) -> Vec<Tensor> {
    assert!(batch_size > 0, "batch_size must be positive");
    let mut order: Vec<i64> = (0..len as i64).collect();
    order.shuffle(&mut Seeds::new(seed).rng(Stream::Data, epoch));
    order.chunks_exact(batch_size).map(Tensor::from_slice).collect()
}

pub use featdrop_core::seed::with_torch_seed as with_seed;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_shuffle_deterministically_and_drop_the_tail() {
        let a = epoch_indices(10, 3, 0, 1);
        assert_eq!(a.len(), 3);
        let flat: Vec<i64> = a.iter().flat_map(|t| Vec::<i64>::try_from(t).unwrap()).collect();
        let mut sorted = flat.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 9);
        let again: Vec<i64> =
            epoch_indices(10, 3, 0, 1).iter().flat_map(|t| Vec::<i64>::try_from(t).unwrap()).collect();
        assert_eq!(flat, again);
        let other: Vec<i64> =
            epoch_indices(10, 3, 1, 1).iter().flat_map(|t| Vec::<i64>::try_from(t).unwrap()).collect();
        assert_ne!(flat, other);
    }
}
