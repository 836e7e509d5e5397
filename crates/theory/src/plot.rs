//! PNG figures of a sweep (plotters): probe accuracy against dropout probability, and heat-maps
//! over (dropout probability, strength ratio) with the predicted thresholds drawn over them.

use crate::model::Group;
use crate::sim::Solver;
use crate::spectral::predict;
use crate::sweep::{Curve, SweepOutput};
use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Image size of the line figures.
const LINE_SIZE: (u32, u32) = (1560, 580);
/// Image size of the heat-maps.
const HEAT_SIZE: (u32, u32) = (900, 700);
/// At most this many strength ratios get a curve in a line figure.
const MAX_CURVES: usize = 7;

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing a figure: {e}")
}

/// The viridis colour map at `t ∈ [0, 1]` (piecewise-linear through five anchors).
pub fn viridis(t: f64) -> RGBColor {
    const ANCHORS: [(f64, [f64; 3]); 5] = [
        (0.0, [68.0, 1.0, 84.0]),
        (0.25, [59.0, 82.0, 139.0]),
        (0.5, [33.0, 145.0, 140.0]),
        (0.75, [94.0, 201.0, 98.0]),
        (1.0, [253.0, 231.0, 37.0]),
    ];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    for w in ANCHORS.windows(2) {
        let (t0, c0) = w[0];
        let (t1, c1) = w[1];
        if t <= t1 {
            let f = (t - t0) / (t1 - t0);
            let ch = |i: usize| (c0[i] + f * (c1[i] - c0[i])).round() as u8;
            return RGBColor(ch(0), ch(1), ch(2));
        }
    }
    RGBColor(253, 231, 37)
}

/// Draws into `path` through a temporary file that is renamed into place when complete.
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<()>,
) -> Result<()> {
    let name =
        path.file_name().and_then(|n| n.to_str()).ok_or_else(|| anyhow!("bad figure path {}", path.display()))?;
    let tmp = path.with_file_name(format!(".{name}.tmp.png"));
    let drawn = (|| {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)
    })();
    let result = drawn.and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| anyhow!("moving {} to {}: {e}", tmp.display(), path.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| e.context(format!("drawing {}", path.display())))
}

/// Up to `MAX_CURVES` evenly spread entries of `items`.
fn spread<T: Clone>(items: &[T]) -> Vec<T> {
    if items.len() <= MAX_CURVES {
        return items.to_vec();
    }
    (0..MAX_CURVES).map(|i| items[(i * (items.len() - 1) + (MAX_CURVES - 1) / 2) / (MAX_CURVES - 1)].clone()).collect()
}

fn curves_for(out: &SweepOutput, solver: Solver, k: usize) -> Vec<&Curve> {
    out.summary.curves.iter().filter(|c| c.solver == solver && c.k == k).collect()
}

/// One panel of accuracy against `p`: a solid curve per ratio, optional dashed reference
/// curves (same colours), the chance level, and the predicted onset of each ratio as a thin
/// vertical line (task-B panel only).
#[allow(clippy::too_many_arguments)]
fn accuracy_panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    title: &str,
    curves: &[&Curve],
    reference: &[Option<&Curve>],
    task_b: bool,
    onsets: &[Option<f64>],
    chance: f64,
    x_desc: &str,
) -> Result<()> {
    let lo = (chance - 0.05).max(0.0);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 26))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..1f64, lo..1.0f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("linear-probe test accuracy")
        .label_style(("sans-serif", 17))
        .axis_desc_style(("sans-serif", 19))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.0, chance), (1.0, chance)],
            6,
            6,
            RGBColor(120, 120, 120).stroke_width(2),
        ))
        .map_err(err)?;
    let n = curves.len().max(2);
    for (i, c) in curves.iter().enumerate() {
        let colour = viridis(0.9 * i as f64 / (n - 1) as f64);
        let pick = |v: &Vec<f64>| c.p.iter().copied().zip(v.iter().copied()).collect::<Vec<_>>();
        let ys = if task_b { &c.acc_b } else { &c.acc_a };
        if let Some(Some(onset)) = onsets.get(i) {
            chart
                .draw_series(DashedLineSeries::new(vec![(*onset, lo), (*onset, 1.0)], 3, 5, colour.stroke_width(1)))
                .map_err(err)?;
        }
        if let Some(Some(r)) = reference.get(i) {
            let rys = if task_b { &r.acc_b } else { &r.acc_a };
            let pts: Vec<(f64, f64)> = r.p.iter().copied().zip(rys.iter().copied()).collect();
            chart.draw_series(DashedLineSeries::new(pts, 8, 5, colour.stroke_width(2))).map_err(err)?;
        }
        chart.draw_series(LineSeries::new(pick(ys), colour.stroke_width(3))).map_err(err)?;
        chart.draw_series(pick(ys).into_iter().map(|(x, y)| Circle::new((x, y), 3, colour.filled()))).map_err(err)?;
    }
    Ok(())
}

