//! Minibatch gradient descent for a linear encoder, on the spectral contrastive loss or on
//! InfoNCE, with hand-written gradients.
//!
//! Each step draws a fresh batch of `N` positive pairs `(x⁺₁ᵢ, x⁺₂ᵢ)` from the model, computes
//! the loss of the batch and its exact gradient with respect to `W`, and takes an Adam (or SGD
//! with momentum) step; the learning rate follows a cosine decay to 1 % of its start value.

use crate::model::{AugmentConfig, ModelConfig, sample_pairs};
use ndarray::{Array1, Array2, Axis};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// The contrastive objective that gradient descent minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Spectral contrastive loss on the batch:
    /// `−(2/N) Σᵢ f₁ᵢ·f₂ᵢ + (1/(N(N−1))) Σ_{i≠j} (f₁ᵢ·f₂ⱼ)²`, `f = W x`.
    Spectral,
    /// Symmetric InfoNCE: cross-entropy of matching each first view to its own second view
    /// among the batch (and vice versa), logits `zᵢ·zⱼ/t`, `z` the (by default L2-normalised)
    /// embeddings.
    InfoNce,
}

/// The optimiser used by gradient descent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Optimizer {
    /// Adam (β₁ 0.9, β₂ 0.999, ε 1e-8).
    Adam,
    /// SGD with momentum 0.9.
    Sgd,
}

/// Settings of minibatch gradient descent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Number of gradient steps.
    pub steps: usize,
    /// Positive pairs per batch.
    pub batch_size: usize,
    /// Initial learning rate (cosine-decayed to 1 % of it).
    pub lr: f64,
    /// Standard deviation of the i.i.d. Gaussian initial weights.
    pub init_scale: f64,
    /// InfoNCE temperature.
    pub temperature: f64,
    /// Whether InfoNCE L2-normalises the embeddings (cosine similarity).
    pub normalize: bool,
    /// The optimiser.
    pub optimizer: Optimizer,
}

impl Default for TrainConfig {
    /// 1500 Adam steps of 128 pairs at learning rate 0.01 from weights of scale 0.01;
    /// InfoNCE at temperature 0.2 with normalised embeddings.
    fn default() -> Self {
        TrainConfig {
            steps: 1500,
            batch_size: 128,
            lr: 0.01,
            init_scale: 0.01,
            temperature: 0.2,
            normalize: true,
            optimizer: Optimizer::Adam,
        }
    }
}

impl TrainConfig {
    /// Checks that every field is in range.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.steps >= 1, "steps must be at least 1");
        anyhow::ensure!(self.batch_size >= 2, "batch_size must be at least 2");
        anyhow::ensure!(self.lr.is_finite() && self.lr > 0.0, "lr must be a positive number");
        anyhow::ensure!(self.init_scale.is_finite() && self.init_scale > 0.0, "init_scale must be a positive number");
        anyhow::ensure!(
            self.temperature.is_finite() && self.temperature > 0.0,
            "temperature must be a positive number"
        );
        Ok(())
    }
}

/// What gradient descent ends with.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// The learned encoder (`k × d`).
    pub weights: Array2<f64>,
    /// Mean batch loss over the last 10 % of the steps.
    pub final_loss: f64,
    /// Mean batch loss over each successive tenth of the run.
    pub loss_curve: Vec<f64>,
}

