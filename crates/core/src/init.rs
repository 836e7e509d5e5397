//! PyTorch's default initialisation for the layers featdrop builds (docs/PROTOCOL.md §3.1): every
//! convolution and linear layer draws its weight and bias from U(−1/√fan_in, 1/√fan_in), and
//! batch-norm and instance-norm scales start at 1 and shifts at 0. tch's own defaults differ — a
//! Kaiming-uniform weight √6 times wider, a zero convolution bias, batch-norm γ ~ U(0, 1) — and
//! the published models were trained from PyTorch's.

use tch::nn;

/// U(−1/√fan_in, 1/√fan_in): PyTorch's `kaiming_uniform_(a=√5)` for weights, and its bias rule.
pub fn fan_in_uniform(fan_in: i64) -> nn::Init {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    nn::Init::Uniform { lo: -bound, up: bound }
}

/// A 2-D convolution as PyTorch's `nn.Conv2d` initialises it; `cfg` gives stride, padding,
/// groups and whether there is a bias (its initialisers are replaced).
pub fn conv2d(vs: nn::Path, cin: i64, cout: i64, k: i64, cfg: nn::ConvConfig) -> nn::Conv2D {
    let init = fan_in_uniform(cin / cfg.groups.max(1) * k * k);
    nn::conv2d(vs, cin, cout, k, nn::ConvConfig { ws_init: init, bs_init: init, ..cfg })
}

/// A linear layer with a bias as PyTorch's `nn.Linear` initialises it.
pub fn linear(vs: nn::Path, cin: i64, cout: i64) -> nn::Linear {
    let init = fan_in_uniform(cin);
    nn::linear(vs, cin, cout, nn::LinearConfig { ws_init: init, bs_init: Some(init), bias: true })
}

/// Batch norm as PyTorch's `nn.BatchNorm2d`: γ = 1, β = 0, momentum 0.1, ε = 1e-5 (the last
/// two are tch's defaults too).
pub fn batch_norm2d(vs: nn::Path, channels: i64) -> nn::BatchNorm {
    let cfg =
        nn::BatchNormConfig { ws_init: nn::Init::Const(1.0), bs_init: nn::Init::Const(0.0), ..Default::default() };
    nn::batch_norm2d(vs, channels, cfg)
}

/// Batch norm over features `[N, C]` as PyTorch's `nn.BatchNorm1d` (the same defaults).
pub fn batch_norm1d(vs: nn::Path, channels: i64) -> nn::BatchNorm {
    let cfg =
        nn::BatchNormConfig { ws_init: nn::Init::Const(1.0), bs_init: nn::Init::Const(0.0), ..Default::default() };
    nn::batch_norm1d(vs, channels, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    /// Mean, std, min and max of a tensor.
    fn stats(t: &Tensor) -> [f64; 4] {
        let t = t.to_kind(Kind::Double);
        [t.mean(Kind::Double), t.std(true), t.min(), t.max()].map(|s| s.double_value(&[]))
    }

    /// A U(−b, b) sample: mean ≈ 0, std ≈ b/√3, inside [−b, b] and reaching near both ends.
    fn assert_uniform(t: &Tensor, b: f64, what: &str) {
        let [mean, std, min, max] = stats(t);
        let n = t.numel() as f64;
        assert!(mean.abs() < 4.0 * b / (3.0 * n).sqrt(), "{what}: mean {mean} for bound {b}");
        assert!((std / (b / 3f64.sqrt()) - 1.0).abs() < 0.05, "{what}: std {std}, expected {}", b / 3f64.sqrt());
        assert!(min >= -b && max <= b && min < -0.95 * b && max > 0.95 * b, "{what}: range [{min}, {max}] for ±{b}");
    }

    #[test]
    fn layers_start_as_pytorch_starts_them() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let conv = conv2d(vs.root() / "c", 64, 128, 3, nn::ConvConfig { padding: 1, ..Default::default() });
        assert_uniform(&conv.ws, 1.0 / 576f64.sqrt(), "conv weight");
        // 128 biases are too few for the distribution checks: inside the bound, not tch's zeros.
        let [_, std, min, max] = stats(conv.bs.as_ref().expect("a bias"));
        assert!(min >= -1.0 / 576f64.sqrt() && max <= 1.0 / 576f64.sqrt() && std > 0.0, "conv bias");
        let grouped = conv2d(vs.root() / "g", 64, 64, 3, nn::ConvConfig { groups: 4, ..Default::default() });
        assert_uniform(&grouped.ws, 1.0 / 144f64.sqrt(), "grouped conv weight");
        let lin = linear(vs.root() / "l", 512, 1000);
        assert_uniform(&lin.ws, 1.0 / 512f64.sqrt(), "linear weight");
        assert_uniform(lin.bs.as_ref().expect("a bias"), 1.0 / 512f64.sqrt(), "linear bias");
        let bn = batch_norm2d(vs.root() / "bn", 32);
        let ones = Tensor::ones([32], (Kind::Float, Device::Cpu));
        assert!(
            bn.ws.as_ref().expect("affine").equal(&ones) && bn.bs.as_ref().expect("affine").equal(&ones.zeros_like())
        );
        // tch's own default would fail the first check: its conv weight bound is √6 times wider.
        let tch_conv = nn::conv2d(vs.root() / "t", 64, 128, 3, Default::default());
        assert!(stats(&tch_conv.ws)[3] > 1.5 / 576f64.sqrt());
    }
}
