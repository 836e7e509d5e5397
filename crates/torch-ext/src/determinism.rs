//! `train.deterministic` (issue 30 item 8): libtorch's process-wide switches for reproducible
//! results on CUDA — deterministic cuDNN convolutions without autotuning, deterministic algorithms
//! (an op with no deterministic implementation is an error, not a warning) and no TF32 — as
//! `torch.use_deterministic_algorithms(True)` and the `torch.backends` flags set them from Python.

use super::{check, ffi};
use anyhow::Result;
use std::ffi::c_int;
use tch::{Kind, Tensor};

/// The environment variable cuBLAS reads for its workspace: deterministic cuBLAS (CUDA ≥ 10.2)
/// needs it set before CUDA starts, or libtorch's deterministic mode refuses cuBLAS calls.
pub const CUBLAS_WORKSPACE_CONFIG: &str = "CUBLAS_WORKSPACE_CONFIG";
/// The value `train.deterministic` uses (the one PyTorch's reproducibility notes recommend).
pub const CUBLAS_WORKSPACE_SETTING: &str = ":4096:8";

/// Whether the environment sets a deterministic cuBLAS workspace (`:4096:8` or `:16:8`).
pub fn cublas_workspace_is_deterministic() -> bool {
    std::env::var(CUBLAS_WORKSPACE_CONFIG).is_ok_and(|v| v == ":4096:8" || v == ":16:8")
}

/// The determinism flags of libtorch's global context, as read back from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Determinism {
    /// cuDNN picks deterministic convolution algorithms.
    pub cudnn_deterministic: bool,
    /// cuDNN autotunes (benchmarks) its algorithms: the choice can vary from run to run.
    pub cudnn_benchmark: bool,
    /// Ops without a deterministic implementation fail (or warn, with `warn_only`).
    pub algorithms: bool,
    /// Those ops only warn.
    pub warn_only: bool,
    /// cuBLAS may use TF32 for float32 matrix products.
    pub tf32_cublas: bool,
    /// cuDNN may use TF32 for float32 convolutions.
    pub tf32_cudnn: bool,
}

/// Switches deterministic mode on (or back to libtorch's defaults) for the whole process: cuDNN
/// deterministic and not benchmarking, deterministic algorithms with errors rather than warnings,
/// TF32 off in cuBLAS and cuDNN. It does not set [`CUBLAS_WORKSPACE_CONFIG`]: the environment is
/// the caller's to set, before any thread or CUDA starts (`featdrop-train` does).
pub fn set_deterministic(on: bool) -> Result<()> {
    // SAFETY: a plain integer argument; errors come back as a string.
    check(unsafe { ffi::fdx_set_deterministic(c_int::from(on)) })
}

/// The current flags, read from libtorch's global context.
pub fn determinism() -> Result<Determinism> {
    let mut bits: c_int = 0;
    // SAFETY: a plain out-parameter valid for the call.
    check(unsafe { ffi::fdx_deterministic_state(&mut bits) })?;
    let bit = |b: c_int| bits & b != 0;
    Ok(Determinism {
        cudnn_deterministic: bit(1),
        cudnn_benchmark: bit(2),
        algorithms: bit(4),
        warn_only: bit(8),
        tf32_cublas: bit(16),
        tf32_cudnn: bit(32),
    })
}

/// Whether deterministic algorithms are on (`train.deterministic`); false if the flag cannot be read.
pub fn deterministic_algorithms() -> bool {
    determinism().is_ok_and(|d| d.algorithms)
}

/// Whether `x`'s ops must avoid the CUDA kernels whose backward has no deterministic
/// implementation (libtorch raises an error for them in deterministic mode).
fn needs_deterministic_backward(x: &Tensor) -> bool {
    x.device().is_cuda() && deterministic_algorithms()
}

/// Reflection padding of `p` on each side of a `[N, C, H, W]` tensor, as `reflection_pad2d`.
/// On CUDA in deterministic mode it gathers the rows and columns instead (`index_select`, whose
/// backward is deterministic there; `reflection_pad2d`'s is not): the same values, the same
/// gradient up to the order of its sums.
pub fn reflection_pad2d(x: &Tensor, p: i64) -> Tensor {
    if needs_deterministic_backward(x) { reflection_pad2d_by_gather(x, p) } else { x.reflection_pad2d([p, p, p, p]) }
}

/// [`reflection_pad2d`] by gathering, on any device.
pub fn reflection_pad2d_by_gather(x: &Tensor, p: i64) -> Tensor {
    // Index i of the padded axis reads (n−1) − |(n−1) − |i − p||: the mirror without the edge.
    let mirror = |n: i64| {
        let i = Tensor::arange_start(-p, n + p, (Kind::Int64, x.device())).abs();
        (i - (n - 1)).abs().neg() + (n - 1)
    };
    let s = x.size();
    x.index_select(3, &mirror(s[3])).index_select(2, &mirror(s[2]))
}

/// `adaptive_avg_pool2d` of `[N, C, H, W]` to `out`. On CUDA in deterministic mode, when `out`
/// divides the input evenly, the same average as a plain average pool (global: a mean), whose
/// backward is deterministic there (`adaptive_avg_pool2d`'s is not).
pub fn adaptive_avg_pool2d(x: &Tensor, out: [i64; 2]) -> Tensor {
    let s = x.size();
    let even = s[2] % out[0] == 0 && s[3] % out[1] == 0;
    if even && needs_deterministic_backward(x) { avg_pool_evenly(x, out) } else { x.adaptive_avg_pool2d(out) }
}

/// [`adaptive_avg_pool2d`] for an `out` that divides the input evenly, by a plain average pool.
pub fn avg_pool_evenly(x: &Tensor, out: [i64; 2]) -> Tensor {
    let s = x.size();
    if out == [1, 1] {
        return x.mean_dim([2i64, 3].as_slice(), true, x.kind());
    }
    let k = [s[2] / out[0], s[3] / out[1]];
    x.avg_pool2d(k, k, [0, 0], false, true, None::<i64>)
}
