//! `featdrop-doctor`: what libtorch the binaries link, as text and JSON.

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
