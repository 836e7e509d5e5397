//! The data model: inputs `x = [a; b]`, two independent classification tasks, and the
//! augmentations that make positive pairs.
//!
//! Group `g ∈ {a, b}` has `dim` coordinates. Its task has `classes` equiprobable classes whose
//! means form a regular simplex with every pair of means `strength` apart, laid on the group's
//! first `classes − 1` coordinates (its *signal subspace*); every coordinate of the group also
//! carries isotropic Gaussian noise of standard deviation `noise_std` that is fixed for an
//! instance (it is the instance's own content, shared by both views of a pair). The two tasks'
//! labels are independent, as are the two groups.
//!
//! A positive pair `(x⁺₁, x⁺₂)` is made from one `x`: each view adds its own Gaussian noise of
//! standard deviation `AugmentConfig::noise_std` to every coordinate (the label-preserving
//! augmentation), and with probability `dropout_p` the second view's `dropout_group` block is
//! replaced by an independent draw from that group's distribution (feature dropout: the pair no
//! longer agrees on that group's label or content).

use anyhow::{Result, bail, ensure};
use ndarray::{Array2, s};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// One of the two feature groups (and the task it carries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// Group `a`, carrying task A (by convention the stronger, "easy" feature).
    A,
    /// Group `b`, carrying task B.
    B,
}

impl Group {
    /// The other group.
    pub fn other(self) -> Group {
        match self {
            Group::A => Group::B,
            Group::B => Group::A,
        }
    }

    /// Index of the group in `[a, b]` pairs: 0 for `a`, 1 for `b`.
    pub fn index(self) -> usize {
        match self {
            Group::A => 0,
            Group::B => 1,
        }
    }

    /// Upper-case task name, `"A"` or `"B"`.
    pub fn task_name(self) -> &'static str {
        match self {
            Group::A => "A",
            Group::B => "B",
        }
    }
}

impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Group::A => "a",
            Group::B => "b",
        })
    }
}

/// The distribution of one feature group and its task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Number of input coordinates in the group (at least `classes − 1`).
    pub dim: usize,
    /// Number of equiprobable classes of the group's task (at least 2).
    pub classes: usize,
    /// Feature strength: the Euclidean distance between any two class means.
    pub strength: f64,
    /// Standard deviation of the within-class (instance) noise on every coordinate.
    pub noise_std: f64,
}

impl GroupConfig {
    /// Dimension of the signal subspace spanned by the class means (`classes − 1`).
    pub fn signal_rank(&self) -> usize {
        self.classes.saturating_sub(1)
    }

    /// Variance of the class means along each signal coordinate, `strength² / (2·classes)`.
    pub fn signal_variance(&self) -> f64 {
        self.strength * self.strength / (2.0 * self.classes as f64)
    }

    /// Total variance of one signal coordinate of `x` (class means plus instance noise).
    pub fn signal_coord_variance(&self) -> f64 {
        self.signal_variance() + self.noise_std * self.noise_std
    }

    /// Variance of one non-signal coordinate of `x` (instance noise only).
    pub fn noise_coord_variance(&self) -> f64 {
        self.noise_std * self.noise_std
    }

    /// Accuracy of guessing: `1 / classes`.
    pub fn chance(&self) -> f64 {
        1.0 / self.classes as f64
    }

    /// The class means, `classes` rows of `classes − 1` signal coordinates: a regular simplex
    /// centred at the origin with every pair of means `strength` apart (Helmert coordinates).
    pub fn class_means(&self) -> Array2<f64> {
        let c = self.classes;
        let r = self.signal_rank();
        let scale = self.strength / std::f64::consts::SQRT_2;
        let mut means = Array2::<f64>::zeros((c, r));
        // Helmert basis of the sum-zero subspace of R^c: h_j = (1,…,1, −j, 0,…)/√(j(j+1)).
        for j in 1..=r {
            let norm = ((j * (j + 1)) as f64).sqrt();
            for i in 0..c {
                let h = if i < j {
                    1.0
                } else if i == j {
                    -(j as f64)
                } else {
                    0.0
                };
                means[[i, j - 1]] = scale * h / norm;
            }
        }
        means
    }

