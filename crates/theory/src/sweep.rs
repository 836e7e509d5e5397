//! Sweeps over dropout probability, strength ratio, embedding size and seeds, run in parallel,
//! with per-setting curves and observed-versus-predicted thresholds.

use crate::model::Group;
use crate::sim::{SimConfig, SimResult, Solver, simulate};
use crate::spectral::{Prediction, predict, ranking_margin};
use anyhow::{Context, Result, ensure};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// One grid of settings for one solver: every combination is simulated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Dropout probabilities on the dropout group.
    pub p_values: Vec<f64>,
    /// Strength ratios `strength_b / strength_a` (`strength_a` is the base model's).
    pub ratios: Vec<f64>,
    /// Embedding sizes `k`.
    pub ks: Vec<usize>,
    /// Seeds.
    pub seeds: Vec<u64>,
}

impl Grid {
    /// Number of points in the grid.
    pub fn len(&self) -> usize {
        self.p_values.len() * self.ratios.len() * self.ks.len() * self.seeds.len()
    }

    /// Whether the grid has no points.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn validate(&self, name: &str) -> Result<()> {
        ensure!(!self.is_empty(), "{name} grid is empty");
        for &p in &self.p_values {
            ensure!((0.0..=1.0).contains(&p), "{name} grid: dropout probability {p} is outside [0, 1]");
        }
        for &r in &self.ratios {
            ensure!(r.is_finite() && r >= 0.0, "{name} grid: strength ratio {r} must be a finite number ≥ 0");
        }
        Ok(())
    }
}

/// Evenly spaced values `start, start + step, …` up to `end` (inclusive, rounded to 1e-9).
pub fn linspace_step(start: f64, end: f64, step: f64) -> Vec<f64> {
    let n = ((end - start) / step + 1e-9).floor() as usize;
    (0..=n).map(|i| ((start + step * i as f64) * 1e9).round() / 1e9).collect()
}

/// A whole sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// The base simulation: its model (with `b`'s strength replaced by `ratio × strength_a`),
    /// augmentation (with `dropout_p` replaced by each `p`), training and probe settings. Its
    /// `k`, `solver` and `seed` are replaced by each grid point's.
    pub base: SimConfig,
    /// Grid for the closed-form spectral minimiser (the main phase diagram).
    pub closed_form: Grid,
    /// Grid for gradient descent on the spectral loss, checked against the closed form.
    pub spectral_gd: Option<Grid>,
    /// Grid for InfoNCE trained by gradient descent.
    pub info_nce: Option<Grid>,
}

impl Default for SweepConfig {
    /// The default sweep: closed form on `p ∈ {0, 0.05, …, 1}` × ratio `∈ {0.05, 0.10, …, 1}`
    /// × `k ∈ {1, 4, 8}` × seeds `{0, 1, 2}`; spectral gradient descent on `p ∈ {0, 0.2, …, 1}`
    /// × ratio `∈ {0.2, 0.35, 0.6}` × `k = 4` × seed 0; InfoNCE on `p ∈ {0, 0.1, …, 1}` × ratio
    /// `∈ {0.2, 0.35, 0.6}` × `k = 4` × seeds `{0, 1}`.
    fn default() -> Self {
        SweepConfig {
            base: SimConfig::default(),
            closed_form: Grid {
                p_values: linspace_step(0.0, 1.0, 0.05),
                ratios: linspace_step(0.05, 1.0, 0.05),
                ks: vec![1, 4, 8],
                seeds: vec![0, 1, 2],
            },
            spectral_gd: Some(Grid {
                p_values: linspace_step(0.0, 1.0, 0.2),
                ratios: vec![0.2, 0.35, 0.6],
                ks: vec![4],
                seeds: vec![0],
            }),
            info_nce: Some(Grid {
                p_values: linspace_step(0.0, 1.0, 0.1),
                ratios: vec![0.2, 0.35, 0.6],
                ks: vec![4],
                seeds: vec![0, 1],
            }),
        }
    }
}

