//! Where a step's time goes (issue 25 item 3): each binary of a study step (`featdrop-train`,
//! `featdrop-eval probe`, `featdrop-eval destruction`) charges its time to named phases and writes
//! them to `<run>/costs-<step>.json`, adding to what its earlier attempts wrote there, so that
//! `cargo xtask reproduce` can break each cell's wall time down.
//!
//! The clock is per process and starts at `main` ([`start`]); until then nothing is measured and
//! every call here does nothing, so library users pay nothing. Phases nest: the time of an inner
//! phase (the dataset built inside pretraining, classifiers trained by the trainer's monitor) is
//! charged to it alone, not to the phase around it as well, so the phases of a process add up to
//! its own lifetime. Only the thread that started the clock charges phases; other threads' calls
//! do nothing (their time is the caller's phase's).

use crate::io::{read_json, write_json_atomic};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::Instant;

/// From `main` until the step's work begins: argument parsing, config checks, device set-up.
pub const START: &str = "start";
/// Building or generating the dataset.
pub const DATA: &str = "data";
/// Contrastive pretraining (the trainer's epochs, its checkpoints and monitors).
pub const PRETRAINING: &str = "pretraining";
/// Linear probes (features and probe training).
pub const PROBES: &str = "probes";
/// Scoring label destruction (the classifiers' training aside).
pub const DESTRUCTION: &str = "destruction";
/// Training (or loading from the cache) the destruction classifiers: the analysis's and the
/// trainer's monitor's.
pub const CLASSIFIERS: &str = "classifiers";

/// A step's costs over every attempt: `costs-<step>.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepCosts {
    /// The processes' own lifetimes (from `main` to their last save), seconds; what a parent
    /// measured beyond it (loading the executable and libtorch) is the process start it paid.
    pub process_s: f64,
    /// Seconds by phase.
    pub phases: BTreeMap<String, f64>,
    /// Processes that saved here.
    pub attempts: u32,
}

impl StepCosts {
    /// The file of step `step` in run folder `run_dir`.
    pub fn path(run_dir: &Path, step: &str) -> PathBuf {
        run_dir.join(format!("costs-{step}.json"))
    }

    /// The costs recorded at `path`; none yet is zero; an unreadable file is an error naming it.
    pub fn read(path: &Path) -> Result<Self> {
        if path.exists() { read_json(path) } else { Ok(Self::default()) }
    }

    /// `self` plus one process's lifetime and phases.
    fn plus(&self, process_s: f64, phases: &BTreeMap<&'static str, f64>) -> Self {
        let mut out = Self { process_s: self.process_s + process_s, attempts: self.attempts + 1, ..self.clone() };
        for (k, v) in phases {
            *out.phases.entry(k.to_string()).or_default() += v;
        }
        out
    }
}

/// Exclusive time per phase, kept on a stack of open phases; times are seconds on any clock.
#[derive(Debug)]
struct Ledger {
    t0: f64,
    /// Open phases, outermost first, each with when it was last resumed.
    stack: Vec<(&'static str, f64)>,
    totals: BTreeMap<&'static str, f64>,
}

impl Ledger {
    fn new(now: f64) -> Self {
        Self { t0: now, stack: vec![(START, now)], totals: BTreeMap::new() }
    }

    /// Charges the innermost open phase up to `now`.
    fn charge(&mut self, now: f64) {
        if let Some((name, since)) = self.stack.last_mut() {
            *self.totals.entry(name).or_default() += now - *since;
            *since = now;
        }
    }

    fn push(&mut self, name: &'static str, now: f64) {
        self.charge(now);
        self.stack.push((name, now));
    }

    /// Closes the innermost phase (never the outermost); the one around it resumes.
    fn pop(&mut self, now: f64) {
        if self.stack.len() > 1 {
            self.charge(now);
            self.stack.pop();
            if let Some((_, since)) = self.stack.last_mut() {
                *since = now;
            }
        }
    }

    /// The outermost phase becomes `name` (the process's main work begins).
    fn switch_root(&mut self, name: &'static str, now: f64) {
        self.charge(now);
        for (_, since) in &mut self.stack {
            *since = now;
        }
        self.stack[0].0 = name;
    }

    /// Lifetime and totals up to `now`, open phases included.
    fn snapshot(&self, now: f64) -> (f64, BTreeMap<&'static str, f64>) {
        let mut totals = self.totals.clone();
        if let Some((name, since)) = self.stack.last() {
            *totals.entry(name).or_default() += now - since;
        }
        (now - self.t0, totals)
    }
}

struct Clock {
    origin: Instant,
    owner: ThreadId,
    ledger: Ledger,
    /// Where [`save`] writes, and what earlier attempts left there.
    file: Option<(PathBuf, StepCosts)>,
}

impl Clock {
    fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }
}

static CLOCK: Mutex<Option<Clock>> = Mutex::new(None);

/// Runs `f` on the clock when this thread started it.
fn with_clock<T>(f: impl FnOnce(&mut Clock) -> T) -> Option<T> {
    let mut guard = CLOCK.lock().unwrap_or_else(|e| e.into_inner());
    let clock = guard.as_mut().filter(|c| c.owner == std::thread::current().id())?;
    Some(f(clock))
}

