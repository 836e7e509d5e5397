//! "Cures compared" (issue 28): each cure for feature suppression against `colour` on
//! `photos+digits` — its gain on the suppressed photo probe and its cost on the digit probe — by
//! Welch's t-test over seeds, one-sided in the direction asked, with the Holm–Bonferroni
//! correction over the cures present ([`super::welch::holm`]), within the gains and within the
//! costs. Beside them, the
//! linear-model theory's answer for the embedding knob: task B's accuracy against k, with and
//! without dropout, from the theory sweep's `theory.json`.
//!
//! The section exists when the experiment holds `colour` and at least one `colour@<label>`
//! variant on `photos+digits` (the cures experiment does; the mechanism study does not).

use super::markdown::pct;
use super::mechanism::p_text;
use super::stats::{Agg, Summary, agg};
use super::welch::{ALPHA, Alternative, Kind, Test, holm, welch};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

const BASE: &str = "colour";
const DATASET: &str = "photos+digits";
const GAIN_TASK: &str = "photo";
const COST_TASK: &str = "digit";
/// The cures, in the order the report lists them; those with cells are compared.
pub const CURES: [&str; 5] = ["colour+dropout:0.5", "colour@ifm", "colour@head", "colour@wide", "viewmaker"];

/// One cure's effect on one task, against `colour`.
#[derive(Clone, Debug, Serialize)]
pub struct Effect {
    pub task: &'static str,
    /// Probe top-1 over seeds: (cure, `colour`).
    pub groups: [Agg; 2],
    /// Cure minus `colour`: `diff`, `ci95` (two-sided), one-sided `p` in the direction asked.
    #[serde(flatten)]
    pub test: Test,
    /// Holm–Bonferroni-adjusted p over the cures' tests of the same kind (`None`: no test made).
    pub p_holm: Option<f64>,
    /// Whether the direction asked holds at α after the correction.
    pub observed: bool,
}

/// One cure: its gain on the photo probe and cost on the digit probe.
#[derive(Clone, Debug, Serialize)]
pub struct Cure {
    pub cure: String,
    pub gain: Option<Effect>,
    pub cost: Option<Effect>,
}

/// Task B's accuracy against k in the theory's closed form, at one strength ratio.
#[derive(Clone, Debug, Serialize)]
pub struct TheoryK {
    pub ratio: f64,
    /// One line per dropout probability: (p, [(k, task-B accuracy over seeds)]).
    pub lines: Vec<(f64, Vec<(usize, Agg)>)>,
    pub chance_b: f64,
    pub ceiling_b: f64,
}

/// The whole section's numbers.
#[derive(Clone, Debug, Serialize)]
pub struct Cures {
    /// `colour` on photos+digits, photo and digit probes.
    pub base: [Agg; 2],
    /// `colour` on photos (the unsuppressed photo probe), when present.
    pub unsuppressed: Option<Agg>,
    pub cures: Vec<Cure>,
    pub theory: Option<TheoryK>,
}

fn probe<'a>(s: &'a Summary, ds: &str, task: &str, mode: &str) -> Option<&'a Agg> {
    s.probe.get(&(ds.to_string(), task.to_string(), mode.to_string()))
}

/// The section's numbers, or `None` when the experiment holds no cure variant beside `colour`.
pub fn compare(s: &Summary, theory: Option<&Value>) -> Option<Cures> {
    let has_variant = s.modes.iter().any(|m| m.starts_with("colour@") && probe(s, DATASET, GAIN_TASK, m).is_some());
    let base = [probe(s, DATASET, GAIN_TASK, BASE)?.clone(), probe(s, DATASET, COST_TASK, BASE)?.clone()];
    if !has_variant {
        return None;
    }
    let effect = |mode: &str, task: &'static str, base: &Agg, alt: Alternative| {
        let a = probe(s, DATASET, task, mode)?;
        Some(Effect {
            task,
            groups: [a.clone(), base.clone()],
            test: welch(a, base, alt),
            p_holm: None,
            observed: false,
        })
    };
    let mut cures: Vec<Cure> = CURES
        .into_iter()
        .filter(|m| s.modes.iter().any(|x| x == m))
        .map(|m| Cure {
            cure: m.to_string(),
            gain: effect(m, GAIN_TASK, &base[0], Alternative::Greater),
            cost: effect(m, COST_TASK, &base[1], Alternative::Less),
        })
        .collect();
    correct(cures.iter_mut().filter_map(|c| c.gain.as_mut()).collect());
    correct(cures.iter_mut().filter_map(|c| c.cost.as_mut()).collect());
    let unsuppressed = probe(s, "photos", GAIN_TASK, BASE).cloned();
    Some(Cures { base, unsuppressed, cures, theory: theory.and_then(theory_k) })
}