/// The legend of a line figure, drawn in its own strip.
fn legend_strip(
    area: &DrawingArea<BitMapBackend, Shift>,
    curves: &[&Curve],
    reference: Option<Solver>,
    solver: Solver,
    other: Group,
) -> Result<()> {
    let font = ("sans-serif", 17).into_font().color(&BLACK);
    let n = curves.len().max(2);
    let mut y = 80;
    let line = |area: &DrawingArea<BitMapBackend, Shift>, y: i32, style: ShapeStyle, dashed: bool| -> Result<()> {
        if dashed {
            for x in (10..44).step_by(10) {
                area.draw(&PathElement::new(vec![(x, y), (x + 6, y)], style)).map_err(err)?;
            }
        } else {
            area.draw(&PathElement::new(vec![(10, y), (44, y)], style)).map_err(err)?;
        }
        Ok(())
    };
    area.draw(&Text::new("strength ratio", (10, y - 30), font.clone())).map_err(err)?;
    for (i, c) in curves.iter().enumerate() {
        let colour = viridis(0.9 * i as f64 / (n - 1) as f64);
        line(area, y, colour.stroke_width(3), false)?;
        area.draw(&Circle::new((27, y), 3, colour.filled())).map_err(err)?;
        area.draw(&Text::new(format!("{:.2}", c.ratio), (54, y - 9), font.clone())).map_err(err)?;
        y += 28;
    }
    y += 16;
    let grey = RGBColor(120, 120, 120);
    let mut entries: Vec<(String, ShapeStyle, bool)> =
        vec![(format!("solid: {}", solver.name()), BLACK.stroke_width(3), false)];
    if let Some(r) = reference {
        entries.push((format!("dashed: {}", r.name()), BLACK.stroke_width(2), true));
    }
    entries.push(("chance".to_string(), grey.stroke_width(2), true));
    entries.push(("predicted onset".to_string(), BLACK.stroke_width(1), true));
    entries.push((format!("(task {}, spectral)", other.task_name()), WHITE.stroke_width(1), false));
    for (label, style, dashed) in entries {
        line(area, y, style, dashed)?;
        area.draw(&Text::new(label, (54, y - 9), font.clone())).map_err(err)?;
        y += 28;
    }
    Ok(())
}

