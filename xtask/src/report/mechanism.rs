//! The mechanism study's two questions (issue 17), answered by Welch's t-test over seeds when an
//! experiment holds their cells:
//!
//! - *suppression*: with `colour` views, is the photo probe lower on `photos+digits` than on
//!   `photos`? (photos − photos+digits > 0)
//! - *cure*: on `photos+digits`, is the photo probe higher with `colour+dropout:p` than with
//!   `colour`, and at what cost on the digit probe?
//!
//! View modes are plain strings here: whatever view family `colour` is, only its name matters.

use super::markdown::pct;
use super::stats::{Agg, Summary};
use super::welch::{ALPHA, Alternative, Kind, POWER, Test, seeds_needed, welch};
use serde::Serialize;
use std::fmt::Write;

/// The view family whose suppression and cure the study measures.
const BASE: &str = "colour";
const CURE_PREFIX: &str = "colour+dropout:";
const CLEAN: &str = "photos";
const OVERLAID: &str = "photos+digits";
const MAIN_TASK: &str = "photo";
const OVERLAY_TASK: &str = "digit";

/// Which of the two questions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Asks {
    Suppression,
    Cure,
}

/// What the test answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// Significant in the direction asked.
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
    /// The two groups (first, second): photo probe top-1 over seeds.
    pub groups: [Agg; 2],
    #[serde(flatten)]
    pub test: Test,
    pub answer: Answer,
    /// Seeds per group to resolve the measured effect (see [`seeds_needed`]), when not observed.
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
}

fn probe<'a>(s: &'a Summary, ds: &str, task: &str, mode: &str) -> Option<&'a Agg> {
    s.probe.get(&(ds.to_string(), task.to_string(), mode.to_string()))
}

fn answer(t: &Test) -> Answer {
    match t.test {
        Kind::OneSeed => Answer::OneSeed,
        Kind::NoVariance => Answer::NoVariance,
        Kind::Welch if t.significant() => Answer::Observed,
        Kind::Welch => Answer::NotObserved,
    }
}

fn question(q: Asks, mode: &str, compares: String, a: &Agg, b: &Agg, cost: Option<Cost>) -> Question {
    let test = welch(a, b, Alternative::Greater);
    let answer = answer(&test);
    let seeds_needed =
        if answer == Answer::NotObserved { seeds_needed(a, b, test.diff, Alternative::Greater) } else { None };
    Question {
        question: q,
        view_mode: mode.to_string(),
        compares,
        groups: [a.clone(), b.clone()],
        test,
        answer,
        seeds_needed,
        cost,
    }
}

/// The questions whose cells exist in `s`, suppression first, then a cure per dropout mode.
pub fn questions(s: &Summary) -> Vec<Question> {
    let mut out = Vec::new();
    if let (Some(a), Some(b)) = (probe(s, CLEAN, MAIN_TASK, BASE), probe(s, OVERLAID, MAIN_TASK, BASE)) {
        let what = format!("{MAIN_TASK} probe with `{BASE}` views, {CLEAN} − {OVERLAID}");
        out.push(question(Asks::Suppression, BASE, what, a, b, None));
    }
    let Some(base) = probe(s, OVERLAID, MAIN_TASK, BASE) else { return out };
    for m in s.modes.iter().filter(|m| m.starts_with(CURE_PREFIX) && !s.is_twin(OVERLAID, m)) {
        let Some(cured) = probe(s, OVERLAID, MAIN_TASK, m) else { continue };
        let cost = match (probe(s, OVERLAID, OVERLAY_TASK, m), probe(s, OVERLAID, OVERLAY_TASK, BASE)) {
            (Some(a), Some(b)) => {
                Some(Cost { task: OVERLAY_TASK, groups: [a.clone(), b.clone()], test: welch(a, b, Alternative::Less) })
            }
            _ => None,
        };
        let what = format!("{MAIN_TASK} probe on {OVERLAID}, `{m}` − `{BASE}`");
        out.push(question(Asks::Cure, m, what, cured, base, cost));
    }
    out
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
    let mut s = format!("{} points ({} % vs {} %)", points(t.diff), pct(a.mean), pct(b.mean));
    match (t.test, t.ci95, t.p) {
        (Kind::Welch, Some([lo, hi]), Some(p)) => {
            let _ = write!(
                s,
                ", 95 % CI [{}, {}], one-sided {} (Welch, {} vs {} seeds)",
                points(lo),
                points(hi),
                p_text(p),
                t.n[0],
                t.n[1]
            );
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
    match (q.answer, q.test.p) {
        (Answer::Observed, Some(p)) => format!("observed ({})", p_text(p)),
        (Answer::NotObserved, Some(p)) => format!("not observed at this size ({})", p_text(p)),
        (Answer::NoVariance, _) => "not tested (no seed-to-seed variation)".into(),
        _ => "not tested (one seed: no test is possible)".into(),
    }
}

/// The line of one question in "The mechanism".
fn line(q: &Question) -> String {
    let title = match q.question {
        Asks::Suppression => "Suppression".to_string(),
        Asks::Cure => format!("Cure with `{}`", q.view_mode),
    };
    let mut s = format!("- **{title}** ({}): {}", q.compares, test_text(&q.test, &q.groups[0], &q.groups[1]));
    match q.answer {
        Answer::Observed => s.push_str(": **observed**."),
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
            test_text(&c.test, &c.groups[0], &c.groups[1])
        );
    }
    s
}

/// The effect measured and the seeds the formula says would resolve it.
fn resolution(q: &Question) -> String {
    let d = points(q.test.diff);
    match q.seeds_needed {
        Some(n) => format!(
            "Measured effect {d} points; resolving it with {:.0} % power at one-sided α {ALPHA} needs about {n:.0} \
             seeds per group (n ≈ 2·((z₀.₉₅ + z₀.₈₀)·s/d)², s² the mean of the two groups' seed variances).",
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
    let _ = writeln!(
        out,
        "Does the digit overlay suppress the photo task under `{BASE}` views, and does dropping it \
         (`{CURE_PREFIX}p`) cure that, at what cost on the digit task? Each answer is Welch's t-test over seeds, \
         one-sided at α {ALPHA}; differences are in points of probe top-1.\n"
    );
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
    let sup = match sup {
        Some(q) => format!("suppression {}", short(q)),
        None => format!("suppression not answered (no `{BASE}` runs on both {CLEAN} and {OVERLAID})"),
    };
    let cure = if cures.is_empty() {
        format!("cure not answered (no `{BASE}` and `{CURE_PREFIX}p` runs on {OVERLAID})")
    } else {
        format!("cure {}", cures.join(", "))
    };
    format!("The mechanism study: {sup}; {cure}.")
}
