//! The spectral contrastive loss of a linear encoder, its closed-form minimiser, and the
//! eigenvalue-ranking prediction (which features the minimiser keeps and the dropout threshold).
//!
//! See the crate documentation for the derivation: with `M` the second moment of a view and `C`
//! the symmetrised positive-pair cross-moment, `L(W) = ‖M^{½}WᵀW M^{½} − T‖²_F − ‖T‖²_F` with
//! `T = M^{-½} C M^{-½}`, so the minimiser keeps the top-`k` eigen-directions of `T`.

use crate::linalg::{psd_inv_sqrt, sym_eigen};
use crate::model::{AugmentConfig, Group, ModelConfig, Moments};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// Relative tolerance below which an eigenvalue of `M` is treated as zero.
const M_REL_TOL: f64 = 1e-12;

/// Population spectral contrastive loss `L(W) = −2·tr(W C Wᵀ) + ‖W M Wᵀ‖²_F`.
pub fn spectral_loss(w: &Array2<f64>, moments: &Moments) -> f64 {
    let wcw = w.dot(&moments.cross).dot(&w.t());
    let wmw = w.dot(&moments.second).dot(&w.t());
    let trace: f64 = wcw.diag().sum();
    -2.0 * trace + wmw.iter().map(|v| v * v).sum::<f64>()
}

/// The closed-form minimiser of the spectral loss.
#[derive(Clone, Debug)]
pub struct ClosedForm {
    /// The encoder `W` (`k × d`); rows for non-positive eigenvalues of `T` are zero.
    pub weights: Array2<f64>,
    /// All eigenvalues of `T = M^{-½} C M^{-½}`, in descending order.
    pub eigenvalues: Vec<f64>,
    /// The minimal loss, `−Σ_{i≤k} max(λᵢ, 0)²`.
    pub loss: f64,
}

/// Minimises the spectral loss over `k × d` linear encoders: `W = diag(√λ⁺₁…√λ⁺ₖ) Uₖᵀ M^{-½}`,
/// with `(λᵢ, uᵢ)` the top eigenpairs of `T = M^{-½} C M^{-½}`. The minimiser is unique up to
/// a `k × k` rotation of `W` (and up to the choice of basis inside a repeated eigenvalue).
pub fn closed_form(moments: &Moments, k: usize) -> ClosedForm {
    let d = moments.second.nrows();
    let m_inv_sqrt = psd_inv_sqrt(&moments.second, M_REL_TOL);
    let t = m_inv_sqrt.dot(&moments.cross).dot(&m_inv_sqrt);
    let (values, vectors) = sym_eigen(&t);
    let mut weights = Array2::<f64>::zeros((k, d));
    let mut loss = 0.0;
    for (i, &l) in values.iter().enumerate().take(k) {
        if l <= 0.0 {
            continue;
        }
        loss -= l * l;
        let row = vectors.column(i).to_owned() * l.sqrt();
        weights.row_mut(i).assign(&row.dot(&m_inv_sqrt));
    }
    ClosedForm { weights, eigenvalues: values, loss }
}

/// Eigenvalue of `T` on one coordinate of group `g`, for variance `v` of that coordinate:
/// `(1 − p_g)·v / (v + σ_aug²)` (0 where the coordinate carries no variance at all).
fn tau(v: f64, aug_var: f64, keep: f64) -> f64 {
    if v + aug_var <= 0.0 { 0.0 } else { keep * v / (v + aug_var) }
}

/// The eigenvalues of `T` that belong to one group.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupSpectrum {
    /// Eigenvalue on each of the group's signal coordinates (multiplicity `classes − 1`).
    pub signal: f64,
    /// Eigenvalue on each of the group's other coordinates (multiplicity `dim − classes + 1`).
    pub noise: f64,
}

