//! The sweep's Markdown report: setup, prediction, per-solver threshold tables and the findings,
//! every sentence computed from the sweep's own numbers.

use crate::model::Group;
use crate::sim::Solver;
use crate::spectral::predict;
use crate::sweep::{SweepOutput, ThresholdRow};
use std::fmt::Write;

/// How close to chance counts as "at chance" in the findings.
pub const AT_CHANCE: f64 = 0.03;

fn f2(v: f64) -> String {
    format!("{v:.2}")
}

fn f3(v: f64) -> String {
    format!("{v:.3}")
}

fn opt(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "—".to_string())
}

fn list(values: &[f64]) -> String {
    if values.len() > 6 {
        let step = values.windows(2).map(|w| w[1] - w[0]).fold(0.0f64, f64::max);
        format!(
            "{} values from {} to {} (step {})",
            values.len(),
            values[0],
            values[values.len() - 1],
            (step * 1e6).round() / 1e6
        )
    } else {
        values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
    }
}

/// Largest gap between consecutive sorted values (the grid's resolution).
fn spacing(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}

fn table(rows: &[&ThresholdRow]) -> String {
    let mut s = String::new();
    let Some(first) = rows.first() else { return s };
    let (d, o) = (first.dropped, first.other());
    let (dn, on) = (d.task_name(), o.task_name());
    let _ = writeln!(
        s,
        "| ratio | predicted onset p* ({on}) | observed onset | {on}, p = 0 | {on} at onset | {dn}, p = 0 | {dn} at onset | \
         predicted {dn}-loss p | observed {dn}-loss p | best p (A, B) |"
    );
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for r in rows {
        let at = |g: Group| r.acc_at_onset.map(|a| a[g.index()]);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({}, {}) |",
            f2(r.ratio),
            opt(r.predicted_onset_p, f3),
            opt(r.observed_onset_p, f2),
            f3(r.acc_no_dropout[o.index()]),
            opt(at(o), f3),
            f3(r.acc_no_dropout[d.index()]),
            opt(at(d), f3),
            f3(r.predicted_loss_p),
            opt(r.observed_loss_p, f2),
            f2(r.best_p),
            f3(r.acc_best[0]),
            f3(r.acc_best[1]),
        );
    }
    s
}

fn range_of(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    (values.clone().fold(f64::INFINITY, f64::min), values.fold(f64::NEG_INFINITY, f64::max))
}

/// Findings for one solver and `k`, computed from the threshold rows.
fn findings(rows: &[&ThresholdRow], dp: f64, solver: Solver) -> String {
    let mut s = String::new();
    let Some(first) = rows.first() else { return s };
    let n = rows.len();
    let (d, o) = (first.dropped, first.other());
    let (dn, on) = (d.task_name(), o.task_name());
    let (di, oi) = (d.index(), o.index());
    // Suppression without dropout.
    let predicted_suppressed = rows.iter().filter(|r| r.predicted_onset_p.is_none_or(|p| p > 0.0)).count();
    let at_chance: Vec<&&ThresholdRow> =
        rows.iter().filter(|r| (r.acc_no_dropout[oi] - r.chance[oi]).abs() <= AT_CHANCE).collect();
    let _ = writeln!(
        s,
        "- Without dropout, task {on}'s probe is within {AT_CHANCE} of chance for {} of {n} strength ratios{}; \
         the spectral prediction says {on}'s signal is left out for {predicted_suppressed} of them.",
        at_chance.len(),
        if at_chance.is_empty() {
            String::new()
        } else {
            let (lo, hi) = range_of(at_chance.iter().map(|r| r.ratio));
            format!(
                " (ratios {} to {}, mean task-{dn} accuracy there {})",
                f2(lo),
                f2(hi),
                f3(at_chance.iter().map(|r| r.acc_no_dropout[di]).sum::<f64>() / at_chance.len() as f64),
            )
        },
    );
    // Threshold.
    let both: Vec<(f64, f64)> = rows.iter().filter_map(|r| Some((r.predicted_onset_p?, r.observed_onset_p?))).collect();
    let recovered = rows.iter().filter(|r| r.observed_onset_p.is_some()).count();
    let _ = write!(
        s,
        "- Dropout brings task {on} back (half of its margin over chance recovered) for {recovered} of {n} ratios."
    );
    if !both.is_empty() {
        let within = both.iter().filter(|(p, o)| (o - p).abs() <= dp + 1e-9).count();
        let mean_diff = both.iter().map(|(p, o)| o - p).sum::<f64>() / both.len() as f64;
        let _ = write!(
            s,
            " Where both exist, the observed onset is within one grid step ({}) of the predicted threshold for {} of {} \
             ratios; observed minus predicted is {} on average{}.",
            f2(dp),
            within,
            both.len(),
            f3(mean_diff),
            if solver == Solver::InfoNce {
                " (the prediction is the spectral loss's, so for this solver it is a reference, not a claim)"
            } else {
                ""
            }
        );
    }
    s.push('\n');
    // Cost to the dropped task.
    let costs: Vec<f64> = rows.iter().filter_map(|r| r.acc_at_onset.map(|a| r.acc_no_dropout[di] - a[di])).collect();
    if !costs.is_empty() {
        let mean = costs.iter().sum::<f64>() / costs.len() as f64;
        let (_, max) = range_of(costs.iter().copied());
        let kept = costs.iter().filter(|c| **c <= 0.02).count();
        let _ = writeln!(
            s,
            "- Cost to task {dn} at the onset: accuracy drops by {} on average (largest drop {}); \
             {dn} keeps its no-dropout accuracy (within 0.02) at the onset for {kept} of {} ratios.",
            f3(mean),
            f3(max),
            costs.len(),
        );
    }
    let lost: Vec<f64> = rows.iter().filter_map(|r| r.observed_loss_p).collect();
    let (plo, phi) = range_of(rows.iter().map(|r| r.predicted_loss_p));
    let _ = writeln!(
        s,
        "- Task {dn} falls below half of its margin over chance at some grid p for {} of {n} ratios{}; \
         the predicted p past which {dn}'s signal leaves the spectral minimiser ranges from {} to {}.",
        lost.len(),
        if lost.is_empty() {
            String::new()
        } else {
            let (lo, hi) = range_of(lost.iter().copied());
            format!(" (first at p = {} to {})", f2(lo), f2(hi))
        },
        f3(plo),
        f3(phi),
    );
    let both_good =
        rows.iter().filter(|r| r.acc_best[0] >= r.midpoint(Group::A) && r.acc_best[1] >= r.midpoint(Group::B)).count();
    let _ = writeln!(
        s,
        "- At the best grid p (largest mean of the two accuracies), both tasks are above half of their margin \
         over chance for {both_good} of {n} ratios."
    );
    s
}

