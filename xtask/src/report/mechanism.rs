//! The mechanism study's questions (issue 17), answered by Welch's t-test over seeds when an
//! experiment holds their cells, with the Holm–Bonferroni correction over the questions asked
//! (issue 26; [`holm`]) — and over the cures' costs, a second family:
//!
//! - *suppression*: with `colour` views, is the photo probe lower on `photos+digits` than on
//!   `photos`? (photos − photos+digits > 0)
//! - *cure*: on `photos+digits`, is the photo probe higher with `colour+dropout:p` than with
//!   `colour`, and at what cost on the digit probe?
//! - *destruction* (issue 26): do a viewmaker's views destroy the digit's label more than the
//!   photo's? (paired over seeds; asked where viewmaker runs have destruction results)
//!
//! View modes are plain strings here: whatever view family `colour` is, only its name matters.

use super::markdown::pct;
use super::stats::{Agg, Summary, agg};
use super::welch::{ALPHA, Alternative, Kind, POWER, Test, holm, seeds_needed, welch};
use serde::Serialize;
use std::fmt::Write;

/// The view family whose suppression and cure the study measures.
const BASE: &str = "colour";
const CURE_PREFIX: &str = "colour+dropout:";
const CLEAN: &str = "photos";
const OVERLAID: &str = "photos+digits";
const MAIN_TASK: &str = "photo";
const OVERLAY_TASK: &str = "digit";

/// Which question.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Asks {
    Suppression,
    Cure,
    /// Do a viewmaker's views destroy the overlay's label more than the photo's (issue 26)?
    Destruction,
}

/// What the test answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// Significant in the direction asked, after the correction.
    Observed,
    /// Tested, not significant.
    NotObserved,
    /// A group has one seed: no test is possible.
    OneSeed,
    /// No seed-to-seed variation in either group: the difference is exact, not tested.
    NoVariance,
}

/// One question, tested.
#[derive(Clone, Debug, Serialize)]
pub struct Question {
    pub question: Asks,
    /// The cure's view mode (`colour+dropout:p`); `colour` for suppression.
    pub view_mode: String,
    /// What `diff` is: first group minus second.
    pub compares: String,
    /// The two groups (first, second): photo probe top-1 over seeds (for destruction: the digit's
    /// and the photo's destruction rates).
    pub groups: [Agg; 2],
    #[serde(flatten)]
    pub test: Test,
    /// Holm-adjusted p over the questions tested (`None`: no test made); the answer reads it.
    pub p_holm: Option<f64>,
    pub answer: Answer,
    /// Seeds per group to resolve the measured effect at α / (questions tested) (see
    /// [`seeds_needed`]), when not observed.
    pub seeds_needed: Option<f64>,
    /// For the cure: the digit probe, dropout mode minus `colour` (one-sided for a loss).
    pub cost: Option<Cost>,
}

/// The cure's price on the overlay task.
#[derive(Clone, Debug, Serialize)]
pub struct Cost {
    pub task: &'static str,
    /// Digit probe top-1 over seeds: (dropout mode, `colour`).
    pub groups: [Agg; 2],
    #[serde(flatten)]
    pub test: Test,
    /// Holm-adjusted p over the cures' costs.
    pub p_holm: Option<f64>,
}

fn probe<'a>(s: &'a Summary, ds: &str, task: &str, mode: &str) -> Option<&'a Agg> {
    s.probe.get(&(ds.to_string(), task.to_string(), mode.to_string()))
}

fn answer(t: &Test, p_holm: Option<f64>) -> Answer {
    match t.test {
        Kind::OneSeed => Answer::OneSeed,
        Kind::NoVariance => Answer::NoVariance,
        Kind::Welch if p_holm.is_some_and(|p| p < ALPHA) => Answer::Observed,
        Kind::Welch => Answer::NotObserved,
    }
}

