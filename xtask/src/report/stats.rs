//! Aggregates over seeds and the effect verdicts, computed once and shared by REPORT.md and
//! results.json so the two always hold the same numbers.

use super::load::{Cell, Experiment};
use super::welch::{Alternative, Kind, Test, welch};
use featdrop_core::{BaseViews, ViewMode};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Mean and sample standard deviation (n − 1) of one quantity over seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Agg {
    pub mean: f64,
    /// `None` with a single value: one seed says nothing about the spread.
    pub std: Option<f64>,
    pub n: usize,
}

pub fn agg(values: &[f64]) -> Option<Agg> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let std = (n > 1).then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
    Some(Agg { mean, std, n })
}

/// The view mode of a report label: `expert` of the variant cell `expert@spectral`.
pub fn view_mode_of(label: &str) -> &str {
    label.split_once('@').map_or(label, |(mode, _)| mode)
}

/// Paper order: expert, viewmaker, expert+viewmaker, dropout:p by p, then colour and
/// colour+dropout:p by p, other `+dropout:p` modes, none, anything else; a variant
/// (`expert@spectral`) sorts right after its view mode.
pub fn mode_key(mode: &str) -> (u8, u64, String) {
    let parsed = view_mode_of(mode).parse::<ViewMode>().ok();
    let rank = match parsed.map(|m| (m.base, m.dropout.is_some())) {
        Some((BaseViews::Expert, false)) => 0,
        Some((BaseViews::Viewmaker, false)) => 1,
        Some((BaseViews::ExpertViewmaker, false)) => 2,
        Some((BaseViews::Expert, true)) => 3,
        Some((BaseViews::Colour, false)) => 4,
        Some((BaseViews::Colour, true)) => 5,
        Some((BaseViews::None, false)) => 7,
        Some((_, true)) => 6,
        None => 8,
    };
    let p = parsed.and_then(|m| m.dropout).unwrap_or(0.0);
    (rank, (p * 1e6) as u64, mode.to_string())
}

/// Modes that can drop the overlay between the two views of a pair: a viewmaker, or the
/// feature-dropout modifier with p > 0 on any base family.
pub fn can_drop_overlay(mode: &str) -> bool {
    view_mode_of(mode).parse::<ViewMode>().is_ok_and(|m| m.uses_viewmaker() || m.dropout.is_some_and(|p| p > 0.0))
}

#[cfg(test)]
mod mode_tests {
    use super::*;

    #[test]
    fn modes_sort_in_paper_order_and_every_dropout_mode_can_drop_the_overlay() {
        let mut modes = [
            "none",
            "colour+dropout:1",
            "dropout:0.5",
            "colour",
            "expert@spectral",
            "viewmaker",
            "expert",
            "colour+dropout:0.5",
            "viewmaker+dropout:0.5",
        ];
        modes.sort_by_key(|m| mode_key(m));
        assert_eq!(
            modes,
            [
                "expert",
                "expert@spectral",
                "viewmaker",
                "dropout:0.5",
                "colour",
                "colour+dropout:0.5",
                "colour+dropout:1",
                "viewmaker+dropout:0.5",
                "none"
            ]
        );
        for m in ["viewmaker", "dropout:0.5", "colour+dropout:0.5", "viewmaker+dropout:1"] {
            assert!(can_drop_overlay(m), "{m}");
        }
        for m in ["expert", "colour", "none", "colour+dropout:0", "expert@spectral"] {
            assert!(!can_drop_overlay(m), "{m}");
        }
    }
}

/// The task the overlay suppresses and the overlay tasks, or `None` for a one-feature dataset.
/// Images: `photo` is suppressed by its overlay; audio: the background `noise` is the overlay.
pub fn task_roles(tasks: &[String]) -> Option<(String, Vec<String>)> {
    let main = if tasks.iter().any(|t| t == "photo") {
        "photo".to_string()
    } else if tasks.iter().any(|t| t == "noise") && tasks.len() > 1 {
        tasks.iter().find(|t| *t != "noise")?.clone()
    } else {
        return None;
    };
    let overlays: Vec<String> = tasks.iter().filter(|t| **t != main).cloned().collect();
    (!overlays.is_empty()).then_some((main, overlays))
}

/// Tasks in table order: the suppressed task first, then the rest alphabetically.
fn ordered_tasks(set: BTreeSet<String>) -> Vec<String> {
    let tasks: Vec<String> = set.into_iter().collect();
    match task_roles(&tasks) {
        Some((main, rest)) => std::iter::once(main).chain(rest).collect(),
        None => tasks,
    }
}

/// One view mode against `expert`, decided by Welch's t-test over seeds ([`welch`]), each
/// direction one-sided at [`ALPHA`](super::welch::ALPHA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The mode's mean is significantly above expert's.
    Beats,
    /// Significantly below.
    Worse,
    /// Neither direction is significant.
    NoSignificantDifference,
    /// One side has a single seed: no test is possible.
    SingleSeed,
    /// No seed-to-seed variation on either side: the difference is exact, no test is made.
    NoVariance,
}

