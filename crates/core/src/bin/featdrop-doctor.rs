//! Reports the libtorch this binary links: version and path, CUDA, GPUs, cuDNN, threads.

use clap::Parser;
use serde::Serialize;
use std::path::PathBuf;

/// Report what libtorch featdrop runs on, as text or JSON.
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
    cuda_usable: bool,
    cuda_device_count: i64,
    gpus: Vec<String>,
    cudnn_available: bool,
    cudnn_version: Option<i64>,
    cuda_runtime_version: Option<i64>,
    threads: i32,
}

/// The folder this process loaded `libtorch_cpu.so` from, read from /proc/self/maps.
fn loaded_lib(name: &str) -> Option<PathBuf> {
    featdrop_core::device::loaded_library(name)
}

fn version_of(lib_dir: &std::path::Path) -> Option<String> {
    let root = lib_dir.parent()?;
    if let Ok(v) = std::fs::read_to_string(root.join("build-version")) {
        return Some(v.trim().into());
    }
    let py = std::fs::read_to_string(root.join("version.py")).ok()?;
    py.lines().find_map(|l| l.strip_prefix("__version__ = ")).map(|v| v.trim_matches(['\'', '"']).into())
}

/// GPU names from nvidia-smi, when there is one.
fn gpu_names() -> Vec<String> {
    let out = std::process::Command::new("nvidia-smi").args(["--query-gpu=name", "--format=csv,noheader"]).output();
    match out {
        Ok(o) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout).lines().map(|s| s.trim().to_string()).collect()
        }
        _ => Vec::new(),
    }
}

fn main() {
    let cli = Cli::parse();
    let cuda_usable = tch::Cuda::is_available();
    let lib = loaded_lib("libtorch_cpu.so").and_then(|p| p.parent().map(PathBuf::from));
    let r = Report {
        libtorch_version: lib.as_deref().and_then(version_of),
        cuda_backend_loaded: loaded_lib("libtorch_cuda.so").is_some(),
        libtorch_lib: lib,
        cuda_usable,
        cuda_device_count: tch::Cuda::device_count(),
        gpus: if cuda_usable { gpu_names() } else { Vec::new() },
        cudnn_available: cuda_usable && tch::Cuda::cudnn_is_available(),
        cudnn_version: cuda_usable.then(tch::utils::version_cudnn),
        cuda_runtime_version: cuda_usable.then(tch::utils::version_cudart),
        threads: tch::get_num_threads(),
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&r).expect("report serialises"));
        return;
    }
    let or_unknown = |o: &Option<String>| o.clone().unwrap_or_else(|| "unknown".into());
    println!("libtorch version : {}", or_unknown(&r.libtorch_version));
    println!("libtorch lib     : {}", r.libtorch_lib.as_ref().map_or("unknown".into(), |p| p.display().to_string()));
    println!(
        "CUDA backend     : {}",
        if r.cuda_backend_loaded { "loaded (libtorch_cuda.so)" } else { "not loaded (CPU-only libtorch)" }
    );
    println!("CUDA usable      : {} ({} device(s))", if r.cuda_usable { "yes" } else { "no" }, r.cuda_device_count);
    for (i, g) in r.gpus.iter().enumerate() {
        println!("GPU {i}            : {g}");
    }
    match r.cudnn_version {
        Some(v) => {
            println!("cuDNN            : {} (version {v})", if r.cudnn_available { "available" } else { "unavailable" })
        }
        None => println!("cuDNN            : n/a (no CUDA)"),
    }
    println!("CPU threads      : {}", r.threads);
}