/// Spectral loss of one batch and its gradient with respect to `w`.
pub fn spectral_batch_grad(w: &Array2<f64>, v1: &Array2<f64>, v2: &Array2<f64>) -> (f64, Array2<f64>) {
    let n = v1.nrows() as f64;
    let f1 = v1.dot(&w.t());
    let f2 = v2.dot(&w.t());
    let mut s = f1.dot(&f2.t());
    let pos: f64 = s.diag().sum();
    s.diag_mut().fill(0.0);
    let neg: f64 = s.iter().map(|v| v * v).sum();
    let c_pos = 2.0 / n;
    let c_neg = 1.0 / (n * (n - 1.0));
    let loss = -c_pos * pos + c_neg * neg;
    // dL/dF1 = −(2/N) F2 + (2/(N(N−1))) S' F2,  dL/dF2 = −(2/N) F1 + (2/(N(N−1))) S'ᵀ F1.
    let df1 = &s.dot(&f2) * (2.0 * c_neg) - &(&f2 * c_pos);
    let df2 = &s.t().dot(&f1) * (2.0 * c_neg) - &(&f1 * c_pos);
    let grad = df1.t().dot(v1) + df2.t().dot(v2);
    (loss, grad)
}

/// Row and column softmax of `s` with the log-sum-exp of every row and column, each lane
/// shifted by its own maximum (the numerically safe path).
fn softmax_both(s: &Array2<f64>) -> (Array2<f64>, Array2<f64>, Array1<f64>, Array1<f64>) {
    let mut p_rows = s.clone();
    let mut p_cols = s.clone();
    let mut lse_rows = Array1::<f64>::zeros(s.nrows());
    let mut lse_cols = Array1::<f64>::zeros(s.ncols());
    for (axis, lse, p) in [(Axis(0), &mut lse_rows, &mut p_rows), (Axis(1), &mut lse_cols, &mut p_cols)] {
        for (i, mut lane) in p.axis_iter_mut(axis).enumerate() {
            let max = lane.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            lane.mapv_inplace(|v| (v - max).exp());
            let sum = lane.sum();
            lane.mapv_inplace(|v| v / sum);
            lse[i] = max + sum.ln();
        }
    }
    (p_rows, p_cols, lse_rows, lse_cols)
}

/// Embeddings `z = h/‖h‖` (or `h` itself) and the norms `‖h‖` of the rows of `h`.
fn embed(h: &Array2<f64>, normalize: bool) -> (Array2<f64>, Array1<f64>) {
    let norms = h.map_axis(Axis(1), |r| r.dot(&r).sqrt().max(1e-12));
    if normalize { (h / &norms.view().insert_axis(Axis(1)), norms) } else { (h.clone(), norms) }
}

/// Back-propagates `dz` through `z = h/‖h‖`: `dh = (dz − z (z·dz)) / ‖h‖`.
fn embed_backward(z: &Array2<f64>, norms: &Array1<f64>, dz: &Array2<f64>, normalize: bool) -> Array2<f64> {
    if !normalize {
        return dz.clone();
    }
    let dots = (z * dz).sum_axis(Axis(1));
    let inner = dz - &(z * &dots.view().insert_axis(Axis(1)));
    inner / norms.view().insert_axis(Axis(1))
}

/// `dL/dS` of symmetric InfoNCE for the logits `s` (overwritten with it), and the loss.
///
/// One pass of exponentials shifted by the global maximum gives every row's and column's
/// softmax; if a row or column sum underflows, the lane-wise stable path is used instead.
fn infonce_logit_grad(s: &mut Array2<f64>) -> f64 {
    let n = s.nrows();
    let nf = n as f64;
    let diag: f64 = s.diag().sum();
    let gmax = s.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
    let mut row = vec![0.0f64; n];
    let mut col = vec![0.0f64; n];
    {
        let flat = s.as_slice_mut().expect("standard layout");
        for (i, chunk) in flat.chunks_exact_mut(n).enumerate() {
            let mut acc = 0.0;
            for (j, v) in chunk.iter_mut().enumerate() {
                let e = (*v - gmax).exp();
                *v = e;
                acc += e;
                col[j] += e;
            }
            row[i] = acc;
        }
    }
    if row.iter().chain(col.iter()).any(|&x| x.is_nan() || x <= 1e-250) {
        return f64::NAN;
    }
    let loss = (row.iter().chain(col.iter()).map(|x| x.ln()).sum::<f64>() + 2.0 * nf * gmax - 2.0 * diag) / (2.0 * nf);
    let inv_row: Vec<f64> = row.iter().map(|x| 1.0 / (2.0 * nf * x)).collect();
    let inv_col: Vec<f64> = col.iter().map(|x| 1.0 / (2.0 * nf * x)).collect();
    let flat = s.as_slice_mut().expect("standard layout");
    for (i, chunk) in flat.chunks_exact_mut(n).enumerate() {
        let ri = inv_row[i];
        for (v, cj) in chunk.iter_mut().zip(&inv_col) {
            *v *= ri + cj;
        }
        chunk[i] -= 1.0 / nf;
    }
    loss
}

