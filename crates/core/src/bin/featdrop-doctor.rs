//! Reports the libtorch this binary links (version, path, CUDA build), the NVIDIA driver, and each
//! visible GPU: its compute capability and memory, and whether it really runs — one small kernel
//! and one bf16 convolution per GPU — with what to do when the GPU or driver is too old.

use clap::Parser;
use featdrop_core::device::{CudaState, cuda_state, libtorch_version, loaded_library};
use featdrop_core::gpu::{self, CudaVersion, Requirement};
use featdrop_core::memory::human;
use serde::Serialize;
use std::path::PathBuf;

/// Report what libtorch featdrop runs on and whether its GPUs work, as text or JSON.
#[derive(Parser)]
#[command(name = "featdrop-doctor", version)]
struct Cli {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    libtorch_version: Option<String>,
    libtorch_lib: Option<PathBuf>,
    cuda_backend_loaded: bool,
    /// What libtorch's CUDA build needs (driver, compute capability).
    requirement: Option<Need>,
    driver: Option<DriverReport>,
    /// Why no driver could be read, when none could.
    driver_error: Option<String>,
    /// Whether at least one GPU ran its kernel.
    cuda_usable: bool,
    /// Why CUDA cannot be used, when it cannot.
    cuda_problem: Option<String>,
    /// Devices libtorch sees.
    cuda_device_count: i64,
    /// What a trainer resolves its `device` against (`DeviceChoice::resolve_with`).
    cuda_state: CudaState,
    cuda_visible_devices: Option<String>,
    gpus: Vec<GpuReport>,
    cudnn_available: bool,
    cudnn_version: Option<i64>,
    cuda_runtime_version: Option<i64>,
    threads: i32,
    /// What featdrop's binaries do with the C heap (`featdrop_core::heap`).
    heap: String,
}

#[derive(Serialize)]
struct Need {
    cuda: CudaVersion,
    min_driver: &'static str,
    min_compute_capability: String,
}

#[derive(Serialize)]
struct DriverReport {
    library: Option<PathBuf>,
    release: Option<String>,
    /// The newest CUDA version the driver supports.
    cuda: Option<CudaVersion>,
}

/// One GPU, numbered as `cuda:N` (after `CUDA_VISIBLE_DEVICES`).
#[derive(Serialize)]
struct GpuReport {
    index: usize,
    name: Option<String>,
    compute_capability: Option<String>,
    memory_total: Option<u64>,
    memory_free: Option<u64>,
    /// `None` when the kernel ran; else what failed.
    kernel_error: Option<String>,
    bf16_error: Option<String>,
    /// Too-old driver or GPU, with what to do.
    problem: Option<String>,
    /// It ran its kernel and nothing is known against it.
    usable: bool,
}

/// The driver's release, from the library's file name or the kernel module.
fn driver_release() -> (Option<PathBuf>, Option<String>) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mapped = gpu::driver_in_maps(&maps);
    let module = std::fs::read_to_string("/proc/driver/nvidia/version").ok();
    let release = mapped.as_ref().and_then(|m| m.version.clone()).or_else(|| gpu::kernel_module_release(&module?));
    (mapped.map(|m| m.path), release)
}

/// Runs the probes on every GPU libtorch sees, then reads every GPU the driver sees (its free
/// memory then counts libtorch's own context) and judges each.
fn gpus(state: &CudaState, need: Option<Requirement>, facts: &[gpu::GpuFacts]) -> Vec<GpuReport> {
    let count = facts.len().max(state.devices);
    (0..count)
        .map(|i| {
            let f = facts.iter().find(|f| f.index == i);
            let (kernel_error, bf16_error) = if i < state.devices {
                let d = tch::Device::Cuda(i);
                (gpu::probe::kernel(d).err(), gpu::probe::bf16_conv(d).err())
            } else {
                let not_run = format!("not run: libtorch sees no cuda:{i}");
                (Some(not_run.clone()), Some(not_run))
            };
            let problem = match (need, state.driver_cuda, f) {
                (Some(n), Some(drv), Some(f)) => gpu::verdict(n.cuda, drv, f.compute_capability).problem(),
                _ => None,
            };
            GpuReport {
                index: i,
                name: f.map(|f| f.name.clone()),
                compute_capability: f.map(|f| format!("{}.{}", f.compute_capability.0, f.compute_capability.1)),
                memory_total: f.map(|f| f.memory_total),
                memory_free: f.and_then(|f| f.memory_free),
                usable: kernel_error.is_none() && problem.is_none(),
                kernel_error,
                bf16_error,
                problem,
            }
        })
        .collect()
}