impl SweepConfig {
    /// The grids with their solvers, in output order.
    pub fn grids(&self) -> Vec<(Solver, &Grid)> {
        let mut out = vec![(Solver::ClosedForm, &self.closed_form)];
        if let Some(g) = &self.spectral_gd {
            out.push((Solver::SpectralGd, g));
        }
        if let Some(g) = &self.info_nce {
            out.push((Solver::InfoNce, g));
        }
        out
    }

    /// Every point of the sweep, in output order (solver, k, ratio, p, seed).
    pub fn points(&self) -> Vec<PointParams> {
        let mut out = Vec::new();
        for (solver, grid) in self.grids() {
            for &k in &grid.ks {
                for &ratio in &grid.ratios {
                    for &p in &grid.p_values {
                        for &seed in &grid.seeds {
                            out.push(PointParams { solver, k, ratio, p, seed });
                        }
                    }
                }
            }
        }
        out
    }

    /// The full simulation configuration of one point.
    pub fn sim_config(&self, point: &PointParams) -> SimConfig {
        let mut cfg = self.base.clone();
        cfg.model.b.strength = point.ratio * cfg.model.a.strength;
        cfg.augment.dropout_p = point.p;
        cfg.k = point.k;
        cfg.solver = point.solver;
        cfg.seed = point.seed;
        cfg
    }

    /// Checks the base configuration and every grid.
    pub fn validate(&self) -> Result<()> {
        for (solver, grid) in self.grids() {
            grid.validate(solver.name())?;
            for &k in &grid.ks {
                let mut cfg = self.base.clone();
                cfg.k = k;
                cfg.solver = solver;
                cfg.validate().with_context(|| format!("{} grid, k = {k}", solver.name()))?;
            }
        }
        Ok(())
    }
}

/// The parameters of one sweep point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointParams {
    /// How `W` was obtained.
    pub solver: Solver,
    /// Embedding size.
    pub k: usize,
    /// Strength ratio `strength_b / strength_a`.
    pub ratio: f64,
    /// Dropout probability on the dropout group.
    pub p: f64,
    /// Seed.
    pub seed: u64,
}

/// One simulated point: its parameters and measurements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// The point's parameters.
    #[serde(flatten)]
    pub params: PointParams,
    /// Task-B strength used (`ratio × strength_a`).
    pub strength_b: f64,
    /// The measurements (without the weights).
    pub result: SimResult,
}

/// Seed-averaged measurements along `p` for one (solver, k, ratio).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// Solver.
    pub solver: Solver,
    /// Embedding size.
    pub k: usize,
    /// Strength ratio.
    pub ratio: f64,
    /// Dropout probabilities, ascending.
    pub p: Vec<f64>,
    /// Mean task-A probe accuracy at each `p`.
    pub acc_a: Vec<f64>,
    /// Standard deviation over seeds of the task-A accuracy.
    pub acc_a_std: Vec<f64>,
    /// Mean task-B probe accuracy at each `p`.
    pub acc_b: Vec<f64>,
    /// Standard deviation over seeds of the task-B accuracy.
    pub acc_b_std: Vec<f64>,
    /// Mean subspace overlap of group `a`'s signal.
    pub overlap_a: Vec<f64>,
    /// Mean subspace overlap of group `b`'s signal.
    pub overlap_b: Vec<f64>,
    /// Chance accuracy of tasks A and B.
    pub chance: [f64; 2],
    /// Mean raw-input probe accuracy (the ceiling) of tasks A and B.
    pub ceiling: [f64; 2],
}