/// Symmetric InfoNCE loss of one batch and its gradient with respect to `w`.
pub fn infonce_batch_grad(
    w: &Array2<f64>,
    v1: &Array2<f64>,
    v2: &Array2<f64>,
    temperature: f64,
    normalize: bool,
) -> (f64, Array2<f64>) {
    let n = v1.nrows() as f64;
    let (z1, n1) = embed(&v1.dot(&w.t()), normalize);
    let (z2, n2) = embed(&v2.dot(&w.t()), normalize);
    let logits = || {
        let mut s = z1.dot(&z2.t());
        s.mapv_inplace(|v| v / temperature);
        s
    };
    let mut g = logits();
    let loss = infonce_logit_grad(&mut g);
    let (loss, g) = if loss.is_finite() {
        (loss, g)
    } else {
        // Stable path: each row and column with its own maximum.
        let s = logits();
        let diag: f64 = s.diag().sum();
        let (p_rows, p_cols, lse_rows, lse_cols) = softmax_both(&s);
        let loss = (lse_rows.sum() + lse_cols.sum() - 2.0 * diag) / (2.0 * n);
        // dL/dS = [(softmax over each row − I) + (softmax over each column − I)] / (2N).
        let mut g = (p_rows + p_cols) / (2.0 * n);
        for i in 0..g.nrows() {
            g[[i, i]] -= 1.0 / n;
        }
        (loss, g)
    };
    let dz1 = g.dot(&z2) / temperature;
    let dz2 = g.t().dot(&z1) / temperature;
    let dh1 = embed_backward(&z1, &n1, &dz1, normalize);
    let dh2 = embed_backward(&z2, &n2, &dz2, normalize);
    let grad = dh1.t().dot(v1) + dh2.t().dot(v2);
    (loss, grad)
}

