//! CPU tests of the shim: channels-last layout, in-place conversion of a VarStore, and scoped
//! autocast. Autocast state is per thread and each test runs on its own thread, so tests do not
//! interfere.

use featdrop_torch_ext::{
    autocast_state, f_to_channels_last, is_channels_last, module_to_channels_last, to_channels_last, with_autocast,
};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Float) - b.to_kind(Kind::Float)).abs().max().double_value(&[])
}

#[test]
fn channels_last_changes_strides_and_keeps_values() {
    tch::manual_seed(0);
    let t = Tensor::randn([2, 3, 4, 5], (Kind::Float, Device::Cpu));
    assert!(!is_channels_last(&t));
    let cl = to_channels_last(&t);
    assert_eq!(cl.size(), vec![2, 3, 4, 5]);
    // NHWC in memory: C is innermost, then W, then H, then N.
    assert_eq!(cl.stride(), vec![60, 1, 15, 3]);
    assert_eq!(cl.stride()[1], 1);
    assert!(is_channels_last(&cl));
    assert!(!cl.is_contiguous());
    assert_eq!(max_abs_diff(&t, &cl), 0.0);
    // The source is untouched.
    assert_eq!(t.stride(), vec![60, 20, 5, 1]);
    // Back to the default layout gives the original strides again.
    assert_eq!(cl.contiguous().stride(), vec![60, 20, 5, 1]);
}

#[test]
fn conv2d_on_channels_last_matches_contiguous() {
    tch::manual_seed(1);
    let x = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
    let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([4], (Kind::Float, Device::Cpu));
    let reference = x.conv2d(&w, Some(&b), [1, 1], [1, 1], [1, 1], 1);
    let out = to_channels_last(&x).conv2d(&to_channels_last(&w), Some(&b), [1, 1], [1, 1], [1, 1], 1);
    assert_eq!(out.size(), reference.size());
    assert!(max_abs_diff(&out, &reference) < 1e-5, "diff {}", max_abs_diff(&out, &reference));
    assert!(is_channels_last(&out), "strides {:?}", out.stride());
    assert!(!is_channels_last(&reference));
}