/// Accuracy on task A and task B against `p`, one curve per strength ratio, for one solver and
/// `k`. With `reference`, that solver's curves at the same ratios are drawn dashed.
pub fn accuracy_figure(
    out: &SweepOutput,
    solver: Solver,
    k: usize,
    reference: Option<Solver>,
    path: &Path,
) -> Result<()> {
    let all = curves_for(out, solver, k);
    let curves = spread(&all);
    let refs: Vec<Option<&Curve>> = curves
        .iter()
        .map(|c| {
            reference.and_then(|rs| {
                out.summary.curves.iter().find(|r| r.solver == rs && r.k == k && (r.ratio - c.ratio).abs() < 1e-9)
            })
        })
        .collect();
    let base = &out.config.base;
    let onsets: Vec<Option<f64>> = curves
        .iter()
        .map(|c| {
            let mut m = base.model.clone();
            m.b.strength = c.ratio * m.a.strength;
            predict(&m, &base.augment, k).onset_p
        })
        .collect();
    let chance = curves.first().map(|c| c.chance).unwrap_or([0.5, 0.5]);
    let what = match reference {
        Some(r) => format!("{} (solid) vs {} (dashed)", solver.name(), r.name()),
        None => solver.name().to_string(),
    };
    let dropped = base.augment.dropout_group;
    let x_desc = format!("dropout probability p on group {dropped}");
    render(path, LINE_SIZE, |root| {
        let (top, body) = root.split_vertically(44);
        top.titled(
            &format!("Probe accuracy vs feature dropout on group {dropped} — {what}, k = {k}"),
            ("sans-serif", 24),
        )
        .map_err(err)?;
        let (plots, legend) = body.split_horizontally(LINE_SIZE.0 - 210);
        legend_strip(&legend, &curves, reference, solver, dropped.other())?;
        let panels = plots.split_evenly((1, 2));
        for (panel, g) in panels.iter().zip([Group::A, Group::B]) {
            let title = if g == dropped {
                format!("Task {} (dropped group)", g.task_name())
            } else {
                format!("Task {}", g.task_name())
            };
            let marks: &[Option<f64>] = if g == dropped { &[] } else { &onsets };
            accuracy_panel(panel, &title, &curves, &refs, g == Group::B, marks, chance[g.index()], &x_desc)?;
        }
        Ok(())
    })
}

/// Cell edges around sorted centres.
fn edges(centres: &[f64]) -> Vec<f64> {
    let n = centres.len();
    if n == 1 {
        return vec![centres[0] - 0.5, centres[0] + 0.5];
    }
    let mut e = Vec::with_capacity(n + 1);
    e.push(centres[0] - (centres[1] - centres[0]) / 2.0);
    for w in centres.windows(2) {
        e.push((w[0] + w[1]) / 2.0);
    }
    e.push(centres[n - 1] + (centres[n - 1] - centres[n - 2]) / 2.0);
    e
}

