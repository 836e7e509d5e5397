//! Encoders: a ResNet of BasicBlocks whose pre-pool feature map feeds linear probes (§5.1) and
//! whose pooled, linearly projected output is the contrastive embedding (§4). Implements ResNet
//! (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016) with the small-image
//! stem SimCLR uses for 32×32 inputs.

use featdrop_core::init;
use serde::{Deserialize, Serialize};
use tch::{Tensor, nn, nn::ModuleT};

/// What a contrastive encoder offers the trainer and the probes. Implement it for your own
/// network to pretrain it with [`crate::Trainer::with_parts`] and probe it with
/// `featdrop_eval::probe_encoder`.
///
/// Inputs are normalised views `[N, C, H, W]` (images: 3×32×32). [`Encoder::embed`] is what the
/// contrastive loss sees (it is L2-normalised there, §4); [`Encoder::features`] is the map linear
/// probes are fitted on, flattened (§5.1: the last stage's output before pooling).
///
/// # Example: your own encoder
///
/// ```
/// use featdrop_contrastive::Encoder;
/// use tch::{Device, Kind, Tensor, nn};
///
/// /// One stride-2 3×3 convolution to 16 channels, average-pooled into a linear 16 → 32 embedding.
/// struct Tiny {
///     conv: nn::Conv2D,
///     fc: nn::Linear,
/// }
///
/// impl Tiny {
///     fn new(vs: &nn::Path) -> Self {
///         let cfg = nn::ConvConfig { stride: 2, padding: 1, ..Default::default() };
///         Self { conv: nn::conv2d(vs / "conv", 3, 16, 3, cfg), fc: nn::linear(vs / "fc", 16, 32, Default::default()) }
///     }
/// }
///
/// impl Encoder for Tiny {
///     fn embed(&self, x: &Tensor, _train: bool) -> Tensor {
///         self.features(x).adaptive_avg_pool2d([1, 1]).flatten(1, -1).apply(&self.fc)
///     }
///     fn features(&self, x: &Tensor) -> Tensor {
///         x.apply(&self.conv).relu()
///     }
/// }
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let encoder = Tiny::new(&vs.root());
/// let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
/// assert_eq!(encoder.features(&x).size(), [2, 16, 16, 16]);
/// assert_eq!(encoder.embed(&x, true).size(), [2, 32]);
/// ```
pub trait Encoder: Send {
    /// The embedding `[N, D]` used by the contrastive loss (`train` selects batch-norm mode).
    fn embed(&self, x: &Tensor, train: bool) -> Tensor;
    /// The last stage's output before pooling, `[N, C, h, w]` (evaluation mode).
    fn features(&self, x: &Tensor) -> Tensor;
    /// What the trainer's kNN monitor reads, `[N, D]` (evaluation mode): the embedding, unless
    /// the encoder has a projection head, whose input it is then (SimCLR evaluates the features
    /// before the head). Defaults to [`Encoder::embed`].
    fn representation(&self, x: &Tensor) -> Tensor {
        self.embed(x, false)
    }
}

/// How the input enters the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stem {
    /// 3×3 stride-1 convolution, no max-pool: ResNet-18 adapted to 32×32 images.
    SmallImage,
    /// 7×7 stride-2 convolution and 3×3 stride-2 max-pool: the standard stem, used for audio.
    Standard,
}

/// Shape of a ResNet encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EncoderSpec {
    /// Input channels (3 for images, 1 for spectrograms).
    pub in_channels: i64,
    /// The stem.
    pub stem: Stem,
    /// Channels of the first stage; the four stages have width × 1, 2, 4, 8.
    pub width: i64,
    /// BasicBlocks per stage.
    pub blocks: [usize; 4],
    /// Embedding size.
    pub embed_dim: i64,
    /// SimCLR's MLP projection head (linear 8·width → 8·width, batch norm, ReLU, linear →
    /// embed_dim) instead of the published single linear map. Probes read the features before it
    /// either way ([`Encoder::features`]).
    pub projection_head: bool,
}

impl EncoderSpec {
    /// The published image encoder: ResNet-18, 3×3 stem, 512 → 128.
    pub fn resnet18_small_images() -> Self {
        Self {
            in_channels: 3,
            stem: Stem::SmallImage,
            width: 64,
            blocks: [2; 4],
            embed_dim: 128,
            projection_head: false,
        }
    }

    /// The published audio encoder: ResNet-18 with a 1-channel 7×7 stride-2 stem and max-pool.
    pub fn resnet18_audio() -> Self {
        Self { in_channels: 1, stem: Stem::Standard, ..Self::resnet18_small_images() }
    }

