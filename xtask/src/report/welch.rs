//! Welch's two-sample t-test over seeds (unequal variances, Welch–Satterthwaite degrees of
//! freedom), the one comparison rule of the report (docs/PROTOCOL.md §8).
//!
//! Each group is one view mode (or dataset) and holds one probe accuracy per seed. The test is
//! computed from the groups' means, sample standard deviations and sizes ([`Agg`]), so the
//! report's tables and its tests can never disagree.

use super::stats::Agg;
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// The significance level of every one-sided test in the report.
pub const ALPHA: f64 = 0.05;

/// Below this a seed standard deviation counts as zero: accuracies are fractions, and identical
/// per-seed values give a std of rounding noise (1e-17), not of seeds.
const ZERO_STD: f64 = 1e-12;

/// The direction a question asks about: the first group's mean above (`greater`) or below
/// (`less`) the second's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Alternative {
    Greater,
    Less,
}

/// Which test could be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Welch's t-test: both groups have two seeds or more and some spread.
    Welch,
    /// A group has a single seed: no spread to test against.
    OneSeed,
    /// Both groups have several seeds, all equal within each group: the difference is exact.
    NoVariance,
}

/// The difference of two groups' means, and Welch's test of it where one is possible.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Test {
    pub test: Kind,
    /// Mean of the first group minus mean of the second.
    pub diff: f64,
    /// Two-sided 95 % confidence interval of `diff` (t quantile at the Welch df).
    pub ci95: Option<[f64; 2]>,
    /// One-sided p-value for `alternative`.
    pub p: Option<f64>,
    pub alternative: Alternative,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: Option<f64>,
    /// Seeds in the two groups.
    pub n: [usize; 2],
    /// The one-sided p-value of the opposite direction (a significant result against the
    /// question is reported as such, not as "no difference").
    #[serde(skip)]
    pub p_opposite: Option<f64>,
}

impl Test {
    /// Whether the direction asked is shown at [`ALPHA`].
    pub fn significant(&self) -> bool {
        self.p.is_some_and(|p| p < ALPHA)
    }

    /// The same test asked the other way round (the one-sided p-values swapped).
    pub fn reversed(&self) -> Self {
        let alternative = match self.alternative {
            Alternative::Greater => Alternative::Less,
            Alternative::Less => Alternative::Greater,
        };
        Self { p: self.p_opposite, p_opposite: self.p, alternative, ..self.clone() }
    }

    /// Whether the opposite direction is shown at [`ALPHA`].
    pub fn opposite_significant(&self) -> bool {
        self.p_opposite.is_some_and(|p| p < ALPHA)
    }
}

/// Welch's test of `mean(a) − mean(b)` in the direction `alternative`.
pub fn welch(a: &Agg, b: &Agg, alternative: Alternative) -> Test {
    let diff = a.mean - b.mean;
    let mut out =
        Test { test: Kind::OneSeed, diff, ci95: None, p: None, alternative, df: None, n: [a.n, b.n], p_opposite: None };
    let (Some(sa), Some(sb)) = (a.std, b.std) else { return out };
    let var = |s: f64, n: usize| if s <= ZERO_STD { 0.0 } else { s * s / n as f64 };
    let (va, vb) = (var(sa, a.n), var(sb, b.n));
    if va == 0.0 && vb == 0.0 {
        out.test = Kind::NoVariance;
        return out;
    }
    let se = (va + vb).sqrt();
    let df = (va + vb).powi(2) / (va * va / (a.n - 1) as f64 + vb * vb / (b.n - 1) as f64);
    let t_dist = StudentsT::new(0.0, 1.0, df).expect("Welch df is positive and finite");
    let t = diff / se;
    let half = t_dist.inverse_cdf(0.975) * se;
    // P(T ≥ t) as cdf(−t): no cancellation in 1 − cdf(t) for large t.
    let (p_greater, p_less) = (t_dist.cdf(-t), t_dist.cdf(t));
    let (p, p_opposite) = match alternative {
        Alternative::Greater => (p_greater, p_less),
        Alternative::Less => (p_less, p_greater),
    };
    Test {
        test: Kind::Welch,
        ci95: Some([diff - half, diff + half]),
        p: Some(p),
        df: Some(df),
        p_opposite: Some(p_opposite),
        ..out
    }
}