impl Question {
    /// Whether the test is paired over seeds (a one-sample t-test of per-seed differences: the
    /// destruction question) rather than Welch's.
    pub fn paired(&self) -> bool {
        self.question == Asks::Destruction
    }
}

/// A question on groups `a` and `b` with its (uncorrected) `test`; [`correct`] answers it.
fn question(q: Asks, mode: &str, compares: String, groups: [&Agg; 2], test: Test, cost: Option<Cost>) -> Question {
    Question {
        question: q,
        view_mode: mode.to_string(),
        compares,
        groups: groups.map(Agg::clone),
        test,
        p_holm: None,
        answer: Answer::NotObserved,
        seeds_needed: None,
        cost,
    }
}

/// The questions whose cells exist in `s`, suppression first, then a cure per dropout mode, each
/// answered at α after Holm's correction over the questions tested (and the costs over theirs).
pub fn questions(s: &Summary) -> Vec<Question> {
    let mut out = Vec::new();
    if let (Some(a), Some(b)) = (probe(s, CLEAN, MAIN_TASK, BASE), probe(s, OVERLAID, MAIN_TASK, BASE)) {
        let what = format!("{MAIN_TASK} probe with `{BASE}` views, {CLEAN} − {OVERLAID}");
        out.push(question(Asks::Suppression, BASE, what, [a, b], welch(a, b, Alternative::Greater), None));
    }
    if let Some(base) = probe(s, OVERLAID, MAIN_TASK, BASE) {
        for m in s.modes.iter().filter(|m| m.starts_with(CURE_PREFIX) && !s.is_twin(OVERLAID, m)) {
            let Some(cured) = probe(s, OVERLAID, MAIN_TASK, m) else { continue };
            let cost = match (probe(s, OVERLAID, OVERLAY_TASK, m), probe(s, OVERLAID, OVERLAY_TASK, BASE)) {
                (Some(a), Some(b)) => Some(Cost {
                    task: OVERLAY_TASK,
                    groups: [a.clone(), b.clone()],
                    test: welch(a, b, Alternative::Less),
                    p_holm: None,
                }),
                _ => None,
            };
            let what = format!("{MAIN_TASK} probe on {OVERLAID}, `{m}` − `{BASE}`");
            let test = welch(cured, base, Alternative::Greater);
            out.push(question(Asks::Cure, m, what, [cured, base], test, cost));
        }
    }
    out.extend(destruction_questions(s));
    correct(&mut out);
    out
}

/// For each mode that trains a viewmaker on `photos+digits` and has label-destruction results:
/// do its views destroy the digit's label more than the photo's? The test is paired over seeds —
/// a one-sample t-test of the per-seed differences (Welch's test against a spread-free zero has
/// exactly its t and n − 1 degrees of freedom).
fn destruction_questions(s: &Summary) -> Vec<Question> {
    let mut out = Vec::new();
    for ((ds, mode), by_seed) in &s.viewmaker_destruction {
        if ds != OVERLAID {
            continue;
        }
        let pairs: Vec<(f64, f64)> =
            by_seed.values().filter_map(|t| Some((*t.get(OVERLAY_TASK)?, *t.get(MAIN_TASK)?))).collect();
        let column = |f: fn(&(f64, f64)) -> f64| agg(&pairs.iter().map(f).collect::<Vec<_>>());
        let (Some(digit), Some(photo), Some(gap)) = (column(|p| p.0), column(|p| p.1), column(|p| p.0 - p.1)) else {
            continue;
        };
        if gap.n < 2 {
            continue; // asked over seeds: one run answers nothing (the destruction table shows it)
        }
        let zero = Agg { mean: 0.0, std: Some(0.0), n: gap.n };
        let what = format!("label destruction by `{mode}`'s views on {OVERLAID}, {OVERLAY_TASK} − {MAIN_TASK}");
        let test = welch(&gap, &zero, Alternative::Greater);
        out.push(question(Asks::Destruction, mode, what, [&digit, &photo], test, None));
    }
    out
}

