//! Encoders and contrastive objectives (DESIGN.md §4).
//!
//! * [`encoder`]: ResNet-18 for 32×32 images (3×3 stride-1 stem, no max-pool), the audio
//!   ResNet-18 (1-channel 7×7 stride-2 stem with max-pool) and a small family of the same shape
//!   for CPU scales, all behind the [`Encoder`] trait that also exposes the pre-pool feature map
//!   used by linear probes.
//! * [`loss`]: the published SimCLR variant and the symmetric NT-Xent.
#![warn(missing_docs)]

pub mod encoder;
pub mod loss;

pub use encoder::{Encoder, EncoderSpec, ResNet, Stem};
pub use loss::{nt_xent, simclr_loss};
