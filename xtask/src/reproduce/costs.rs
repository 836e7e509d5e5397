//! Where the time goes (issue 25 item 3): a cell's wall time broken down into the phases its
//! binaries measured (`<run>/costs-<step>.json`, see `featdrop_core::costs`) plus the process
//! starts measured here, and a study's wall time broken down into what `reproduce` did
//! (`<experiment>/study.json`). The parts of each add up to its wall time: what no part claims is
//! `other`.

use anyhow::Result;
use featdrop_core::costs::{self as phases, StepCosts};
use featdrop_core::io::{read_json, write_json_atomic};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// This module's file in a cell's run folder: the process starts of its steps.
pub const LAUNCH_FILE: &str = "costs-launch.json";
/// The study's breakdown, in the experiment's folder.
pub const STUDY_FILE: &str = "study.json";
/// The steps whose binaries write costs files, by the name they write them under.
const STEPS: [&str; 3] = ["train", "probe", "destruction"];

/// The name a step's binary records its costs under (`featdrop_core::costs::record_to`).
pub fn step_name(step: &[String]) -> Option<&'static str> {
    match (step.first()?.as_str(), step.get(1).map(String::as_str)) {
        ("featdrop-train", _) => Some(STEPS[0]),
        ("featdrop-eval", Some("probe")) => Some(STEPS[1]),
        ("featdrop-eval", Some("destruction")) => Some(STEPS[2]),
        _ => None,
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Launch {
    /// Seconds the steps' processes ran before their `main` (loading the executable and libtorch).
    start_s: f64,
}

/// Runs a step of the cell in `run_dir` with `run` and charges to the cell's process start what
/// its process did not measure itself: its wall time here minus the lifetime it added to its
/// costs file. A step that failed, or wrote no costs (a binary of an older version), charges
/// nothing: its time stays in `other`. A cost figure is not worth failing a cell for: a costs
/// file that cannot be read or written is a warning.
pub fn around_step(run_dir: &Path, step: &[String], run: impl FnOnce() -> Result<()>) -> Result<()> {
    let Some(name) = step_name(step) else { return run() };
    let path = StepCosts::path(run_dir, name);
    let before = StepCosts::read(&path).map(|c| c.process_s);
    let t0 = Instant::now();
    let out = run();
    let wall = t0.elapsed().as_secs_f64();
    if out.is_ok() {
        let charged = before.and_then(|before| {
            let reported = StepCosts::read(&path)?.process_s - before;
            if reported > 0.0 { add_start(run_dir, (wall - reported).max(0.0)) } else { Ok(()) }
        });
        if let Err(e) = charged {
            eprintln!(
                "warning: {}: the process start of `{}` is not counted: {e:#}",
                run_dir.display(),
                step.join(" ")
            );
        }
    }
    out
}

fn add_start(run_dir: &Path, seconds: f64) -> Result<()> {
    let path = run_dir.join(LAUNCH_FILE);
    let mut launch: Launch = if path.exists() { read_json(&path)? } else { Launch::default() };
    launch.start_s += seconds;
    write_json_atomic(&path, &launch)
}

/// A cell's wall time over every attempt, by part (seconds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CellCosts {
    /// Processes starting: loading the executable and libtorch, parsing arguments and configs.
    pub process_start: f64,
    /// Building or generating datasets.
    pub data: f64,
    /// Contrastive pretraining.
    pub pretraining: f64,
    /// Linear probes.
    pub probes: f64,
    /// Scoring label destruction.
    pub destruction: f64,
    /// Training (or loading) destruction classifiers: the analysis's and the trainer's monitor's.
    pub classifiers: f64,
    /// The rest of the wall time: between steps, killed attempts' last moments, older binaries.
    pub other: f64,
}

