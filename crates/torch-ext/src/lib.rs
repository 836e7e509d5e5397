//! What tch 0.24 does not bind but featdrop's trainer needs (docs/PROTOCOL.md §4: "bf16 autocast and
//! channels-last as options on CUDA"): the channels-last memory format and autocast with an
//! explicit dtype; the determinism switches of `train.deterministic` ([`set_deterministic`]); and
//! libtorch's profiler, for benchmarks and for counting a step's host round trips ([`profile`]).
//! One kernel of its own: [`instance_norm`] in the channels-last layout, which libtorch's op
//! would copy to NCHW and back.
//!
//! A small C++ shim (`csrc/torch_ext.cpp` and `csrc/instance_norm.cpp`, compiled by `build.rs`
//! against `$LIBTORCH/include`) calls libtorch directly; every C++ exception is caught there and
//! comes back as an [`anyhow::Error`] carrying libtorch's message.
//!
//! Autocast state in libtorch is per thread, so [`with_autocast`] affects only the calling thread.

#![warn(missing_docs)]

use std::ffi::{CStr, c_char, c_int};

use anyhow::{Result, anyhow, bail};
use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

mod ffi {
    use super::{C_tensor, c_char, c_int};

    unsafe extern "C" {
        pub fn fdx_free_error(err: *mut c_char);
        pub fn fdx_to_channels_last(t: *const C_tensor, out: *mut *mut C_tensor) -> *mut c_char;
        pub fn fdx_is_channels_last(t: *const C_tensor, out: *mut c_int) -> *mut c_char;
        pub fn fdx_set_channels_last(t: *mut C_tensor, changed: *mut c_int) -> *mut c_char;
        pub fn fdx_autocast_state(device: c_int, enabled: *mut c_int, dtype: *mut c_int) -> *mut c_char;
        pub fn fdx_autocast_enter(
            device: c_int,
            dtype: c_int,
            prev_enabled: *mut c_int,
            prev_dtype: *mut c_int,
            prev_cache: *mut c_int,
        ) -> *mut c_char;
        pub fn fdx_autocast_exit(
            device: c_int,
            prev_enabled: c_int,
            prev_dtype: c_int,
            prev_cache: c_int,
        ) -> *mut c_char;
        pub fn fdx_set_deterministic(on: c_int) -> *mut c_char;
        pub fn fdx_deterministic_state(bits: *mut c_int) -> *mut c_char;
        pub fn fdx_profiler_start(with_cuda: c_int) -> *mut c_char;
        pub fn fdx_profiler_stop(trace_path: *const c_char) -> *mut c_char;
        pub fn fdx_instance_norm_channels_last(
            x: *const C_tensor,
            w: *const C_tensor,
            b: *const C_tensor,
            eps: f64,
            out: *mut *mut C_tensor,
        ) -> *mut c_char;
    }
}

mod determinism;
mod instance_norm;
mod profile;
pub use determinism::{
    CUBLAS_WORKSPACE_CONFIG, CUBLAS_WORKSPACE_SETTING, Determinism, adaptive_avg_pool2d, avg_pool_evenly,
    cublas_workspace_is_deterministic, determinism, deterministic_algorithms, reflection_pad2d,
    reflection_pad2d_by_gather, set_deterministic,
};
pub use instance_norm::{f_instance_norm_channels_last, instance_norm, runs_fused};
pub use profile::profile;

/// Turns the shim's error convention (null = success, else a malloc'd message) into a `Result`.
fn check(err: *mut c_char) -> Result<()> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string from `strdup` in the shim, owned by
    // us; it is read once and then freed by the shim's matching `free`.
    let msg = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    // SAFETY: `err` came from the shim's `strdup` and is not used after this.
    unsafe { ffi::fdx_free_error(err) };
    Err(anyhow!("libtorch: {msg}"))
}

