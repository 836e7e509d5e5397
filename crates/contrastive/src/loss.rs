//! Contrastive objectives over two views' embeddings `z1`, `z2` (`[N, D]`, any scale: they are
//! L2-normalised here). Implements the SimCLR objective (Chen et al., "A Simple Framework for
//! Contrastive Learning of Visual Representations", ICML 2020) in two forms: the variant the
//! feature-dropout study's published code trains with, and the common symmetric NT-Xent; and
//! implicit feature modification over the first ([`ifm`]).

use tch::{Kind, Tensor};

fn normalise(z: &Tensor) -> Tensor {
    z / z.norm_scalaropt_dim(2, [1i64].as_slice(), true).clamp_min(1e-12)
}

/// The published SimCLR variant (docs/PROTOCOL.md §4), temperature `t` — not NT-Xent:
/// `ℓᵢ = −z₁ᵢ·z₂ᵢ/t + logsumexp_j([z₁ᵢ·z₁ⱼ, z₁ᵢ·z₂ⱼ]/t) − log 2N` over all 2N j's — the anchor's
/// similarity with itself included, one direction only — and the loss is the mean of ℓᵢ.
/// The `− log 2N` makes a loss of 0 mean "no better than uniform"; it does not change gradients.
pub fn simclr_published(z1: &Tensor, z2: &Tensor, t: f64) -> Tensor {
    let (sims, positive) = published_similarities(z1, z2);
    published_from_similarities(&sims, &positive, t)
}

/// The cosine similarities of the published variant: each anchor z₁ᵢ against all 2N embeddings
/// `[z₁ᵢ·z₁ⱼ, z₁ᵢ·z₂ⱼ]` (`[N, 2N]`), and its positive z₁ᵢ·z₂ᵢ (`[N]`).
fn published_similarities(z1: &Tensor, z2: &Tensor) -> (Tensor, Tensor) {
    let (a, b) = (normalise(z1), normalise(z2));
    let sims = Tensor::cat(&[a.matmul(&a.tr()), a.matmul(&b.tr())], 1);
    let positive = (&a * &b).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    (sims, positive)
}

/// Mean of `logsumexp_j(sims/t) − positive/t − log 2N`.
fn published_from_similarities(sims: &Tensor, positive: &Tensor, t: f64) -> Tensor {
    let two_n = sims.size()[1];
    let lse = (sims / t).logsumexp([1i64].as_slice(), false);
    (lse - positive / t - (two_n as f64).ln()).mean(Kind::Float)
}

/// Implicit feature modification over the published variant (Robinson et al., "Can contrastive
/// learning avoid shortcut solutions?", NeurIPS 2021): `(L + α·L_adv) / (1 + α)`, where `L` is
/// [`simclr_published`] and `L_adv` the same loss with every cosine similarity moved by `ε` before
/// the division by `t` — the positive z₁ᵢ·z₂ᵢ lowered, every other entry of the softmax (the
/// negatives, and the anchor's self-similarity that this variant keeps in the denominator) raised —
/// as the authors' code does (`joshr17/IFM`, `moco/adv_builder.py`: `l_pos − ε`, `l_neg + ε`,
/// then `/T`). It is the worst case of moving each embedding by at most ε towards or away from
/// the anchor, in closed form; ε = 0 gives back the published loss.
pub fn ifm(z1: &Tensor, z2: &Tensor, t: f64, epsilon: f64, alpha: f64) -> Tensor {
    let (sims, positive) = published_similarities(z1, z2);
    let n = positive.size()[0];
    let clean = published_from_similarities(&sims, &positive, t);
    // +ε on every entry, −2ε more on the positive's (the diagonal of the z₁·z₂ block).
    let eye = Tensor::eye(n, (Kind::Float, sims.device()));
    let shift = Tensor::cat(&[eye.zeros_like(), eye * (-2.0 * epsilon)], 1) + epsilon;
    let adversarial = published_from_similarities(&(&sims + shift), &(&positive - epsilon), t);
    (clean + adversarial * alpha) / (1.0 + alpha)
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

    /// Issue 28 item 1: IFM written out by hand for a batch of four unit 2-d embeddings: the
    /// positive's cosine lowered by ε, every other one raised by ε, then /t, and the two losses
    /// mixed as (L + α·L_adv)/(1 + α).
    #[test]
    fn ifm_matches_a_hand_computed_value() {
        let ang1 = [0.0f64, 1.6, 3.1, 4.4];
        let ang2 = [0.4f64, 1.2, 3.6, 5.0];
        let unit = |a: &[f64]| a.iter().map(|&x| [x.cos() as f32, x.sin() as f32]).collect::<Vec<_>>();
        let (z1, z2) = (rows(&unit(&ang1)), rows(&unit(&ang2)));
        let (t, eps, alpha) = (0.5, 0.1, 1.0);
        let loss = |shift: f64| {
            let mut total = 0.0;
            for i in 0..4 {
                let mut terms = Vec::new();
                // Against z₁: the self-similarity and the negatives, all raised.
                for &aj in &ang1 {
                    terms.push(((ang1[i] - aj).cos() + shift) / t);
                }
                // Against z₂: the positive (j = i) lowered, the negatives raised.
                for (j, &bj) in ang2.iter().enumerate() {
                    let s = if j == i { -shift } else { shift };
                    terms.push(((ang1[i] - bj).cos() + s) / t);
                }
                let lse = terms.iter().map(|x| x.exp()).sum::<f64>().ln();
                total += lse - ((ang1[i] - ang2[i]).cos() - shift) / t - 8f64.ln();
            }
            total / 4.0
        };
        let want = (loss(0.0) + alpha * loss(eps)) / (1.0 + alpha);
        let got = f64::try_from(ifm(&(&z1 * 2.0), &z2, t, eps, alpha)).unwrap();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        assert!((loss(eps) - loss(0.0)).abs() > 0.1, "the perturbation changes the loss at this size");
        // α weighs the perturbed loss; ε = 0 is the published loss.
        let only_adv = f64::try_from(ifm(&z1, &z2, t, eps, 1e6)).unwrap();
        assert!((only_adv - loss(eps)).abs() < 1e-4, "{only_adv} vs {}", loss(eps));
        let plain = f64::try_from(ifm(&z1, &z2, t, 0.0, 1.0)).unwrap();
        assert!((plain - f64::try_from(simclr_published(&z1, &z2, t)).unwrap()).abs() < 1e-6);
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