/// The eigenvalues of `T` per group for a given dropout configuration (analytic; `T` is
/// diagonal in the model's coordinates).
pub fn group_spectrum(model: &ModelConfig, aug: &AugmentConfig, g: Group) -> GroupSpectrum {
    let cfg = model.group(g);
    let aug_var = aug.noise_std * aug.noise_std;
    let keep = 1.0 - aug.dropout_on(g);
    GroupSpectrum {
        signal: tau(cfg.signal_coord_variance(), aug_var, keep),
        noise: tau(cfg.noise_coord_variance(), aug_var, keep),
    }
}

/// What the eigenvalue ranking predicts for the spectral minimiser.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Eigenvalues of `T` on group `a`'s coordinates at this configuration's dropout.
    pub spectrum_a: GroupSpectrum,
    /// Eigenvalues of `T` on group `b`'s coordinates at this configuration's dropout.
    pub spectrum_b: GroupSpectrum,
    /// Predicted fraction of group `a`'s signal subspace kept by the minimiser (a repeated
    /// eigenvalue that straddles the `k`-th place shares the remaining places evenly).
    pub overlap_a: f64,
    /// Predicted fraction of group `b`'s signal subspace kept by the minimiser.
    pub overlap_b: f64,
    /// The group feature dropout acts on.
    pub dropout_group: Group,
    /// Onset threshold: for dropout probability `p` above this value the other group's signal
    /// enters the representation (`None`: it never does for `p ≤ 1`, e.g. it has no signal).
    pub onset_p: Option<f64>,
    /// For `p` above this value all of the other group's signal subspace is kept
    /// (`None`: never, e.g. `k` is smaller than its signal rank).
    pub full_p: Option<f64>,
    /// For `p` above this value the dropped group's signal is no longer fully kept (its cost);
    /// `0` when it was not fully kept even without dropout.
    pub loss_p: f64,
}

/// The `i`-th largest (1-based) of `count_hi` copies of `hi` and `count_lo` copies of `lo`
/// (with `hi ≥ lo`), or `None` past the end.
fn nth_largest(hi: f64, count_hi: usize, lo: f64, count_lo: usize, i: usize) -> Option<f64> {
    let (hi, count_hi, lo, count_lo) =
        if hi >= lo { (hi, count_hi, lo, count_lo) } else { (lo, count_lo, hi, count_hi) };
    if i == 0 {
        None
    } else if i <= count_hi {
        Some(hi)
    } else if i <= count_hi + count_lo {
        Some(lo)
    } else {
        None
    }
}

/// Threshold `p` at which `(1 − p)·alpha` falls to `beta`: `1 − beta/alpha`, clipped to
/// `[0, 1]`.
fn crossing(alpha: f64, beta: f64) -> f64 {
    if alpha <= 0.0 { 0.0 } else { (1.0 - beta / alpha).clamp(0.0, 1.0) }
}

/// Predicted kept fraction of each group's signal for the top-`k` eigen-directions of `T`.
fn predicted_overlaps(model: &ModelConfig, sa: GroupSpectrum, sb: GroupSpectrum, k: usize) -> [f64; 2] {
    // (value, multiplicity, is-signal-of) entries.
    let ra = model.a.signal_rank();
    let rb = model.b.signal_rank();
    let entries = [
        (sa.signal, ra, Some(0usize)),
        (sa.noise, model.a.dim - ra, None),
        (sb.signal, rb, Some(1usize)),
        (sb.noise, model.b.dim - rb, None),
    ];
    let tol = 1e-12;
    let mut kept = [0.0f64; 2];
    let mut values: Vec<f64> = entries.iter().filter(|e| e.1 > 0 && e.0 > 0.0).map(|e| e.0).collect();
    values.sort_by(|x, y| y.total_cmp(x));
    values.dedup_by(|x, y| (*x - *y).abs() <= tol);
    let mut slots = k as f64;
    for v in values {
        if slots <= 0.0 {
            break;
        }
        let level: Vec<_> = entries.iter().filter(|e| e.1 > 0 && (e.0 - v).abs() <= tol).collect();
        let total: usize = level.iter().map(|e| e.1).sum();
        let share = (slots / total as f64).min(1.0);
        for e in &level {
            if let Some(g) = e.2 {
                kept[g] += share * e.1 as f64;
            }
        }
        slots -= total as f64;
    }
    [if ra > 0 { kept[0] / ra as f64 } else { 0.0 }, if rb > 0 { kept[1] / rb as f64 } else { 0.0 }]
}