/// Returns `t` laid out as channels-last (NHWC in memory, shape unchanged), like
/// `t.contiguous(memory_format=torch.channels_last)`; `t` itself is returned (shared) when it
/// already is. Fails for tensors that are not 4-d.
pub fn f_to_channels_last(t: &Tensor) -> Result<Tensor> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: `t.as_ptr()` is a live `at::Tensor*` borrowed for the call; the shim writes `out`
    // only on success.
    check(unsafe { ffi::fdx_to_channels_last(t.as_ptr(), &mut out) })?;
    // SAFETY: on success `out` is a fresh `new at::Tensor`, which tch's `Tensor` owns and frees
    // with `delete` exactly as it does for its own results.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// Panicking form of [`f_to_channels_last`], following tch's `f_`/plain naming.
///
/// # Panics
/// If `t` is not a 4-d tensor (libtorch's message is in the panic).
pub fn to_channels_last(t: &Tensor) -> Tensor {
    f_to_channels_last(t).unwrap_or_else(|e| panic!("to_channels_last: {e:#}"))
}

/// Whether `t` is contiguous in the channels-last memory format. Always false for tensors that are
/// not 4-d (libtorch's definition); a 4-d tensor with C == 1 or H == W == 1 can be both
/// channels-last and contiguous.
pub fn is_channels_last(t: &Tensor) -> bool {
    let mut out: c_int = 0;
    // SAFETY: `t.as_ptr()` is a live `at::Tensor*` for the call and `out` a valid int to write.
    let res = check(unsafe { ffi::fdx_is_channels_last(t.as_ptr(), &mut out) });
    // is_contiguous only throws for undefined tensors, which tch never hands out as `&Tensor`
    // outside of explicit `Tensor::new()`; treat those as "not channels-last".
    res.is_ok() && out != 0
}

/// Converts every 4-d variable of `vs` (conv weights) to channels-last **in place**, and returns
/// how many were converted.
///
/// The variables keep their identity: libtorch's `set_data` swaps the storage of the existing
/// tensor, so an optimiser built from `vs` before or after this call still updates the very same
/// tensors, which stay leaves that require grad. Call it before building the optimiser when the
/// optimiser keeps per-parameter state (momentum), so that state is allocated channels-last too.
pub fn module_to_channels_last(vs: &tch::nn::VarStore) -> Result<usize> {
    let mut converted = 0;
    // `variables()` returns shallow clones: separate `at::Tensor` handles to the same TensorImpl,
    // so changing the impl through them changes what the VarStore holds.
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut var) in vars {
        let mut changed: c_int = 0;
        // SAFETY: `var` is a live `at::Tensor*` owned by this loop iteration; the shim only
        // mutates the TensorImpl it points to (shared with the VarStore by design).
        check(unsafe { ffi::fdx_set_channels_last(var.as_mut_ptr(), &mut changed) })
            .map_err(|e| e.context(format!("converting variable {name} to channels-last")))?;
        converted += usize::from(changed != 0);
    }
    Ok(converted)
}

/// The autocast device class of `device` as the shim's code (autocast is per device *type*; the
/// CUDA index is irrelevant).
fn device_code(device: Device) -> Result<c_int> {
    match device {
        Device::Cpu => Ok(0),
        Device::Cuda(_) => Ok(1),
        Device::Mps => Ok(2),
        Device::Vulkan => bail!("autocast is not supported on Vulkan"),
    }
}

/// c10::ScalarType values of the dtypes autocast can use or report (stable since libtorch 1.x).
fn scalar_type(kind: Kind) -> Result<c_int> {
    match kind {
        Kind::Half => Ok(5),
        Kind::BFloat16 => Ok(15),
        other => bail!("autocast dtype must be BFloat16 or Half, got {other:?}"),
    }
}

fn kind_of(scalar_type: c_int) -> Result<Kind> {
    match scalar_type {
        5 => Ok(Kind::Half),
        6 => Ok(Kind::Float),
        7 => Ok(Kind::Double),
        15 => Ok(Kind::BFloat16),
        other => bail!("unexpected autocast dtype code {other}"),
    }
}

