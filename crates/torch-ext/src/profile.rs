//! libtorch's own (Kineto) profiler, as `torch.profiler.profile` runs it from Python: every aten op
//! run while it is on is recorded with its start and duration, and the trace is saved in the
//! Chrome-trace JSON format that `prof.export_chrome_trace` writes. Profiling featdrop and a PyTorch
//! script with the same profiler is what makes their per-op times comparable.

use super::{check, ffi};
use anyhow::{Context, Result, ensure};
use std::ffi::CString;
use std::path::Path;

/// Runs `f` under the profiler (CPU ops, plus CUDA kernels when `cuda`) and saves the trace to
/// `trace` (Chrome-trace JSON). The profiler is process-wide: one profile at a time.
///
/// # Errors
/// The profiler could not start (e.g. already running) or the trace could not be written.
pub fn profile<T>(trace: &Path, cuda: bool, f: impl FnOnce() -> T) -> Result<T> {
    let path = trace.to_str().with_context(|| format!("trace path {} is not UTF-8", trace.display()))?;
    let c_path = CString::new(path).with_context(|| format!("trace path {path} holds a NUL byte"))?;
    if let Some(dir) = trace.parent().filter(|d| !d.as_os_str().is_empty()) {
        ensure!(dir.is_dir(), "cannot write the trace {path}: {} is not a folder", dir.display());
    }
    // SAFETY: a plain integer argument; errors come back as a string.
    check(unsafe { ffi::fdx_profiler_start(i32::from(cuda)) }).context("starting libtorch's profiler")?;
    let out = f();
    // SAFETY: `c_path` is a valid NUL-terminated string for the duration of the call.
    check(unsafe { ffi::fdx_profiler_stop(c_path.as_ptr()) }).with_context(|| format!("saving the trace {path}"))?;
    Ok(out)
}