/// One view mode against `expert` on one task of one dataset.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub dataset: String,
    pub mode: String,
    pub task: String,
    /// `suppressed` (the photo task) or `overlay`.
    pub role: &'static str,
    pub expert: Agg,
    pub other: Agg,
    /// Mode minus expert: `diff`, `ci95`, `p` (one-sided, for a gain on the suppressed task and
    /// a cost on an overlay task), `test`.
    #[serde(flatten)]
    pub test: Test,
    pub verdict: Verdict,
}

/// Welch's test of `other − expert` in the direction asked, and the verdict it gives.
pub fn compare(expert: &Agg, other: &Agg, alternative: Alternative) -> (Test, Verdict) {
    let t = welch(other, expert, alternative);
    let gain = match alternative {
        Alternative::Greater => (t.significant(), t.opposite_significant()),
        Alternative::Less => (t.opposite_significant(), t.significant()),
    };
    let v = match (t.test, gain) {
        (Kind::OneSeed, _) => Verdict::SingleSeed,
        (Kind::NoVariance, _) => Verdict::NoVariance,
        (Kind::Welch, (true, _)) => Verdict::Beats,
        (Kind::Welch, (_, true)) => Verdict::Worse,
        (Kind::Welch, _) => Verdict::NoSignificantDifference,
    };
    (t, v)
}

/// Whether `key`'s mean is the highest among the view modes of its (dataset, task); only when
/// there is something to beat.
pub fn is_best(s: &Summary, key: &(String, String, String)) -> bool {
    let Some(a) = s.probe.get(key).filter(|_| !s.is_twin(&key.0, &key.2)) else { return false };
    let rivals: Vec<f64> = s
        .probe
        .iter()
        .filter(|(k, _)| k.0 == key.0 && k.1 == key.1 && !s.is_twin(&k.0, &k.2))
        .map(|(_, v)| v.mean)
        .collect();
    rivals.len() > 1 && rivals.iter().all(|r| a.mean >= r - 1e-12)
}

/// Everything the report shows, aggregated.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub datasets: Vec<String>,
    pub modes: Vec<String>,
    pub tasks: BTreeMap<String, Vec<String>>,
    /// (dataset, task, mode) → probe top-1 over seeds.
    pub probe: BTreeMap<(String, String, String), Agg>,
    /// (dataset, task, mode, pretraining epoch) → probe top-1 over seeds, for every probed checkpoint;
    /// empty unless some run probed an earlier checkpoint as well as the final one.
    pub probe_by_epoch: BTreeMap<(String, String, String, usize), Agg>,
    /// (dataset, mode) pairs with at least one failed cell.
    pub failed: BTreeSet<(String, String)>,
    /// The most seeds any (dataset, mode) has: fewer is flagged "n=k".
    pub expected_n: usize,
    /// (dataset, task, family) → destruction rate over seeds.
    pub destruction: BTreeMap<(String, String, String), Agg>,
    /// (dataset, task) → the destruction classifier's clean accuracy over seeds.
    pub clean: BTreeMap<(String, String), Agg>,
    /// (dataset, mode) → seed → task → destruction rate of the run's own `viewmaker` views, for
    /// runs that train one: per seed, so that tasks can be compared paired.
    pub viewmaker_destruction: BTreeMap<(String, String), BTreeMap<u64, BTreeMap<String, f64>>>,
    pub families: Vec<String>,
    pub comparisons: Vec<Comparison>,
    /// The mechanism study's questions, those whose cells exist.
    pub mechanism: Vec<super::mechanism::Question>,
    /// "Cures compared", when the experiment holds its cells.
    pub cures: Option<super::cures::Cures>,
    /// (dataset, mode) of twin cells → the cell they are the same as: their probe entries are
    /// that cell's numbers, shown marked, never tested or ranked as a measurement of their own.
    pub same: BTreeMap<(String, String), super::load::Same>,
}

impl Summary {
    /// Whether (dataset, mode) are twin cells (see [`Summary::same`]).
    pub fn is_twin(&self, ds: &str, mode: &str) -> bool {
        self.same.contains_key(&(ds.to_string(), mode.to_string()))
    }
}