impl CellCosts {
    /// Every part with its name, in table order (they sum to the wall time).
    pub fn parts(&self) -> [(&'static str, f64); 7] {
        [
            ("process start", self.process_start),
            ("data", self.data),
            ("pretraining", self.pretraining),
            ("probes", self.probes),
            ("destruction", self.destruction),
            ("classifiers", self.classifiers),
            ("other", self.other),
        ]
    }

    /// The breakdown of a cell in `run_dir` whose attempts took `wall` seconds, from its costs files.
    pub fn read(run_dir: &Path, wall: f64) -> Result<Self> {
        let mut c = Self::default();
        let launch = run_dir.join(LAUNCH_FILE);
        if launch.exists() {
            c.process_start = read_json::<Launch>(&launch)?.start_s;
        }
        for step in STEPS {
            for (phase, s) in StepCosts::read(&StepCosts::path(run_dir, step))?.phases {
                match phase.as_str() {
                    phases::START => c.process_start += s,
                    phases::DATA => c.data += s,
                    phases::PRETRAINING => c.pretraining += s,
                    phases::PROBES => c.probes += s,
                    phases::DESTRUCTION => c.destruction += s,
                    phases::CLASSIFIERS => c.classifiers += s,
                    // A phase of a newer binary: in `other`, below.
                    _ => {}
                }
            }
        }
        c.other = wall - c.parts().iter().map(|p| p.1).sum::<f64>();
        Ok(c)
    }
}

/// One invocation of `reproduce`, by part: `study.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StudyCosts {
    /// From start to the report's tables: what `reproduce` prints as the study's time.
    pub wall_s: f64,
    /// In order: setup (libtorch, building the binaries), planning (experiment, checks, configs,
    /// locks), cells, theory sweep, report; they sum to `wall_s`.
    pub parts: Vec<Part>,
    /// Cells this invocation ran, and of how many it was given (the others were finished or twins).
    pub cells_run: usize,
    pub cells: usize,
}

/// A named part of the study's wall time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub name: String,
    pub seconds: f64,
}

/// The study's clock: each [`Stopwatch::lap`] closes a part.
pub struct Stopwatch {
    last: Instant,
    parts: Vec<Part>,
}

impl Stopwatch {
    pub fn start() -> Self {
        Self { last: Instant::now(), parts: Vec::new() }
    }

    /// Closes part `name`: the time since the last lap.
    pub fn lap(&mut self, name: &str) {
        let now = Instant::now();
        self.parts.push(Part { name: name.into(), seconds: (now - self.last).as_secs_f64() });
        self.last = now;
    }

    /// The study so far, with the open part as `open`. The laps tile the time since the start,
    /// so their sum is the wall time.
    pub fn snapshot(&self, open: &str, cells_run: usize, cells: usize) -> StudyCosts {
        let now = Instant::now();
        let mut parts = self.parts.clone();
        parts.push(Part { name: open.into(), seconds: (now - self.last).as_secs_f64() });
        let wall_s = parts.iter().map(|p| p.seconds).sum();
        StudyCosts { wall_s, parts, cells_run, cells }
    }
}

impl StudyCosts {
    /// `study.json` of an experiment folder, if a `reproduce` wrote one.
    pub fn read(exp_dir: &Path) -> Result<Option<Self>> {
        let path = exp_dir.join(STUDY_FILE);
        if path.exists() { read_json(&path).map(Some) } else { Ok(None) }
    }

    pub fn write(&self, exp_dir: &Path) -> Result<()> {
        write_json_atomic(&exp_dir.join(STUDY_FILE), self)
    }

