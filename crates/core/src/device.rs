//! Device choice (`auto`, `cpu`, `cuda`, `cuda:N`), resolved once and loudly.
//!
//! Asking for CUDA when it cannot be used is an error, never a quiet CPU run (docs/PROTOCOL.md §1).

use crate::gpu::{self, CudaVersion};
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

/// What CUDA looks like from here, as needed to resolve a choice (also in `featdrop-doctor
/// --json`, so a process without libtorch resolves choices as a trainer would).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CudaState {
    /// Whether libtorch's CUDA backend (`libtorch_cuda.so`) is loaded in this process.
    pub compiled: bool,
    /// Whether the NVIDIA driver library (`libcuda.so.1`) could be loaded.
    pub driver: bool,
    /// The newest CUDA version the driver supports, when it could be read.
    pub driver_cuda: Option<CudaVersion>,
    /// The CUDA version libtorch is built for, when known.
    pub libtorch_cuda: Option<CudaVersion>,
    /// Number of visible CUDA devices.
    pub devices: usize,
}

impl CudaState {
    /// Why CUDA cannot be used (meaningful when it cannot): the missing or too-old piece.
    pub fn why_unusable(&self) -> String {
        if !self.compiled {
            return "this libtorch has no CUDA backend loaded (a CPU-only build, or libtorch_cuda.so was not linked)"
                .into();
        }
        if !self.driver {
            return "libtorch's CUDA backend is loaded, but no NVIDIA driver was found (libcuda.so.1 cannot be \
                    loaded: this machine has no GPU driver)"
                .into();
        }
        if let (Some(driver), Some(need)) = (self.driver_cuda, self.libtorch_cuda)
            && driver.major < need.major
        {
            let v = gpu::Verdict::DriverTooOld { driver, need: gpu::requirement(need) };
            return v.problem().expect("a too-old driver is a problem");
        }
        "the NVIDIA driver is loaded but no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES; \
         `cargo xtask doctor` lists what CUDA sees)"
            .into()
    }
}

/// The path of a shared library loaded in this process whose file name is `name` or
/// `name.<version>`, from `/proc/self/maps` (what is really loaded, not what a linker was asked
/// for: the driver's `libcuda.so.1` is mapped as `libcuda.so.<release>`).
pub fn loaded_library(name: &str) -> Option<std::path::PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    gpu::library_in_maps(&maps, name).map(|l| l.path)
}

impl DeviceChoice {
    /// Resolves the choice against a CUDA state: `Ok(None)` is the CPU, `Ok(Some(i))` CUDA device
    /// `i`. Separate from libtorch so the rules are testable on any machine.
    pub fn resolve_with(self, cuda: CudaState) -> Result<Option<usize>, String> {
        let usable = cuda.compiled && cuda.devices > 0;
        match self {
            Self::Cpu => Ok(None),
            Self::Auto => Ok(usable.then_some(0)),
            Self::Cuda(_) if !usable => {
                Err(format!("device `{self}` was asked for but CUDA is not usable: {}", cuda.why_unusable()))
            }
            Self::Cuda(i) if i >= cuda.devices => Err(format!(
                "device `{self}` was asked for but only {} CUDA device(s) are visible (cuda:0 … cuda:{}; \
                 CUDA_VISIBLE_DEVICES renumbers them from 0)",
                cuda.devices,
                cuda.devices - 1
            )),
            Self::Cuda(i) => Ok(Some(i)),
        }
    }
}

/// The CUDA state of this process: libtorch's backend and device count, the driver's version.
#[cfg(feature = "torch")]
pub fn cuda_state() -> CudaState {
    // Counting devices makes the CUDA runtime load the driver library if there is one.
    let devices = tch::Cuda::device_count().max(0) as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    #[cfg(target_os = "linux")]
    let (driver, driver_cuda) = match gpu::Driver::open() {
        Ok(d) => (true, d.version().ok()),
        Err(_) => (gpu::driver_in_maps(&maps).is_some(), None),
    };
    #[cfg(not(target_os = "linux"))]
    let (driver, driver_cuda) = (gpu::driver_in_maps(&maps).is_some(), None);
    CudaState {
        compiled: gpu::library_in_maps(&maps, "libtorch_cuda.so").is_some(),
        driver,
        driver_cuda,
        libtorch_cuda: libtorch_version().as_deref().and_then(CudaVersion::from_build_tag),
        devices,
    }
}

/// The version of the libtorch this process loaded (`2.11.0+cu130`), read beside its `lib/`
/// folder.
pub fn libtorch_version() -> Option<String> {
    let lib = loaded_library("libtorch_cpu.so")?;
    read_libtorch_version(lib.parent()?.parent()?).ok()
}

/// The version of the libtorch at `root` (the folder holding `lib/`), from `build-version`
/// (libtorch zips) or `version.py` (wheels).
pub fn read_libtorch_version(root: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    if let Ok(v) = std::fs::read_to_string(root.join("build-version")) {
        return Ok(v.trim().to_string());
    }
    let py = root.join("version.py");
    let text = std::fs::read_to_string(&py)
        .with_context(|| format!("{} has neither build-version nor version.py: is it a libtorch?", root.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim().trim_matches(['\'', '"']).to_string())
        .with_context(|| format!("{}: no `__version__ = …` line", py.display()))
}

#[cfg(feature = "torch")]
impl DeviceChoice {
    /// Resolves the choice against this process's libtorch and logs the outcome.
    pub fn resolve(self) -> anyhow::Result<tch::Device> {
        let state = cuda_state();
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

    const CU130: Option<CudaVersion> = Some(CudaVersion { major: 13, minor: 0 });
    const NONE: CudaState =
        CudaState { compiled: true, driver: true, driver_cuda: CU130, libtorch_cuda: CU130, devices: 0 };
    const NO_DRIVER: CudaState =
        CudaState { compiled: true, driver: false, driver_cuda: None, libtorch_cuda: CU130, devices: 0 };
    const CPU_BUILD: CudaState =
        CudaState { compiled: false, driver: false, driver_cuda: None, libtorch_cuda: None, devices: 0 };
    const TWO: CudaState = CudaState { devices: 2, ..NONE };
    /// A CUDA 12.2 driver under a CUDA 13.0 libtorch: the runtime sees no device.
    const OLD_DRIVER: CudaState = CudaState { driver_cuda: Some(CudaVersion { major: 12, minor: 2 }), ..NONE };

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

    /// Issue 30 item 3: a driver that is there but too old is named as such, with what to do.
    #[test]
    fn a_too_old_driver_is_not_a_missing_one() {
        let e = DeviceChoice::Cuda(0).resolve_with(OLD_DRIVER).unwrap_err();
        assert!(!e.contains("no NVIDIA driver"), "{e}");
        assert!(e.contains("driver is too old: it supports CUDA up to 12.2") && e.contains("580.65.06"), "{e}");
        assert_eq!(DeviceChoice::Auto.resolve_with(OLD_DRIVER), Ok(None));
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
                let driver = loaded_library("libcuda.so").is_some() || gpu::Driver::open().is_ok();
                assert_eq!(e.contains("no NVIDIA driver"), !driver, "{e}");
            }
        }
    }
}
