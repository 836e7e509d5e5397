//! Shared types of featdrop (docs/PROTOCOL.md §1): tasks and task sets, batches with one label tensor per
//! task, view modes, device choice and GPU checks, seeding, the run config, the run-directory layout and its lock, atomic
//! files, memory estimates, the C heap setting, metrics logs, checkpoints and logging set-up.
//!
//! The `torch` feature (on by default) adds everything that needs libtorch: [`batch`],
//! [`device`] resolution, tch seeding and [`checkpoint`]s. Crates that must build without
//! libtorch (the theory simulator) turn it off and still get config, I/O, seeds and logging.
#![warn(missing_docs)]

#[cfg(feature = "torch")]
pub mod batch;
pub mod catalogue;
#[cfg(feature = "torch")]
pub mod checkpoint;
pub mod config;
pub mod costs;
pub mod device;
pub mod gpu;
pub mod heap;
#[cfg(feature = "torch")]
pub mod init;
pub mod io;
pub mod layout;
pub mod lock;
pub mod logging;
pub mod memory;
pub mod seed;
pub mod task;
#[cfg(feature = "torch")]
pub mod trained_on;
pub mod view_mode;
#[cfg(feature = "torch")]
pub mod views;

#[cfg(feature = "torch")]
pub use batch::Batch;
pub use config::{ConfigError, RunConfig};
pub use device::DeviceChoice;
pub use layout::RunDir;
pub use seed::{Seeds, Stream};
pub use task::{Modality, Split, Task, TaskSet};
pub use view_mode::{BaseViews, ViewMode};
#[cfg(feature = "torch")]
pub use views::ViewFamily;