    /// Seconds of part `name` (0 when absent).
    pub fn part(&self, name: &str) -> f64 {
        self.parts.iter().filter(|p| p.name == name).map(|p| p.seconds).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn step_file(run: &Path, step: &str, process_s: f64, phases: &[(&str, f64)]) {
        let phases: BTreeMap<String, f64> = phases.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        write_json_atomic(&StepCosts::path(run, step), &StepCosts { process_s, phases, attempts: 1 }).unwrap();
    }

    /// The binaries' phases land in their parts, the process starts measured here in process
    /// start, and `other` is the rest of the wall time: the parts sum to it.
    #[test]
    fn a_cells_parts_sum_to_its_wall_time() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        step_file(run, "train", 60.0, &[("start", 1.0), ("data", 4.0), ("classifiers", 5.0), ("pretraining", 50.0)]);
        step_file(run, "probe", 12.0, &[("start", 1.0), ("data", 2.0), ("probes", 9.0)]);
        step_file(
            run,
            "destruction",
            20.0,
            &[("start", 0.5), ("data", 2.0), ("classifiers", 7.5), ("destruction", 10.0)],
        );
        write_json_atomic(&run.join(LAUNCH_FILE), &Launch { start_s: 3.0 }).unwrap();
        let c = CellCosts::read(run, 100.0).unwrap();
        let want = CellCosts {
            process_start: 5.5,
            data: 8.0,
            pretraining: 50.0,
            probes: 9.0,
            destruction: 10.0,
            classifiers: 12.5,
            other: 5.0,
        };
        assert_eq!(c, want);
        assert_eq!(c.parts().iter().map(|p| p.1).sum::<f64>(), 100.0);
        let none = CellCosts::read(&run.join("nothing-here"), 7.0).unwrap();
        assert_eq!((none.other, none.pretraining), (7.0, 0.0), "a cell without costs files is all `other`");
    }

    /// A step's process start is its wall time here minus the lifetime its binary added to its
    /// costs file; added up over steps and attempts; a failed step or one that wrote nothing
    /// charges nothing.
    #[test]
    fn a_steps_process_start_is_what_its_binary_did_not_measure() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        let probe: Vec<String> = ["featdrop-eval", "probe", "--run", "x"].map(String::from).to_vec();
        step_file(run, "probe", 1.0, &[]);
        let sleepy = |report: f64| {
            move || {
                std::thread::sleep(std::time::Duration::from_millis(30));
                step_file(run, "probe", 1.0 + report, &[]);
                Ok(())
            }
        };
        around_step(run, &probe, sleepy(0.01)).unwrap();
        let start = |run: &Path| read_json::<Launch>(&run.join(LAUNCH_FILE)).unwrap().start_s;
        let first = start(run);
        assert!(first >= 0.02, "30 ms in the step, 10 ms of it reported: {first}");
        around_step(run, &probe, || Err(anyhow::anyhow!("failed"))).unwrap_err();
        around_step(run, &probe, || Ok(())).unwrap();
        assert_eq!(start(run), first, "a failed step and one that reported nothing charge nothing");
        let other: Vec<String> = ["featdrop-theory", "sweep"].map(String::from).to_vec();
        around_step(run, &other, || Ok(())).unwrap();
        assert_eq!(step_name(&other), None);
        assert_eq!(step_name(&probe), Some("probe"));
    }

    /// The study's parts are laps of one clock and sum to its wall time.
    #[test]
    fn the_studys_parts_sum_to_its_wall_time() {
        let mut w = Stopwatch::start();
        for name in ["setup", "planning", "cells", "theory"] {
            std::thread::sleep(std::time::Duration::from_millis(2));
            w.lap(name);
        }
        let s = w.snapshot("report", 3, 5);
        let names: Vec<&str> = s.parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["setup", "planning", "cells", "theory", "report"]);
        let sum: f64 = s.parts.iter().map(|p| p.seconds).sum();
        assert!((sum - s.wall_s).abs() < 1e-9, "{sum} vs {}", s.wall_s);
        assert!(s.part("cells") > 0.0 && s.part("nothing") == 0.0);
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(StudyCosts::read(tmp.path()).unwrap(), None);
        s.write(tmp.path()).unwrap();
        assert_eq!(StudyCosts::read(tmp.path()).unwrap(), Some(s));
    }
}
