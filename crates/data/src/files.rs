//! Where the loaders look for their folders and files, and how they say what they found instead
//! (issue 27 items 20, 22): a folder the user names is the folder used — never a sibling of it —
//! a folder that does not exist is said not to exist, a folder where a file is expected is said
//! to be a folder, and a search that finds nothing lists every place it looked.

use anyhow::{Result, anyhow, bail};
use std::path::{Path, PathBuf};

/// What a path holds (symbolic links followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A regular file (or anything else that is not a folder: a device, a pipe).
    File,
    /// A folder.
    Folder,
    /// Nothing, or nothing readable.
    Missing,
}

/// What `path` holds.
pub fn entry(path: &Path) -> Entry {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Entry::Folder,
        Ok(_) => Entry::File,
        Err(_) => Entry::Missing,
    }
}

/// The first of `candidates` that exists, if it is a file; `None` when none exists. A folder
/// found where a file is expected is an error naming it: it is not the file, and not missing.
pub fn first_file(candidates: &[PathBuf]) -> Result<Option<PathBuf>> {
    for path in candidates {
        match entry(path) {
            Entry::File => return Ok(Some(path.clone())),
            Entry::Folder => bail!("{}: a folder where a file is expected", path.display()),
            Entry::Missing => {}
        }
    }
    Ok(None)
}

/// Finds the folder of a dataset's files from `dir`: `dir` itself or `dir/sub` (the `data/raw`
/// layout). A folder the user `given` is authoritative: it must exist and be a folder, and only it
/// is searched. The default folder (none given) may also be a sibling `sub` next to it, a
/// convenience kept for installed binaries. When nothing matches `ok`, the error (`missing`: what is
/// not there; `hint`: what to do) lists every place looked at.
pub fn locate(
    dir: &Path,
    given: bool,
    sub: &str,
    ok: impl Fn(&Path) -> bool,
    missing: &str,
    hint: &str,
) -> Result<PathBuf> {
    if given {
        match entry(dir) {
            Entry::Missing => bail!("{}: the data folder given does not exist", dir.display()),
            Entry::File => bail!("{}: the data folder given is a file, not a folder", dir.display()),
            Entry::Folder => {}
        }
    }
    let mut places = vec![dir.to_path_buf(), dir.join(sub)];
    if !given && let Some(sibling) = dir.parent().map(|p| p.join(sub)) {
        // `data/raw/audio`'s sibling `audio` is itself: listed once.
        if !places.contains(&sibling) {
            places.push(sibling);
        }
    }
    if let Some(found) = places.iter().find(|p| ok(p)) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
    let which = if given { "the data folder given" } else { "the default data folder" };
    Err(anyhow!("{}: {missing} ({which}; looked in {}); {hint}", dir.display(), looked.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 27.20: a folder given explicitly is never completed from a sibling folder; the
    /// default one still is, and a failed search names every place it looked.
    #[test]
    fn a_given_folder_is_the_folder_searched() {
        let root = tempfile::tempdir().unwrap();
        let (given, sibling) = (root.path().join("audio"), root.path().join("mnist"));
        std::fs::create_dir_all(&given).unwrap();
        std::fs::create_dir_all(&sibling).unwrap();
        let is_mnist = |p: &Path| p.ends_with("mnist") && p.is_dir();
        let e = locate(&given, true, "mnist", is_mnist, "no MNIST", "pass --data-dir").unwrap_err().to_string();
        let own = given.join("mnist").display().to_string();
        assert!(e.contains("no MNIST") && e.contains(&own) && !e.contains(&sibling.display().to_string()), "{e}");
        assert_eq!(locate(&given, false, "mnist", is_mnist, "no MNIST", "").unwrap(), sibling);
        let e = locate(&root.path().join("nope"), true, "mnist", is_mnist, "no MNIST", "").unwrap_err().to_string();
        assert!(e.contains("nope: the data folder given does not exist"), "{e}");
        let file = root.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let e = locate(&file, true, "mnist", is_mnist, "no MNIST", "").unwrap_err().to_string();
        assert!(e.contains("is a file, not a folder"), "{e}");
    }

    /// Issue 27.22: a folder where a file is expected was reported as a missing file.
    #[test]
    fn a_folder_in_place_of_a_file_is_named_as_a_folder() {
        let root = tempfile::tempdir().unwrap();
        let (dir, file) = (root.path().join("a.bin"), root.path().join("b.bin"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(&file, b"x").unwrap();
        let e = first_file(&[dir.clone(), file.clone()]).unwrap_err().to_string();
        assert!(e.contains("a.bin: a folder where a file is expected"), "{e}");
        assert_eq!(first_file(&[root.path().join("c"), file.clone()]).unwrap(), Some(file));
        assert_eq!(first_file(&[root.path().join("c")]).unwrap(), None);
    }
}
