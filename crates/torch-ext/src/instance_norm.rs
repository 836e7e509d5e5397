//! Affine instance norm (Ulyanov et al., "Instance Normalization", 2016) that keeps the
//! channels-last layout: libtorch's own op copies such an input to NCHW and returns NCHW, which
//! then costs the next convolution a copy back (forward and backward). On a float32 CPU tensor in
//! channels-last this runs a kernel of the shim's (`csrc/instance_norm.cpp`) that reads the layout
//! as it is; every other tensor (NCHW, CUDA, bf16 under autocast) goes to libtorch's op, which is
//! the fast one there.

use super::{check, ffi, is_channels_last};
use anyhow::Result;
use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

/// `(x − mean) / √(var + eps) · weight + bias` per example and channel of `x` `[N, C, H, W]`, with
/// the biased variance — `nn.InstanceNorm2d(affine=True)` in training mode, without running
/// statistics. Differentiable in `x`, `weight` and `bias`; the result has `x`'s memory format.
///
/// ```
/// use tch::{Device, Kind, Tensor};
/// let x = featdrop_torch_ext::to_channels_last(&Tensor::randn([2, 3, 4, 4], (Kind::Float, Device::Cpu)));
/// let (w, b) = (Tensor::ones([3], (Kind::Float, Device::Cpu)), Tensor::zeros([3], (Kind::Float, Device::Cpu)));
/// let y = featdrop_torch_ext::instance_norm(&x, &w, &b, 1e-5);
/// assert!(featdrop_torch_ext::is_channels_last(&y));
/// let libtorch = x.instance_norm(Some(&w), Some(&b), None, None, true, 0.1, 1e-5, false);
/// assert!(y.allclose(&libtorch, 1e-5, 1e-5, false));
/// ```
///
/// # Panics
/// On shapes libtorch's instance norm also refuses (libtorch's message is in the panic).
pub fn instance_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Tensor {
    if runs_fused(x, weight, bias) {
        f_instance_norm_channels_last(x, weight, bias, eps).unwrap_or_else(|e| panic!("instance_norm: {e:#}"))
    } else {
        x.instance_norm(Some(weight), Some(bias), None, None, true, 0.1, eps, true)
    }
}

/// Whether [`instance_norm`] runs the shim's channels-last kernel for these tensors.
pub fn runs_fused(x: &Tensor, weight: &Tensor, bias: &Tensor) -> bool {
    let cpu_float = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float;
    x.dim() == 4 && is_channels_last(x) && cpu_float(x) && cpu_float(weight) && cpu_float(bias)
}

/// The shim's kernel itself, refusing (with libtorch's message) what it does not take: anything but
/// float32 CPU tensors with `x` 4-d and channels-last.
pub fn f_instance_norm_channels_last(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: the three pointers are live `at::Tensor*` borrowed for the call; the shim writes
    // `out` only on success.
    check(unsafe { ffi::fdx_instance_norm_channels_last(x.as_ptr(), weight.as_ptr(), bias.as_ptr(), eps, &mut out) })?;
    // SAFETY: on success `out` is a fresh `new at::Tensor`, owned and freed by tch's `Tensor`.
    Ok(unsafe { Tensor::from_ptr(out) })
}
