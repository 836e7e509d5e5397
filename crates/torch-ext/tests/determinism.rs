//! `set_deterministic` through the shim, read back from libtorch's global context. Its own test
//! binary: the flags are process-wide and would leak into other tests running beside it.

use featdrop_torch_ext::{determinism, set_deterministic};

#[test]
fn deterministic_mode_sets_every_flag_and_off_restores_libtorchs_defaults() {
    let before = determinism().unwrap();
    assert!(!before.algorithms && !before.cudnn_deterministic, "libtorch starts non-deterministic: {before:?}");
    set_deterministic(true).unwrap();
    let on = determinism().unwrap();
    assert!(on.cudnn_deterministic && on.algorithms, "{on:?}");
    assert!(!on.warn_only && !on.cudnn_benchmark && !on.tf32_cublas && !on.tf32_cudnn, "{on:?}");
    set_deterministic(false).unwrap();
    assert_eq!(determinism().unwrap(), before);
}
