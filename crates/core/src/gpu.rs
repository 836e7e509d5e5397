//! Can the installed libtorch run on the GPUs here? The rules, kept apart from the machine so they
//! are testable anywhere: which driver library a process has mapped (from `/proc/self/maps`
//! text), what a libtorch built for a CUDA version needs (driver, compute capability), and the
//! verdict for one GPU. [`Driver`] reads the facts from the NVIDIA driver library itself (it
//! sees a GPU even where libtorch sees none, e.g. behind a too-old driver); [`probe`] runs the
//! kernels that prove a device works.

#[cfg(target_os = "linux")]
mod driver;
#[cfg(feature = "torch")]
pub mod probe;

#[cfg(target_os = "linux")]
pub use driver::{Driver, GpuFacts};

use std::fmt;
use std::path::PathBuf;

/// A CUDA version, `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CudaVersion {
    /// Major version (13 for CUDA 13.0).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl fmt::Display for CudaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl serde::Serialize for CudaVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for CudaVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not a CUDA version (major.minor)")))
    }
}

impl CudaVersion {
    /// From the driver API's encoding (`cuDriverGetVersion`: 1000 × major + 10 × minor).
    pub fn from_api(v: i32) -> Option<Self> {
        let v = u32::try_from(v).ok().filter(|v| *v >= 1000)?;
        Some(Self { major: v / 1000, minor: v % 1000 / 10 })
    }

    /// From a libtorch build's version (`2.11.0+cu130` → 13.0, `2.4.0+cu121` → 12.1); `None` for
    /// a CPU build (`+cpu`) or no tag.
    pub fn from_build_tag(version: &str) -> Option<Self> {
        let tag = version.trim().rsplit_once('+')?.1.strip_prefix("cu")?;
        if tag.len() < 2 || !tag.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // The last digit is the minor version: cu130 is 13.0, cu118 11.8.
        let (major, minor) = tag.split_at(tag.len() - 1);
        Some(Self { major: major.parse().ok()?, minor: minor.parse().ok()? })
    }

    /// "13.0" → 13.0.
    pub fn parse(s: &str) -> Option<Self> {
        let (major, minor) = s.trim().split_once('.')?;
        Some(Self { major: major.parse().ok()?, minor: minor.parse().ok()? })
    }
}

/// What a libtorch built for a CUDA version needs of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The libtorch's CUDA version.
    pub cuda: CudaVersion,
    /// The oldest Linux NVIDIA driver of that CUDA major version (minor versions are compatible).
    pub min_driver: &'static str,
    /// The oldest compute capability its kernels are built for.
    pub min_cc: (u32, u32),
}

/// What a libtorch built for `cuda` needs. From NVIDIA's release notes: CUDA 13 needs driver
/// ≥ 580.65.06 and dropped Maxwell, Pascal and Volta (compute capability < 7.5); PyTorch's
/// CUDA 12 builds run from 5.0 on a driver ≥ 525.60.13.
pub fn requirement(cuda: CudaVersion) -> Requirement {
    let (min_driver, min_cc) = match cuda.major {
        13.. => ("580.65.06", (7, 5)),
        12 => ("525.60.13", (5, 0)),
        _ => ("450.80.02", (3, 7)),
    };
    Requirement { cuda, min_driver, min_cc }
}

/// Whether one GPU can run this libtorch's kernels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Driver and GPU are recent enough.
    Usable,
    /// The driver supports an older CUDA than libtorch's: libtorch sees no device at all.
    DriverTooOld {
        /// The newest CUDA the driver supports.
        driver: CudaVersion,
        /// What libtorch needs.
        need: Requirement,
    },
    /// The GPU is older than libtorch's kernels: its first kernel fails.
    GpuTooOld {
        /// The GPU's compute capability.
        cc: (u32, u32),
        /// What libtorch needs.
        need: Requirement,
    },
}

