use super::*;
use tch::{Device, nn::VarStore};

/// libtorch's generator is global: these tests seed it and compare draws, so they run one at a
/// time.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn net(spec: ViewmakerSpec) -> (VarStore, Viewmaker) {
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let vm = Viewmaker::new(&vs.root(), spec).unwrap();
    (vs, vm)
}

fn small(c: i64, eps: f64) -> ViewmakerSpec {
    ViewmakerSpec { width_mult: 0.25, ..ViewmakerSpec::published(c, eps) }
}

#[test]
fn budget_holds_per_example() {
    let _serial = serial();
    for (c, side, eps) in [(3, 32, 0.05), (1, 16, 0.125), (3, 8, 0.1)] {
        let (_vs, vm) = net(small(c, eps));
        let x = Tensor::rand([4, c, side, side], (Kind::Float, Device::Cpu)) * 3.0;
        let d = vm.delta(&x);
        assert_eq!(d.size(), x.size());
        let raw = vm.delta(&x); // another pass: the rule must hold for every draw
        for t in [d, raw] {
            let mean = Vec::<f32>::try_from(t.abs().mean_dim([1i64, 2, 3].as_slice(), false, Kind::Float)).unwrap();
            for m in mean {
                // ε·m/(m+1e-4) with m = mean|tanh| ∈ (0,1): within ε·2e-4 of ε, and never above it.
                assert!((m as f64) <= eps + 1e-6 && (eps - m as f64) < eps * 1e-3, "mean |δ| {m} vs ε {eps}");
            }
        }
    }
}

#[test]
fn budget_rule_is_exact_on_known_input() {
    let _serial = serial();
    let d = Tensor::from_slice(&[0.5f32, -0.5, 0.25, -0.25]).view([1, 1, 2, 2]);
    let b = budget(&d, 0.1);
    let expected = 0.1 / (0.375 + 1e-4);
    let got = Vec::<f32>::try_from(b.flatten(0, -1)).unwrap();
    assert!((got[0] as f64 - 0.5 * expected).abs() < 1e-6, "{got:?}");
}

#[test]
fn noise_makes_two_passes_differ() {
    let _serial = serial();
    let (_vs, vm) = net(small(3, 0.05));
    let x = Tensor::rand([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    let (a, b) = (vm.perturb(&x), vm.perturb(&x));
    assert!(f64::try_from((a - b).abs().max()).unwrap() > 1e-4);
    tch::manual_seed(5);
    let c = vm.perturb(&x);
    tch::manual_seed(5);
    assert!(c.equal(&vm.perturb(&x)), "same seed, same view");
}

#[test]
fn clamp_keeps_views_in_unit_range_and_shapes_follow_the_spec() {
    let _serial = serial();
    let spec = ViewmakerSpec { clamp: true, num_res_blocks: 5, ..small(3, 0.5) };
    let (vs, vm) = net(spec);
    let x = Tensor::rand([2, 3, 8, 8], (Kind::Float, Device::Cpu));
    let v = vm.perturb(&x);
    assert!(f64::try_from(v.min()).unwrap() >= 0.0 && f64::try_from(v.max()).unwrap() <= 1.0);
    let names: Vec<String> = vs.variables().keys().cloned().collect();
    assert!(names.iter().any(|n| n.starts_with("res5.")), "{names:?}");
    // block 5 works on 128·w + 5 channels: its first conv weight is [c, c, 3, 3].
    let w = &vs.variables()["res5.a.conv.weight"];
    assert_eq!(w.size(), [32 + 5, 32 + 5, 3, 3]);
    assert!(Viewmaker::new(&vs.root(), ViewmakerSpec { num_res_blocks: 6, ..small(3, 0.1) }).is_err());
}

#[test]
fn gradients_reach_every_parameter() {
    let _serial = serial();
    let (vs, vm) = net(small(1, 0.1));
    let x = Tensor::rand([2, 1, 8, 8], (Kind::Float, Device::Cpu));
    // Weight δ unevenly so the budget rescaling does not cancel the gradient.
    let w = Tensor::rand([1, 1, 8, 8], (Kind::Float, Device::Cpu));
    (vm.delta(&x) * w).sum(Kind::Float).backward();
    for (name, p) in vs.variables() {
        let g = p.grad();
        assert!(g.defined() && f64::try_from(g.abs().sum(Kind::Float)).unwrap() > 0.0, "no gradient for {name}");
    }
}

#[test]
fn every_layer_starts_as_pytorch_starts_it() {
    let _g = serial();
    let (vs, _vm) = net(ViewmakerSpec::published(3, 0.05));
    let vars = vs.variables();
    let max = |n: &str| vars[n].abs().max().double_value(&[]);
    // Convolution weights and biases: U(±1/√fan_in); the first conv sees 3 + 1 noise channels, 9×9.
    for (name, fan_in) in [("down0.conv", 4.0 * 81.0), ("out", 32.0 * 81.0)] {
        let bound = 1.0 / f64::sqrt(fan_in);
        let (w, b) = (max(&format!("{name}.weight")), max(&format!("{name}.bias")));
        assert!(w <= bound && w > 0.9 * bound, "{name}.weight: max |w| {w} for bound {bound}");
        // tch would start the bias at 0; PyTorch draws it from the same range.
        assert!(b <= bound && b > 0.0, "{name}.bias: max |b| {b} for bound {bound}");
    }
    // Instance norms: γ = 1, β = 0.
    assert_eq!((vars["down1.in.weight"].min().double_value(&[]), max("down1.in.bias")), (1.0, 0.0));
}

/// The channels-last network (`train.channels_last`) draws the same noise as the NCHW one and so
/// makes the same views up to float rounding; and its passes, forward and backward, never copy an
/// activation between layouts (libtorch's instance norm and a concatenation with NCHW noise each
/// did, about a sixth of the network's CPU time).
#[test]
fn channels_last_makes_the_same_views_without_copies_between_layouts() {
    use featdrop_torch_ext::{module_to_channels_last, profile, to_channels_last};
    let _serial = serial();
    let (vs, vm) = net(small(3, 0.05));
    let x = Tensor::rand([4, 3, 16, 16], (Kind::Float, Device::Cpu));
    tch::manual_seed(9);
    let nchw = vm.delta(&x);
    module_to_channels_last(&vs).unwrap();
    let x = to_channels_last(&x);
    tch::manual_seed(9);
    let cl = vm.delta(&x);
    assert!(featdrop_torch_ext::is_channels_last(&cl));
    let diff = (&cl - &nchw).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "channels-last δ differs from NCHW δ by {diff}");

    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.json");
    // The gradient arrives channels-last, as from the encoder's first convolution in training.
    let w = to_channels_last(&Tensor::rand([4, 3, 16, 16], (Kind::Float, Device::Cpu)));
    profile(&trace, false, || (vm.delta(&x) * &w).sum(Kind::Float).backward()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let ops: Vec<&str> = json["traceEvents"].as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    assert!(ops.contains(&"aten::convolution_backward"), "the backward pass was profiled: {ops:?}");
    let clones = ops.iter().filter(|n| **n == "aten::clone").count();
    assert_eq!(clones, 0, "layout copies (aten::clone) in a channels-last pass: {ops:?}");
}
