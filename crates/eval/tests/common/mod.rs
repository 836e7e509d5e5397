//! What the tests that run featdrop's own Python share: the checkout, and that Python checked to
//! hold the packages a test needs (a test without them fails, naming the fix; it never skips).

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// featdrop's Python (the wheel's venv featdrop links torch from): `FEATDROP_PYTHON`, which `cargo
/// xtask test` sets after installing the test packages there, or else the venv `.libtorch/torch`
/// lies in. `check` is Python that fails without what the test needs (`needs`, said with the
/// `pip` arguments that install it).
pub fn python_with(check: &str, needs: &str, pip: &str) -> PathBuf {
    let python = std::env::var_os("FEATDROP_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        let torch =
            workspace().join(".libtorch/torch").canonicalize().expect(".libtorch/torch: run `cargo xtask setup`");
        torch.ancestors().nth(4).expect("torch inside a venv").join("bin/python")
    });
    let ok = Command::new(&python).args(["-c", check]).status().is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} lacks {needs}: run `cargo xtask test` (it installs it), or `{0} -m pip install --no-deps {pip}`",
        python.display()
    );
    python
}
