//! Where things live: the checkout, the libtorch cache, and the environment for child cargo runs.

use std::path::PathBuf;
use std::process::Command;

/// The workspace root (the folder above `xtask/`).
pub fn repo_root() -> PathBuf {
    let xtask = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().expect("xtask lives inside the workspace").to_path_buf()
}

/// `.libtorch/` in the checkout: links to the libtorch in use (see .cargo/config.toml).
pub fn link_dir() -> PathBuf {
    repo_root().join(".libtorch")
}

/// The user-level cache folder for the torch wheel's venv.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| repo_root().join("target"));
    base.join("featdrop").join(format!("torch-{}", crate::libtorch::TORCH_VERSION))
}

/// A `cargo` command that builds and runs tch code against the libtorch set up here: LIBTORCH and
/// the run-time library path are set explicitly, so nothing depends on the caller's environment.
/// LIBTORCH is the checkout's `.libtorch/torch` link to `torch_root` — the very value plain
/// `cargo build` gets from `.cargo/config.toml` — so switching between `cargo …` and
/// `cargo xtask …` never rebuilds torch-sys.
pub fn cargo(torch_root: &std::path::Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(repo_root());
    let link = link_dir().join("torch");
    let linked = link.canonicalize().ok() == torch_root.canonicalize().ok();
    cmd.env("LIBTORCH", if linked { link.as_path() } else { torch_root });
    let lib = torch_root.join("lib");
    let lib = lib.canonicalize().unwrap_or(lib);
    let mut ld = std::env::split_paths(&std::env::var_os("LD_LIBRARY_PATH").unwrap_or_default()).collect::<Vec<_>>();
    ld.insert(0, lib);
    cmd.env("LD_LIBRARY_PATH", std::env::join_paths(ld).expect("library path has no ':'"));
    cmd
}