/// Holm's correction within the questions and within the costs, then each answer and, for a
/// question not observed, the seeds that would resolve it at the family's Bonferroni level.
fn correct(qs: &mut [Question]) {
    let welch_p = |t: &Test| if t.test == Kind::Welch { t.p } else { None };
    let adjusted = holm(&qs.iter().map(|q| welch_p(&q.test)).collect::<Vec<_>>());
    let tested = adjusted.iter().flatten().count().max(1);
    for (q, p) in qs.iter_mut().zip(adjusted) {
        q.p_holm = p;
        q.answer = answer(&q.test, p);
        if q.answer == Answer::NotObserved && !q.paired() {
            let alpha = ALPHA / tested as f64;
            q.seeds_needed = seeds_needed(&q.groups[0], &q.groups[1], q.test.diff, Alternative::Greater, alpha);
        }
    }
    let costs: Vec<&mut Cost> = qs.iter_mut().filter_map(|q| q.cost.as_mut()).collect();
    let adjusted = holm(&costs.iter().map(|c| welch_p(&c.test)).collect::<Vec<_>>());
    for (c, p) in costs.into_iter().zip(adjusted) {
        c.p_holm = p;
    }
}

fn points(v: f64) -> String {
    format!("{:+.1}", v * 100.0)
}

/// `p = 0.049`, `p < 0.001`: enough digits that a p just under α does not print as α.
pub fn p_text(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".into()
    } else if p < 0.1 {
        format!("p = {p:.4}")
    } else {
        format!("p = {p:.2}")
    }
}

/// `+10.0 points (52.0 % vs 42.0 %), 95 % CI [+5.5, +14.5], one-sided p = 0.0018 (Welch, 3 vs 3
/// seeds)`, or the sentence saying why no test was made.
pub fn test_text(t: &Test, a: &Agg, b: &Agg) -> String {
    corrected_test_text(t, a, b, None, false)
}

/// [`test_text`] with the Holm-adjusted p after the raw one, when there is one; `paired`: a
/// one-sample t-test of per-seed differences.
fn corrected_test_text(t: &Test, a: &Agg, b: &Agg, p_holm: Option<f64>, paired: bool) -> String {
    let mut s = format!("{} points ({} % vs {} %)", points(t.diff), pct(a.mean), pct(b.mean));
    match (t.test, t.ci95, t.p) {
        (Kind::Welch, Some([lo, hi]), Some(p)) => {
            let _ = write!(s, ", 95 % CI [{}, {}], one-sided {}", points(lo), points(hi), p_text(p));
            if let Some(h) = p_holm {
                let _ = write!(s, ", Holm-adjusted {}", p_text(h));
            }
            if paired {
                let _ = write!(s, " (paired t over {} seeds)", t.n[0]);
            } else {
                let _ = write!(s, " (Welch, {} vs {} seeds)", t.n[0], t.n[1]);
            }
        }
        (Kind::NoVariance, ..) => {
            s.push_str("; no seed-to-seed variation in either group: the difference is exact, no test is made")
        }
        _ => s.push_str("; one seed: no test is possible"),
    }
    s
}

/// What was answered, in a few words, for the closing verdict line.
fn short(q: &Question) -> String {
    match (q.answer, q.p_holm) {
        (Answer::Observed, Some(p)) => format!("observed (Holm-adjusted {})", p_text(p)),
        (Answer::NotObserved, Some(p)) => format!("not observed at this size (Holm-adjusted {})", p_text(p)),
        (Answer::NoVariance, _) => "not tested (no seed-to-seed variation)".into(),
        _ => "not tested (one seed: no test is possible)".into(),
    }
}