/// Observed and predicted thresholds for one (solver, k, ratio). Per-task pairs are
/// `[task A, task B]`; "dropped" is the task of the group feature dropout acts on, "other" the
/// task of the other group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdRow {
    /// Solver.
    pub solver: Solver,
    /// Embedding size.
    pub k: usize,
    /// Strength ratio.
    pub ratio: f64,
    /// The group feature dropout acts on.
    pub dropped: Group,
    /// Predicted onset: dropout past this `p` brings the other group's signal into the
    /// spectral minimiser (`None`: never).
    pub predicted_onset_p: Option<f64>,
    /// Predicted `p` past which the dropped group's signal is no longer fully kept.
    pub predicted_loss_p: f64,
    /// Smallest grid `p` at which the other task's mean accuracy has recovered at least half of
    /// its margin over chance (`ceiling − chance`); `None` when it never does on the grid.
    pub observed_onset_p: Option<f64>,
    /// Smallest grid `p` at which the dropped task's mean accuracy has lost more than half of
    /// its margin over chance; `None` when it never does on the grid.
    pub observed_loss_p: Option<f64>,
    /// Accuracies at the smallest grid `p` (normally 0).
    pub acc_no_dropout: [f64; 2],
    /// Accuracies at the observed onset, if any.
    pub acc_at_onset: Option<[f64; 2]>,
    /// Grid `p` maximising the mean of the two tasks' accuracies.
    pub best_p: f64,
    /// Accuracies at `best_p`.
    pub acc_best: [f64; 2],
    /// Chance accuracies.
    pub chance: [f64; 2],
    /// Raw-input probe accuracies.
    pub ceiling: [f64; 2],
}

impl ThresholdRow {
    /// The task of the group dropout does not touch.
    pub fn other(&self) -> Group {
        self.dropped.other()
    }

    /// Half-way between chance and the ceiling for group `g`'s task.
    pub fn midpoint(&self, g: Group) -> f64 {
        let i = g.index();
        self.chance[i] + 0.5 * (self.ceiling[i] - self.chance[i])
    }
}

/// How well gradient descent on the spectral loss matches the closed form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Number of gradient-descent points compared.
    pub points: usize,
    /// Mean |overlap(GD) − overlap(closed form)| over both groups and all points.
    pub mean_abs_overlap_diff: f64,
    /// Largest such difference.
    pub max_abs_overlap_diff: f64,
    /// Points whose two overlaps are both within 0.1 of the closed form's.
    pub within_0_1: usize,
    /// The point with the largest difference.
    pub worst: PointParams,
    /// Its ranking margin ([`ranking_margin`]): the eigen-gap gradient descent had to resolve.
    pub worst_margin: f64,
    /// Median ranking margin over all compared points.
    pub median_margin: f64,
}

/// Aggregates of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepSummary {
    /// The eigenvalue-ranking prediction for the base configuration (its ratio, `k` and
    /// dropout group; the thresholds do not depend on its `p`).
    pub base_prediction: Prediction,
    /// Seed-averaged curves along `p`.
    pub curves: Vec<Curve>,
    /// Observed and predicted thresholds.
    pub thresholds: Vec<ThresholdRow>,
    /// Spectral gradient descent against the closed form (when that grid ran).
    pub gd_agreement: Option<Agreement>,
}

/// Everything a sweep produces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepOutput {
    /// The configuration that ran.
    pub config: SweepConfig,
    /// Every point, in the order of [`SweepConfig::points`].
    pub points: Vec<SweepPoint>,
    /// Curves, thresholds and agreement.
    pub summary: SweepSummary,
}