    fn validate(&self, name: &str) -> Result<()> {
        ensure!(self.classes >= 2, "group {name}: classes must be at least 2");
        ensure!(self.dim >= 1, "group {name}: dim must be at least 1");
        ensure!(
            self.signal_rank() <= self.dim,
            "group {name}: {} classes need at least {} coordinates, dim is {}",
            self.classes,
            self.signal_rank(),
            self.dim
        );
        ensure!(
            self.strength.is_finite() && self.strength >= 0.0,
            "group {name}: strength must be a finite number ≥ 0, got {}",
            self.strength
        );
        ensure!(
            self.noise_std.is_finite() && self.noise_std >= 0.0,
            "group {name}: noise_std must be a finite number ≥ 0, got {}",
            self.noise_std
        );
        Ok(())
    }
}

/// The two-group input distribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Group `a` (task A).
    pub a: GroupConfig,
    /// Group `b` (task B).
    pub b: GroupConfig,
}

impl Default for ModelConfig {
    /// The default two-group model, where group `a` is the easy feature that alone identifies
    /// every instance: `a` has 16 coordinates of unit instance noise and a binary task of
    /// strength 3; `b` has 4 coordinates of instance noise 0.3 and a binary task of strength 1
    /// (strength ratio 1/3), easy for a probe that sees it but weak in variance.
    fn default() -> Self {
        ModelConfig {
            a: GroupConfig { dim: 16, classes: 2, strength: 3.0, noise_std: 1.0 },
            b: GroupConfig { dim: 4, classes: 2, strength: 1.0, noise_std: 0.3 },
        }
    }
}

impl ModelConfig {
    /// The configuration of group `g`.
    pub fn group(&self, g: Group) -> &GroupConfig {
        match g {
            Group::A => &self.a,
            Group::B => &self.b,
        }
    }

    /// Mutable access to the configuration of group `g`.
    pub fn group_mut(&mut self, g: Group) -> &mut GroupConfig {
        match g {
            Group::A => &mut self.a,
            Group::B => &mut self.b,
        }
    }

    /// Input dimension `d = dim_a + dim_b`.
    pub fn dim(&self) -> usize {
        self.a.dim + self.b.dim
    }

    /// Coordinates of `x` that belong to group `g`.
    pub fn coords(&self, g: Group) -> Range<usize> {
        match g {
            Group::A => 0..self.a.dim,
            Group::B => self.a.dim..self.a.dim + self.b.dim,
        }
    }

    /// Coordinates of `x` that span group `g`'s signal subspace (its class means).
    pub fn signal_coords(&self, g: Group) -> Range<usize> {
        let start = self.coords(g).start;
        start..start + self.group(g).signal_rank()
    }

    /// Strength ratio `strength_b / strength_a` (infinite when `strength_a` is 0).
    pub fn strength_ratio(&self) -> f64 {
        self.b.strength / self.a.strength
    }

    /// Checks that every field is in range.
    pub fn validate(&self) -> Result<()> {
        self.a.validate("a")?;
        self.b.validate("b")
    }
}

/// The augmentations that make a positive pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// Standard deviation of the additive Gaussian noise each view gets on every coordinate
    /// (the label-preserving augmentation).
    pub noise_std: f64,
    /// The group that feature dropout acts on.
    pub dropout_group: Group,
    /// Probability that the second view's `dropout_group` block is replaced by an
    /// independent draw from that group's distribution.
    pub dropout_p: f64,
}

impl Default for AugmentConfig {
    /// Additive noise of standard deviation 0.3, dropout on group `a` with probability 0.
    fn default() -> Self {
        AugmentConfig { noise_std: 0.3, dropout_group: Group::A, dropout_p: 0.0 }
    }
}