    /// The CPU-scale family: same structure, `width` channels and one block per stage.
    pub fn small(in_channels: i64, stem: Stem, width: i64) -> Self {
        Self { in_channels, stem, width, blocks: [1; 4], embed_dim: 128, projection_head: false }
    }

    /// Channels of the pre-pool feature map.
    pub fn feature_channels(&self) -> i64 {
        self.width * 8
    }
}

/// Batch norm as PyTorch's `nn.BatchNorm2d` ([`init::batch_norm2d`]). Its running statistics are
/// the VarStore variables `running_mean` and `running_var`, torchvision's names; PyTorch's extra
/// `num_batches_tracked` counter is only read when momentum is None, so featdrop keeps none.
fn batch_norm(vs: nn::Path, channels: i64) -> nn::BatchNorm {
    init::batch_norm2d(vs, channels)
}

/// A bias-free convolution followed by batch norm; `conv` and `bn` are the two layers' full
/// variable paths (torchvision's `conv1`/`bn1`, or `downsample.0`/`downsample.1`).
#[derive(Debug)]
struct ConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ConvBn {
    fn new(conv: nn::Path, bn: nn::Path, cin: i64, cout: i64, k: i64, stride: i64) -> Self {
        let cfg = nn::ConvConfig { stride, padding: k / 2, bias: false, ..Default::default() };
        Self { conv: init::conv2d(conv, cin, cout, k, cfg), bn: batch_norm(bn, cout) }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&x.apply(&self.conv), train)
    }
}

/// torchvision's `BasicBlock`: `conv1`/`bn1`, `conv2`/`bn2` and, where the shape changes,
/// `downsample.0` (1×1 conv) / `downsample.1` (batch norm).
#[derive(Debug)]
struct BasicBlock {
    a: ConvBn,
    b: ConvBn,
    shortcut: Option<ConvBn>,
}

impl BasicBlock {
    fn new(vs: &nn::Path, cin: i64, cout: i64, stride: i64) -> Self {
        let shortcut = (stride != 1 || cin != cout)
            .then(|| ConvBn::new(vs / "downsample" / 0, vs / "downsample" / 1, cin, cout, 1, stride));
        Self {
            a: ConvBn::new(vs / "conv1", vs / "bn1", cin, cout, 3, stride),
            b: ConvBn::new(vs / "conv2", vs / "bn2", cout, cout, 3, 1),
            shortcut,
        }
    }

    /// ReLU and the residual sum work in place, as torchvision's do (`inplace=True`, `out +=
    /// identity`): neither the batch norm's nor the sum's backward reads its output, and the copies
    /// otherwise made cost a few per cent of a CPU step.
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = self.b.forward(&self.a.forward(x, train).relu_(), train);
        match &self.shortcut {
            Some(s) => y += s.forward(x, train),
            None => y += x,
        }
        y.relu_()
    }
}

/// A ResNet encoder built from an [`EncoderSpec`].
///
/// Its variables carry torchvision's `resnet18` names (`conv1.weight`, `bn1.running_mean`,
/// `layer2.0.downsample.0.weight`, `fc.weight`, …) and PyTorch's default initialisation, so the
/// published spec exports to a state dict that `torchvision.models.resnet18(num_classes=128)` with
/// the small-image stem loads as it is (see `featdrop_eval::interop`). Checkpoints written before
/// this naming (stem/a/b/down/head0) are not readable.
#[derive(Debug)]
pub struct ResNet {
    spec: EncoderSpec,
    stem: ConvBn,
    blocks: Vec<BasicBlock>,
    head: Head,
}

/// What maps the pooled features to the embedding.
#[derive(Debug)]
enum Head {
    /// The published single linear map (`fc`).
    Linear(nn::Linear),
    /// SimCLR's projection head (Chen et al., ICML 2020, as in its reference code: linear, batch
    /// norm, ReLU, linear), named as `fc = nn.Sequential(nn.Linear(c, c), nn.BatchNorm1d(c),
    /// nn.ReLU(), nn.Linear(c, embed_dim))`.
    Mlp { hidden: nn::Linear, bn: nn::BatchNorm, out: nn::Linear },
}

impl Head {
    fn new(vs: &nn::Path, c: i64, embed_dim: i64, mlp: bool) -> Self {
        if mlp {
            Self::Mlp {
                hidden: init::linear(vs / "fc" / 0, c, c),
                bn: init::batch_norm1d(vs / "fc" / 1, c),
                out: init::linear(vs / "fc" / 3, c, embed_dim),
            }
        } else {
            Self::Linear(init::linear(vs / "fc", c, embed_dim))
        }
    }

