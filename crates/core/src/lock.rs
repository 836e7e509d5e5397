//! One writer per folder: an exclusive lock on a file inside a folder that must not be changed by
//! two processes at once (a run directory, an experiment's folder of runs).
//!
//! The lock is the operating system's (`flock` on Unix, through [`std::fs::File::try_lock`]), so
//! it ends with its holder — a killed writer never leaves a stale lock behind. The holder writes
//! its pid and its name into the file, for the error a second writer gets. The file itself stays:
//! deleting a lock file while another process opens it would let two writers hold "the" lock.
//!
//! A lock can also be shared ([`Access::Shared`]): many holders of one kind side by side (the
//! Slurm array tasks of one experiment, each running its own cell), none of them beside an
//! exclusive holder (a local `reproduce` running the same cells). Shared holders write nothing
//! into the file (they would overwrite each other); a refused exclusive holder is told the lock
//! is shared instead.

use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock file's name inside the locked folder (hidden: readers of the folder skip it).
pub const LOCK_FILE: &str = ".lock";

/// How a lock is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// One holder alone.
    Exclusive,
    /// Side by side with other shared holders; never beside an exclusive one.
    Shared,
}

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
        Self::acquire_file(dir, LOCK_FILE, holder, Access::Exclusive)
    }

    /// Takes the lock file `name` of `dir` (created if missing) with `access`, or fails at once,
    /// naming the exclusive holder, or saying the lock is shared.
    pub fn acquire_file(dir: &Path, name: &str, holder: &str, access: Access) -> Result<Self> {
        let (mut file, path) = open(dir, name)?;
        let taken = match access {
            Access::Exclusive => file.try_lock(),
            Access::Shared => file.try_lock_shared(),
        };
        match taken {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => bail!(
                "{} is in use: {} {}; two writers on one folder would mix their results — \
                 wait for that process to end (or stop it) and run again",
                dir.display(),
                describe_holders(&path, access),
                path.display()
            ),
            Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
        }
        if access == Access::Exclusive {
            write_holder(&mut file, &path, holder)?;
        }
        Ok(Self { _file: file, path })
    }

    /// Takes the exclusive lock of `dir`, waiting for its holder to let go (for short jobs that
    /// would rather queue than fail, e.g. two report writers). Says once on stderr whom it waits for.
    pub fn wait(dir: &Path, holder: &str) -> Result<Self> {
        Self::wait_on(dir, LOCK_FILE, holder, &dir.display().to_string())
    }

    /// Takes the exclusive lock file `name` of `dir`, waiting for its holder to let go (e.g. the
    /// lock of one entry of a cache several processes fill). Says once on stderr whom it waits for.
    pub fn wait_file(dir: &Path, name: &str, holder: &str) -> Result<Self> {
        Self::wait_on(dir, name, holder, &dir.join(name).display().to_string())
    }

    fn wait_on(dir: &Path, name: &str, holder: &str, what: &str) -> Result<Self> {
        let (mut file, path) = open(dir, name)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                eprintln!("waiting for {} to finish with {what}…", describe_holder(&path));
                file.lock().with_context(|| format!("locking {}", path.display()))?;
            }
            Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
        }
        write_holder(&mut file, &path, holder)?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens (creating `dir` and the file if missing) the lock file `name` of `dir`.
fn open(dir: &Path, name: &str) -> Result<(File, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating folder {}", dir.display()))?;
    let path = dir.join(name);
    // Not truncated on open: the file may be another holder's, with its pid in it.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    Ok((file, path))
}

/// An exclusive holder's pid and name, for the error a second one gets.
fn write_holder(file: &mut File, path: &Path, holder: &str) -> Result<()> {
    file.set_len(0)
        .and_then(|_| writeln!(file, "{}\n{holder}", std::process::id()))
        .with_context(|| format!("writing the holder's pid into lock file {}", path.display()))
}

/// Who holds a lock that `wanted` was refused: an exclusive holder by name and pid, or "other
/// processes share" when a shared lock can still be had (a shared lock names nobody). The
/// probe's shared lock is dropped with its file at once.
fn describe_holders(path: &Path, wanted: Access) -> String {
    let shared = wanted == Access::Exclusive && File::open(path).is_ok_and(|f| f.try_lock_shared().is_ok());
    if shared { "other processes share its lock".into() } else { format!("{} holds its lock", describe_holder(path)) }
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

    /// Shared holders (a Slurm array's cell tasks) run side by side; an exclusive one (a local
    /// `reproduce`) is refused while any holds it, and a shared one while the exclusive one does.
    #[test]
    fn shared_holders_run_side_by_side_and_exclude_an_exclusive_one() {
        let dir = tempfile::tempdir().unwrap();
        let a = DirLock::acquire_file(dir.path(), ".cells.lock", "cargo xtask cell", Access::Shared).unwrap();
        let b = DirLock::acquire_file(dir.path(), ".cells.lock", "cargo xtask cell", Access::Shared).unwrap();
        let e = format!(
            "{:#}",
            DirLock::acquire_file(dir.path(), ".cells.lock", "cargo xtask reproduce", Access::Exclusive).unwrap_err()
        );
        assert!(e.contains("is in use: other processes share its lock"), "{e}");
        drop((a, b));
        let x = DirLock::acquire_file(dir.path(), ".cells.lock", "cargo xtask reproduce", Access::Exclusive).unwrap();
        let e = format!(
            "{:#}",
            DirLock::acquire_file(dir.path(), ".cells.lock", "cargo xtask cell", Access::Shared).unwrap_err()
        );
        assert!(e.contains(&format!("cargo xtask reproduce (pid {}) holds its lock", std::process::id())), "{e}");
        // Another lock file of the same folder is another lock.
        DirLock::acquire(dir.path(), "cargo xtask reproduce").unwrap();
        drop(x);
    }

    /// A waiting writer gets the lock once the holder lets go, instead of failing.
    #[test]
    fn a_waiting_writer_gets_the_lock_when_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), "cargo xtask report").unwrap();
        let waiter = std::thread::spawn({
            let dir = dir.path().to_path_buf();
            move || DirLock::wait(&dir, "cargo xtask report").map(|_| std::time::Instant::now())
        });
        std::thread::sleep(Duration::from_millis(200));
        let released = std::time::Instant::now();
        drop(first);
        let got = waiter.join().unwrap().unwrap();
        assert!(got >= released, "the waiter got the lock before it was released");
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