fn report() -> Report {
    let state = cuda_state();
    let need = state.libtorch_cuda.map(gpu::requirement);
    let (driver, driver_error, facts) = match gpu::Driver::open() {
        Ok(d) => {
            let (library, release) = driver_release();
            let facts = d.gpus();
            let error = facts.as_ref().err().cloned();
            (Some(DriverReport { library, release, cuda: d.version().ok() }), error, facts.unwrap_or_default())
        }
        Err(e) => (None, Some(e), Vec::new()),
    };
    let gpus = gpus(&state, need, &facts);
    let cuda_usable = gpus.iter().any(|g| g.usable);
    // The first GPU's own problem (too old, or its kernel failed) says more than the state.
    let own = |g: &GpuReport| g.problem.clone().or_else(|| g.kernel_error.clone().filter(|_| g.index < state.devices));
    let cuda_problem = (!cuda_usable).then(|| gpus.iter().find_map(own).unwrap_or_else(|| state.why_unusable()));
    let lib = loaded_library("libtorch_cpu.so").and_then(|p| p.parent().map(PathBuf::from));
    Report {
        libtorch_version: libtorch_version(),
        libtorch_lib: lib,
        cuda_backend_loaded: state.compiled,
        requirement: need.map(|n| Need {
            cuda: n.cuda,
            min_driver: n.min_driver,
            min_compute_capability: format!("{}.{}", n.min_cc.0, n.min_cc.1),
        }),
        driver,
        driver_error,
        cuda_usable,
        cuda_problem,
        cuda_device_count: tch::Cuda::device_count(),
        cuda_state: state,
        cuda_visible_devices: std::env::var("CUDA_VISIBLE_DEVICES").ok(),
        gpus,
        cudnn_available: cuda_usable && tch::Cuda::cudnn_is_available(),
        cudnn_version: cuda_usable.then(tch::utils::version_cudnn),
        cuda_runtime_version: cuda_usable.then(tch::utils::version_cudart),
        threads: tch::get_num_threads(),
        // What the binaries will decide here; the doctor itself allocates nothing worth keeping.
        heap: featdrop_core::heap::decide_from_env().to_string(),
    }
}

fn print_text(r: &Report) {
    let or_unknown = |o: &Option<String>| o.clone().unwrap_or_else(|| "unknown".into());
    println!("libtorch version : {}", or_unknown(&r.libtorch_version));
    println!("libtorch lib     : {}", r.libtorch_lib.as_ref().map_or("unknown".into(), |p| p.display().to_string()));
    match (&r.requirement, r.cuda_backend_loaded) {
        (_, false) => println!("CUDA backend     : not loaded (CPU-only libtorch)"),
        (Some(n), true) => println!(
            "CUDA backend     : loaded, built for CUDA {} (needs NVIDIA driver ≥ {} and compute capability ≥ {})",
            n.cuda, n.min_driver, n.min_compute_capability
        ),
        (None, true) => println!("CUDA backend     : loaded (libtorch_cuda.so), CUDA version unknown"),
    }
    match (&r.driver, &r.driver_error) {
        (Some(d), _) => println!(
            "NVIDIA driver    : {} (supports CUDA {}){}",
            or_unknown(&d.release),
            d.cuda.map_or("unknown".into(), |v| v.to_string()),
            d.library.as_ref().map_or(String::new(), |p| format!(", {}", p.display()))
        ),
        (None, Some(e)) => println!("NVIDIA driver    : none ({e})"),
        (None, None) => println!("NVIDIA driver    : none"),
    }
    if let Some(v) = &r.cuda_visible_devices {
        println!("CUDA_VISIBLE_DEVICES: {v} (GPU N below is cuda:N)");
    }
    match &r.cuda_problem {
        None => println!("CUDA usable      : yes ({} device(s))", r.cuda_device_count),
        Some(p) => println!("CUDA usable      : no ({} device(s)): {p}", r.cuda_device_count),
    }
    for g in &r.gpus {
        print_gpu(g);
    }
    match r.cudnn_version {
        Some(v) => {
            println!("cuDNN            : {} (version {v})", if r.cudnn_available { "available" } else { "unavailable" })
        }
        None => println!("cuDNN            : n/a (no CUDA)"),
    }
    println!("CPU threads      : {}", r.threads);
    println!("C heap           : {}", r.heap);
}

fn print_gpu(g: &GpuReport) {
    let mem = match (g.memory_total, g.memory_free) {
        (Some(t), Some(f)) => format!("{} ({} free)", human(t), human(f)),
        (Some(t), None) => human(t),
        _ => "memory unknown".into(),
    };
    let cc = g.compute_capability.as_deref().unwrap_or("unknown");
    let name = g.name.as_deref().unwrap_or("unknown GPU");
    let ok = |e: &Option<String>| e.as_deref().map_or("ok".to_string(), |e| format!("FAILED ({e})"));
    println!("GPU {:<13}: {name}, compute capability {cc}, {mem}", g.index);
    println!("  kernel         : {}", ok(&g.kernel_error));
    println!("  bf16 conv      : {}", ok(&g.bf16_error));
    if let Some(p) = &g.problem {
        println!("  PROBLEM        : {p}");
    }
}

fn main() {
    let cli = Cli::parse();
    let r = report();
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&r).expect("report serialises"));
    } else {
        print_text(&r);
    }
}
