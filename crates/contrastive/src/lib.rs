//! Encoders, contrastive objectives and the trainer (docs/PROTOCOL.md §4).
//!
//! * [`encoder`]: ResNet-18 for 32×32 images (3×3 stride-1 stem, no max-pool), the audio
//!   ResNet-18 (1-channel 7×7 stride-2 stem with max-pool) and a small family of the same shape
//!   for CPU scales, all behind the [`Encoder`] trait that also exposes the pre-pool feature map
//!   used by linear probes.
//! * [`loss`]: the published SimCLR variant ([`simclr_published`]), the symmetric NT-Xent and
//!   implicit feature modification ([`ifm`]).
//! * [`assembly`]: a run's dataset, encoder, view family and checkpoint layout from its config —
//!   the one place the trainer and the evaluation crate build runs.
//! * [`views`]: the learned viewmaker family and the clean transforms.
//! * [`trainer`]: pretraining with alternating or simultaneous encoder / viewmaker updates,
//!   metrics, kNN monitor, view grids, checkpoints and exact resume.
#![warn(missing_docs)]

pub mod assembly;
pub mod classifier;
pub mod encoder;
pub mod grid;
pub mod knn;
pub mod loss;
pub mod optim;
pub mod tensorboard;
pub mod trainer;
pub mod views;

pub use encoder::{Encoder, EncoderSpec, ResNet, Stem};
pub use loss::{ifm, nt_xent, simclr_published};
pub use trainer::{ResumeOptions, StopAfter, TrainSummary, Trainer};