impl AugmentConfig {
    /// Dropout probability acting on group `g` (0 for the group dropout does not touch).
    pub fn dropout_on(&self, g: Group) -> f64 {
        if g == self.dropout_group { self.dropout_p } else { 0.0 }
    }

    /// Checks that every field is in range.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.noise_std.is_finite() && self.noise_std >= 0.0,
            "augmentation noise_std must be a finite number ≥ 0, got {}",
            self.noise_std
        );
        if !(0.0..=1.0).contains(&self.dropout_p) {
            bail!("dropout probability must lie in [0, 1], got {}", self.dropout_p);
        }
        Ok(())
    }
}

/// Population moments of the positive-pair distribution, all `d × d`.
#[derive(Clone, Debug)]
pub struct Moments {
    /// Second moment of one view, `M = E[x⁺ x⁺ᵀ]` (both views have the same marginal).
    pub second: Array2<f64>,
    /// Symmetrised positive-pair cross-moment, `C = ½(E[x⁺₁ x⁺₂ᵀ] + E[x⁺₂ x⁺₁ᵀ])`.
    pub cross: Array2<f64>,
}

/// The exact population moments of the pair distribution (all inputs have mean zero).
///
/// For a coordinate of group `g` with variance `v` (`signal_coord_variance` or
/// `noise_coord_variance`): `M = v + σ_aug²` and `C = (1 − p_g)·v`, where `p_g` is the dropout
/// probability on `g`; different coordinates are uncorrelated.
pub fn population_moments(model: &ModelConfig, aug: &AugmentConfig) -> Moments {
    let d = model.dim();
    let mut second = Array2::<f64>::zeros((d, d));
    let mut cross = Array2::<f64>::zeros((d, d));
    let aug_var = aug.noise_std * aug.noise_std;
    for g in [Group::A, Group::B] {
        let cfg = model.group(g);
        let keep = 1.0 - aug.dropout_on(g);
        let signal = model.signal_coords(g);
        for i in model.coords(g) {
            let v = if signal.contains(&i) { cfg.signal_coord_variance() } else { cfg.noise_coord_variance() };
            second[[i, i]] = v + aug_var;
            cross[[i, i]] = keep * v;
        }
    }
    Moments { second, cross }
}

/// Clean (un-augmented) examples with both labels.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Inputs, one row per example (`n × d`).
    pub x: Array2<f64>,
    /// Task-A labels.
    pub labels_a: Vec<usize>,
    /// Task-B labels.
    pub labels_b: Vec<usize>,
}

impl Sample {
    /// Labels of group `g`'s task.
    pub fn labels(&self, g: Group) -> &[usize] {
        match g {
            Group::A => &self.labels_a,
            Group::B => &self.labels_b,
        }
    }
}

/// Writes one draw of group `g` (class mean plus instance noise) into `row`, returns its class.
fn draw_group<R: Rng + ?Sized>(
    cfg: &GroupConfig,
    means: &Array2<f64>,
    row: &mut ndarray::ArrayViewMut1<f64>,
    rng: &mut R,
) -> usize {
    let class = rng.random_range(0..cfg.classes);
    for (i, v) in row.iter_mut().enumerate() {
        let z: f64 = rng.sample(StandardNormal);
        *v = cfg.noise_std * z;
        if i < means.ncols() {
            *v += means[[class, i]];
        }
    }
    class
}

/// Draws `n` clean examples with their task labels.
pub fn sample_clean<R: Rng + ?Sized>(model: &ModelConfig, n: usize, rng: &mut R) -> Sample {
    let d = model.dim();
    let mut x = Array2::<f64>::zeros((n, d));
    let mut labels_a = Vec::with_capacity(n);
    let mut labels_b = Vec::with_capacity(n);
    let means_a = model.a.class_means();
    let means_b = model.b.class_means();
    let (ra, rb) = (model.coords(Group::A), model.coords(Group::B));
    for i in 0..n {
        let mut row = x.row_mut(i);
        labels_a.push(draw_group(&model.a, &means_a, &mut row.slice_mut(s![ra.clone()]), rng));
        labels_b.push(draw_group(&model.b, &means_b, &mut row.slice_mut(s![rb.clone()]), rng));
    }
    Sample { x, labels_a, labels_b }
}

