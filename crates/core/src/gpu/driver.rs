//! The NVIDIA driver library (`libcuda.so.1`), opened at run time: the CUDA version it supports
//! and each visible GPU's name, compute capability and memory. It answers where libtorch cannot:
//! behind a driver too old for libtorch's CUDA the runtime sees no device, the driver still does.
//! Devices are numbered as CUDA numbers them, after `CUDA_VISIBLE_DEVICES` (so index i is
//! `cuda:i`), which `nvidia-smi` does not do.

use super::CudaVersion;
use std::ffi::{CStr, c_char, c_int, c_uint, c_void};

/// `CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR` / `_MINOR` of `cuda.h`.
const CC_MAJOR: c_int = 75;
const CC_MINOR: c_int = 76;

/// One visible GPU, as the driver describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuFacts {
    /// Its CUDA index (`cuda:N`), after `CUDA_VISIBLE_DEVICES`.
    pub index: usize,
    /// The product name.
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (u32, u32),
    /// Total memory, bytes.
    pub memory_total: u64,
    /// Free memory, bytes (read in the device's primary context, the one libtorch uses).
    pub memory_free: Option<u64>,
}

/// The opened driver library. It stays loaded for the process's life (libtorch loads the same one).
pub struct Driver {
    handle: *mut c_void,
}

impl Driver {
    /// Opens `libcuda.so.1`; the error says why not (no driver installed, as a rule).
    pub fn open() -> Result<Self, String> {
        // SAFETY: dlopen with a constant NUL-terminated name; dlerror's text is copied at once.
        let handle = unsafe { libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            // SAFETY: dlerror returns a NUL-terminated string or null, valid until the next dl call.
            let why = unsafe { libc::dlerror() };
            let why = if why.is_null() { "unknown".into() } else { unsafe { CStr::from_ptr(why) }.to_string_lossy() };
            return Err(format!("libcuda.so.1 cannot be loaded ({why})"));
        }
        Ok(Self { handle })
    }

    /// The address of `name` in the library.
    fn sym(&self, name: &CStr) -> Result<*mut c_void, String> {
        // SAFETY: the handle is a live dlopen handle; the name is NUL-terminated.
        let p = unsafe { libc::dlsym(self.handle, name.as_ptr()) };
        if p.is_null() { Err(format!("the NVIDIA driver has no {}", name.to_string_lossy())) } else { Ok(p) }
    }

    /// Turns a driver status into a result naming the call.
    fn check(&self, call: &str, status: c_int) -> Result<(), String> {
        if status == 0 {
            return Ok(());
        }
        let mut text: *const c_char = std::ptr::null();
        let named = self.sym(c"cuGetErrorString").ok().is_some_and(|f| {
            // SAFETY: CUresult cuGetErrorString(CUresult, const char**), per cuda.h.
            let f: extern "C" fn(c_int, *mut *const c_char) -> c_int = unsafe { std::mem::transmute(f) };
            f(status, &mut text) == 0 && !text.is_null()
        });
        let why = if named { unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned() } else { String::new() };
        Err(format!("{call} failed: CUDA driver error {status} {why}").trim_end().to_string())
    }

    /// The newest CUDA version this driver supports.
    pub fn version(&self) -> Result<CudaVersion, String> {
        let f = self.sym(c"cuDriverGetVersion")?;
        // SAFETY: CUresult cuDriverGetVersion(int*), per cuda.h.
        let f: extern "C" fn(*mut c_int) -> c_int = unsafe { std::mem::transmute(f) };
        let mut v = 0;
        self.check("cuDriverGetVersion", f(&mut v))?;
        CudaVersion::from_api(v).ok_or_else(|| format!("cuDriverGetVersion gave {v}"))
    }