/// Eigen-gap at the `k`-th place that matters for the measurements: the smallest distance of a
/// group's signal eigenvalue of `T` from the boundary between the `k` kept and the dropped
/// eigenvalues (0 at a tie, infinite when all `d` eigenvalues are kept). Gradient descent
/// resolves the ranking at a speed proportional to it.
pub fn ranking_margin(model: &ModelConfig, aug: &AugmentConfig, k: usize) -> f64 {
    let sa = group_spectrum(model, aug, Group::A);
    let sb = group_spectrum(model, aug, Group::B);
    let (ra, rb) = (model.a.signal_rank(), model.b.signal_rank());
    let mut values: Vec<f64> = Vec::with_capacity(model.dim());
    for (v, n) in [(sa.signal, ra), (sa.noise, model.a.dim - ra), (sb.signal, rb), (sb.noise, model.b.dim - rb)] {
        values.extend(std::iter::repeat_n(v, n));
    }
    values.sort_by(|x, y| y.total_cmp(x));
    if k == 0 || k >= values.len() {
        return f64::INFINITY;
    }
    let (kth, next) = (values[k - 1], values[k]);
    [(sa.signal, ra), (sb.signal, rb)]
        .into_iter()
        .filter(|&(_, r)| r > 0)
        .map(|(t, _)| if t >= kth { t - next } else { kth - t })
        .fold(f64::INFINITY, f64::min)
}

