//! Build-script helper shared by every featdrop crate that links libtorch.
//!
//! `tch`'s own build script finds libtorch through `LIBTORCH`; two things it does not do are
//! solved here (docs/PROTOCOL.md §1):
//!
//! * **run-time path** — binaries, tests and examples get an rpath to libtorch's `lib` folder
//!   (the canonical path, so that the wheel's `$ORIGIN`-relative links to its CUDA libraries
//!   resolve), and run without `LD_LIBRARY_PATH`;
//! * **CUDA under as-needed linking** — nothing in the Rust code references a symbol of
//!   `libtorch_cuda.so`, so the linker drops it and CUDA is silently unavailable. When that
//!   library exists it is linked with `--no-as-needed`, so it is always loaded.
//!
//! `cargo:rustc-link-arg` applies only to the package's own binaries, tests and examples, which is
//! why every crate with such targets calls [`link_torch`] from its `build.rs`.
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

/// Emits the link arguments described in the crate docs. Call it from `build.rs`.
pub fn link_torch() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(lib) = torch_lib_dir() else {
        // tch's own build script reports a missing libtorch with its own error.
        println!("cargo:warning=LIBTORCH is not set; run `cargo xtask setup`");
        watch_for_setup();
        return;
    };
    println!("cargo:rerun-if-changed={}", lib.display());
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if has_cuda(&lib) {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

/// Only the run-time path, for crates that do not use libtorch themselves but may be linked with
/// it when a workspace build unifies `featdrop-core`'s `torch` feature into their dependency graph
/// (the theory simulator, xtask). Without it their binaries would need `LD_LIBRARY_PATH` after
/// such a build. Quiet when no libtorch is set up: then nothing links it.
pub fn torch_rpath() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    match torch_lib_dir() {
        Some(lib) => println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display()),
        None => watch_for_setup(),
    }
}

/// With `LIBTORCH` set but its folder not there yet: `cargo xtask` builds xtask before `.libtorch/`
/// exists (set-up makes it), and a copied `target/` can meet a checkout without it, with the same
/// LIBTORCH value as later builds. Watching the folder that will hold the link (a missing one
/// counts as changed, and set-up creates it new) runs the build script again once it exists,
/// instead of keeping an output without the rpath.
fn watch_for_setup() {
    if let Some(parent) = std::env::var_os("LIBTORCH").as_deref().map(Path::new).and_then(Path::parent) {
        println!("cargo:rerun-if-changed={}", parent.display());
    }
}

/// libtorch's `lib` folder, canonicalised, from `LIBTORCH`.
pub fn torch_lib_dir() -> Option<PathBuf> {
    let root = std::env::var_os("LIBTORCH")?;
    let lib = Path::new(&root).join("lib");
    lib.canonicalize().ok()
}

/// Whether this libtorch carries the CUDA backend.
pub fn has_cuda(lib: &Path) -> bool {
    lib.join("libtorch_cuda.so").exists()
}
