//! Contrastive objectives over two views' embeddings `z1`, `z2` (`[N, D]`, any scale: they are
//! L2-normalised here). Implements the SimCLR objective (Chen et al., "A Simple Framework for
//! Contrastive Learning of Visual Representations", ICML 2020) in two forms: the variant the
//! feature-dropout study's published code trains with, and the common symmetric NT-Xent.

use tch::{Kind, Tensor};

fn normalise(z: &Tensor) -> Tensor {
    z / z.norm_scalaropt_dim(2, [1i64].as_slice(), true).clamp_min(1e-12)
}

/// The published SimCLR variant (docs/PROTOCOL.md §4), temperature `t` — not NT-Xent:
/// `ℓᵢ = −z₁ᵢ·z₂ᵢ/t + logsumexp_j([z₁ᵢ·z₁ⱼ, z₁ᵢ·z₂ⱼ]/t) − log 2N` over all 2N j's — the anchor's
/// similarity with itself included, one direction only — and the loss is the mean of ℓᵢ.
/// The `− log 2N` makes a loss of 0 mean "no better than uniform"; it does not change gradients.
pub fn simclr_published(z1: &Tensor, z2: &Tensor, t: f64) -> Tensor {
    let (a, b) = (normalise(z1), normalise(z2));
    let n = a.size()[0];
    let logits = Tensor::cat(&[a.matmul(&a.tr()), a.matmul(&b.tr())], 1) / t;
    let positive = (&a * &b).sum_dim_intlist([1i64].as_slice(), false, Kind::Float) / t;
    let lse = logits.logsumexp([1i64].as_slice(), false);
    (lse - positive - ((2 * n) as f64).ln()).mean(Kind::Float)
}

/// Symmetric NT-Xent: over the 2N embeddings, each one's positive is its partner view and its
/// negatives are the other 2N−2 (itself excluded); both directions, mean cross-entropy.
pub fn nt_xent(z1: &Tensor, z2: &Tensor, t: f64) -> Tensor {
    let z = normalise(&Tensor::cat(&[z1, z2], 0));
    let n = z1.size()[0];
    let eye = Tensor::eye(2 * n, (Kind::Bool, z.device()));
    let logits = (z.matmul(&z.tr()) / t).masked_fill(&eye, f64::NEG_INFINITY);
    let partner = Tensor::cat(
        &[Tensor::arange_start(n, 2 * n, (Kind::Int64, z.device())), Tensor::arange(n, (Kind::Int64, z.device()))],
        0,
    );
    logits.cross_entropy_for_logits(&partner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn rows(v: &[[f32; 2]]) -> Tensor {
        Tensor::from_slice(&v.concat()).view([v.len() as i64, 2])
    }

    /// The loss written out by hand for a 3-example batch with unit 2-d embeddings.
    #[test]
    fn simclr_matches_a_hand_computed_value() {
        let ang1 = [0.0f64, 2.0, 4.0];
        let ang2 = [0.3f64, 2.5, 3.9];
        let unit = |a: &[f64]| a.iter().map(|&x| [x.cos() as f32, x.sin() as f32]).collect::<Vec<_>>();
        let (z1, z2) = (rows(&unit(&ang1)), rows(&unit(&ang2)));
        let t = 0.5;
        let mut total = 0.0;
        for i in 0..3 {
            let terms: Vec<f64> = ang1.iter().chain(&ang2).map(|&aj| (ang1[i] - aj).cos() / t).collect();
            let lse = terms.iter().map(|x| x.exp()).sum::<f64>().ln();
            total += -(ang1[i] - ang2[i]).cos() / t + lse - 6f64.ln();
        }
        let got = f64::try_from(simclr_published(&(z1 * 3.0), &z2, t)).unwrap();
        assert!((got - total / 3.0).abs() < 1e-5, "{got} vs {}", total / 3.0);
    }

    #[test]
    fn nt_xent_matches_a_hand_computed_value() {
        let ang = [0.0f64, 1.5, 3.0, 0.2, 1.2, 3.3]; // z1 = first three, z2 = last three
        let unit: Vec<[f32; 2]> = ang.iter().map(|&x| [x.cos() as f32, x.sin() as f32]).collect();
        let t = 0.2;
        let mut total = 0.0;
        for i in 0..6 {
            let p = (i + 3) % 6;
            let lse = (0..6).filter(|&j| j != i).map(|j| ((ang[i] - ang[j]).cos() / t).exp()).sum::<f64>().ln();
            total += lse - (ang[i] - ang[p]).cos() / t;
        }
        let got = f64::try_from(nt_xent(&rows(&unit[..3]), &rows(&unit[3..]), t)).unwrap();
        assert!((got - total / 6.0).abs() < 1e-5, "{got} vs {}", total / 6.0);
    }

    #[test]
    fn aligned_views_score_lower_than_random_ones() {
        tch::manual_seed(0);
        let z = Tensor::randn([64, 16], (Kind::Float, Device::Cpu));
        let other = Tensor::randn([64, 16], (Kind::Float, Device::Cpu));
        for f in [simclr_published, nt_xent] {
            let aligned = f64::try_from(f(&z, &(&z + 0.01 * &other), 0.07)).unwrap();
            let random = f64::try_from(f(&z, &other, 0.07)).unwrap();
            assert!(aligned + 1.0 < random, "{aligned} vs {random}");
        }
    }
}
