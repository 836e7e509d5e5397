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

/// A live process as `/proc/<pid>/stat` describes it (Linux), for the tests that kill things and
/// then check what is left.
#[derive(Clone, Debug, PartialEq)]
pub struct Proc {
    /// Its process id.
    pub pid: i32,
    /// The command name (`comm`, at most 15 bytes).
    pub name: String,
    /// Its parent's process id.
    pub ppid: i32,
    /// Its process group.
    pub pgrp: i32,
}

/// The live processes of this machine: zombies (ended, awaiting their reaper) are left out.
pub fn live_processes() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| parse_stat(pid, &s)))
        .collect()
}

/// Whether `pid` is a live process (a zombie is not).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| parse_stat(pid, &s)).is_some()
}

/// `pid (name) state ppid pgrp …`, the name in parentheses possibly holding spaces or ')'; None
/// for a zombie or a line that does not parse.
fn parse_stat(pid: i32, stat: &str) -> Option<Proc> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    if fields.len() < 3 || fields[0] == "Z" {
        return None;
    }
    let name = stat.get(open + 1..close)?.to_string();
    Some(Proc { pid, name, ppid: fields[1].parse().ok()?, pgrp: fields[2].parse().ok()? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_names_with_spaces_and_skip_zombies() {
        let p = parse_stat(7, "7 (a) b) S 3 5 5 0 -1").unwrap();
        assert_eq!(p, Proc { pid: 7, name: "a) b".into(), ppid: 3, pgrp: 5 });
        assert!(parse_stat(8, "8 (x) Z 3 5 5").is_none());
        assert!(parse_stat(9, "garbage").is_none());
        let me = std::process::id() as i32;
        assert!(alive(me) && live_processes().iter().any(|p| p.pid == me));
    }
}