/// Draws `n` positive pairs: returns the first and second views (`n × d` each).
pub fn sample_pairs<R: Rng + ?Sized>(
    model: &ModelConfig,
    aug: &AugmentConfig,
    n: usize,
    rng: &mut R,
) -> (Array2<f64>, Array2<f64>) {
    let clean = sample_clean(model, n, rng);
    let mut v1 = clean.x.clone();
    let mut v2 = clean.x;
    let g = aug.dropout_group;
    let gcfg = model.group(g);
    let means = gcfg.class_means();
    let range = model.coords(g);
    if aug.dropout_p > 0.0 {
        for i in 0..n {
            if rng.random_bool(aug.dropout_p) {
                let mut row = v2.row_mut(i);
                draw_group(gcfg, &means, &mut row.slice_mut(s![range.clone()]), rng);
            }
        }
    }
    if aug.noise_std > 0.0 {
        for v in v1.iter_mut().chain(v2.iter_mut()) {
            let z: f64 = rng.sample(StandardNormal);
            *v += aug.noise_std * z;
        }
    }
    (v1, v2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn simplex_means_are_equidistant_and_centred() {
        for classes in 2..6 {
            let g = GroupConfig { dim: 6, classes, strength: 3.0, noise_std: 1.0 };
            let m = g.class_means();
            for i in 0..classes {
                for j in 0..i {
                    let d: f64 = (&m.row(i) - &m.row(j)).mapv(|v| v * v).sum().sqrt();
                    assert!((d - 3.0).abs() < 1e-12, "classes {classes}: distance {d}");
                }
            }
            let centre = m.sum_axis(ndarray::Axis(0));
            assert!(centre.iter().all(|v| v.abs() < 1e-12));
            // Per-coordinate variance of the means is strength²/(2C), uncorrelated.
            let cov = m.t().dot(&m) / classes as f64;
            for a in 0..cov.nrows() {
                for b in 0..cov.ncols() {
                    let want = if a == b { g.signal_variance() } else { 0.0 };
                    assert!((cov[[a, b]] - want).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn sampled_moments_match_population_moments() {
        let mut model = ModelConfig::default();
        model.a.dim = 3;
        model.b.dim = 2;
        model.b.classes = 3;
        let aug = AugmentConfig { noise_std: 0.7, dropout_group: Group::A, dropout_p: 0.4 };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 200_000;
        let (v1, v2) = sample_pairs(&model, &aug, n, &mut rng);
        let m_hat = (v1.t().dot(&v1) + v2.t().dot(&v2)) / (2.0 * n as f64);
        let c_raw = v1.t().dot(&v2) / n as f64;
        let c_hat = (&c_raw + &c_raw.t()) / 2.0;
        let pop = population_moments(&model, &aug);
        for (est, want, name) in [(&m_hat, &pop.second, "M"), (&c_hat, &pop.cross, "C")] {
            for ((i, j), w) in want.indexed_iter() {
                let e = est[[i, j]];
                let tol = 0.03 * (1.0 + w.abs());
                assert!((e - w).abs() < tol, "{name}[{i},{j}]: sampled {e}, exact {w}");
            }
        }
    }

    #[test]
    fn validation_rejects_bad_configs() {
        let mut m = ModelConfig::default();
        m.a.classes = 1;
        assert!(m.validate().is_err());
        let mut m = ModelConfig::default();
        m.b.classes = 12;
        assert!(m.validate().is_err());
        let aug = AugmentConfig { dropout_p: 1.5, ..AugmentConfig::default() };
        assert!(aug.validate().is_err());
    }
}
