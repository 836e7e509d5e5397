//! The report's figures: learning curves drawn with plotters, and copies of the runs' view grids,
//! destruction grids and the theory sweep's figures. Paths returned are relative to the report.

use super::load::{Cell, Experiment};
use super::stats::{Summary, mode_key};
use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A copied image: which cell it came from and where it is in the report.
#[derive(Clone, Debug)]
pub struct Copied {
    pub dataset: String,
    pub mode: String,
    pub seed: u64,
    pub rel: String,
}

#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// (dataset, relative path) of each learning-curve figure.
    pub curves: Vec<(String, String)>,
    pub grids: Vec<Copied>,
    pub destruction: Vec<Copied>,
    pub theory: Vec<String>,
    /// The theory sweep's `summary.md`, copied beside its figures (so the link is relative).
    pub theory_summary: Option<String>,
    /// "Cures compared": gain against cost per cure.
    pub cures: Option<String>,
    /// "Cures compared": the theory's task B against k.
    pub cures_theory: Option<String>,
    /// Figures that could not be drawn; the numbers are reported regardless.
    pub warnings: Vec<String>,
}

/// A file-name-safe form of a dataset or mode name (`photos+digits` → `photos_digits`).
pub fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

/// Writes every figure of `exp` into `dir`, which the report refers to as `rel`.
pub fn make(exp: &Experiment, s: &Summary, dir: &Path, rel: &str) -> Result<Figures> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut f = Figures::default();
    for ds in &s.datasets {
        let name = format!("curves_{}.png", slug(ds));
        match learning_curves(exp, s, ds, &dir.join(&name)) {
            Ok(true) => f.curves.push((ds.clone(), format!("{rel}/{name}"))),
            Ok(false) => {}
            Err(e) => f.warnings.push(format!("learning curves of {ds}: {e:#}")),
        }
    }
    if let Some(c) = &s.cures {
        match gain_cost_figure(c, &dir.join("cures_gain_cost.png")) {
            Ok(()) => f.cures = Some(format!("{rel}/cures_gain_cost.png")),
            Err(e) => f.warnings.push(format!("cures: gain against cost: {e:#}")),
        }
        if let Some(t) = &c.theory {
            match theory_k_figure(t, &dir.join("cures_theory_k.png")) {
                Ok(()) => f.cures_theory = Some(format!("{rel}/cures_theory_k.png")),
                Err(e) => f.warnings.push(format!("cures: theory against k: {e:#}")),
            }
        }
    }
    f.grids = copy_per_mode(exp, dir, rel, "views", |c| c.last_grid.clone())?;
    f.destruction = copy_per_mode(exp, dir, rel, "destruction", |c| c.destruction_png.clone())?;
    if let Some(t) = &exp.theory {
        std::fs::create_dir_all(dir.join("theory"))?;
        for src in &t.figures {
            let name = src.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            copy(src, &dir.join("theory").join(&name))?;
            f.theory.push(format!("{rel}/theory/{name}"));
        }
        if let Some(text) = &t.summary_md {
            super::write_atomic(&dir.join("theory/summary.md"), text.as_bytes())?;
            f.theory_summary = Some(format!("{rel}/theory/summary.md"));
        }
    }
    Ok(f)
}

fn copy(src: &Path, dst: &Path) -> Result<()> {
    std::fs::copy(src, dst).with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
    Ok(())
}

/// One image per (dataset, mode): from the lowest seed that has it.
fn copy_per_mode(
    exp: &Experiment,
    dir: &Path,
    rel: &str,
    sub: &str,
    pick: impl Fn(&Cell) -> Option<PathBuf>,
) -> Result<Vec<Copied>> {
    // Keyed in table order (dataset, then paper order of modes).
    let mut chosen: BTreeMap<(String, ModeKey), (u64, PathBuf)> = BTreeMap::new();
    for c in &exp.cells {
        if let Some(p) = pick(c) {
            let e = chosen.entry((c.dataset.clone(), mode_key(&c.mode))).or_insert((c.seed, p.clone()));
            if c.seed < e.0 {
                *e = (c.seed, p);
            }
        }
    }
    let mut out = Vec::new();
    if !chosen.is_empty() {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    for ((dataset, (_, _, mode)), (seed, src)) in chosen {
        let name = format!("{}__{}.png", slug(&dataset), slug(&mode));
        copy(&src, &dir.join(sub).join(&name))?;
        out.push(Copied { dataset, mode, seed, rel: format!("{rel}/{sub}/{name}") });
    }
    Ok(out)
}

/// (epoch, value) points, the mean over seeds of each epoch.
pub type Series = Vec<(f64, f64)>;

/// A panel: caption, y-axis label, one series per view mode.
pub type Panel<'a> = (String, &'a str, Vec<(String, Series)>);

type ModeKey = (u8, u64, String);