#[test]
fn module_to_channels_last_keeps_training() {
    tch::manual_seed(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let conv = nn::conv2d(&root / "conv", 3, 4, 3, Default::default());
    let head = nn::linear(&root / "head", 4 * 6 * 6, 2, Default::default());
    // Built before the conversion on purpose: the optimiser must still update the same tensors.
    let mut opt = nn::Sgd { momentum: 0.9, ..Default::default() }.build(&vs, 0.1).unwrap();

    assert!(!is_channels_last(&conv.ws));
    let converted = module_to_channels_last(&vs).unwrap();
    assert_eq!(converted, 1, "only the conv weight is 4-d");
    // The module's own handle sees the new layout: same TensorImpl as the VarStore entry.
    assert!(is_channels_last(&conv.ws), "strides {:?}", conv.ws.stride());
    assert!(conv.ws.requires_grad());
    assert!(conv.ws.is_leaf());
    let vars = vs.variables();
    assert!(is_channels_last(&vars["conv.weight"]));
    assert_eq!(vars["head.weight"].stride(), vec![144, 1]);
    // A second pass has nothing left to do.
    assert_eq!(module_to_channels_last(&vs).unwrap(), 0);

    let before = conv.ws.detach().copy();
    let x = to_channels_last(&Tensor::randn([5, 3, 8, 8], (Kind::Float, Device::Cpu)));
    let loss = head.forward(&conv.forward(&x).relu().flatten(1, -1)).square().mean(Kind::Float);
    opt.zero_grad();
    loss.backward();
    let grad = conv.ws.grad();
    assert!(grad.defined());
    assert!(grad.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    opt.step();
    let change = max_abs_diff(&conv.ws, &before);
    assert!(change > 0.0, "SGD step left the converted weight unchanged");
    // In-place updates keep the layout.
    assert!(is_channels_last(&conv.ws));
    assert!(is_channels_last(&vs.variables()["conv.weight"]));
}

#[test]
fn cpu_autocast_bf16_scope_and_restore() {
    let a = Tensor::randn([8, 16], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([16, 4], (Kind::Float, Device::Cpu));
    let initial = autocast_state(Device::Cpu).unwrap();
    assert!(!initial.0, "autocast starts disabled");
    assert_eq!(a.matmul(&b).kind(), Kind::Float);

    let (kind, state) =
        with_autocast(Device::Cpu, Kind::BFloat16, || (a.matmul(&b).kind(), autocast_state(Device::Cpu).unwrap()))
            .unwrap();
    assert_eq!(kind, Kind::BFloat16);
    assert_eq!(state, (true, Kind::BFloat16));

    assert_eq!(autocast_state(Device::Cpu).unwrap(), initial);
    assert_eq!(a.matmul(&b).kind(), Kind::Float);
}

#[test]
fn cpu_autocast_conv_is_bf16_and_close() {
    tch::manual_seed(3);
    let x = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
    let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu));
    let reference = x.conv2d(&w, None::<&Tensor>, [1, 1], [0, 0], [1, 1], 1);
    let out = with_autocast(Device::Cpu, Kind::BFloat16, || x.conv2d(&w, None::<&Tensor>, [1, 1], [0, 0], [1, 1], 1))
        .unwrap();
    assert_eq!(out.kind(), Kind::BFloat16);
    // bf16 keeps ~3 significant digits; the sums here are O(5).
    let rel = max_abs_diff(&out, &reference) / reference.abs().max().double_value(&[]);
    assert!(rel < 0.05, "relative error {rel}");
    assert_eq!(x.conv2d(&w, None::<&Tensor>, [1, 1], [0, 0], [1, 1], 1).kind(), Kind::Float);
}

#[test]
fn nested_autocast_scopes_restore_each_level() {
    let a = Tensor::randn([4, 4], (Kind::Float, Device::Cpu));
    let initial = autocast_state(Device::Cpu).unwrap();
    with_autocast(Device::Cpu, Kind::BFloat16, || {
        assert_eq!(autocast_state(Device::Cpu).unwrap(), (true, Kind::BFloat16));
        with_autocast(Device::Cpu, Kind::Half, || {
            assert_eq!(autocast_state(Device::Cpu).unwrap(), (true, Kind::Half));
            assert_eq!(a.matmul(&a).kind(), Kind::Half);
            with_autocast(Device::Cpu, Kind::BFloat16, || {
                assert_eq!(a.matmul(&a).kind(), Kind::BFloat16);
            })
            .unwrap();
            assert_eq!(autocast_state(Device::Cpu).unwrap(), (true, Kind::Half));
        })
        .unwrap();
        assert_eq!(autocast_state(Device::Cpu).unwrap(), (true, Kind::BFloat16));
        assert_eq!(a.matmul(&a).kind(), Kind::BFloat16);
    })
    .unwrap();
    assert_eq!(autocast_state(Device::Cpu).unwrap(), initial);
    assert_eq!(a.matmul(&a).kind(), Kind::Float);
}

#[test]
fn autocast_is_restored_after_a_panic() {
    let initial = autocast_state(Device::Cpu).unwrap();
    let caught = std::panic::catch_unwind(|| {
        with_autocast(Device::Cpu, Kind::BFloat16, || panic!("inside the scope")).unwrap();
    });
    assert!(caught.is_err());
    assert_eq!(autocast_state(Device::Cpu).unwrap(), initial);
}

#[test]
fn unsupported_autocast_dtype_is_an_error_and_changes_nothing() {
    let initial = autocast_state(Device::Cpu).unwrap();
    let mut ran = false;
    let err = with_autocast(Device::Cpu, Kind::Float, || ran = true).unwrap_err();
    assert!(err.to_string().contains("BFloat16 or Half"), "{err}");
    assert!(!ran);
    assert_eq!(autocast_state(Device::Cpu).unwrap(), initial);
    assert!(with_autocast(Device::Vulkan, Kind::BFloat16, || ()).is_err());
}

#[test]
fn libtorch_exception_comes_back_as_err() {
    let t = Tensor::ones([3, 4], (Kind::Float, Device::Cpu));
    let err = f_to_channels_last(&t).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.starts_with("libtorch: "), "{msg}");
    // libtorch's own wording for a channels-last request on a non-4-d tensor.
    assert!(msg.contains("required rank 4 tensor to use channels_last format"), "{msg}");
    assert!(!is_channels_last(&t));
    // 5-d tensors need ChannelsLast3d, which this API does not offer.
    assert!(f_to_channels_last(&Tensor::ones([1, 2, 3, 4, 5], (Kind::Float, Device::Cpu))).is_err());
}

#[test]
#[should_panic(expected = "to_channels_last")]
fn panicking_form_panics_with_the_message() {
    let _ = to_channels_last(&Tensor::ones([3], (Kind::Float, Device::Cpu)));
}