/// The row of `solver` at the base `k` (or the grid's first) nearest the base strength ratio.
fn nearest_row(out: &SweepOutput, solver: Solver) -> Option<&ThresholdRow> {
    let base = &out.config.base;
    let target = base.model.strength_ratio();
    let rows: Vec<&ThresholdRow> = out.summary.thresholds.iter().filter(|r| r.solver == solver).collect();
    let k = if rows.iter().any(|r| r.k == base.k) { base.k } else { rows.first()?.k };
    rows.into_iter().filter(|r| r.k == k).min_by(|a, b| (a.ratio - target).abs().total_cmp(&(b.ratio - target).abs()))
}

/// The headline: the base setting's numbers for each solver.
fn headline(out: &SweepOutput) -> String {
    let mut s = String::from("\n## Headline\n\n");
    let target = out.config.base.model.strength_ratio();
    for solver in [Solver::ClosedForm, Solver::InfoNce] {
        let Some(r) = nearest_row(out, solver) else { continue };
        let (d, o) = (r.dropped, r.other());
        let (dn, on) = (d.task_name(), o.task_name());
        let _ = write!(
            s,
            "- {}, k = {}, strength ratio {} (the grid ratio nearest the base {}): without dropout task {dn}'s probe \
             reaches {} and task {on}'s {} (chance {}, raw-input ceiling {}). ",
            solver.name(),
            r.k,
            f2(r.ratio),
            f3(target),
            f3(r.acc_no_dropout[d.index()]),
            f3(r.acc_no_dropout[o.index()]),
            f2(r.chance[o.index()]),
            f3(r.ceiling[o.index()]),
        );
        let _ =
            write!(s, "The spectral analysis predicts task {on}'s return past p* = {}; ", opt(r.predicted_onset_p, f3));
        match (r.observed_onset_p, r.acc_at_onset) {
            (Some(p), Some(a)) => {
                let _ =
                    write!(s, "on the grid it is back at p = {} with A = {} and B = {}. ", f2(p), f3(a[0]), f3(a[1]));
            }
            _ => s.push_str("on the grid it never comes back. "),
        }
        let _ = writeln!(
            s,
            "Task {dn}'s signal is predicted to leave past p = {}; observed: {}. Best grid p for the mean of both: {} \
             (A {}, B {}).",
            f3(r.predicted_loss_p),
            r.observed_loss_p
                .map(|p| format!("{dn} below half its margin from p = {}", f2(p)))
                .unwrap_or_else(|| format!("{dn} never drops below half its margin")),
            f2(r.best_p),
            f3(r.acc_best[0]),
            f3(r.acc_best[1]),
        );
    }
    s
}