/// The verdict for a GPU of compute capability `cc` behind a driver supporting CUDA `driver`,
/// for a libtorch built for CUDA `libtorch`. The driver is judged first: behind a too-old
/// driver no GPU is usable, whatever its age.
pub fn verdict(libtorch: CudaVersion, driver: CudaVersion, cc: (u32, u32)) -> Verdict {
    let need = requirement(libtorch);
    // CUDA's minor-version compatibility: any driver of the same major version runs it.
    if driver.major < libtorch.major {
        Verdict::DriverTooOld { driver, need }
    } else if cc < need.min_cc {
        Verdict::GpuTooOld { cc, need }
    } else {
        Verdict::Usable
    }
}

impl Verdict {
    /// What is wrong and what to do, or `None` when usable.
    pub fn problem(&self) -> Option<String> {
        match self {
            Self::Usable => None,
            Self::DriverTooOld { driver, need } => Some(format!(
                "the NVIDIA driver is too old: it supports CUDA up to {driver}, and this libtorch is built \
                 for CUDA {}, which needs driver {} or newer (libtorch sees no GPU behind it); update the \
                 NVIDIA driver, or run on the CPU with `--device cpu`",
                need.cuda, need.min_driver
            )),
            Self::GpuTooOld { cc: (ma, mi), need } => Some(format!(
                "the GPU is too old: compute capability {ma}.{mi}, and this libtorch's CUDA {} kernels need \
                 {}.{} or newer (Turing, e.g. T4 or RTX 20xx, and later), so its first kernel would fail; use a \
                 newer GPU (CUDA_VISIBLE_DEVICES picks one), or the CPU with `--device cpu`",
                need.cuda, need.min_cc.0, need.min_cc.1
            )),
        }
    }
}

/// A shared library mapped in a process, as `/proc/<pid>/maps` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedLibrary {
    /// Its path.
    pub path: PathBuf,
    /// The version its file name carries after `<stem>.` (`libcuda.so.580.65.06` → `580.65.06`).
    pub version: Option<String>,
}

/// The library whose file name is `stem` (`libcuda.so`) or `stem.<version>` in a maps text.
/// Maps list the real file, not the soname a loader asked for: the driver's `libcuda.so.1` is a
/// link to `libcuda.so.<driver release>`.
pub fn library_in_maps(maps: &str, stem: &str) -> Option<MappedLibrary> {
    maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find_map(|p| {
        let file = p.rsplit('/').next()?;
        let rest = file.strip_prefix(stem)?;
        let version = match rest.strip_prefix('.') {
            Some(v)
                if !v.is_empty() && v.split('.').all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
            {
                Some(v.to_string())
            }
            _ if rest.is_empty() => None,
            _ => return None,
        };
        Some(MappedLibrary { path: p.into(), version })
    })
}

/// The NVIDIA driver library mapped in a maps text, with the driver release its file name
/// carries (not `1`, the soname's interface number).
pub fn driver_in_maps(maps: &str) -> Option<MappedLibrary> {
    library_in_maps(maps, "libcuda.so").map(|mut l| {
        l.version = l.version.filter(|v| v.contains('.'));
        l
    })
}

