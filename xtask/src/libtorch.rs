//! libtorch provisioning (docs/PROTOCOL.md §1): the PyPI wheel `torch==2.11.0` in a user-level cache venv,
//! or the user's own libtorch 2.11 named by LIBTORCH, linked into the checkout as `.libtorch/`.

use crate::paths::{cache_dir, link_dir};
use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The torch release tch 0.24 binds.
pub const TORCH_VERSION: &str = "2.11.0";
/// Free space the wheel and its CUDA libraries need while installing (≈4.6 GB installed).
const NEEDED_GIB: u64 = 8;

/// A usable libtorch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Libtorch {
    /// libtorch's root (holds `lib/` and `include/`).
    pub root: PathBuf,
    /// Its version string, e.g. `2.11.0+cu130`.
    pub version: String,
    /// `wheel` (installed here) or `LIBTORCH` (the user's).
    pub source: String,
}

/// Makes libtorch ready and links it into the checkout; instant when it already is.
pub fn setup() -> Result<Libtorch> {
    let start = Instant::now();
    let lt = match user_libtorch() {
        Some(root) => checked(&root, "LIBTORCH")?,
        None => wheel()?,
    };
    link_into_checkout(&lt.root)?;
    eprintln!(
        "libtorch {} ready ({}: {}) in {:.1}s",
        lt.version,
        lt.source,
        lt.root.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(lt)
}

/// LIBTORCH as the user set it; cargo's [env] entry pointing at `.libtorch/torch` does not count.
fn user_libtorch() -> Option<PathBuf> {
    let v = PathBuf::from(std::env::var_os("LIBTORCH")?);
    (v != link_dir().join("torch")).then_some(v)
}

/// Reads libtorch's version from `build-version` (libtorch zips) or `version.py` (wheels).
pub fn read_version(root: &Path) -> Result<String> {
    featdrop_core::device::read_libtorch_version(root)
}

/// Checks that `root` is a libtorch 2.11 with its libraries.
fn checked(root: &Path, source: &str) -> Result<Libtorch> {
    ensure!(
        root.is_dir(),
        "{source}={} does not exist; unset it to let `cargo xtask setup` install torch=={TORCH_VERSION}",
        root.display()
    );
    let version = read_version(root)?;
    let base = version.split('+').next().unwrap_or_default();
    let want = TORCH_VERSION.rsplit_once('.').map(|(mm, _)| mm).unwrap_or(TORCH_VERSION);
    if base.rsplit_once('.').map(|(mm, _)| mm) != Some(want) {
        bail!(
            "{source}={} holds libtorch {version}, but featdrop needs {want}.x (tch 0.24 binds {TORCH_VERSION}); \
             point LIBTORCH at a libtorch {want}, or unset it so `cargo xtask setup` installs torch=={TORCH_VERSION}",
            root.display()
        );
    }
    let cpu = root.join("lib/libtorch_cpu.so");
    ensure!(cpu.exists(), "{source}={}: {} is missing", root.display(), cpu.display());
    let root = root.canonicalize()?;
    Ok(Libtorch { root, version, source: source.into() })
}

#[derive(Serialize, Deserialize)]
struct Marker {
    version: String,
    torch_root: PathBuf,
}

/// The wheel in the cache venv, installing it first if needed.
fn wheel() -> Result<Libtorch> {
    let cache = cache_dir();
    let marker_path = cache.join("ready.json");
    if let Ok(text) = std::fs::read_to_string(&marker_path) {
        if let Ok(m) = serde_json::from_str::<Marker>(&text)
            && let Ok(lt) = checked(&m.torch_root, "wheel")
        {
            return Ok(lt);
        }
        eprintln!("the cached torch install at {} is incomplete; reinstalling", cache.display());
    }
    install_wheel(&cache)?;
    let torch_root = site_packages(&cache.join("venv"))?.join("torch");
    let lt = checked(&torch_root, "wheel")?;
    let marker = Marker { version: lt.version.clone(), torch_root: lt.root.clone() };
    std::fs::write(&marker_path, serde_json::to_string_pretty(&marker)?)
        .with_context(|| format!("writing {}", marker_path.display()))?;
    Ok(lt)
}

fn install_wheel(cache: &Path) -> Result<()> {
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    preflight(cache)?;
    let venv = cache.join("venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        eprintln!("creating a Python venv at {}", venv.display());
        let ok = Command::new("python3").args(["-m", "venv"]).arg(&venv).status()?.success();
        ensure!(
            ok,
            "`python3 -m venv {}` failed; install the venv module (Debian: apt install python3-venv)",
            venv.display()
        );
    }
    eprintln!("installing torch=={TORCH_VERSION} from PyPI into {} (≈4.6 GB, a few minutes)", venv.display());
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "on"])
        .arg(format!("torch=={TORCH_VERSION}"))
        .status()
        .with_context(|| format!("running {}", python.display()))?;
    ensure!(
        status.success(),
        "pip could not install torch=={TORCH_VERSION} (exit {status}); check that PyPI is reachable and that \
         {} has {NEEDED_GIB} GiB free, then run `cargo xtask setup` again (it resumes)",
        cache.display()
    );
    Ok(())
}