/// Runs only where CUDA is usable (never on the CPU-only build machine); on a GPU it checks the
/// CUDA autocast path and channels-last conv in the trainer's intended combination.
#[test]
fn cuda_autocast_and_channels_last_when_available() {
    if !tch::Cuda::is_available() {
        eprintln!("skipped: CUDA not available");
        return;
    }
    let dev = Device::Cuda(0);
    let x = to_channels_last(&Tensor::randn([2, 3, 16, 16], (Kind::Float, dev)));
    let w = to_channels_last(&Tensor::randn([8, 3, 3, 3], (Kind::Float, dev)));
    let initial = autocast_state(dev).unwrap();
    for dtype in [Kind::BFloat16, Kind::Half] {
        let out = with_autocast(dev, dtype, || x.conv2d(&w, None::<&Tensor>, [1, 1], [1, 1], [1, 1], 1)).unwrap();
        assert_eq!(out.kind(), dtype);
        assert!(is_channels_last(&out), "strides {:?}", out.stride());
        assert_eq!(autocast_state(dev).unwrap(), initial);
    }
    // CPU autocast is independent of CUDA autocast.
    let cpu = Tensor::randn([4, 4], (Kind::Float, Device::Cpu));
    assert_eq!(with_autocast(dev, Kind::BFloat16, || cpu.matmul(&cpu).kind()).unwrap(), Kind::Float);
}

#[test]
fn the_profiler_records_each_op_run_inside_it_and_nothing_outside() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.json");
    let a = Tensor::ones([64, 64], (Kind::Float, Device::Cpu));
    let _before = a.sin(); // outside the profile: must not appear in it
    let out = featdrop_torch_ext::profile(&trace, false, || a.matmul(&a).sum(Kind::Float).double_value(&[])).unwrap();
    assert_eq!(out, 64.0 * 64.0 * 64.0);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let ops: Vec<&str> = json["traceEvents"]
        .as_array()
        .expect("a Chrome trace has traceEvents")
        .iter()
        .filter(|e| e["cat"] == "cpu_op")
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(ops.contains(&"aten::matmul") && ops.contains(&"aten::sum"), "ops recorded: {ops:?}");
    assert!(!ops.contains(&"aten::sin"), "an op run before the profile started was recorded: {ops:?}");
    // A second profile can follow the first (the profiler was switched off), and a bad path is
    // an error naming it, with the profiler left off again.
    let err = featdrop_torch_ext::profile(&dir.path().join("no/such/folder/t.json"), false, || ()).unwrap_err();
    assert!(format!("{err:#}").contains("no/such/folder"), "{err:#}");
    let _ = featdrop_torch_ext::profile(&trace, false, || a.cos()).unwrap();
}

/// Issue 30 item 8: the deterministic-mode replacements of reflection padding and adaptive
/// average pooling (used on CUDA, whose kernels for these have no deterministic backward) give
/// the same values and gradients as the ops they replace.
#[test]
fn deterministic_replacements_match_the_ops_they_replace() {
    use featdrop_torch_ext::{avg_pool_evenly, reflection_pad2d_by_gather};
    let x = Tensor::randn([2, 3, 8, 6], (Kind::Double, Device::Cpu)).set_requires_grad(true);
    let weights = Tensor::randn([2, 3, 14, 12], (Kind::Double, Device::Cpu));
    let grad_of = |y: Tensor| {
        let g = tch::Tensor::run_backward(&[(y * &weights).sum(Kind::Double)], &[&x], false, false);
        g[0].shallow_clone()
    };
    let (a, b) = (x.reflection_pad2d([3, 3, 3, 3]), reflection_pad2d_by_gather(&x, 3));
    assert!(a.equal(&b), "padded values differ");
    assert!(grad_of(a).allclose(&grad_of(b), 1e-12, 1e-12, false), "padding gradients differ");
    for out in [[1, 1], [4, 3], [2, 2]] {
        let (a, b) = (x.adaptive_avg_pool2d(out), avg_pool_evenly(&x, out));
        assert!(a.allclose(&b, 1e-12, 1e-12, false), "pooled to {out:?}: values differ");
        let w = Tensor::randn(a.size(), (Kind::Double, Device::Cpu));
        let g = |y: Tensor| tch::Tensor::run_backward(&[(y * &w).sum(Kind::Double)], &[&x], false, false)[0].copy();
        assert!(g(a).allclose(&g(b), 1e-12, 1e-12, false), "pooled to {out:?}: gradients differ");
    }
    // Off CUDA the ops themselves run, whatever the mode.
    assert!(featdrop_torch_ext::reflection_pad2d(&x, 2).equal(&x.reflection_pad2d([2, 2, 2, 2])));
}
