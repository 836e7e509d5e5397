//! Proof that a device runs: one small kernel, and one bf16 convolution, each read back and
//! checked. Asking libtorch whether CUDA "is available" launches nothing; a GPU older than
//! libtorch's kernels passes that and fails at the first real operation, mid-run. So does a device
//! without bf16 convolutions once `train.bf16` is on.

use tch::{Device, Kind, Tensor};

/// Runs a 64×64 float matrix product on `device` and checks the result (every entry is 64).
pub fn kernel(device: Device) -> Result<(), String> {
    let run = || -> Result<f64, tch::TchError> {
        let a = Tensor::f_ones([64, 64], (Kind::Float, device))?;
        a.f_matmul(&a)?.f_sum(Kind::Float)?.f_double_value(&[])
    };
    match run() {
        Ok(v) if v == 64.0 * 64.0 * 64.0 => Ok(()),
        Ok(v) => Err(format!("a 64×64 matrix product on {device:?} gave a sum of {v}, not {}", 64 * 64 * 64)),
        Err(e) => Err(format!("a 64×64 matrix product on {device:?} failed: {}", first_line(&e.to_string()))),
    }
}

/// Runs a bf16 3×3 convolution on `device` (the operation `train.bf16` autocasts) and checks it:
/// ones over ones, so every inner output is 27, exact in bf16.
pub fn bf16_conv(device: Device) -> Result<(), String> {
    let run = || -> Result<f64, tch::TchError> {
        let x = Tensor::f_ones([2, 3, 8, 8], (Kind::BFloat16, device))?;
        let w = Tensor::f_ones([4, 3, 3, 3], (Kind::BFloat16, device))?;
        let y = x.f_conv2d(&w, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)?;
        y.f_to_kind(Kind::Float)?.f_mean(Kind::Float)?.f_double_value(&[])
    };
    match run() {
        Ok(27.0) => Ok(()),
        Ok(v) => Err(format!("a bf16 convolution on {device:?} gave {v}, not 27")),
        Err(e) => Err(format!("a bf16 convolution on {device:?} failed: {}", first_line(&e.to_string()))),
    }
}

/// libtorch errors carry a C++ backtrace after their first line.
fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_runs_both() {
        kernel(Device::Cpu).unwrap();
        bf16_conv(Device::Cpu).unwrap();
    }

    /// Where CUDA is not usable, a CUDA device fails the probes: they run something there.
    #[test]
    fn an_unusable_device_fails_them() {
        if tch::Cuda::is_available() {
            return;
        }
        let e = kernel(Device::Cuda(0)).unwrap_err();
        assert!(e.starts_with("a 64×64 matrix product on Cuda(0) failed: "), "{e}");
        let e = bf16_conv(Device::Cuda(0)).unwrap_err();
        assert!(e.starts_with("a bf16 convolution on Cuda(0) failed: "), "{e}");
    }
}