    /// Every visible GPU (after `CUDA_VISIBLE_DEVICES`), in CUDA's order.
    pub fn gpus(&self) -> Result<Vec<GpuFacts>, String> {
        // SAFETY (every transmute below): the signatures are those of cuda.h, with CUdevice an
        // int, CUcontext a pointer and size_t a usize.
        let init: extern "C" fn(c_uint) -> c_int = unsafe { std::mem::transmute(self.sym(c"cuInit")?) };
        self.check("cuInit", init(0))?;
        let count: extern "C" fn(*mut c_int) -> c_int = unsafe { std::mem::transmute(self.sym(c"cuDeviceGetCount")?) };
        let mut n = 0;
        self.check("cuDeviceGetCount", count(&mut n))?;
        (0..n.max(0)).map(|i| self.gpu(i)).collect()
    }

    fn gpu(&self, ordinal: c_int) -> Result<GpuFacts, String> {
        type Get = extern "C" fn(*mut c_int, c_int) -> c_int;
        type Name = extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
        type Attr = extern "C" fn(*mut c_int, c_int, c_int) -> c_int;
        type Mem = extern "C" fn(*mut usize, c_int) -> c_int;
        let get: Get = unsafe { std::mem::transmute(self.sym(c"cuDeviceGet")?) };
        let name: Name = unsafe { std::mem::transmute(self.sym(c"cuDeviceGetName")?) };
        let attr: Attr = unsafe { std::mem::transmute(self.sym(c"cuDeviceGetAttribute")?) };
        let total: Mem = unsafe { std::mem::transmute(self.sym(c"cuDeviceTotalMem_v2")?) };
        let mut dev = 0;
        self.check("cuDeviceGet", get(&mut dev, ordinal))?;
        let mut buf = [0 as c_char; 256];
        self.check("cuDeviceGetName", name(buf.as_mut_ptr(), buf.len() as c_int, dev))?;
        // SAFETY: the driver wrote a NUL-terminated name into the buffer.
        let name = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().trim().to_string();
        let (mut major, mut minor) = (0, 0);
        self.check("cuDeviceGetAttribute", attr(&mut major, CC_MAJOR, dev))?;
        self.check("cuDeviceGetAttribute", attr(&mut minor, CC_MINOR, dev))?;
        let mut bytes = 0usize;
        self.check("cuDeviceTotalMem", total(&mut bytes, dev))?;
        Ok(GpuFacts {
            index: ordinal as usize,
            name,
            compute_capability: (major as u32, minor as u32),
            memory_total: bytes as u64,
            memory_free: self.free_memory(dev).ok(),
        })
    }

    /// Free memory of `dev`, read in its primary context (created if libtorch has not yet).
    fn free_memory(&self, dev: c_int) -> Result<u64, String> {
        type Retain = extern "C" fn(*mut *mut c_void, c_int) -> c_int;
        type Push = extern "C" fn(*mut c_void) -> c_int;
        type Pop = extern "C" fn(*mut *mut c_void) -> c_int;
        type Info = extern "C" fn(*mut usize, *mut usize) -> c_int;
        type Release = extern "C" fn(c_int) -> c_int;
        let retain: Retain = unsafe { std::mem::transmute(self.sym(c"cuDevicePrimaryCtxRetain")?) };
        let push: Push = unsafe { std::mem::transmute(self.sym(c"cuCtxPushCurrent_v2")?) };
        let pop: Pop = unsafe { std::mem::transmute(self.sym(c"cuCtxPopCurrent_v2")?) };
        let info: Info = unsafe { std::mem::transmute(self.sym(c"cuMemGetInfo_v2")?) };
        let release: Release = unsafe { std::mem::transmute(self.sym(c"cuDevicePrimaryCtxRelease_v2")?) };
        let mut ctx = std::ptr::null_mut();
        self.check("cuDevicePrimaryCtxRetain", retain(&mut ctx, dev))?;
        let read = self.check("cuCtxPushCurrent", push(ctx)).and_then(|()| {
            let (mut free, mut total) = (0usize, 0usize);
            let r = self.check("cuMemGetInfo", info(&mut free, &mut total));
            let mut popped = std::ptr::null_mut();
            pop(&mut popped);
            r.map(|()| free as u64)
        });
        release(dev);
        read
    }
}