/// The eigenvalue-ranking prediction for the spectral minimiser with embedding size `k`.
///
/// With dropout on group `g` (eigenvalues scaled by `1 − p`) and the other group `h`
/// (unchanged), and `α₁ ≥ α₂ ≥ …` the eigenvalues of `g` without dropout:
/// - `h`'s signal enters when `(1 − p)·α_k < τ_h`, i.e. `p > 1 − τ_h/α_k` (`0` if `k > dim_g`);
/// - all of it is kept when `(1 − p)·α_{k−r_h+1} < τ_h`;
/// - `g`'s signal starts to leave when `(1 − p)·τ_g < β_{k−r_g+1}`, `β` the eigenvalues of `h`
///   in descending order (at `p = 1` at the latest, where `g` carries no pair information).
pub fn predict(model: &ModelConfig, aug: &AugmentConfig, k: usize) -> Prediction {
    let spectrum_a = group_spectrum(model, aug, Group::A);
    let spectrum_b = group_spectrum(model, aug, Group::B);
    let [overlap_a, overlap_b] = predicted_overlaps(model, spectrum_a, spectrum_b, k);

    let g = aug.dropout_group;
    let h = g.other();
    let no_dropout = AugmentConfig { dropout_p: 0.0, ..aug.clone() };
    let sg = group_spectrum(model, &no_dropout, g);
    let sh = group_spectrum(model, &no_dropout, h);
    let (cg, ch) = (model.group(g), model.group(h));
    let (rg, rh) = (cg.signal_rank(), ch.signal_rank());
    let alpha = |i: usize| nth_largest(sg.signal, rg, sg.noise, cg.dim - rg, i);
    let beta = |i: usize| nth_largest(sh.signal, rh, sh.noise, ch.dim - rh, i);

    let h_has_signal = ch.strength > 0.0 && rh > 0 && sh.signal > sh.noise;
    let onset_p = if !h_has_signal {
        None
    } else {
        match alpha(k) {
            None => Some(0.0),
            Some(a) => Some(crossing(a, sh.signal)),
        }
    };
    let full_p = if !h_has_signal || rh > k {
        None
    } else {
        match alpha(k - rh + 1) {
            None => Some(0.0),
            Some(a) => Some(crossing(a, sh.signal)),
        }
    };
    let loss_p = if rg > k || rg == 0 {
        0.0
    } else {
        match beta(k - rg + 1) {
            None => 1.0,
            Some(b) => crossing(sg.signal, b),
        }
    };
    Prediction { spectrum_a, spectrum_b, overlap_a, overlap_b, dropout_group: g, onset_p, full_p, loss_p }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::subspace_overlap;
    use crate::model::population_moments;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    #[test]
    fn closed_form_beats_random_encoders_and_matches_its_loss() {
        let model = ModelConfig::default();
        let aug = AugmentConfig { dropout_p: 0.3, ..AugmentConfig::default() };
        let m = population_moments(&model, &aug);
        let k = 3;
        let cf = closed_form(&m, k);
        let loss = spectral_loss(&cf.weights, &m);
        assert!((loss - cf.loss).abs() < 1e-9, "{loss} vs {}", cf.loss);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..50 {
            let scale = 0.3;
            let w = Array2::from_shape_fn((k, model.dim()), |_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                z * scale
            });
            // Perturbations of the minimiser never do better either.
            let pert = &cf.weights + &(&w * 0.05);
            assert!(spectral_loss(&w, &m) >= cf.loss - 1e-9);
            assert!(spectral_loss(&pert, &m) >= cf.loss - 1e-9);
        }
    }

    #[test]
    fn eigen_decomposition_agrees_with_the_analytic_ranking() {
        for (k, p, ratio) in [(1, 0.0, 0.5), (1, 0.6, 0.5), (2, 0.9, 0.3), (3, 0.2, 0.8)] {
            let mut model = ModelConfig::default();
            model.b.strength = ratio * model.a.strength;
            let aug = AugmentConfig { dropout_p: p, ..AugmentConfig::default() };
            let cf = closed_form(&population_moments(&model, &aug), k);
            let pred = predict(&model, &aug, k);
            let oa = subspace_overlap(&cf.weights, &model, Group::A);
            let ob = subspace_overlap(&cf.weights, &model, Group::B);
            assert!((oa - pred.overlap_a).abs() < 1e-6, "k {k} p {p}: {oa} vs {pred:?}");
            assert!((ob - pred.overlap_b).abs() < 1e-6, "k {k} p {p}: {ob} vs {pred:?}");
        }
    }

    #[test]
    fn ranking_margin_vanishes_at_the_threshold() {
        let model = ModelConfig::default();
        let onset = predict(&model, &AugmentConfig::default(), 4).onset_p.unwrap();
        let at = |p: f64| ranking_margin(&model, &AugmentConfig { dropout_p: p, ..AugmentConfig::default() }, 4);
        assert!(at(onset) < 1e-12);
        assert!(at(onset - 0.05) > 0.01 && at(onset + 0.05) > 0.01);
        assert_eq!(at(0.0).min(1.0), at(0.0));
        assert!(ranking_margin(&model, &AugmentConfig::default(), model.dim()).is_infinite());
    }

    #[test]
    fn thresholds_bracket_the_switch() {
        let model = ModelConfig::default();
        let pred = predict(&model, &AugmentConfig::default(), 1);
        let onset = pred.onset_p.expect("b has signal");
        assert!(onset > 0.0 && onset < 1.0);
        let at = |p: f64| {
            let aug = AugmentConfig { dropout_p: p, ..AugmentConfig::default() };
            predict(&model, &aug, 1)
        };
        assert_eq!(at(onset - 0.01).overlap_b, 0.0);
        assert_eq!(at(onset + 0.01).overlap_b, 1.0);
        // With k = 1 and one signal direction per group, b replaces a.
        assert!((pred.loss_p - onset).abs() < 1e-12);
        assert_eq!(at(onset + 0.01).overlap_a, 0.0);
    }
}