    fn forward(&self, h: &Tensor, train: bool) -> Tensor {
        match self {
            Self::Linear(fc) => h.apply(fc),
            Self::Mlp { hidden, bn, out } => bn.forward_t(&h.apply(hidden), train).relu().apply(out),
        }
    }
}

impl ResNet {
    /// Builds the network under `vs`.
    pub fn new(vs: &nn::Path, spec: EncoderSpec) -> Self {
        let w = spec.width;
        let stem = match spec.stem {
            Stem::SmallImage => ConvBn::new(vs / "conv1", vs / "bn1", spec.in_channels, w, 3, 1),
            Stem::Standard => ConvBn::new(vs / "conv1", vs / "bn1", spec.in_channels, w, 7, 2),
        };
        let mut blocks = Vec::new();
        let mut cin = w;
        for (stage, &n) in spec.blocks.iter().enumerate() {
            let cout = w << stage;
            for i in 0..n {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(&(vs / format!("layer{}", stage + 1) / i), cin, cout, stride));
                cin = cout;
            }
        }
        let head = Head::new(vs, spec.feature_channels(), spec.embed_dim, spec.projection_head);
        Self { spec, stem, blocks, head }
    }

    /// The spec it was built with.
    pub fn spec(&self) -> &EncoderSpec {
        &self.spec
    }

    /// The globally pooled trunk output `[N, 8·width]`, the head's input.
    fn pooled(&self, x: &Tensor, train: bool) -> Tensor {
        // libtorch's op, or in deterministic mode on CUDA a mean (deterministic backward).
        featdrop_torch_ext::adaptive_avg_pool2d(&self.trunk(x, train), [1, 1]).flatten(1, -1)
    }

    fn trunk(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = self.stem.forward(x, train).relu_();
        if self.spec.stem == Stem::Standard {
            h = h.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        for b in &self.blocks {
            h = b.forward(&h, train);
        }
        h
    }
}

impl Encoder for ResNet {
    fn embed(&self, x: &Tensor, train: bool) -> Tensor {
        self.head.forward(&self.pooled(x, train), train)
    }

    fn features(&self, x: &Tensor) -> Tensor {
        self.trunk(x, false)
    }