/// The line of one question in "The mechanism".
fn line(q: &Question) -> String {
    let title = match q.question {
        Asks::Suppression => "Suppression".to_string(),
        Asks::Cure => format!("Cure with `{}`", q.view_mode),
        Asks::Destruction => format!("Destruction by `{}`", q.view_mode),
    };
    let test = corrected_test_text(&q.test, &q.groups[0], &q.groups[1], q.p_holm, q.paired());
    let mut s = format!("- **{title}** ({}): {test}", q.compares);
    match q.answer {
        Answer::Observed => s.push_str(": **observed**."),
        Answer::NotObserved if q.paired() => s.push_str(": **not observed at this size**."),
        Answer::NotObserved => {
            s.push_str(": **not observed at this size**. ");
            s.push_str(&resolution(q));
        }
        _ => s.push('.'),
    }
    if let Some(c) = &q.cost {
        let _ = write!(
            s,
            " Cost on {} (one-sided for a loss): {}.",
            c.task,
            corrected_test_text(&c.test, &c.groups[0], &c.groups[1], c.p_holm, false)
        );
    }
    s
}

/// The effect measured and the seeds the formula says would resolve it.
fn resolution(q: &Question) -> String {
    let d = points(q.test.diff);
    match q.seeds_needed {
        Some(n) => format!(
            "Measured effect {d} points; resolving it with {:.0} % power at the corrected level (one-sided α \
             {ALPHA} divided by the questions tested, Bonferroni's bound) needs about {n:.0} seeds per group (n ≈ 2·((z + z₀.₈₀)·s/d)², z the \
             normal quantile at that level, s² the mean of the two groups' seed variances).",
            POWER * 100.0
        ),
        None => format!("Measured effect {d} points, in the opposite direction: more seeds would not show it."),
    }
}

/// "The mechanism" section; empty when the experiment holds neither question's cells.
pub fn markdown(qs: &[Question]) -> String {
    if qs.is_empty() {
        return String::new();
    }
    let mut out = String::from("### The mechanism\n\n");
    if qs.iter().any(|q| q.question != Asks::Destruction) {
        out.push_str(&format!(
            "Does the digit overlay suppress the photo task under `{BASE}` views, and does dropping it \
             (`{CURE_PREFIX}p`) cure that, at what cost on the digit task? Each answer is Welch's t-test over seeds, \
             one-sided, at α {ALPHA} after the Holm–Bonferroni correction over the questions below (the costs are a \
             second family, corrected the same way); differences are in points of probe top-1. "
        ));
    }
    if qs.iter().any(|q| q.question == Asks::Destruction) {
        out.push_str(&format!(
            "Do the viewmaker's views destroy the digit's label more than the photo's? Label-destruction rates \
             (§5.2 classifiers on the test split), digit minus photo, by a paired t-test over seeds, one-sided, at α \
             {ALPHA} after the Holm–Bonferroni correction over the questions below."
        ));
    }
    out.push_str("\n\n");
    for q in qs {
        let _ = writeln!(out, "{}", line(q));
    }
    out.push('\n');
    out
}

/// The mechanism part of the closing verdict line.
pub fn verdict(qs: &[Question]) -> String {
    let sup = qs.iter().find(|q| q.question == Asks::Suppression);
    let cures: Vec<String> = qs
        .iter()
        .filter(|q| q.question == Asks::Cure)
        .map(|q| format!("with `{}` {}", q.view_mode, short(q)))
        .collect();
    let destruction: Vec<String> = qs
        .iter()
        .filter(|q| q.question == Asks::Destruction)
        .map(|q| format!("; `{}`'s views destroy the digit more than the photo: {}", q.view_mode, short(q)))
        .collect();
    let sup = match sup {
        Some(q) => format!("suppression {}", short(q)),
        None => format!("suppression not answered (no `{BASE}` runs on both {CLEAN} and {OVERLAID})"),
    };
    let cure = if cures.is_empty() {
        format!("cure not answered (no `{BASE}` and `{CURE_PREFIX}p` runs on {OVERLAID})")
    } else {
        format!("cure {}", cures.join(", "))
    };
    format!("The mechanism study: {sup}; {cure}{}.", destruction.concat())
}
