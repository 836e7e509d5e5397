//! Evaluation of pretrained runs (docs/PROTOCOL.md §5): linear probes on every task and the
//! label-destruction analysis. Implements the evaluation of Tamkin et al., "Feature Dropout:
//! Revisiting the Role of Augmentations in Contrastive Learning" (NeurIPS 2023).
//!
//! * [`probe`]: the published linear-probe protocol (§5.1) — one linear layer per task on the
//!   flattened pre-pool features, SGD with the step schedule of [`schedule`], training inputs
//!   through the run's own view family (or cached clean features), clean test inputs. On a
//!   reloaded [`FrozenRun`] ([`run_probe`], written to `probe.json`), or on any [`FrozenEncoder`]
//!   — your own encoder, dataset and views, in memory ([`probe_encoder`]).
//! * [`destruction`]: per task, a small supervised CNN ([`classifier`]) trained on clean data and
//!   scored on clean inputs and on identity, expert, viewmaker and `dropout:<p>` views; written to
//!   `destruction.json` and `destruction.png`.
//! * [`linear`]: the multi-task linear-probe trainer on any feature tensors.
//! * [`interop`]: encoder weights as torchvision `resnet18` state dicts, both ways.
//!
//! Both analyses are resumable per task: a task already in the output file (made the same way)
//! is kept unless forced.
//!
//! # As a library
//!
//! Pretrain any [`featdrop_contrastive::Encoder`] on any [`featdrop_data::MultiTaskDataset`] with
//! [`featdrop_contrastive::Trainer::with_parts`], then probe it in memory:
//! `probe_encoder(&FrozenEncoder::from_trainer(&trainer), &cfg.probe)` returns the same
//! [`ProbeReport`] that `featdrop-eval probe` writes. `examples/custom_dataset.rs` is a complete
//! program (a user's own tensors with two label sets, pretrained and probed on both).
//!
//! # `probe.json` ([`ProbeReport`])
//!
//! ```text
//! {
//!   "schema": "featdrop.probe/2",                 // "featdrop.probe/1" files (no "epochs") are read too
//!   "dataset": "photos+digits", "view_mode": "expert",
//!   "checkpoint": "epoch-0200",                   // the final checkpoint, whose results "tasks" holds
//!   "protocol": {
//!     "features": "views" | "cached", "view_family": "expert", "feature_layer": "pre-pool",
//!     "feature_dim": 8192, "epochs": 100, "batch_size": 128, "lr": 0.01, "momentum": 0.9,
//!     "weight_decay": 0.0, "lr_milestones": [60, 80], "lr_gamma": 0.1,
//!     "train_size": 50000, "test_size": 10000, "seed": 0
//!   },
//!   "tasks": { "<task>": { "num_classes": 10, "chance": 0.1, "top1": 0.83, "final_train_loss": 0.51 } },
//!   "epochs": {                                   // earlier checkpoints (train.keep_epochs), by epoch
//!     "100": { "checkpoint": "epoch-0100", "tasks": { "<task>": { … as above … } } }
//!   }
//! }
//! ```
//!
//! # `destruction.json` ([`DestructionReport`])
//!
//! ```text
//! {
//!   "schema": "featdrop.destruction/1",
//!   "dataset": "photos+digits", "view_mode": "viewmaker",
//!   "checkpoint": "epoch-0200" | null,          // where the viewmaker came from
//!   "classifier": { "epochs": 10, "batch_size": 128, "lr": 0.001, "width": 32 },
//!   "dropout_p": 1.0, "test_size": 10000, "seed": 0,
//!   "tasks": { "<task>": {
//!     "num_classes": 10, "chance": 0.1, "clean_accuracy": 0.95,
//!     "families": { "<identity|expert|viewmaker|expert+viewmaker|dropout:p>":
//!                   { "accuracy": 0.40, "destruction_rate": 0.58 } } } }
//! }
//! ```
//!
//! `destruction_rate = 1 − accuracy / clean_accuracy`. Every field is required and unknown fields
//! are rejected ([`report::read_report`] names the file and the field).
#![warn(missing_docs)]

pub mod classifier;
pub mod destruction;
pub mod frozen;
pub mod interop;
pub mod linear;
mod pending;
pub mod probe;
pub mod progress;
pub mod report;
pub mod schedule;

pub use destruction::{DestructionConfig, DestructionOptions, ViewSource, run_destruction};
pub use frozen::{FrozenEncoder, FrozenRun};
pub use probe::{FeatureMode, ProbeOptions, probe_encoder, probe_scalars, run_probe};
pub use report::{DestructionReport, ProbeReport};

/// The README's Rust blocks (the "Using the crates" program) run as doc tests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