    fn representation(&self, x: &Tensor) -> Tensor {
        match self.head {
            Head::Linear(_) => self.embed(x, false),
            Head::Mlp { .. } => self.pooled(x, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, nn::VarStore};

    fn count(vs: &VarStore) -> i64 {
        vs.trainable_variables().iter().map(Tensor::numel).sum::<usize>() as i64
    }

    #[test]
    fn published_shapes() {
        let vs = VarStore::new(Device::Cpu);
        let net = ResNet::new(&vs.root(), EncoderSpec::resnet18_small_images());
        let x = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        assert_eq!(net.features(&x).size(), [2, 512, 4, 4], "8192-d probe features");
        assert_eq!(net.embed(&x, true).size(), [2, 128]);
        // ResNet-18 (11.17M for 1000 classes) minus its 513k fc plus this 65.7k one.
        let n = count(&vs);
        assert!((11_100_000..11_300_000).contains(&n), "{n} parameters");

        let vs = VarStore::new(Device::Cpu);
        let net = ResNet::new(&vs.root(), EncoderSpec::resnet18_audio());
        let x = Tensor::rand([2, 1, 64, 64], (Kind::Float, Device::Cpu));
        assert_eq!(net.features(&x).size(), [2, 512, 2, 2], "2048-d probe features");
    }

    /// torchvision's names (its resnet18 state dict loads them strictly: crates/eval/tests/
    /// torch_interop.rs) and PyTorch's default initialisation.
    #[test]
    fn torchvision_names_and_pytorch_init() {
        let vs = VarStore::new(Device::Cpu);
        let _net = ResNet::new(&vs.root(), EncoderSpec::resnet18_small_images());
        let vars = vs.variables();
        for name in [
            "conv1.weight",
            "bn1.running_var",
            "layer1.1.conv2.weight",
            "layer2.0.downsample.0.weight",
            "layer4.0.downsample.1.running_mean",
            "fc.bias",
        ] {
            assert!(vars.contains_key(name), "{name} missing; have e.g. {:?}", vars.keys().take(5).collect::<Vec<_>>());
        }
        assert!(!vars.contains_key("layer1.0.downsample.0.weight"), "no shortcut conv where the shape is kept");
        assert_eq!(vars.len(), 62 + 40, "62 parameters and 2 running statistics for each of 20 batch norms");
        let max = |n: &str| vars[n].abs().max().double_value(&[]);
        assert!(max("conv1.weight") <= 1.0 / 27f64.sqrt() && max("conv1.weight") > 0.8 / 27f64.sqrt());
        assert!(max("fc.weight") <= 1.0 / 512f64.sqrt());
        assert_eq!(vars["bn1.weight"].min().double_value(&[]), 1.0, "batch-norm γ starts at 1");

        let vs = VarStore::new(Device::Cpu);
        let spec = EncoderSpec { projection_head: true, ..EncoderSpec::small(3, Stem::SmallImage, 4) };
        let _net = ResNet::new(&vs.root(), spec);
        let vars = vs.variables();
        for name in ["fc.0.weight", "fc.1.weight", "fc.1.running_var", "fc.3.bias"] {
            assert!(vars.contains_key(name), "{name}: head as nn.Sequential(Linear, BatchNorm1d, ReLU, Linear)");
        }
    }

    #[test]
    fn small_family_and_head() {
        let vs = VarStore::new(Device::Cpu);
        let spec = EncoderSpec { projection_head: true, embed_dim: 32, ..EncoderSpec::small(3, Stem::SmallImage, 8) };
        let net = ResNet::new(&vs.root(), spec);
        let x = Tensor::rand([4, 3, 32, 32], (Kind::Float, Device::Cpu));
        assert_eq!(net.features(&x).size(), [4, 64, 4, 4]);
        assert_eq!(net.embed(&x, false).size(), [4, 32]);
        assert!(count(&vs) < 200_000);
    }

    /// Issue 28 item 2: SimCLR's head is linear, batch norm, ReLU, linear — in training mode the
    /// batch norm standardises the hidden layer over the batch, so the embedding is
    /// `W₃·relu((h − mean)/√(var + 1e-5)) + b₃` (γ = 1, β = 0 at the start); and the features the
    /// probes read are the trunk's, before any head: the same trunk weights give the same
    /// features with or without one. The old head (no batch norm) fails the first check.
    #[test]
    fn the_head_is_simclrs_and_the_probed_features_come_before_it() {
        let x = Tensor::rand([6, 3, 32, 32], (Kind::Float, Device::Cpu));
        let spec =
            |head| EncoderSpec { projection_head: head, embed_dim: 16, ..EncoderSpec::small(3, Stem::SmallImage, 4) };
        let (plain_vs, head_vs) = (VarStore::new(Device::Cpu), VarStore::new(Device::Cpu));
        let plain = ResNet::new(&plain_vs.root(), spec(false));
        let with_head = ResNet::new(&head_vs.root(), spec(true));
        // Copy the trunk (everything but `fc`) from one into the other.
        let trunk: Vec<String> = plain_vs.variables().into_keys().filter(|k| !k.starts_with("fc")).collect();
        tch::no_grad(|| {
            let src = plain_vs.variables();
            let mut dst = head_vs.variables();
            for k in &trunk {
                dst.get_mut(k).unwrap().copy_(&src[k]);
            }
        });
        let (a, b) = (plain.features(&x), with_head.features(&x));
        assert_eq!(a.size(), [6, 32, 4, 4]);
        assert!(a.allclose(&b, 1e-6, 1e-6, false), "probes read the trunk, head or not");

        // The embedding by hand from the pooled features and the head's weights.
        let vars = head_vs.variables();
        let pooled = tch::no_grad(|| with_head.trunk(&x, true).mean_dim([2i64, 3].as_slice(), false, Kind::Float));
        let hidden = pooled.matmul(&vars["fc.0.weight"].tr()) + &vars["fc.0.bias"];
        let mean = hidden.mean_dim([0i64].as_slice(), true, Kind::Float);
        let var = (&hidden - &mean).square().mean_dim([0i64].as_slice(), true, Kind::Float);
        let normed = ((&hidden - &mean) / (var + 1e-5).sqrt()).relu();
        let want = tch::no_grad(|| normed.matmul(&vars["fc.3.weight"].tr()) + &vars["fc.3.bias"]);
        let got = tch::no_grad(|| with_head.embed(&x, true));
        assert!(got.allclose(&want, 1e-4, 1e-4, false), "{got} vs {want}");

        // The kNN monitor reads the head's input with a head, the embedding without one.
        let pooled_eval = with_head.features(&x).mean_dim([2i64, 3].as_slice(), false, Kind::Float);
        assert!(tch::no_grad(|| with_head.representation(&x)).allclose(&pooled_eval, 1e-5, 1e-5, false));
        let plain_embed = tch::no_grad(|| plain.embed(&x, false));
        assert!(tch::no_grad(|| plain.representation(&x)).allclose(&plain_embed, 1e-6, 1e-6, false));
    }
}