fn mean_series(cells: &[&Cell], value: impl Fn(&super::load::EpochRecord) -> Option<f64>) -> Series {
    let mut by_epoch: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for c in cells {
        for r in &c.epochs {
            if let Some(v) = value(r).filter(|v| v.is_finite()) {
                by_epoch.entry(r.epoch).or_default().push(v);
            }
        }
    }
    by_epoch.into_iter().map(|(e, v)| (e as f64, v.iter().sum::<f64>() / v.len() as f64)).collect()
}

/// Loss, per-task kNN accuracy and — where the runs logged it (viewmaker modes) — the
/// viewmaker's per-task label destruction against epoch, one line per view mode. `Ok(false)`: no
/// epochs.
fn learning_curves(exp: &Experiment, s: &Summary, ds: &str, path: &Path) -> Result<bool> {
    let panels = curve_panels(exp, s, ds);
    if panels[0].2.iter().all(|(_, s)| s.is_empty()) {
        return Ok(false);
    }
    draw_panels(path, &format!("{ds}: learning curves (mean over seeds)"), &panels)?;
    Ok(true)
}

/// Task names in first-seen order: the summary's, then those `keys` of the dataset's epoch
/// records add.
fn curve_tasks<'a, I: Iterator<Item = &'a String>>(
    exp: &'a Experiment,
    ds: &str,
    first: Vec<String>,
    keys: impl Fn(&'a super::load::EpochRecord) -> I,
) -> Vec<String> {
    let mut tasks = first;
    let seen = exp.cells.iter().filter(|c| c.dataset == ds).flat_map(|c| c.epochs.iter().flat_map(&keys));
    for t in seen {
        if !tasks.contains(t) {
            tasks.push(t.clone());
        }
    }
    tasks
}

/// The data of a dataset's learning-curve figure: the loss panel, a kNN panel per task, and a
/// destruction panel per task that some run logged destruction for (every panel has one series
/// per view mode, in the summary's order, so a mode keeps its colour across panels).
pub fn curve_panels(exp: &Experiment, s: &Summary, ds: &str) -> Vec<Panel<'static>> {
    let tasks = curve_tasks(exp, ds, s.tasks.get(ds).cloned().unwrap_or_default(), |r| r.knn.keys());
    let destroyed = curve_tasks(exp, ds, Vec::new(), |r| r.destruction.keys());
    let mut panels: Vec<Panel> = vec![("pretraining loss".into(), "loss", vec![])];
    panels.extend(tasks.iter().map(|t| (format!("kNN accuracy: {t}"), "accuracy (%)", vec![])));
    panels.extend(destroyed.iter().map(|t| (format!("viewmaker destruction: {t}"), "destruction rate", vec![])));
    for m in &s.modes {
        let cells: Vec<&Cell> = exp.cells.iter().filter(|c| c.dataset == ds && &c.mode == m).collect();
        panels[0].2.push((m.clone(), mean_series(&cells, |r| Some(r.loss))));
        for (i, t) in tasks.iter().enumerate() {
            panels[i + 1].2.push((m.clone(), mean_series(&cells, |r| r.knn.get(t).map(|a| a * 100.0))));
        }
        for (i, t) in destroyed.iter().enumerate() {
            let series = mean_series(&cells, |r| r.destruction.get(t).copied().flatten());
            panels[1 + tasks.len() + i].2.push((m.clone(), series));
        }
    }
    panels
}

const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing: {e}")
}

fn draw_panels(path: &Path, title: &str, panels: &[Panel]) -> Result<()> {
    let size = (480 * panels.len() as u32, 420);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(plot_err)?;
    for (area, (caption, y_desc, series)) in root.split_evenly((1, panels.len())).iter().zip(panels) {
        draw_panel(area, caption, y_desc, series)?;
    }
    root.present().map_err(plot_err)
}