pub fn summarise(exp: &Experiment) -> Summary {
    let cells = &exp.cells;
    let datasets = cells.iter().map(|c| c.dataset.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let mut s = Summary { datasets, ..Summary::default() };
    let mut modes: Vec<String> = cells.iter().map(|c| c.mode.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    modes.sort_by_key(|m| mode_key(m));
    s.modes = modes;
    s.failed = cells.iter().filter(|c| c.failed()).map(|c| (c.dataset.clone(), c.mode.clone())).collect();
    s.same = cells.iter().filter_map(|c| Some(((c.dataset.clone(), c.mode.clone()), c.same_as.clone()?))).collect();
    for ds in &s.datasets {
        let of_ds = || cells.iter().filter(move |c| &c.dataset == ds);
        let tasks: BTreeSet<String> =
            of_ds().filter_map(|c| c.probe.as_ref()).flat_map(|p| p.tasks.keys().cloned()).collect();
        let tasks = ordered_tasks(tasks);
        for t in &tasks {
            for m in &s.modes {
                let v: Vec<f64> = of_ds()
                    .filter(|c| &c.mode == m)
                    .filter_map(|c| c.probe.as_ref()?.tasks.get(t).map(|pt| pt.top1))
                    .collect();
                if let Some(a) = agg(&v) {
                    s.probe.insert((ds.clone(), t.clone(), m.clone()), a);
                }
            }
        }
        s.tasks.insert(ds.clone(), tasks);
    }
    s.expected_n = s.probe.values().map(|a| a.n).max().unwrap_or(0);
    s.probe_by_epoch = by_epoch(cells);
    summarise_destruction(cells, &mut s);
    s.comparisons = comparisons(&s);
    s.mechanism = super::mechanism::questions(&s);
    s.cures = super::cures::compare(&s, exp.theory.as_ref().map(|t| &t.json));
    s
}

/// Probe accuracy per (dataset, task, mode, epoch) over seeds, when any run probed an earlier
/// checkpoint (`train.keep_epochs`).
fn by_epoch(cells: &[Cell]) -> BTreeMap<(String, String, String, usize), Agg> {
    if !cells.iter().any(|c| c.probe.as_ref().is_some_and(|p| !p.epochs.is_empty())) {
        return BTreeMap::new();
    }
    let mut values: BTreeMap<(String, String, String, usize), Vec<f64>> = BTreeMap::new();
    for c in cells {
        let Some(p) = &c.probe else { continue };
        for (epoch, tasks) in p.by_epoch() {
            for (task, t) in tasks {
                values.entry((c.dataset.clone(), task.clone(), c.mode.clone(), epoch)).or_default().push(t.top1);
            }
        }
    }
    values.into_iter().filter_map(|(k, v)| Some((k, agg(&v)?))).collect()
}

/// Destruction per (dataset, task, family): runs of the same seed (different view modes measure
/// the expert family again) are averaged first, so n counts seeds.
fn summarise_destruction(cells: &[Cell], s: &mut Summary) {
    type Key = (String, String, String);
    let mut by_seed: BTreeMap<Key, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    let mut clean: BTreeMap<(String, String), BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for c in cells {
        let Some(d) = &c.destruction else { continue };
        for (task, t) in &d.tasks {
            if let Some(own) = t.families.get("viewmaker").filter(|_| c.mode.starts_with("viewmaker")) {
                let runs = s.viewmaker_destruction.entry((c.dataset.clone(), c.mode.clone())).or_default();
                runs.entry(c.seed).or_default().insert(task.clone(), own.destruction_rate);
            }
            clean
                .entry((c.dataset.clone(), task.clone()))
                .or_default()
                .entry(c.seed)
                .or_default()
                .push(t.clean_accuracy);
            for (fam, f) in &t.families {
                let key = (c.dataset.clone(), task.clone(), fam.clone());
                by_seed.entry(key).or_default().entry(c.seed).or_default().push(f.destruction_rate);
            }
        }
    }
    let seed_means = |m: &BTreeMap<u64, Vec<f64>>| -> Vec<f64> {
        m.values().map(|v| v.iter().sum::<f64>() / v.len() as f64).collect()
    };
    let mut families: Vec<String> = by_seed.keys().map(|k| k.2.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    families.sort_by_key(|f| {
        if f == "identity" {
            (0, 0, String::new())
        } else {
            let k = mode_key(f);
            (k.0 + 1, k.1, k.2)
        }
    });
    s.families = families;
    s.destruction = by_seed.iter().filter_map(|(k, m)| Some((k.clone(), agg(&seed_means(m))?))).collect();
    s.clean = clean.iter().filter_map(|(k, m)| Some((k.clone(), agg(&seed_means(m))?))).collect();
}

/// Every overlay-dropping mode against expert, on every task of every dataset with an overlay.
fn comparisons(s: &Summary) -> Vec<Comparison> {
    let mut out = Vec::new();
    for ds in &s.datasets {
        let Some((main, overlays)) = task_roles(&s.tasks[ds]) else { continue };
        for m in s.modes.iter().filter(|m| can_drop_overlay(m) && !s.is_twin(ds, m)) {
            for (task, role) in std::iter::once((&main, "suppressed")).chain(overlays.iter().map(|t| (t, "overlay"))) {
                let get = |mode: &str| s.probe.get(&(ds.clone(), task.clone(), mode.to_string()));
                let (Some(e), Some(o)) = (get("expert"), get(m)) else { continue };
                // The question: a gain on the suppressed task, a cost on an overlay task.
                let alt = if role == "suppressed" { Alternative::Greater } else { Alternative::Less };
                let (test, verdict) = compare(e, o, alt);
                out.push(Comparison {
                    dataset: ds.clone(),
                    mode: m.clone(),
                    task: task.clone(),
                    role,
                    expert: e.clone(),
                    other: o.clone(),
                    test,
                    verdict,
                });
            }
        }
    }
    out
}