/// Runs every point of the sweep in parallel (rayon), calling `on_point` after each one.
/// The output does not depend on the number of threads or their scheduling.
pub fn run_sweep(cfg: &SweepConfig, on_point: &(dyn Fn() + Sync)) -> Result<SweepOutput> {
    cfg.validate()?;
    let params = cfg.points();
    // Slow (gradient-descent) points first, so that a progress estimate errs long, not short;
    // the output keeps the order of `points()`.
    let mut order: Vec<usize> = (0..params.len()).collect();
    order.sort_by_key(|&i| match params[i].solver {
        Solver::InfoNce => 0,
        Solver::SpectralGd => 1,
        Solver::ClosedForm => 2,
    });
    let mut done = order
        .into_par_iter()
        .map(|i| {
            let pp = params[i].clone();
            let sim = cfg.sim_config(&pp);
            let mut result = simulate(&sim).with_context(|| format!("sweep point {pp:?}"))?;
            result.weights = None;
            on_point();
            Ok((i, SweepPoint { strength_b: sim.model.b.strength, params: pp, result }))
        })
        .collect::<Result<Vec<_>>>()?;
    done.sort_by_key(|(i, _)| *i);
    let points: Vec<SweepPoint> = done.into_iter().map(|(_, p)| p).collect();
    let summary = summarize(cfg, &points);
    Ok(SweepOutput { config: cfg.clone(), points, summary })
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var =
        if values.len() > 1 { values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// Curves, threshold rows and GD agreement from the points of a sweep.
pub fn summarize(cfg: &SweepConfig, points: &[SweepPoint]) -> SweepSummary {
    let mut curves = Vec::new();
    let mut thresholds = Vec::new();
    for (solver, grid) in cfg.grids() {
        let mut ps = grid.p_values.clone();
        ps.sort_by(f64::total_cmp);
        ps.dedup();
        for &k in &grid.ks {
            for &ratio in &grid.ratios {
                let at = |p: f64| -> Vec<&SimResult> {
                    points
                        .iter()
                        .filter(|pt| {
                            pt.params.solver == solver
                                && pt.params.k == k
                                && pt.params.ratio == ratio
                                && pt.params.p == p
                        })
                        .map(|pt| &pt.result)
                        .collect()
                };
                let mut curve = Curve {
                    solver,
                    k,
                    ratio,
                    p: Vec::new(),
                    acc_a: Vec::new(),
                    acc_a_std: Vec::new(),
                    acc_b: Vec::new(),
                    acc_b_std: Vec::new(),
                    overlap_a: Vec::new(),
                    overlap_b: Vec::new(),
                    chance: [0.0; 2],
                    ceiling: [0.0; 2],
                };
                let mut ceil = (Vec::new(), Vec::new());
                for &p in &ps {
                    let rs = at(p);
                    if rs.is_empty() {
                        continue;
                    }
                    let col = |f: &dyn Fn(&SimResult) -> f64| rs.iter().map(|r| f(r)).collect::<Vec<_>>();
                    let (ma, sa) = mean_std(&col(&|r| r.acc_a));
                    let (mb, sb) = mean_std(&col(&|r| r.acc_b));
                    curve.p.push(p);
                    curve.acc_a.push(ma);
                    curve.acc_a_std.push(sa);
                    curve.acc_b.push(mb);
                    curve.acc_b_std.push(sb);
                    curve.overlap_a.push(mean_std(&col(&|r| r.overlap_a)).0);
                    curve.overlap_b.push(mean_std(&col(&|r| r.overlap_b)).0);
                    curve.chance = [rs[0].chance_a, rs[0].chance_b];
                    ceil.0.extend(col(&|r| r.ceiling_a));
                    ceil.1.extend(col(&|r| r.ceiling_b));
                }
                if curve.p.is_empty() {
                    continue;
                }
                curve.ceiling = [mean_std(&ceil.0).0, mean_std(&ceil.1).0];
                thresholds.push(threshold_row(cfg, &curve));
                curves.push(curve);
            }
        }
    }
    let gd_agreement = agreement(cfg, points);
    SweepSummary {
        base_prediction: predict(&cfg.base.model, &cfg.base.augment, cfg.base.k),
        curves,
        thresholds,
        gd_agreement,
    }
}

fn threshold_row(cfg: &SweepConfig, c: &Curve) -> ThresholdRow {
    let mut sim = cfg.base.clone();
    sim.model.b.strength = c.ratio * sim.model.a.strength;
    let pred = predict(&sim.model, &sim.augment, c.k);
    let dropped = sim.augment.dropout_group;
    let acc = |g: Group| if g == Group::A { &c.acc_a } else { &c.acc_b };
    let mid = |g: Group| c.chance[g.index()] + 0.5 * (c.ceiling[g.index()] - c.chance[g.index()]);
    let learnable = |g: Group| c.ceiling[g.index()] - c.chance[g.index()] > 0.02;
    let other = dropped.other();
    let onset_idx = if learnable(other) { acc(other).iter().position(|&a| a >= mid(other)) } else { None };
    let loss_idx = if learnable(dropped) { acc(dropped).iter().position(|&a| a < mid(dropped)) } else { None };
    let mut best = 0;
    for i in 0..c.p.len() {
        if c.acc_a[i] + c.acc_b[i] > c.acc_a[best] + c.acc_b[best] + 1e-12 {
            best = i;
        }
    }
    let pair = |i: usize| [c.acc_a[i], c.acc_b[i]];
    ThresholdRow {
        solver: c.solver,
        k: c.k,
        ratio: c.ratio,
        dropped,
        predicted_onset_p: pred.onset_p,
        predicted_loss_p: pred.loss_p,
        observed_onset_p: onset_idx.map(|i| c.p[i]),
        observed_loss_p: loss_idx.map(|i| c.p[i]),
        acc_no_dropout: pair(0),
        acc_at_onset: onset_idx.map(pair),
        best_p: c.p[best],
        acc_best: pair(best),
        chance: c.chance,
        ceiling: c.ceiling,
    }
}

fn agreement(cfg: &SweepConfig, points: &[SweepPoint]) -> Option<Agreement> {
    let gd: Vec<&SweepPoint> = points.iter().filter(|p| p.params.solver == Solver::SpectralGd).collect();
    if gd.is_empty() {
        return None;
    }
    let margin = |p: &SweepPoint| {
        let sim = cfg.sim_config(&p.params);
        ranking_margin(&sim.model, &sim.augment, sim.k)
    };
    let mut sum = 0.0;
    let mut max: f64 = -1.0;
    let mut worst = gd[0];
    let mut within = 0;
    for p in &gd {
        let r = &p.result;
        let da = (r.overlap_a - r.prediction.overlap_a).abs();
        let db = (r.overlap_b - r.prediction.overlap_b).abs();
        sum += da + db;
        if da.max(db) > max {
            max = da.max(db);
            worst = p;
        }
        if da <= 0.1 && db <= 0.1 {
            within += 1;
        }
    }
    let mut margins: Vec<f64> = gd.iter().map(|p| margin(p)).collect();
    margins.sort_by(f64::total_cmp);
    Some(Agreement {
        points: gd.len(),
        mean_abs_overlap_diff: sum / (2.0 * gd.len() as f64),
        max_abs_overlap_diff: max,
        within_0_1: within,
        worst: worst.params.clone(),
        worst_margin: margin(worst),
        median_margin: margins[margins.len() / 2],
    })
}

/// The file a sweep writes as `theory.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TheoryFile {
    /// Version of this file's layout.
    pub format_version: u32,
    /// Wall-clock seconds the sweep's points took (not part of the deterministic output).
    pub wall_s: f64,
    /// Figure files written next to it.
    pub figures: Vec<String>,
    /// Configuration, points and summary.
    #[serde(flatten)]
    pub output: SweepOutput,
}

/// Writes a sweep's outputs into `dir` (created if needed): `theory.json` and `summary.md`,
/// atomically, and with `figures` the PNG figures. Returns the paths written.
pub fn write_outputs(
    out: &SweepOutput,
    dir: &std::path::Path,
    figures: bool,
    wall_s: f64,
) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // A figure that cannot be drawn (e.g. no usable font) must not lose the numbers: they are
    // written first, then the error is returned.
    let (figure_names, figure_error) = if figures {
        match crate::plot::write_figures(out, dir) {
            Ok(names) => (names, None),
            Err(e) => (Vec::new(), Some(e)),
        }
    } else {
        (Vec::new(), None)
    };
    let file = TheoryFile { format_version: 1, wall_s, figures: figure_names.clone(), output: out.clone() };
    let json_path = dir.join("theory.json");
    featdrop_core::io::write_json_atomic(&json_path, &file)?;
    let md_path = dir.join("summary.md");
    let md = crate::report::render(out, &figure_names);
    featdrop_core::io::write_atomic(&md_path, md.as_bytes())?;
    if let Some(e) = figure_error {
        return Err(e.context(format!(
            "drawing the figures failed ({} and {} were written; --no-figures skips them)",
            json_path.display(),
            md_path.display()
        )));
    }
    let mut paths = vec![json_path, md_path];
    paths.extend(figure_names.iter().map(|n| dir.join(n)));
    Ok(paths)
}