/// Starts this process's clock, in the [`START`] phase; the first line of `main`.
pub fn start() {
    let origin = Instant::now();
    let clock = Clock { origin, owner: std::thread::current().id(), ledger: Ledger::new(0.0), file: None };
    *CLOCK.lock().unwrap_or_else(|e| e.into_inner()) = Some(clock);
}

/// Sets where [`save`] writes: step `step` of run folder `run_dir`; what earlier attempts wrote
/// there is read now and added to. Nothing is written until [`save`].
pub fn record_to(run_dir: &Path, step: &str) -> Result<()> {
    let path = StepCosts::path(run_dir, step);
    let earlier = StepCosts::read(&path)?;
    with_clock(|c| c.file = Some((path, earlier)));
    Ok(())
}

/// The process's main work begins: from now on its time is `name`'s (not [`START`]'s).
pub fn begin_work(name: &'static str) {
    with_clock(|c| {
        let now = c.now();
        c.ledger.switch_root(name, now)
    });
}

/// A phase, open until dropped.
#[must_use = "the phase ends when this is dropped"]
pub struct Phase(bool);

/// Opens phase `name` inside the current one until the returned guard is dropped.
pub fn phase(name: &'static str) -> Phase {
    Phase(
        with_clock(|c| {
            let now = c.now();
            c.ledger.push(name, now)
        })
        .is_some(),
    )
}

impl Drop for Phase {
    fn drop(&mut self) {
        if self.0 {
            with_clock(|c| {
                let now = c.now();
                c.ledger.pop(now)
            });
        }
    }
}

/// Writes the earlier attempts' costs plus this process's so far (atomically); again later, it
/// replaces this process's share with the newer figures. Does nothing before [`record_to`].
pub fn save() -> Result<()> {
    let Some(Some((path, costs))) = with_clock(|c| {
        let (process_s, phases) = c.ledger.snapshot(c.now());
        c.file.as_ref().map(|(path, earlier)| (path.clone(), earlier.plus(process_s, &phases)))
    }) else {
        return Ok(());
    };
    write_json_atomic(&path, &costs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nested phases charge exclusive time: the parts add up to the lifetime.
    #[test]
    fn nested_phases_charge_each_second_once() {
        let mut l = Ledger::new(10.0);
        l.switch_root(PRETRAINING, 12.0); // start: 2 s
        l.push(DATA, 13.0); // pretraining: 1 s
        l.pop(16.0); // data: 3 s
        l.push(CLASSIFIERS, 20.0); // pretraining: +4 s
        l.push(DATA, 21.0); // classifiers: 1 s
        l.pop(22.0); // data: +1 s
        l.pop(25.0); // classifiers: +3 s
        l.pop(26.0); // the outermost phase is never closed
        let (life, t) = l.snapshot(30.0); // pretraining: +5 s
        assert_eq!(life, 20.0);
        assert_eq!(t[START], 2.0);
        assert_eq!(t[DATA], 4.0);
        assert_eq!(t[CLASSIFIERS], 4.0);
        assert_eq!(t[PRETRAINING], 10.0);
        assert_eq!(t.values().sum::<f64>(), life);
    }

    /// A resumed step adds its process's costs to the earlier attempts'.
    #[test]
    fn a_later_attempt_adds_to_the_earlier_ones() {
        let earlier = StepCosts {
            process_s: 5.0,
            phases: [("data".to_string(), 1.0), ("pretraining".to_string(), 4.0)].into(),
            attempts: 1,
        };
        let now = earlier.plus(3.0, &[(PRETRAINING, 2.0), (START, 1.0)].into());
        assert_eq!(now.process_s, 8.0);
        assert_eq!(now.attempts, 2);
        assert_eq!(now.phases["pretraining"], 6.0);
        assert_eq!((now.phases["data"], now.phases["start"]), (1.0, 1.0));
    }

    /// Without a started clock every call does nothing and nothing is written.
    #[test]
    fn without_a_clock_nothing_is_measured_or_written() {
        let tmp = std::env::temp_dir().join(format!("featdrop-costs-{}", std::process::id()));
        // Another thread: a clock another test started on its own thread is not this one's.
        std::thread::spawn(move || {
            let _p = phase(DATA);
            record_to(&tmp, "train").unwrap();
            save().unwrap();
            assert!(!StepCosts::path(&tmp, "train").exists());
        })
        .join()
        .unwrap();
    }

    /// The whole path in one process: saved twice, the second save replaces this process's share.
    #[test]
    fn saving_twice_counts_this_process_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = StepCosts::path(dir.path(), "probe");
        let earlier = StepCosts { process_s: 1.0, phases: [("probes".to_string(), 1.0)].into(), attempts: 1 };
        write_json_atomic(&path, &earlier).unwrap();
        std::thread::spawn({
            let run = dir.path().to_path_buf();
            move || {
                start();
                record_to(&run, "probe").unwrap();
                begin_work(PROBES);
                {
                    let _d = phase(DATA);
                }
                save().unwrap();
                save().unwrap();
            }
        })
        .join()
        .unwrap();
        let c = StepCosts::read(&path).unwrap();
        assert_eq!(c.attempts, 2);
        assert!(c.process_s >= 1.0 && c.phases["probes"] >= 1.0 && c.phases.contains_key("data"), "{c:?}");
        let sum: f64 = c.phases.values().sum();
        assert!((sum - c.process_s).abs() < 1e-9, "phases {sum} vs lifetime {}", c.process_s);
    }
}
