//! The training sessions of a run (`attempts.json`): each process that trains records its time
//! and images as it goes (after every epoch, atomically), so that the run's costs sum every
//! attempt — killed ones included — instead of counting only the last process's.

use anyhow::Result;
use featdrop_core::io::{read_json, write_json_atomic};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One process's training session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it started, seconds since the Unix epoch.
    pub started_unix_s: u64,
    /// Epochs done when it started.
    pub from_epoch: usize,
    /// Epochs done when it last recorded (it trained epochs `from_epoch + 1 ..= to_epoch`, and
    /// perhaps part of the next if it was killed).
    pub to_epoch: usize,
    /// Training wall time up to its last record, seconds.
    pub seconds: f64,
    /// Images processed up to its last record (pairs count as two).
    pub images: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct AttemptsFile {
    attempts: Vec<Attempt>,
}

/// The attempts record of a run directory.
pub(super) struct Attempts {
    path: PathBuf,
    file: AttemptsFile,
}

impl Attempts {
    /// The record at `path` (none yet: empty); an unreadable one is an error naming it.
    pub(super) fn load(path: &Path) -> Result<Self> {
        let file = if path.exists() { read_json(path)? } else { AttemptsFile::default() };
        Ok(Self { path: path.to_owned(), file })
    }

    /// Starts this process's attempt at `from_epoch` epochs done, and records it.
    pub(super) fn begin(&mut self, from_epoch: usize) -> Result<()> {
        let started_unix_s =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let attempt = Attempt { started_unix_s, from_epoch, to_epoch: from_epoch, seconds: 0.0, images: 0 };
        self.file.attempts.push(attempt);
        write_json_atomic(&self.path, &self.file)
    }

    /// Records this process's progress (begun with [`Attempts::begin`]).
    pub(super) fn record(&mut self, to_epoch: usize, seconds: f64, images: u64) -> Result<()> {
        if let Some(a) = self.file.attempts.last_mut() {
            (a.to_epoch, a.seconds, a.images) = (to_epoch, seconds, images);
        }
        write_json_atomic(&self.path, &self.file)
    }

    /// Every attempt, oldest first.
    pub(super) fn all(&self) -> &[Attempt] {
        &self.file.attempts
    }

    /// Training seconds and images over every attempt.
    pub(super) fn totals(&self) -> (f64, u64) {
        self.all().iter().fold((0.0, 0), |(s, n), a| (s + a.seconds, n + a.images))
    }
}