/// Fails early, with what to do, when python3, pip or disk space is missing.
fn preflight(cache: &Path) -> Result<()> {
    let py = Command::new("python3").arg("--version").output();
    ensure!(
        py.as_ref().is_ok_and(|o| o.status.success()),
        "python3 was not found; featdrop installs libtorch from the PyPI wheel with python3 (3.9 or newer): \
         install python3 and python3-venv, or point LIBTORCH at a libtorch {TORCH_VERSION}"
    );
    let pip = Command::new("python3").args(["-m", "ensurepip", "--version"]).output();
    ensure!(
        pip.is_ok_and(|o| o.status.success()),
        "python3 has no ensurepip, so a venv would have no pip; install python3-venv (Debian: apt install python3-venv)"
    );
    if let Some(free) = free_gib(cache) {
        ensure!(
            free >= NEEDED_GIB,
            "only {free} GiB free at {}; the torch wheel needs about {NEEDED_GIB} GiB. Free space, set XDG_CACHE_HOME \
             to a larger disk, or point LIBTORCH at an existing libtorch {TORCH_VERSION}",
            cache.display()
        );
    }
    Ok(())
}

/// Free space (GiB) of the file system holding `dir`, from `df`.
fn free_gib(dir: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()?;
    Some(kib / (1024 * 1024))
}

/// The venv's site-packages folder.
fn site_packages(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    let entries = std::fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))?;
    entries
        .filter_map(|e| e.ok().map(|e| e.path().join("site-packages")))
        .find(|p| p.join("torch").is_dir())
        .with_context(|| format!("no site-packages with torch under {}", lib.display()))
}

/// Points `.libtorch/torch` at libtorch and, for a wheel, `.libtorch/nvidia` at its CUDA libraries
/// (libtorch_cuda.so finds them through `$ORIGIN/../../nvidia`).
fn link_into_checkout(root: &Path) -> Result<()> {
    let dir = link_dir();
    let nvidia = root.parent().map(|p| p.join("nvidia")).filter(|p| p.is_dir());
    let wanted = [("torch", Some(root.to_path_buf())), ("nvidia", nvidia)];
    let current = |name: &str| std::fs::read_link(dir.join(name)).ok();
    if wanted.iter().all(|(n, t)| current(n) == *t) {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, target) in wanted {
        let link = dir.join(name);
        if link.symlink_metadata().is_ok() {
            std::fs::remove_file(&link).with_context(|| format!("removing {}", link.display()))?;
        }
        if let Some(t) = target {
            std::os::unix::fs::symlink(&t, &link).with_context(|| format!("linking {}", link.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_files_and_mismatch_message() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("version.py"), "x = 1\n__version__ = '2.10.1+cpu'\n").unwrap();
        assert_eq!(read_version(dir.path()).unwrap(), "2.10.1+cpu");
        let e = checked(dir.path(), "LIBTORCH").unwrap_err().to_string();
        assert!(e.contains("holds libtorch 2.10.1+cpu") && e.contains("needs 2.11.x"), "{e}");
        std::fs::write(dir.path().join("build-version"), "2.11.0+cu130\n").unwrap();
        let e = checked(dir.path(), "LIBTORCH").unwrap_err().to_string();
        assert!(e.contains("libtorch_cpu.so is missing"), "{e}");
        let e = checked(&dir.path().join("nope"), "LIBTORCH").unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
