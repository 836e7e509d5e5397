//! Measurements of a learned encoder: how much of each group's signal subspace it keeps, how
//! its weight is shared between the groups, and linear-probe accuracy on each task.

use crate::linalg::{row_space_basis, solve_spd};
use crate::model::{Group, ModelConfig, Sample};
use ndarray::{Array2, Axis, s};

/// Singular values of `W` below this fraction of the largest count as zero (rank).
const RANK_TOL: f64 = 1e-6;

/// Fraction of group `g`'s signal subspace that lies in the row space of `w`:
/// `‖P_W U_g‖²_F / r_g`, with `U_g` an orthonormal basis of the signal subspace (`r_g`
/// columns) and `P_W` the orthogonal projector onto `W`'s row space. 1 when the encoder can
/// represent every signal direction of the group, 0 when it is blind to all of them.
pub fn subspace_overlap(w: &Array2<f64>, model: &ModelConfig, g: Group) -> f64 {
    let q = row_space_basis(w, RANK_TOL);
    let coords = model.signal_coords(g);
    let r = coords.len();
    if r == 0 || q.nrows() == 0 {
        return 0.0;
    }
    let block = q.slice(s![.., coords]);
    block.iter().map(|v| v * v).sum::<f64>() / r as f64
}

/// Share of the encoder's squared weight that falls on group `g`'s coordinates,
/// `‖W_g‖²_F / ‖W‖²_F` (0 for a zero encoder).
pub fn weight_share(w: &Array2<f64>, model: &ModelConfig, g: Group) -> f64 {
    let total: f64 = w.iter().map(|v| v * v).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let part: f64 = w.slice(s![.., model.coords(g)]).iter().map(|v| v * v).sum();
    part / total
}

/// Features `[W x, 1]` for every row of `x`.
fn features(w: &Array2<f64>, x: &Array2<f64>) -> Array2<f64> {
    let f = x.dot(&w.t());
    let mut out = Array2::<f64>::ones((x.nrows(), w.nrows() + 1));
    out.slice_mut(s![.., ..w.nrows()]).assign(&f);
    out
}

/// A trained linear probe: least-squares regression of one-hot labels on `[W x, 1]`, with a
/// small ridge; predicts the arg-max.
#[derive(Clone, Debug)]
pub struct LinearProbe {
    coef: Array2<f64>,
}

impl LinearProbe {
    /// Fits the probe for group `g`'s task on the clean examples `train`, on features `W x`.
    /// `ridge` is relative to the mean squared feature value.
    pub fn fit(w: &Array2<f64>, train: &Sample, g: Group, classes: usize, ridge: f64) -> Self {
        let f = features(w, &train.x);
        let labels = train.labels(g);
        let mut y = Array2::<f64>::zeros((f.nrows(), classes));
        for (i, &c) in labels.iter().enumerate() {
            y[[i, c]] = 1.0;
        }
        let mut gram = f.t().dot(&f);
        let scale = gram.diag().sum() / gram.nrows() as f64;
        let lambda = ridge * scale.max(f64::MIN_POSITIVE);
        for i in 0..gram.nrows() {
            gram[[i, i]] += lambda;
        }
        let rhs = f.t().dot(&y);
        let coef = solve_spd(&gram, &rhs).unwrap_or_else(|| Array2::zeros((f.ncols(), classes)));
        LinearProbe { coef }
    }

    /// Predicted classes for the rows of `x`.
    pub fn predict(&self, w: &Array2<f64>, x: &Array2<f64>) -> Vec<usize> {
        let scores = features(w, x).dot(&self.coef);
        scores
            .axis_iter(Axis(0))
            .map(|row| {
                let mut best = 0;
                for (c, v) in row.iter().enumerate() {
                    if *v > row[best] {
                        best = c;
                    }
                }
                best
            })
            .collect()
    }

    /// Accuracy on group `g`'s labels of `test`.
    pub fn accuracy(&self, w: &Array2<f64>, test: &Sample, g: Group) -> f64 {
        let pred = self.predict(w, &test.x);
        let labels = test.labels(g);
        if labels.is_empty() {
            return 0.0;
        }
        let right = pred.iter().zip(labels).filter(|(p, l)| p == l).count();
        right as f64 / labels.len() as f64
    }
}

/// Test accuracy of a linear probe for group `g`'s task on frozen features `W x`, trained on
/// `train` and scored on `test` (both clean examples).
pub fn probe_accuracy(
    w: &Array2<f64>,
    model: &ModelConfig,
    train: &Sample,
    test: &Sample,
    g: Group,
    ridge: f64,
) -> f64 {
    let probe = LinearProbe::fit(w, train, g, model.group(g).classes, ridge);
    probe.accuracy(w, test, g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sample_clean;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn overlap_of_axis_encoders() {
        let model = ModelConfig::default();
        let d = model.dim();
        let mut w = Array2::<f64>::zeros((1, d));
        w[[0, 0]] = 2.0;
        assert!((subspace_overlap(&w, &model, Group::A) - 1.0).abs() < 1e-12);
        assert!(subspace_overlap(&w, &model, Group::B).abs() < 1e-12);
        // Half-way between the two signal axes: half of each.
        w[[0, model.a.dim]] = 2.0;
        assert!((subspace_overlap(&w, &model, Group::A) - 0.5).abs() < 1e-12);
        assert!((weight_share(&w, &model, Group::B) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn probes_read_only_what_the_encoder_keeps() {
        let model = ModelConfig::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let train = sample_clean(&model, 2000, &mut rng);
        let test = sample_clean(&model, 2000, &mut rng);
        let mut w = Array2::<f64>::zeros((1, model.dim()));
        w[[0, 0]] = 1.0;
        let acc_a = probe_accuracy(&w, &model, &train, &test, Group::A, 1e-6);
        let acc_b = probe_accuracy(&w, &model, &train, &test, Group::B, 1e-6);
        // Bayes accuracy of task A on its signal axis: Φ(strength/2/noise) = Φ(1.5) ≈ 0.933.
        assert!((acc_a - 0.933).abs() < 0.02, "{acc_a}");
        assert!((acc_b - 0.5).abs() < 0.05, "{acc_b}");
    }
}
