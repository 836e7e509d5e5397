//! Shared set-up for the end-to-end tests in `tests/tests/`: they run the workspace's binaries
//! the way a user does (as processes, with files on disk), so this crate has no library code of
//! its own beyond finding those binaries.

use std::path::{Path, PathBuf};

/// The folder holding the workspace's binaries of this build profile (`target/debug` under
/// `cargo test`): a test binary lives in its `deps/` subfolder.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's own path");
    let deps = exe.parent().expect("a test binary sits in target/<profile>/deps");
    deps.parent().expect("target/<profile>").to_path_buf()
}

/// The path of one of the workspace's binaries (`featdrop-train`, `xtask`, …), with a clear
/// message when it was not built: `cargo test --workspace` builds them all before any test runs.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace's binaries first (cargo test --workspace builds them)",
        path.display()
    );
    path
}

/// The repository root (where `experiments/` and `Cargo.toml` live).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository root")
}
