//! `featdrop-doctor`: what libtorch the binaries link and what its GPUs can run, as text and JSON.

use std::process::Command;

fn doctor(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_featdrop-doctor")).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn reports_libtorch_2_11_and_agrees_with_tch() {
    let report: serde_json::Value = serde_json::from_str(&doctor(&["--json"])).unwrap();
    let version = report["libtorch_version"].as_str().expect("a version");
    assert!(version.starts_with("2.11."), "{version}");
    assert!(report["libtorch_lib"].as_str().is_some_and(|p| p.ends_with("/lib")));
    assert_eq!(report["cuda_usable"].as_bool(), Some(tch::Cuda::is_available()));
    assert_eq!(report["cuda_device_count"].as_i64(), Some(tch::Cuda::device_count()));
    assert!(report["threads"].as_i64().is_some_and(|t| t >= 1));
    let text = doctor(&[]);
    assert!(text.contains(&format!("libtorch version : {version}")), "{text}");
    assert!(text.contains("CUDA usable"), "{text}");
}

/// Issue 30 items 2 and 5: the GPU section. Every GPU is numbered as `cuda:N` and has run its
/// kernel (or says why not); CUDA is "usable" only when one did. Without CUDA (this test's usual
/// machine) the doctor says so, names the cause, and lists no GPU; hiding every device with
/// `CUDA_VISIBLE_DEVICES` is seen the same way as libtorch sees it.
#[test]
fn the_gpu_section_runs_a_kernel_per_gpu_or_says_why_there_is_none() {
    let report: serde_json::Value = serde_json::from_str(&doctor(&["--json"])).unwrap();
    let gpus = report["gpus"].as_array().expect("a GPU list");
    let usable = report["cuda_usable"].as_bool().unwrap();
    assert_eq!(usable, gpus.iter().any(|g| g["usable"] == true), "{report:#}");
    for (i, g) in gpus.iter().enumerate() {
        assert_eq!(g["index"].as_u64(), Some(i as u64), "GPUs in cuda:N order: {report:#}");
        assert_eq!(g["usable"] == true, g["kernel_error"].is_null() && g["problem"].is_null(), "{g:#}");
    }
    let text = doctor(&[]);
    assert!(text.contains("NVIDIA driver    : "), "{text}");
    if !tch::Cuda::is_available() {
        assert!(!usable && report["cuda_device_count"] == 0, "{report:#}");
        let problem = report["cuda_problem"].as_str().expect("the reason CUDA is not usable");
        assert!(text.contains(&format!("CUDA usable      : no (0 device(s)): {problem}")), "{text}");
        // The reason is the state's, the one a trainer asking for cuda would be given.
        let state: featdrop_core::device::CudaState = serde_json::from_value(report["cuda_state"].clone()).unwrap();
        let e = featdrop_core::DeviceChoice::Cuda(0).resolve_with(state).unwrap_err();
        assert!(e.ends_with(problem) || gpus.iter().any(|g| !g["problem"].is_null()), "{e}\n{problem}");
    } else {
        assert!(text.contains("kernel         : "), "{text}");
        assert_eq!(gpus.len() as i64, tch::Cuda::device_count().max(gpus.len() as i64));
    }

    let out =
        Command::new(env!("CARGO_BIN_EXE_featdrop-doctor")).arg("--json").env("CUDA_VISIBLE_DEVICES", "").output();
    let hidden: serde_json::Value = serde_json::from_slice(&out.unwrap().stdout).unwrap();
    assert_eq!((hidden["cuda_usable"].as_bool(), hidden["cuda_device_count"].as_i64()), (Some(false), Some(0)));
    assert_eq!(hidden["gpus"].as_array().map(Vec::len), Some(0), "{hidden:#}");
    assert_eq!(hidden["cuda_visible_devices"], "");
}