/// Heat-map of a task's mean probe accuracy over (p, strength ratio) for one solver and `k`,
/// with the predicted onset of the other group's task (solid white) and the predicted loss of
/// the dropped group's signal (dashed red) drawn over it.
pub fn heatmap_figure(out: &SweepOutput, solver: Solver, k: usize, task_b: bool, path: &Path) -> Result<()> {
    let mut curves = curves_for(out, solver, k);
    curves.sort_by(|a, b| a.ratio.total_cmp(&b.ratio));
    let Some(first) = curves.first() else {
        return Err(anyhow!("no {} curves for k = {k}", solver.name()));
    };
    let ps = first.p.clone();
    let ratios: Vec<f64> = curves.iter().map(|c| c.ratio).collect();
    let (px, ry) = (edges(&ps), edges(&ratios));
    let chance = if task_b { first.chance[1] } else { first.chance[0] };
    let base = &out.config.base;
    let lines: Vec<(f64, Option<f64>, f64)> = {
        let (lo, hi) = (ry[0], ry[ry.len() - 1]);
        (0..=400)
            .map(|i| {
                let r = (lo + (hi - lo) * i as f64 / 400.0).max(0.0);
                let mut m = base.model.clone();
                m.b.strength = r * m.a.strength;
                let pred = predict(&m, &base.augment, k);
                (r, pred.onset_p, pred.loss_p)
            })
            .collect()
    };
    let task = if task_b { "B" } else { "A" };
    let dropped = base.augment.dropout_group;
    render(path, HEAT_SIZE, |root| {
        let (main, bar) = root.split_horizontally(HEAT_SIZE.0 - 130);
        let mut chart = ChartBuilder::on(&main)
            .caption(format!("Task {task} probe accuracy — {}, k = {k}", solver.name()), ("sans-serif", 24))
            .margin(14)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(px[0]..px[px.len() - 1], ry[0]..ry[ry.len() - 1])
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(format!("dropout probability p on group {dropped}"))
            .y_desc("strength ratio  strength_b / strength_a")
            .label_style(("sans-serif", 17))
            .axis_desc_style(("sans-serif", 19))
            .draw()
            .map_err(err)?;
        let mut cells = Vec::new();
        for (j, c) in curves.iter().enumerate() {
            let ys = if task_b { &c.acc_b } else { &c.acc_a };
            for (i, &p) in c.p.iter().enumerate() {
                let Some(col) = ps.iter().position(|&q| q == p) else { continue };
                let t = (ys[i] - chance) / (1.0 - chance);
                cells.push(Rectangle::new([(px[col], ry[j]), (px[col + 1], ry[j + 1])], viridis(t).filled()));
            }
        }
        chart.draw_series(cells).map_err(err)?;
        let onset: Vec<(f64, f64)> = lines.iter().filter_map(|(r, o, _)| o.map(|p| (p, *r))).collect();
        chart.draw_series(LineSeries::new(onset.clone(), BLACK.stroke_width(7))).map_err(err)?;
        chart
            .draw_series(LineSeries::new(onset, WHITE.stroke_width(3)))
            .map_err(err)?
            .label(format!("predicted onset of task {} (spectral)", dropped.other().task_name()))
            .legend(|(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (24, 0)], BLACK.stroke_width(7))
                    + PathElement::new(vec![(0, 0), (24, 0)], WHITE.stroke_width(3))
            });
        let loss: Vec<(f64, f64)> = lines.iter().map(|(r, _, l)| (*l, *r)).collect();
        let red = RGBColor(230, 40, 40);
        chart
            .draw_series(DashedLineSeries::new(loss, 10, 6, red.stroke_width(3)))
            .map_err(err)?
            .label(format!("predicted loss of task {}'s signal (spectral)", dropped.task_name()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], red.stroke_width(3)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        // Colour bar.
        let mut cb = ChartBuilder::on(&bar)
            .margin_top(60)
            .margin_bottom(64)
            .margin_right(10)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..1f64, chance..1.0f64)
            .map_err(err)?;
        cb.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_desc("accuracy")
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(err)?;
        let steps = 100;
        cb.draw_series((0..steps).map(|i| {
            let a = chance + (1.0 - chance) * i as f64 / steps as f64;
            let b = chance + (1.0 - chance) * (i + 1) as f64 / steps as f64;
            Rectangle::new([(0.0, a), (1.0, b)], viridis(i as f64 / (steps - 1) as f64).filled())
        }))
        .map_err(err)?;
        Ok(())
    })
}

/// Draws every figure of a sweep into `dir`; returns the file names written.
pub fn write_figures(out: &SweepOutput, dir: &Path) -> Result<Vec<String>> {
    let mut written = Vec::new();
    let mut emit = |name: String, f: &dyn Fn(&Path) -> Result<()>| -> Result<()> {
        let path: PathBuf = dir.join(&name);
        f(&path)?;
        written.push(name);
        Ok(())
    };
    let cfg = &out.config;
    for &k in &cfg.closed_form.ks {
        emit(format!("accuracy_vs_p_k{k}.png"), &|p| accuracy_figure(out, Solver::ClosedForm, k, None, p))?;
        if cfg.closed_form.ratios.len() >= 2 && cfg.closed_form.p_values.len() >= 2 {
            emit(format!("heatmap_task_b_k{k}.png"), &|p| heatmap_figure(out, Solver::ClosedForm, k, true, p))?;
            emit(format!("heatmap_task_a_k{k}.png"), &|p| heatmap_figure(out, Solver::ClosedForm, k, false, p))?;
        }
    }
    if let Some(grid) = &cfg.info_nce {
        for &k in &grid.ks {
            let reference = cfg.closed_form.ks.contains(&k).then_some(Solver::ClosedForm);
            emit(format!("infonce_accuracy_vs_p_k{k}.png"), &|p| {
                accuracy_figure(out, Solver::InfoNce, k, reference, p)
            })?;
        }
    }
    if let Some(grid) = &cfg.spectral_gd {
        for &k in &grid.ks {
            let reference = cfg.closed_form.ks.contains(&k).then_some(Solver::ClosedForm);
            emit(format!("spectral_gd_accuracy_vs_p_k{k}.png"), &|p| {
                accuracy_figure(out, Solver::SpectralGd, k, reference, p)
            })?;
        }
    }
    Ok(written)
}