/// Holm–Bonferroni over the tests made ([`holm`]); a direction holds when its adjusted p is
/// below α.
fn correct(mut effects: Vec<&mut Effect>) {
    effects.retain(|e| e.test.test == Kind::Welch);
    let adjusted = holm(&effects.iter().map(|e| e.test.p).collect::<Vec<_>>());
    for (e, p) in effects.into_iter().zip(adjusted) {
        e.p_holm = p;
        e.observed = p.is_some_and(|p| p < ALPHA);
    }
}

/// Task B against k from `theory.json`: closed-form points at the grid's middle strength ratio,
/// one line without dropout and one at the grid's p nearest 0.5 (the dropout cure's p); `None`
/// unless the closed-form grid has two k or more and both probabilities.
pub fn theory_k(json: &Value) -> Option<TheoryK> {
    let points: Vec<&Value> = json.get("points")?.as_array()?.iter().filter(|p| p["solver"] == "closed-form").collect();
    let mut ratios: Vec<f64> = points.iter().filter_map(|p| num(p, "ratio")).collect();
    ratios.sort_by(f64::total_cmp);
    ratios.dedup();
    let ratio = *ratios.get(ratios.len() / 2)?;
    let at_ratio: Vec<&&Value> = points.iter().filter(|p| num(p, "ratio") == Some(ratio)).collect();
    let p_drop = at_ratio
        .iter()
        .filter_map(|p| num(p, "p"))
        .filter(|p| *p > 0.0)
        .min_by(|a, b| (a - 0.5).abs().total_cmp(&(b - 0.5).abs()))?;
    let mut lines = Vec::new();
    for p in [0.0, p_drop] {
        let mut by_k: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for pt in at_ratio.iter().filter(|pt| num(pt, "p") == Some(p)) {
            let (Some(k), Some(acc)) = (pt["k"].as_u64(), pt.pointer("/result/acc_b").and_then(Value::as_f64)) else {
                continue;
            };
            by_k.entry(k as usize).or_default().push(acc);
        }
        let line: Vec<(usize, Agg)> = by_k.into_iter().filter_map(|(k, v)| Some((k, agg(&v)?))).collect();
        if line.len() < 2 {
            return None;
        }
        lines.push((p, line));
    }
    let mean_of = |key: &str| {
        let v: Vec<f64> = at_ratio.iter().filter_map(|p| p.pointer(&format!("/result/{key}"))?.as_f64()).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    Some(TheoryK { ratio, lines, chance_b: mean_of("chance_b"), ceiling_b: mean_of("ceiling_b") })
}

/// A number field of a theory point.
fn num(p: &Value, key: &str) -> Option<f64> {
    p.get(key).and_then(Value::as_f64)
}

fn points(v: f64) -> String {
    format!("{:+.1}", v * 100.0)
}

/// `+15.0 [+12.7, +17.3]`, or the difference with why there is no interval.
fn interval(t: &Test) -> String {
    match (t.test, t.ci95) {
        (Kind::Welch, Some([lo, hi])) => format!("{} [{}, {}]", points(t.diff), points(lo), points(hi)),
        (Kind::NoVariance, _) => format!("{} (no seed variation: exact)", points(t.diff)),
        _ => format!("{} (one seed: no interval)", points(t.diff)),
    }
}

/// A p-value as the mechanism section prints it, without the `p = `: `0.0403`, `< 0.001`.
fn p_number(p: f64) -> String {
    let t = p_text(p);
    t.strip_prefix("p = ").map_or_else(|| t.trim_start_matches("p ").to_string(), str::to_string)
}

/// `0.0403 → 0.1209 no`: the one-sided p, the Holm-adjusted p, and the answer.
fn verdict(e: &Effect) -> String {
    match (e.test.p, e.p_holm) {
        (Some(p), Some(h)) => {
            let yes = if e.observed { "**yes**" } else { "no" };
            format!("{} → {} {yes}", p_number(p), p_number(h))
        }
        _ => "no test".into(),
    }
}

fn mean_sd(a: &Agg) -> String {
    match a.std {
        Some(sd) => format!("{} ± {}", pct(a.mean), pct(sd)),
        None => format!("{} (n=1)", pct(a.mean)),
    }
}

/// The section, with its figures' paths (relative to the report) where they were drawn.
pub fn markdown(c: &Cures, figure: Option<&str>, theory_figure: Option<&str>) -> String {
    let mut out = String::from("### Cures compared\n\n");
    let _ = writeln!(
        out,
        "Each cure is `{BASE}` plus one change, on {DATASET}: its **gain** is the {GAIN_TASK} probe minus `{BASE}`'s \
         (asked: > 0), its **cost** the {COST_TASK} probe minus `{BASE}`'s (asked: < 0). Differences in points of \
         probe top-1 with their two-sided 95 % interval (Welch); one-sided p, then Holm–Bonferroni-adjusted over the \
         {} cures compared (gains and costs each a family); **yes** when the adjusted p < {ALPHA}.\n",
        c.cures.len()
    );
    if let Some(u) = &c.unsuppressed {
        let _ = writeln!(
            out,
            "The gap to close: `{BASE}`'s {GAIN_TASK} probe is {} % on photos and {} % on {DATASET} ({} points).\n",
            pct(u.mean),
            pct(c.base[0].mean),
            points(u.mean - c.base[0].mean)
        );
    }
    out.push_str(&format!(
        "| cure | {GAIN_TASK} probe (%) | gain (points, 95 % CI) | p → Holm | {COST_TASK} probe (%) | cost (points, 95 % CI) \
         | p → Holm |\n|---|---:|---:|---|---:|---:|---|\n"
    ));
    let _ = writeln!(out, "| `{BASE}` | {} | — | — | {} | — | — |", mean_sd(&c.base[0]), mean_sd(&c.base[1]));
    for cure in &c.cures {
        let cols = |e: &Option<Effect>| match e {
            Some(e) => (mean_sd(&e.groups[0]), interval(&e.test), verdict(e)),
            None => ("—".into(), "—".into(), "—".into()),
        };
        let (g, c_) = (cols(&cure.gain), cols(&cure.cost));
        let _ = writeln!(out, "| `{}` | {} | {} | {} | {} | {} | {} |", cure.cure, g.0, g.1, g.2, c_.0, c_.1, c_.2);
    }
    let named = |gain: bool| {
        let v: Vec<String> = c
            .cures
            .iter()
            .filter(|x| if gain { &x.gain } else { &x.cost }.as_ref().is_some_and(|e| e.observed))
            .map(|x| format!("`{}`", x.cure))
            .collect();
        if v.is_empty() { "none".to_string() } else { v.join(", ") }
    };
    let _ = writeln!(
        out,
        "\nGain observed after correction: {}. Cost observed after correction: {}.\n",
        named(true),
        named(false)
    );
    if let Some(rel) = figure {
        let _ = writeln!(out, "![cures: gain against cost]({rel})\n");
    }
    if let Some(t) = &c.theory {
        let _ = writeln!(
            out,
            "The linear-model theory's embedding knob (closed form, strength ratio {}): task B's probe accuracy \
             against the embedding size k, without dropout and with p = {} on group a (chance {} %, a probe on the \
             input {} %).\n",
            t.ratio,
            t.lines[1].0,
            pct(t.chance_b),
            pct(t.ceiling_b)
        );
        for (p, line) in &t.lines {
            let row: Vec<String> = line.iter().map(|(k, a)| format!("k = {k}: {}", pct(a.mean))).collect();
            let _ = writeln!(out, "- p = {p}: {}", row.join(", "));
        }
        out.push('\n');
        if let Some(rel) = theory_figure {
            let _ = writeln!(out, "![theory: task B against k]({rel})\n");
        }
    }
    out
}
