//! The supervised classifier of the label-destruction analysis (§5.2) and its on-disk cache. They
//! live in `featdrop-contrastive` (the trainer's destruction monitor uses them too); re-exported
//! here so `featdrop_eval::classifier` keeps its paths.

pub use featdrop_contrastive::classifier::*;
