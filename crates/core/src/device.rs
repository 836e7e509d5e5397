//! Device choice (`auto`, `cpu`, `cuda`, `cuda:N`), resolved once and loudly.
//!
//! Asking for CUDA when it cannot be used is an error, never a quiet CPU run (docs/PROTOCOL.md §1).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// What the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// CUDA device 0 when usable, otherwise the CPU (the choice is logged).
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// A CUDA device: `cuda` is `Cuda(0)`, `cuda:N` is `Cuda(N)`.
    Cuda(usize),
}

/// The accepted spellings.
pub const ACCEPTED: &str = "auto, cpu, cuda, cuda:N";

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("unknown device `{s}`; accepted: {ACCEPTED}")),
        }
    }
}

impl Serialize for DeviceChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// What CUDA looks like from here, as needed to resolve a choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CudaState {
    /// Whether libtorch's CUDA backend (`libtorch_cuda.so`) is loaded in this process.
    pub compiled: bool,
    /// Whether the NVIDIA driver library (`libcuda.so`) could be loaded.
    pub driver: bool,
    /// Number of visible CUDA devices.
    pub devices: usize,
}

/// The path of a shared library loaded in this process whose file name ends with `name`, from
/// `/proc/self/maps` (what is really loaded, not what a linker was asked for).
pub fn loaded_library(name: &str) -> Option<std::path::PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|p| p.ends_with(name)).map(Into::into)
}

impl DeviceChoice {
    /// Resolves the choice against a CUDA state: `Ok(None)` is the CPU, `Ok(Some(i))` CUDA device
    /// `i`. Separate from libtorch so the rules are testable on any machine.
    pub fn resolve_with(self, cuda: CudaState) -> Result<Option<usize>, String> {
        let usable = cuda.compiled && cuda.devices > 0;
        let why = if !cuda.compiled {
            "this libtorch has no CUDA backend loaded (a CPU-only build, or libtorch_cuda.so was not linked)"
        } else if !cuda.driver {
            "libtorch's CUDA backend is loaded, but no NVIDIA driver was found (libcuda.so.1 cannot be \
             loaded: this machine has no GPU driver)"
        } else {
            "the NVIDIA driver is loaded but no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)"
        };
        match self {
            Self::Cpu => Ok(None),
            Self::Auto => Ok(usable.then_some(0)),
            Self::Cuda(_) if !usable => Err(format!("device `{self}` was asked for but CUDA is not usable: {why}")),
            Self::Cuda(i) if i >= cuda.devices => Err(format!(
                "device `{self}` was asked for but only {} CUDA device(s) are visible (cuda:0 … cuda:{})",
                cuda.devices,
                cuda.devices - 1
            )),
            Self::Cuda(i) => Ok(Some(i)),
        }
    }
}

#[cfg(feature = "torch")]
impl DeviceChoice {
    /// Resolves the choice against this process's libtorch and logs the outcome.
    pub fn resolve(self) -> anyhow::Result<tch::Device> {
        // Counting devices makes the CUDA runtime load the driver library if there is one.
        let devices = tch::Cuda::device_count().max(0) as usize;
        let state = CudaState {
            compiled: loaded_library("libtorch_cuda.so").is_some(),
            driver: loaded_library("libcuda.so.1").is_some() || loaded_library("libcuda.so").is_some(),
            devices,
        };
        let device = match self.resolve_with(state).map_err(anyhow::Error::msg)? {
            None => tch::Device::Cpu,
            Some(i) => tch::Device::Cuda(i),
        };
        tracing::info!(asked = %self, resolved = ?device, cuda_devices = state.devices, "device");
        Ok(device)
    }
}

impl DeviceChoice {
    /// The device a benchmark binary was asked for: its first non-flag argument (cargo passes
    /// `--bench` itself), else `FEATDROP_DEVICE`, else `auto`.
    pub fn for_bench() -> Result<Self, String> {
        let arg = std::env::args().skip(1).find(|a| !a.starts_with('-'));
        arg.or_else(|| std::env::var("FEATDROP_DEVICE").ok()).unwrap_or_else(|| "auto".into()).parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: CudaState = CudaState { compiled: true, driver: true, devices: 0 };
    const NO_DRIVER: CudaState = CudaState { compiled: true, driver: false, devices: 0 };
    const CPU_BUILD: CudaState = CudaState { compiled: false, driver: false, devices: 0 };
    const TWO: CudaState = CudaState { compiled: true, driver: true, devices: 2 };

    #[test]
    fn parses_and_rejects() {
        assert_eq!("cuda".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(3));
        for bad in ["gpu", "cuda:", "cuda:x", "CPU0"] {
            let e = bad.parse::<DeviceChoice>().unwrap_err();
            assert!(e.contains(&format!("`{bad}`")) && e.contains("auto, cpu, cuda, cuda:N"), "{e}");
        }
    }

    #[test]
    fn cuda_without_cuda_is_an_error_never_cpu() {
        let e = DeviceChoice::Cuda(0).resolve_with(CPU_BUILD).unwrap_err();
        assert!(e.contains("CUDA is not usable") && e.contains("no CUDA backend"), "{e}");
        let e = DeviceChoice::Cuda(0).resolve_with(NONE).unwrap_err();
        assert!(e.contains("driver is loaded but no CUDA device is visible"), "{e}");
        let e = DeviceChoice::Cuda(0).resolve_with(NO_DRIVER).unwrap_err();
        assert!(e.contains("backend is loaded, but no NVIDIA driver was found"), "{e}");
        let e = DeviceChoice::Cuda(2).resolve_with(TWO).unwrap_err();
        assert!(e.contains("only 2 CUDA device(s)"), "{e}");
    }

    #[test]
    fn auto_and_cpu() {
        assert_eq!(DeviceChoice::Auto.resolve_with(NONE), Ok(None));
        assert_eq!(DeviceChoice::Auto.resolve_with(TWO), Ok(Some(0)));
        assert_eq!(DeviceChoice::Cpu.resolve_with(TWO), Ok(None));
        assert_eq!(DeviceChoice::Cuda(1).resolve_with(TWO), Ok(Some(1)));
    }

    #[cfg(feature = "torch")]
    #[test]
    fn resolves_against_this_libtorch() {
        assert_eq!(DeviceChoice::Cpu.resolve().unwrap(), tch::Device::Cpu);
        if !tch::Cuda::is_available() {
            let e = DeviceChoice::Cuda(0).resolve().unwrap_err().to_string();
            assert!(e.contains("CUDA is not usable"), "{e}");
            // The diagnosis names the missing piece: a backend that is loaded is never blamed.
            if loaded_library("libtorch_cuda.so").is_some() {
                assert!(!e.contains("no CUDA backend loaded"), "the CUDA backend is loaded, yet: {e}");
                if loaded_library("libcuda.so").is_none() {
                    assert!(e.contains("no NVIDIA driver"), "{e}");
                }
            }
        }
    }
}
