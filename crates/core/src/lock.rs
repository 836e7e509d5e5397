//! One writer per folder: an exclusive lock on a file inside a folder that must not be changed by
//! two processes at once (a run directory, an experiment's folder of runs).
//!
//! The lock is the operating system's (`flock` on Unix, through [`std::fs::File::try_lock`]), so
//! it ends with its holder — a killed writer never leaves a stale lock behind. The holder writes
//! its pid and its name into the file, for the error a second writer gets. The file itself stays:
//! deleting a lock file while another process opens it would let two writers hold "the" lock.

use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock file's name inside the locked folder (hidden: readers of the folder skip it).
pub const LOCK_FILE: &str = ".lock";

/// A held lock on a folder; released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct DirLock {
    // Held open for the lock's lifetime: closing the file releases the lock.
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of `dir` (created if missing) for `holder` (a program's name, shown to a
    /// second writer), or fails at once, naming the process that holds it.
    pub fn acquire(dir: &Path, holder: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating folder {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        // Not truncated on open: the file may be another holder's, with its pid in it.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => bail!(
                "{} is in use: {} holds its lock {}; two writers on one folder would mix their results — \
                 wait for that process to end (or stop it) and run again",
                dir.display(),
                describe_holder(&path),
                path.display()
            ),
            Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
        }
        file.set_len(0)
            .and_then(|_| writeln!(file, "{}\n{holder}", std::process::id()))
            .with_context(|| format!("writing the holder's pid into lock file {}", path.display()))?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// "featdrop-train (pid 1234)" from a held lock file. The holder writes its pid right after
/// taking the lock, so an empty file is read again for a moment before giving up.
fn describe_holder(path: &Path) -> String {
    for _ in 0..20 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut lines = text.lines();
        if let (Some(pid), Some(name)) = (lines.next(), lines.next()) {
            return format!("{name} (pid {pid})");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    "another process (its pid was not written yet)".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holders_pid_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let first = DirLock::acquire(&run, "featdrop-train").unwrap();
        // A second open file description conflicts even within one process, as between two.
        let e = format!("{:#}", DirLock::acquire(&run, "featdrop-train").unwrap_err());
        let me = std::process::id();
        assert!(e.contains(&format!("featdrop-train (pid {me}) holds its lock")), "{e}");
        assert!(e.contains(&run.display().to_string()), "{e}");
        assert_eq!(first.path(), run.join(LOCK_FILE));
        drop(first);
        let again = DirLock::acquire(&run, "cargo xtask reproduce").unwrap();
        assert_eq!(std::fs::read_to_string(again.path()).unwrap(), format!("{me}\ncargo xtask reproduce\n"));
    }

    #[test]
    fn a_folder_that_cannot_be_made_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "x").unwrap();
        let e = format!("{:#}", DirLock::acquire(&file.join("run"), "featdrop-train").unwrap_err());
        assert!(e.contains(&file.join("run").display().to_string()), "{e}");
    }
}