/// Runs minibatch gradient descent for a `k × d` encoder from a small random initialisation.
pub fn train<R: Rng + ?Sized>(
    model: &ModelConfig,
    aug: &AugmentConfig,
    k: usize,
    objective: Objective,
    cfg: &TrainConfig,
    rng: &mut R,
) -> TrainOutcome {
    let d = model.dim();
    let mut w = Array2::from_shape_fn((k, d), |_| {
        let z: f64 = rng.sample(StandardNormal);
        cfg.init_scale * z
    });
    let mut m1 = Array2::<f64>::zeros((k, d));
    let mut m2 = Array2::<f64>::zeros((k, d));
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    let tenth = cfg.steps.div_ceil(10).max(1);
    let mut loss_curve = Vec::with_capacity(10);
    let mut acc = 0.0;
    let mut count = 0usize;
    for step in 0..cfg.steps {
        let (v1, v2) = sample_pairs(model, aug, cfg.batch_size, rng);
        let (loss, grad) = match objective {
            Objective::Spectral => spectral_batch_grad(&w, &v1, &v2),
            Objective::InfoNce => infonce_batch_grad(&w, &v1, &v2, cfg.temperature, cfg.normalize),
        };
        let progress = step as f64 / cfg.steps as f64;
        let lr = cfg.lr * (0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
        match cfg.optimizer {
            Optimizer::Adam => {
                let t = (step + 1) as i32;
                m1.zip_mut_with(&grad, |m, &g| *m = b1 * *m + (1.0 - b1) * g);
                m2.zip_mut_with(&grad, |m, &g| *m = b2 * *m + (1.0 - b2) * g * g);
                let c1 = 1.0 - b1.powi(t);
                let c2 = 1.0 - b2.powi(t);
                ndarray::Zip::from(&mut w)
                    .and(&m1)
                    .and(&m2)
                    .for_each(|w, &m, &v| *w -= lr * (m / c1) / ((v / c2).sqrt() + eps));
            }
            Optimizer::Sgd => {
                m1.zip_mut_with(&grad, |m, &g| *m = 0.9 * *m + g);
                w.scaled_add(-lr, &m1);
            }
        }
        acc += loss;
        count += 1;
        if (step + 1) % tenth == 0 || step + 1 == cfg.steps {
            loss_curve.push(acc / count as f64);
            acc = 0.0;
            count = 0;
        }
    }
    let final_loss = loss_curve.last().copied().unwrap_or(f64::NAN);
    TrainOutcome { weights: w, final_loss, loss_curve }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    type LossAndGrad<'a> = &'a dyn Fn(&Array2<f64>) -> (f64, Array2<f64>);

    fn check_gradient(f: LossAndGrad, w: &Array2<f64>) {
        let (_, grad) = f(w);
        let h = 1e-6;
        for idx in [(0, 0), (0, 3), (1, 5), (1, 9)] {
            let mut wp = w.clone();
            wp[idx] += h;
            let mut wm = w.clone();
            wm[idx] -= h;
            let num = (f(&wp).0 - f(&wm).0) / (2.0 * h);
            let ana = grad[idx];
            assert!((num - ana).abs() < 1e-5 * (1.0 + num.abs()), "{idx:?}: numeric {num}, analytic {ana}");
        }
    }

    #[test]
    fn hand_written_gradients_match_finite_differences() {
        let model = ModelConfig::default();
        let aug = AugmentConfig { dropout_p: 0.5, ..AugmentConfig::default() };
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (v1, v2) = sample_pairs(&model, &aug, 16, &mut rng);
        let w = Array2::from_shape_fn((2, model.dim()), |_| {
            let z: f64 = rng.sample(StandardNormal);
            0.3 * z
        });
        check_gradient(&|w| spectral_batch_grad(w, &v1, &v2), &w);
        check_gradient(&|w| infonce_batch_grad(w, &v1, &v2, 0.5, true), &w);
        check_gradient(&|w| infonce_batch_grad(w, &v1, &v2, 2.0, false), &w);
    }

    #[test]
    fn fast_and_stable_infonce_paths_agree() {
        let model = ModelConfig::default();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (v1, v2) = sample_pairs(&model, &AugmentConfig::default(), 12, &mut rng);
        let w = Array2::from_shape_fn((3, model.dim()), |_| {
            let z: f64 = rng.sample(StandardNormal);
            z
        });
        let mut s = v1.dot(&w.t()).dot(&v2.dot(&w.t()).t());
        let (p_rows, p_cols, lse_rows, lse_cols) = softmax_both(&s);
        let diag: f64 = s.diag().sum();
        let want_loss = (lse_rows.sum() + lse_cols.sum() - 2.0 * diag) / 24.0;
        let mut want = (p_rows + p_cols) / 24.0;
        for i in 0..12 {
            want[[i, i]] -= 1.0 / 12.0;
        }
        let loss = infonce_logit_grad(&mut s);
        assert!((loss - want_loss).abs() < 1e-9 * (1.0 + want_loss.abs()));
        for (a, b) in s.iter().zip(want.iter()) {
            assert!((a - b).abs() < 1e-12);
        }
        // Logits so spread that the global shift underflows a whole row: flagged, not wrong.
        let mut wide = Array2::from_shape_fn((3, 3), |(i, j)| if i == j { 0.0 } else { -2000.0 * i as f64 });
        wide[[2, 2]] = -1500.0;
        assert!(infonce_logit_grad(&mut wide).is_nan());
    }
}