/// The driver release from `/proc/driver/nvidia/version` (`NVRM version: NVIDIA UNIX x86_64
/// Kernel Module  580.65.06  …`), the kernel module's, which the library must match.
pub fn kernel_module_release(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("NVRM version:"))?;
    line.split_whitespace().find(|w| w.contains('.') && w.split('.').all(|n| n.parse::<u32>().is_ok())).map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CU130: CudaVersion = CudaVersion { major: 13, minor: 0 };

    #[test]
    fn versions_parse_from_the_driver_api_and_build_tags() {
        assert_eq!(CudaVersion::from_api(13000), Some(CU130));
        assert_eq!(CudaVersion::from_api(12080), Some(CudaVersion { major: 12, minor: 8 }));
        assert_eq!(CudaVersion::from_api(0), None);
        assert_eq!(CudaVersion::from_build_tag("2.11.0+cu130"), Some(CU130));
        assert_eq!(CudaVersion::from_build_tag("2.4.0+cu118\n"), Some(CudaVersion { major: 11, minor: 8 }));
        assert_eq!(CudaVersion::from_build_tag("2.11.0+cpu"), None);
        assert_eq!(CudaVersion::from_build_tag("2.11.0"), None);
        assert_eq!(CudaVersion::parse("13.0"), Some(CU130));
        assert_eq!(CU130.to_string(), "13.0");
    }

    /// Issue 30 item 3: maps name the real file; `libcuda.so.1` is only the soname.
    #[test]
    fn the_driver_is_found_under_its_real_file_name() {
        let maps = "\
7f1c2a000000-7f1c2a200000 r-xp 00000000 08:01 1234 /usr/lib/x86_64-linux-gnu/libcudart.so.13.0.48
7f1c2b000000-7f1c2c000000 r-xp 00000000 08:01 5678 /usr/lib/x86_64-linux-gnu/libcuda.so.580.65.06
7f1c2d000000-7f1c2d100000 r--p 00000000 08:01 9012 /opt/torch/lib/libtorch_cuda.so
7f1c2e000000-7f1c2e001000 rw-p 00000000 00:00 0
";
        let d = driver_in_maps(maps).expect("the driver");
        assert_eq!(d.path, PathBuf::from("/usr/lib/x86_64-linux-gnu/libcuda.so.580.65.06"));
        assert_eq!(d.version.as_deref(), Some("580.65.06"));
        let t = library_in_maps(maps, "libtorch_cuda.so").expect("libtorch_cuda");
        assert_eq!(t.version, None);
        // A soname-only file (some containers) is the driver, with no release in its name.
        let soname = "7f-7f r-xp 0 08:01 1 /usr/lib64/libcuda.so.1\n";
        assert_eq!(driver_in_maps(soname).unwrap().version, None);
        // Look-alikes are not the driver.
        let others = "7f-7f r-xp 0 08:01 1 /usr/lib/libcudart.so.13\n7f-7f r-xp 0 08:01 1 /x/libcuda.so.bak\n";
        assert_eq!(driver_in_maps(others), None);
        assert_eq!(driver_in_maps(""), None);
    }

    #[test]
    fn the_kernel_module_release_is_read() {
        let text = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n\
                    GCC version:  gcc version 12.2.0";
        assert_eq!(kernel_module_release(text).as_deref(), Some("535.104.05"));
        assert_eq!(kernel_module_release("GCC version: 12.2.0"), None);
    }

    /// Issue 30 item 2: a too-old driver, a too-old GPU, and a fine one, for libtorch's CUDA 13.0.
    #[test]
    fn verdicts_for_cuda_13() {
        let v = |driver: i32, cc| verdict(CU130, CudaVersion::from_api(driver).unwrap(), cc);
        let old_driver = v(12020, (8, 0));
        assert!(matches!(old_driver, Verdict::DriverTooOld { .. }));
        let p = old_driver.problem().unwrap();
        assert!(p.contains("supports CUDA up to 12.2") && p.contains("580.65.06") && p.contains("--device cpu"), "{p}");
        // The driver is judged first: a P100 behind a CUDA 12 driver needs the driver first.
        assert!(matches!(v(12020, (6, 0)), Verdict::DriverTooOld { .. }));
        for cc in [(6, 1), (7, 0), (7, 2)] {
            let p = v(13000, cc).problem().unwrap();
            assert!(p.contains(&format!("compute capability {}.{}", cc.0, cc.1)) && p.contains("7.5"), "{p}");
        }
        for (driver, cc) in [(13000, (7, 5)), (13010, (9, 0)), (13000, (12, 0)), (14000, (8, 6))] {
            assert_eq!(v(driver, cc), Verdict::Usable, "{driver} {cc:?}");
        }
        // A CUDA 12 libtorch still runs on a Pascal GPU.
        let cu121 = CudaVersion { major: 12, minor: 1 };
        assert_eq!(verdict(cu121, CudaVersion::from_api(12020).unwrap(), (6, 0)), Verdict::Usable);
    }
}
