//! Compiles the C++ shim (and its one kernel, the channels-last instance norm) against libtorch's
//! headers, with the flags torch-sys uses for its own shim (the two must agree on the C++ ABI of
//! `at::Tensor`), then adds libtorch's rpath for this crate's tests.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    for file in ["csrc/torch_ext.cpp", "csrc/instance_norm.cpp", "csrc/guarded.h"] {
        println!("cargo:rerun-if-changed={file}");
    }
    let root = PathBuf::from(std::env::var_os("LIBTORCH").expect("LIBTORCH is not set; run `cargo xtask setup`"));
    let include = root.join("include");
    // The torch 2.x wheels are built with the new ABI; torch-sys defaults to 1 and reads the same
    // variable, so following it keeps both shims compatible.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        // libtorch's headers are not warning-clean; our own shim is small enough to review by eye.
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("csrc/torch_ext.cpp")
        .file("csrc/instance_norm.cpp")
        .compile("featdrop_torch_ext");
    // The shim calls into libtorch_cpu/c10 directly; tch links them too, but saying so here does
    // not rely on link order. `link_torch` below adds the search path and rpath.
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    featdrop_build::link_torch();
}