/// Renders the Markdown report of a sweep.
pub fn render(out: &SweepOutput, figures: &[String]) -> String {
    let cfg = &out.config;
    let base = &cfg.base;
    let m = &base.model;
    let mut s = String::new();
    let _ = writeln!(s, "# Linear-model contrastive simulation: feature dropout\n");
    let _ = writeln!(
        s,
        "Generated by `featdrop-theory sweep` from the numbers in `theory.json`; nothing here is written by hand.\n"
    );
    let _ = writeln!(s, "## Setup\n");
    for (g, name) in [(&m.a, "a (task A)"), (&m.b, "b (task B)")] {
        let _ = writeln!(
            s,
            "- Group {name}: {} coordinates, {} classes (signal rank {}), instance noise std {}{}.",
            g.dim,
            g.classes,
            g.signal_rank(),
            g.noise_std,
            if std::ptr::eq(g, &m.a) {
                format!(", strength {}", g.strength)
            } else {
                ", strength = ratio × strength_a".to_string()
            }
        );
    }
    let _ = writeln!(
        s,
        "- Views: additive Gaussian noise of std {} on every coordinate of each view; feature dropout replaces group {}'s \
         block of the second view by an independent draw with probability p.",
        base.augment.noise_std, base.augment.dropout_group
    );
    let _ = writeln!(
        s,
        "- Probes: least squares on `W x` (ridge {}), {} clean training and {} clean test examples per point; \
         the ceiling is the same probe on the raw input.",
        base.probe.ridge, base.probe.train_size, base.probe.test_size
    );
    for (solver, grid) in cfg.grids() {
        let _ = writeln!(
            s,
            "- {}: p ∈ {}; ratio ∈ {}; k ∈ {{{}}}; seeds {{{}}} ({} points).",
            solver.name(),
            list(&grid.p_values),
            list(&grid.ratios),
            grid.ks.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", "),
            grid.seeds.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", "),
            grid.len()
        );
    }
    if cfg.spectral_gd.is_some() || cfg.info_nce.is_some() {
        let t = &base.train;
        let _ = writeln!(
            s,
            "- Gradient descent: {} {:?} steps of {} pairs, learning rate {} (cosine decay), initial weight std {}; \
             InfoNCE temperature {}, normalised embeddings: {}.",
            t.steps, t.optimizer, t.batch_size, t.lr, t.init_scale, t.temperature, t.normalize
        );
    }

    let _ = writeln!(s, "\n## What the analysis predicts\n");
    let bp = &out.summary.base_prediction;
    let no_dropout = crate::model::AugmentConfig { dropout_p: 0.0, ..base.augment.clone() };
    let bp0 = predict(m, &no_dropout, base.k);
    let g = base.augment.dropout_group;
    let h = g.other();
    let _ = writeln!(
        s,
        "The spectral loss's minimiser keeps the top-k eigen-directions of `T = M^(-1/2) C M^(-1/2)`; a coordinate \
         of variance v in a group dropped with probability p_g has eigenvalue `(1 − p_g)·v / (v + σ_aug²)`. For the \
         base configuration (ratio {}, k = {}) without dropout: group a signal {}, other {}; group b signal {}, \
         other {}.",
        f3(m.strength_ratio()),
        base.k,
        f3(bp0.spectrum_a.signal),
        f3(bp0.spectrum_a.noise),
        f3(bp0.spectrum_b.signal),
        f3(bp0.spectrum_b.noise),
    );
    let _ = writeln!(
        s,
        "Dropout acts on group {g}. Task {}'s signal enters when `(1 − p)·α_k < τ_{h}` (α_k the k-th largest \
         eigenvalue of group {g} without dropout), so the predicted threshold is p* = {}; all of it is kept past {}; \
         task {}'s signal leaves past p = {}.",
        h.task_name(),
        opt(bp.onset_p, f3),
        opt(bp.full_p, f3),
        g.task_name(),
        f3(bp.loss_p)
    );
    s.push_str(&headline(out));

    for (solver, grid) in cfg.grids() {
        let title = match solver {
            Solver::ClosedForm => "Spectral loss, closed form",
            Solver::SpectralGd => "Spectral loss, gradient descent",
            Solver::InfoNce => "InfoNCE, gradient descent",
        };
        let _ = writeln!(s, "\n## {title}\n");
        let dp = spacing(&grid.p_values);
        for &k in &grid.ks {
            let rows: Vec<&ThresholdRow> =
                out.summary.thresholds.iter().filter(|r| r.solver == solver && r.k == k).collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(s, "### k = {k}\n");
            s.push_str(&findings(&rows, dp, solver));
            s.push('\n');
            s.push_str(&table(&rows));
            s.push('\n');
        }
    }
    if let Some(a) = &out.summary.gd_agreement {
        let _ = writeln!(s, "## Gradient descent against the closed form\n");
        let _ = writeln!(
            s,
            "Over {} spectral gradient-descent points, the subspace overlaps differ from the closed form's by {} on \
             average (largest {}); {} of {} points are within 0.1 on both groups. The largest difference is at \
             p = {}, ratio {}, k = {}, where the nearest signal eigenvalue of T lies {} from the k-th place \
             (median over the compared points: {}).",
            a.points,
            f3(a.mean_abs_overlap_diff),
            f3(a.max_abs_overlap_diff),
            a.within_0_1,
            a.points,
            f2(a.worst.p),
            f2(a.worst.ratio),
            a.worst.k,
            f3(a.worst_margin),
            f3(a.median_margin),
        );
    }
    if !figures.is_empty() {
        let _ = writeln!(s, "\n## Figures\n");
        for f in figures {
            let _ = writeln!(s, "- `{f}`");
        }
    }
    s
}