/// Holm–Bonferroni adjusted p-values over one family of tests (Holm, "A simple sequentially
/// rejective multiple test procedure", Scand. J. Statist. 1979): the i-th smallest of the m
/// p-values is multiplied by m − i + 1, made monotone (each at least the one before) and capped
/// at 1; a direction holds when its adjusted p is below [`ALPHA`]. `None` (no test made) stays
/// `None` and does not count in m.
pub fn holm(ps: &[Option<f64>]) -> Vec<Option<f64>> {
    let mut order: Vec<(usize, f64)> = ps.iter().enumerate().filter_map(|(i, p)| p.map(|p| (i, p))).collect();
    order.sort_by(|a, b| a.1.total_cmp(&b.1));
    let m = order.len();
    let mut out = vec![None; ps.len()];
    let mut running: f64 = 0.0;
    for (rank, (i, p)) in order.into_iter().enumerate() {
        running = running.max(((m - rank) as f64 * p).min(1.0));
        out[i] = Some(running);
    }
    out
}

/// Power the seeds-needed estimate aims at.
pub const POWER: f64 = 0.8;

/// Seeds per group needed to resolve a true difference `d` (in the direction asked) with
/// [`POWER`] at one-sided level `alpha`, from the usual normal-approximation formula
/// `n ≈ 2·((z_{1−α} + z_{power})·s/d)²` with `s² = (s_a² + s_b²)/2` the groups' mean variance.
/// `None` when the measured difference is not in the direction asked (no number of seeds would
/// show it) or there is no spread to scale by.
pub fn seeds_needed(a: &Agg, b: &Agg, d: f64, alternative: Alternative, alpha: f64) -> Option<f64> {
    let d = match alternative {
        Alternative::Greater => d,
        Alternative::Less => -d,
    };
    let s2 = (a.std?.powi(2) + b.std?.powi(2)) / 2.0;
    if d <= 0.0 || s2 <= ZERO_STD * ZERO_STD {
        return None;
    }
    let z = Normal::standard();
    let k = z.inverse_cdf(1.0 - alpha) + z.inverse_cdf(POWER);
    Some((2.0 * k * k * s2 / (d * d)).ceil().max(2.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The groups of per-seed values, aggregated as the report aggregates them.
    fn groups(a: &[f64], b: &[f64]) -> (Agg, Agg) {
        (super::super::stats::agg(a).unwrap(), super::super::stats::agg(b).unwrap())
    }

    fn close(x: f64, y: f64, tol: f64) -> bool {
        (x - y).abs() <= tol
    }

    /// Reference numbers from SciPy 1.17.1:
    /// `stats.ttest_ind(a, b, equal_var=False, alternative='greater'/'less')` for t, df and p,
    /// and `.confidence_interval(0.95)` of the two-sided test for the interval.
    #[test]
    fn welch_matches_scipy() {
        // Equal spread and size: df = 4, t = 6.1237.
        let (a, b) = groups(&[0.50, 0.52, 0.54], &[0.40, 0.42, 0.44]);
        let t = welch(&a, &b, Alternative::Greater);
        assert_eq!(t.test, Kind::Welch);
        assert!(close(t.diff, 0.1, 1e-12));
        assert!(close(t.df.unwrap(), 4.0, 1e-9), "{t:?}");
        assert!(close(t.p.unwrap(), 0.0018011163045520016, 1e-9), "{t:?}");
        assert!(close(t.p_opposite.unwrap(), 0.998198883695448, 1e-9), "{t:?}");
        let [lo, hi] = t.ci95.unwrap();
        assert!(close(lo, 0.05466084128944964, 1e-8) && close(hi, 0.14533915871055042, 1e-8), "{t:?}");
        assert!(t.significant() && !t.opposite_significant());

        // Unequal spread and size, non-integer df; p lands just under 0.05.
        let (a, b) = groups(&[0.61, 0.58, 0.66, 0.63, 0.55], &[0.52, 0.57, 0.49, 0.60]);
        let t = welch(&a, &b, Alternative::Greater);
        assert!(close(t.df.unwrap(), 6.052615832331326, 1e-9), "{t:?}");
        assert!(close(t.p.unwrap(), 0.049030513704809424, 1e-8), "{t:?}");
        let [lo, hi] = t.ci95.unwrap();
        assert!(close(lo, -0.015218013706705863, 1e-8) && close(hi, 0.1372180137067062, 1e-8), "{t:?}");
        assert!(t.significant(), "p = 0.049 < 0.05");
        // The same pair asked the other way round.
        let t = welch(&a, &b, Alternative::Less);
        assert!(close(t.p.unwrap(), 0.9509694862951906, 1e-8) && !t.significant() && t.opposite_significant());
        // Reversed: the other direction's p, as a verdict against the question reports it.
        let r = t.reversed();
        assert_eq!((r.alternative, r.p, r.p_opposite, r.ci95), (Alternative::Greater, t.p_opposite, t.p, t.ci95));
        assert!(r.significant() && !r.opposite_significant());

        // One group without spread: df is the other group's n − 1 (here 3).
        let (a, b) = groups(&[0.30, 0.30, 0.30], &[0.25, 0.31, 0.28, 0.27]);
        let t = welch(&a, &b, Alternative::Greater);
        assert!(close(t.df.unwrap(), 3.0, 1e-9) && close(t.p.unwrap(), 0.08483996445062932, 1e-8), "{t:?}");
        let [lo, hi] = t.ci95.unwrap();
        assert!(close(lo, -0.017280578816046374, 1e-8) && close(hi, 0.0622805788160463, 1e-8), "{t:?}");
        assert!(!t.significant() && !t.opposite_significant());
    }

    #[test]
    fn one_seed_or_no_spread_gives_no_test() {
        let (a, b) = groups(&[0.5], &[0.40, 0.42, 0.44]);
        let t = welch(&a, &b, Alternative::Greater);
        assert_eq!((t.test, t.p, t.ci95, t.df), (Kind::OneSeed, None, None, None));
        assert!(close(t.diff, 0.08, 1e-12) && !t.significant() && !t.opposite_significant());
        assert_eq!(welch(&b, &a, Alternative::Less).test, Kind::OneSeed);
        // 0.95 three times has a std of rounding noise, not zero.
        let (a, b) = groups(&[0.95, 0.95, 0.95], &[0.90, 0.90]);
        let t = welch(&a, &b, Alternative::Greater);
        assert_eq!((t.test, t.p, t.ci95), (Kind::NoVariance, None, None));
        assert!(close(t.diff, 0.05, 1e-12));
    }

    #[test]
    fn seeds_needed_follows_the_normal_approximation() {
        // s = 0.02 in both groups, d = 0.01: 2·((1.6449 + 0.8416)·2)² = 49.45 → 50 per group.
        let a = Agg { mean: 0.51, std: Some(0.02), n: 3 };
        let b = Agg { mean: 0.50, std: Some(0.02), n: 3 };
        assert_eq!(seeds_needed(&a, &b, 0.01, Alternative::Greater, ALPHA), Some(50.0));
        assert_eq!(seeds_needed(&a, &b, 0.01, Alternative::Less, ALPHA), None, "measured the other way");
        assert_eq!(seeds_needed(&a, &b, -0.01, Alternative::Less, ALPHA), Some(50.0));
        assert_eq!(seeds_needed(&a, &Agg { std: None, ..b.clone() }, 0.01, Alternative::Greater, ALPHA), None);
        // At α / 3 (Bonferroni's bound for a family of three): z = 2.1280, 2·((2.1280 + 0.8416)·2)² = 70.5.
        assert_eq!(seeds_needed(&a, &b, 0.01, Alternative::Greater, ALPHA / 3.0), Some(71.0));
    }

    /// By hand: sorted 0.01, 0.03, 0.04, 0.5 (m = 4) → 0.04, 0.09, max(0.09, 0.08), 0.5.
    #[test]
    fn holm_adjusts_sorts_back_and_caps() {
        let adj = holm(&[Some(0.01), None, Some(0.04), Some(0.03), Some(0.5)]);
        let want = [Some(0.04), None, Some(0.09), Some(0.09), Some(0.5)];
        for (got, want) in adj.iter().zip(want) {
            assert_eq!(got.is_some(), want.is_some());
            assert!(got.zip(want).is_none_or(|(g, w)| close(g, w, 1e-12)), "{adj:?}");
        }
        assert_eq!(holm(&[Some(0.7), Some(0.6)]), vec![Some(1.0), Some(1.0)], "capped at 1, kept monotone");
        assert_eq!(holm(&[None]), vec![None]);
    }
}