fn range(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.05).max(1e-3);
    (lo - pad, hi + pad)
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    caption: &str,
    y_desc: &str,
    series: &[(String, Series)],
) -> Result<()> {
    let points = || series.iter().flat_map(|(_, s)| s.iter().copied());
    if points().next().is_none() {
        return Ok(());
    }
    let (x0, x1) = range(points().map(|p| p.0));
    let (y0, y1) = range(points().map(|p| p.1));
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(plot_err)?;
    chart.configure_mesh().x_desc("epoch").y_desc(y_desc).draw().map_err(plot_err)?;
    for (i, (mode, s)) in series.iter().enumerate().filter(|(_, (_, s))| !s.is_empty()) {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(s.iter().copied(), colour.stroke_width(2)))
            .map_err(plot_err)?
            .label(mode.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
        chart.draw_series(s.iter().map(|p| Circle::new(*p, 3, colour.filled()))).map_err(plot_err)?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(plot_err)?;
    Ok(())
}

/// A point with its interval on each axis, `(centre, low, high)`; no interval is a zero-width one.
type Interval = (f64, f64, f64);

fn interval_of(t: &super::welch::Test) -> Interval {
    let [lo, hi] = t.ci95.unwrap_or([t.diff, t.diff]);
    (t.diff * 100.0, lo * 100.0, hi * 100.0)
}

/// "Cures compared" at a glance: each cure at (cost on the digit probe, gain on the photo probe),
/// in points against `colour`, with its 95 % intervals as error bars both ways; the grey lines
/// are no change. Up is a gain; left is a cost (the further left, the dearer): the best cure sits
/// top right.
fn gain_cost_figure(c: &super::cures::Cures, path: &Path) -> Result<()> {
    let pts: Vec<(&str, Interval, Interval)> = c
        .cures
        .iter()
        .filter_map(|x| {
            Some((x.cure.as_str(), interval_of(&x.cost.as_ref()?.test), interval_of(&x.gain.as_ref()?.test)))
        })
        .collect();
    if pts.is_empty() {
        return Err(anyhow!("no cure has both a photo and a digit probe"));
    }
    let xs = pts.iter().flat_map(|p| [p.1.1, p.1.2]).chain([0.0]);
    let ys = pts.iter().flat_map(|p| [p.2.1, p.2.2]).chain([0.0]);
    let ((x0, x1), (y0, y1)) = (range(xs), range(ys));
    let (x0, x1, y0, y1) = (x0 - 1.0, x1 + 1.0, y0 - 1.0, y1 + 1.0);
    let root = BitMapBackend::new(path, (720, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Cures on photos+digits against `colour` (95 % intervals)", ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("cost: digit probe change (points)")
        .y_desc("gain: photo probe change (points)")
        .draw()
        .map_err(plot_err)?;
    let grey = BLACK.mix(0.4);
    for line in [vec![(x0, 0.0), (x1, 0.0)], vec![(0.0, y0), (0.0, y1)]] {
        chart.draw_series(std::iter::once(PathElement::new(line, grey.stroke_width(1)))).map_err(plot_err)?;
    }
    for (i, (name, (x, xl, xh), (y, yl, yh))) in pts.into_iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let style = colour.stroke_width(2);
        let bars = [vec![(xl, y), (xh, y)], vec![(x, yl), (x, yh)]];
        chart.draw_series(bars.into_iter().map(|b| PathElement::new(b, style))).map_err(plot_err)?;
        chart
            .draw_series(std::iter::once(Circle::new((x, y), 5, colour.filled())))
            .map_err(plot_err)?
            .label(name)
            .legend(move |(lx, ly)| Circle::new((lx + 8, ly), 5, colour.filled()));
        chart
            .draw_series(std::iter::once(Text::new(name.to_string(), (x, y), ("sans-serif", 14))))
            .map_err(plot_err)?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(plot_err)?;
    root.present().map_err(plot_err)
}

/// The theory's embedding knob: task B's accuracy against k without dropout and with it (mean
/// over seeds, ± their std), with chance and the input probe's ceiling as dashed lines.
fn theory_k_figure(t: &super::cures::TheoryK, path: &Path) -> Result<()> {
    let pts = || t.lines.iter().flat_map(|(_, l)| l.iter());
    let (k0, k1) = range(pts().map(|(k, _)| *k as f64));
    let (_, top) = range(pts().map(|(_, a)| (a.mean + a.std.unwrap_or(0.0)) * 100.0).chain([t.ceiling_b * 100.0]));
    let bottom = (t.chance_b * 100.0 - 5.0).min(pts().map(|(_, a)| a.mean * 100.0).fold(f64::INFINITY, f64::min));
    let root = BitMapBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Theory: task B against embedding size k (ratio {})", t.ratio), ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(k0..k1, bottom..top + 2.0)
        .map_err(plot_err)?;
    chart.configure_mesh().x_desc("embedding size k").y_desc("task B probe accuracy (%)").draw().map_err(plot_err)?;
    for (level, name) in [(t.chance_b, "chance"), (t.ceiling_b, "probe on the input")] {
        let y = level * 100.0;
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(k0, y), (k1, y)], BLACK.mix(0.4).stroke_width(1))))
            .map_err(plot_err)?;
        chart.draw_series(std::iter::once(Text::new(name, (k0, y), ("sans-serif", 13)))).map_err(plot_err)?;
    }
    for (i, (p, line)) in t.lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let xy: Vec<(f64, f64)> = line.iter().map(|(k, a)| (*k as f64, a.mean * 100.0)).collect();
        let label = if *p == 0.0 { "no dropout".to_string() } else { format!("dropout p = {p}") };
        chart
            .draw_series(LineSeries::new(xy.clone(), colour.stroke_width(2)))
            .map_err(plot_err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
        let bars = line.iter().filter_map(|(k, a)| {
            let sd = a.std? * 100.0;
            Some(PathElement::new(vec![(*k as f64, a.mean * 100.0 - sd), (*k as f64, a.mean * 100.0 + sd)], colour))
        });
        chart.draw_series(bars).map_err(plot_err)?;
        chart.draw_series(xy.into_iter().map(|p| Circle::new(p, 3, colour.filled()))).map_err(plot_err)?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(plot_err)?;
    root.present().map_err(plot_err)
}
