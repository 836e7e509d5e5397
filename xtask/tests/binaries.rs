//! Every binary a build makes runs on its own: libtorch is found through the rpath baked in at
//! link time, with no `LD_LIBRARY_PATH` or any other variable — even for the crates that do not
//! use libtorch themselves but get it linked in when the workspace is built together.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_xtask")).parent().unwrap().to_path_buf()
}

#[test]
fn every_binary_starts_with_an_empty_environment() {
    let names = ["featdrop-train", "featdrop-eval", "featdrop-data", "featdrop-theory", "featdrop-doctor", "xtask"];
    for name in names {
        let path = bin_dir().join(name);
        assert!(path.is_file(), "{} is missing: build the workspace's binaries first", path.display());
        let out = Command::new(&path).env_clear().arg("--version").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name} --version with an empty environment failed: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let shown = if name == "xtask" { "cargo xtask" } else { name };
        assert!(stdout.starts_with(shown), "{name} --version printed {stdout:?}");
    }
}