/// The calling thread's autocast state for `device`'s type: whether it is enabled, and the dtype it
/// casts to (libtorch's defaults when never set: BFloat16 on CPU, Half on CUDA).
pub fn autocast_state(device: Device) -> Result<(bool, Kind)> {
    let code = device_code(device)?;
    let (mut enabled, mut dtype): (c_int, c_int) = (0, 0);
    // SAFETY: plain out-parameters, valid for the call.
    check(unsafe { ffi::fdx_autocast_state(code, &mut enabled, &mut dtype) })?;
    Ok((enabled != 0, kind_of(dtype)?))
}

/// Restores the state saved on entry when dropped, so a panic inside the scope cannot leave
/// autocast switched on for the rest of the thread.
struct AutocastGuard {
    device: c_int,
    prev_enabled: c_int,
    prev_dtype: c_int,
    prev_cache: c_int,
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        // SAFETY: plain integer arguments; errors come back as a string, never as an unwind.
        let res =
            check(unsafe { ffi::fdx_autocast_exit(self.device, self.prev_enabled, self.prev_dtype, self.prev_cache) });
        // Only an unknown device code can fail here, and entry already validated it; a panic in
        // drop could abort during unwinding, so the impossible case is only asserted in debug.
        debug_assert!(res.is_ok(), "autocast exit failed: {res:?}");
    }
}

/// Runs `f` with libtorch autocast enabled for `device`'s type (CPU, CUDA or MPS) casting to
/// `dtype` (`Kind::BFloat16` or `Kind::Half`; CPU autocast supports BFloat16 and, in recent
/// libtorch, Half), then restores the previous enabled flag, dtype and cache setting, and clears
/// the cast cache when the outermost scope closes — what `torch.autocast`'s `__enter__`/`__exit__`
/// do. Scopes nest. The state is restored also when `f` panics.
///
/// Autocast applies to ops on tensors of that device type run on this thread inside `f`; eligible
/// ops (matmul, conv, linear…) produce `dtype` results, and backward runs in matching dtypes.
///
/// ```
/// use tch::{Device, Kind, Tensor};
/// let a = Tensor::ones([2, 2], (Kind::Float, Device::Cpu));
/// let kind = featdrop_torch_ext::with_autocast(Device::Cpu, Kind::BFloat16, || a.matmul(&a).kind())?;
/// assert_eq!(kind, Kind::BFloat16);
/// assert_eq!(a.matmul(&a).kind(), Kind::Float);
/// # anyhow::Ok(())
/// ```
///
/// # Errors
/// An unsupported `dtype` or device, or autocast unavailable for the device type; `f` is not run.
pub fn with_autocast<T>(device: Device, dtype: Kind, f: impl FnOnce() -> T) -> Result<T> {
    let code = device_code(device)?;
    let st = scalar_type(dtype)?;
    let (mut prev_enabled, mut prev_dtype, mut prev_cache): (c_int, c_int, c_int) = (0, 0, 0);
    // SAFETY: plain integer arguments and out-parameters valid for the call.
    check(unsafe { ffi::fdx_autocast_enter(code, st, &mut prev_enabled, &mut prev_dtype, &mut prev_cache) })?;
    // Armed only once entry succeeded: a failed entry changed nothing, so there is nothing to undo.
    let _guard = AutocastGuard { device: code, prev_enabled, prev_dtype, prev_cache };
    Ok(f())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_codes_round_trip_and_reject_non_autocast_kinds() {
        for kind in [Kind::Half, Kind::BFloat16] {
            assert_eq!(kind_of(scalar_type(kind).unwrap()).unwrap(), kind);
        }
        assert!(scalar_type(Kind::Float).is_err());
        assert!(scalar_type(Kind::Int64).is_err());
        assert!(kind_of(3).is_err());
    }

    #[test]
    fn device_codes_ignore_the_cuda_index() {
        assert_eq!(device_code(Device::Cuda(0)).unwrap(), device_code(Device::Cuda(3)).unwrap());
        assert_ne!(device_code(Device::Cpu).unwrap(), device_code(Device::Cuda(0)).unwrap());
        assert!(device_code(Device::Vulkan).is_err());
    }
}
