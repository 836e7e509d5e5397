//! Kills and concurrent writers (issue 19, items 14 and the fault-injection test).
//!
//! `cargo xtask reproduce` is run as a user runs it (the `xtask` binary with `--bin-dir`, in its
//! own process group) on a tiny grid, and:
//! - killed with SIGKILL of its whole process group at seeded random moments — during training,
//!   evaluation, between the two tasks of the destruction analysis, inside the theory sweep and
//!   during report writing — then restarted until it finishes: every cell ends with results
//!   identical to an uninterrupted run's, no `metrics.jsonl` line is missing or written twice, the
//!   TensorBoard event files hold each point once and the same points as the uninterrupted run's,
//!   and the report's costs count the time the killed attempts spent;
//! - killed alone (SIGKILL of the `reproduce` process only): the trainer it started ends with it;
//! - started twice at once on one folder: the second stops at once, naming the first one's pid,
//!   and every result is written exactly once.
//!
//! Set `FEATDROP_FAULT_SEED` to replay another kill schedule.

use featdrop_tests::{alive, bin, bin_dir, live_processes};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests here start process trees and time their kills: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A tiny grid: photos+digits with expert and viewmaker views (the viewmaker adds optimiser
/// state to every checkpoint), three epochs checkpointed after each, two-epoch probes, one-epoch
/// destruction classifiers and a few-point theory sweep.
fn write_experiment(dir: &Path, view_modes: &[&str], destruction: bool, theory: bool) -> PathBuf {
    let exp = json!({
        "name": "faults",
        "datasets": ["photos+digits"],
        "view_modes": view_modes,
        "seeds": [0],
        "run": {
            "device": "cpu",
            "data": {"source": "synthetic", "train_size": 64, "test_size": 64, "monitor_size": 32},
            "encoder": {"arch": "small", "width": 4},
            "train": {"epochs": 3, "batch_size": 32, "knn_k": 5, "checkpoint_every": 1, "view_grid_every": 0},
            "viewmaker": {"width_mult": 0.125},
            "probe": {"epochs": 2, "batch_size": 32, "lr_milestones": [1], "features": "cached"}
        },
        "destruction": destruction,
        "destruction_args": ["--epochs", "1", "--width", "4", "--batch-size", "32", "--grid-rows", "0"],
        "theory": if theory {
            json!(["--p-values", "0,1", "--ratios", "0.5", "--ks", "2", "--seeds", "0", "--no-infonce",
                   "--no-gd-check", "--probe-train", "200", "--probe-test", "200", "--no-figures", "--no-progress"])
        } else {
            Value::Null
        },
    });
    let path = dir.join("faults.json");
    std::fs::write(&path, serde_json::to_string_pretty(&exp).unwrap()).unwrap();
    path
}

/// `reproduce` with its steps on one libtorch thread each: on a small machine shared with other
/// jobs, libtorch's spinning worker threads make every step many times slower. Every run of a
/// test uses the same setting (the thread count can change float results).
fn xtask() -> Command {
    let mut cmd = Command::new(bin("xtask"));
    cmd.env("OMP_NUM_THREADS", "1");
    cmd
}

/// `reproduce` of `exp` into `root/runs` and `root/report`, in a process group of its own (so the
/// whole tree can be killed at once), its output appended to `root/reproduce.log`.
fn start(exp: &Path, root: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(root.join("reproduce.log")).unwrap();
    xtask()
        .args(["reproduce", "--experiment"])
        .arg(exp)
        .arg("--bin-dir")
        .arg(bin_dir())
        .arg("--out")
        .arg(root.join("runs"))
        .arg("--report")
        .arg(root.join("report"))
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap()
}

fn log_of(root: &Path) -> String {
    std::fs::read_to_string(root.join("reproduce.log")).unwrap_or_default()
}

/// Live (not zombie) processes of process group `pgid`, as (pid, command name).
fn group_members(pgid: i32) -> Vec<(i32, String)> {
    live_processes().into_iter().filter(|p| p.pgrp == pgid).map(|p| (p.pid, p.name)).collect()
}

/// Waits until process group `pgid` has no live process (the leader already reaped).
fn wait_group_gone(pgid: i32) {
    let t0 = Instant::now();
    while !group_members(pgid).is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(20), "process group {pgid} still alive: {:?}", group_members(pgid));
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGKILL to `pid` (a negative one: a process group); one that has just ended is no error.
fn sigkill(pid: i32) {
    // SAFETY: kill(2) with a pid (or a negative process-group id) this test started.
    if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
        let e = std::io::Error::last_os_error();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH), "kill {pid}: {e}");
    }
}

/// A small seeded generator (xorshift64*), so a kill schedule can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Training,
    Evaluation,
    /// One task's destruction rates measured, the next one's not yet written.
    BetweenDestructionTasks,
    Theory,
    Report,
}

/// Waits until `child` reaches `phase` (a trainer, evaluator or theory sweep of its group runs;
/// between destruction tasks: a cell holds the finished tasks of an unfinished analysis; the
/// report: [`in_report`]); false if it ended first.
fn reached(child: &mut Child, phase: Phase, exp_dir: &Path) -> bool {
    let pgid = child.id() as i32;
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let running = |name: &str| group_members(pgid).iter().any(|(_, n)| n == name);
        let there = match phase {
            Phase::Training => running("featdrop-train"),
            Phase::Evaluation => running("featdrop-eval"),
            Phase::BetweenDestructionTasks => {
                CELLS.iter().any(|id| exp_dir.join(id).join("destruction.partial.json").exists())
            }
            Phase::Theory => running("featdrop-theory"),
            Phase::Report => in_report(pgid, exp_dir),
        };
        if there {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The cells of the grid the kill test runs.
const CELLS: [&str; 2] = ["photos+digits/expert/seed-0", "photos+digits/viewmaker/seed-0"];

/// The theory sweep's last output.
const SWEEP_DONE: &str = "theory/summary.md";

/// Whether the study of process group `pgid` is writing its report: the theory sweep has written
/// its summary, every cell its probe and destruction results, and no trainer, evaluator or sweep
/// runs. (The sweep runs beside the cells, so its summary alone can come while they train.)
fn in_report(pgid: i32, exp_dir: &Path) -> bool {
    let cells_done =
        CELLS.iter().all(|id| ["probe.json", "destruction.json"].iter().all(|f| exp_dir.join(id).join(f).exists()));
    exp_dir.join(SWEEP_DONE).exists()
        && cells_done
        && !group_members(pgid).iter().any(|(_, name)| name.starts_with("featdrop-"))
}

/// How long the reference run spent writing its report ([`in_report`] until it ended), in ms.
fn run_to_end(exp: &Path, root: &Path) -> u64 {
    let mut child = start(exp, root);
    let pgid = child.id() as i32;
    let exp_dir = root.join("runs/faults");
    let mut report_start = None;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "uninterrupted reproduce failed:\n{}", log_of(root));
            break;
        }
        if report_start.is_none() && in_report(pgid, &exp_dir) {
            report_start = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    report_start.expect("the report phase was seen before the end").elapsed().as_millis() as u64
}

/// A JSON file without the fields that measure time (they differ between any two runs) and the
/// list of training attempts (a killed run has more). The first epoch's loss is the run's, however
/// many attempts it took (issue 27 item 13), so it stays.
fn timeless(path: &Path) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                // first_epoch_loss: of the first epoch a process ran, so it moves with a resume.
                // `costs` (a cell's time by part) and `study` (the last invocation's time by part,
                // and how many cells it ran) are times too.
                m.retain(|k, _| {
                    !(k.ends_with("seconds")
                        || matches!(k.as_str(), "wall_s" | "images_per_s" | "attempts" | "costs" | "study"))
                });
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    strip(&mut v);
    v
}

/// `metrics.jsonl` as records without their timings, every line required to be whole.
fn metrics(run: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(text.ends_with('\n'), "{}: a torn last line", run.display());
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", run.display()));
            let record = v.as_object_mut().unwrap();
            record.remove("seconds");
            record.remove("images_per_s");
            v
        })
        .collect()
}

/// The scalars of a run's TensorBoard event files, trainer's then probe's, as (tag, step, value)
/// in file order, without the measured speed (it differs between any two runs); each kind of file
/// is required to be there once.
fn events(run: &Path) -> Vec<(String, i64, f32)> {
    use tfrecord::protobuf::{event::What, summary::value::Value as V};
    let mut out = Vec::new();
    for suffix in ["train", "probe"] {
        let files: Vec<PathBuf> = std::fs::read_dir(run)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents."))
            .filter(|p| p.extension().is_some_and(|e| e == suffix))
            .collect();
        assert_eq!(files.len(), 1, "{}: one {suffix} event file, found {files:?}", run.display());
        for event in tfrecord::EventIter::open(&files[0], Default::default()).unwrap() {
            let event = event.unwrap_or_else(|e| panic!("{}: {e}", files[0].display()));
            let Some(What::Summary(summary)) = event.what else { continue };
            for v in summary.value {
                if let (Some(V::SimpleValue(x)), false) = (v.value, v.tag.starts_with("speed/")) {
                    out.push((v.tag, event.step, x));
                }
            }
        }
    }
    out
}

/// Every result of cell `id` in `b` is the same as in `a`.
fn assert_same_cell(a: &Path, b: &Path, id: &str, schedule: &str) {
    let (ra, rb) = (a.join("runs/faults").join(id), b.join("runs/faults").join(id));
    for file in ["probe.json", "destruction.json", "config.json"] {
        assert_eq!(timeless(&ra.join(file)), timeless(&rb.join(file)), "{id}/{file} differs after {schedule}");
    }
    let done = |r: &Path| timeless(&r.join("pretrain.done.json"));
    assert_eq!(done(&ra), done(&rb), "{id}/pretrain.done.json differs after {schedule}");
    let weights = "checkpoints/epoch-0003.safetensors";
    let (wa, wb) = (std::fs::read(ra.join(weights)).unwrap(), std::fs::read(rb.join(weights)).unwrap());
    assert!(wa == wb, "{id}: final weights differ (byte for byte) after {schedule}");
    let (ma, mb) = (metrics(&ra), metrics(&rb));
    let key = |r: &Value| (r["kind"].to_string(), r["epoch"].to_string(), r["step"].to_string());
    let keys: Vec<_> = mb.iter().map(key).collect();
    let unique: std::collections::BTreeSet<_> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "{id}: a metrics line written twice after {schedule}: {keys:?}");
    assert_eq!(ma.iter().map(key).collect::<Vec<_>>(), keys, "{id}: metrics lines missing or moved after {schedule}");
    assert_eq!(ma, mb, "{id}: metrics values differ after {schedule}");
    let (ea, eb) = (events(&ra), events(&rb));
    let points: std::collections::BTreeSet<_> = eb.iter().map(|(t, s, _)| (t, s)).collect();
    assert_eq!(points.len(), eb.len(), "{id}: a TensorBoard point written twice after {schedule}");
    assert_eq!(ea, eb, "{id}: TensorBoard event files differ after {schedule}");
    let steps = mb.iter().filter(|r| r["kind"] == "step").count();
    assert_eq!(eb.iter().filter(|e| e.0 == "loss/encoder").count(), steps, "{id}: a loss point per step");
}

/// The cells' wall times (over every attempt) in `root`'s report, each checked to be at least its
/// training time (also over every attempt) and at most `campaign_s`, and the report's total
/// checked to be their sum.
fn cell_costs(root: &Path, campaign_s: f64, schedule: &str) -> f64 {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(root.join("report/results.json")).unwrap()).unwrap();
    let results = &doc["experiments"][0];
    let cells = results["cells"].as_array().expect("results.json lists its cells");
    let mut sum = 0.0;
    for c in cells {
        let field = |k: &str| c[k].as_f64().unwrap_or_else(|| panic!("{k} missing after {schedule}: {c}"));
        let (wall, train) = (field("seconds"), field("train_seconds"));
        let id = &c["id"];
        assert!(
            wall + 0.05 >= train,
            "{id}: wall time {wall:.2} s below its training time {train:.2} s after {schedule}"
        );
        assert!(wall <= campaign_s, "{id}: wall time {wall:.2} s above the {campaign_s:.2} s spent after {schedule}");
        sum += wall;
    }
    let total = results["total_seconds"].as_f64().expect("results.json has the total");
    assert!((total - sum).abs() < 0.01, "total {total} s is not the cells' sum {sum} s");
    sum
}

/// The report's costs after kills count the killed attempts (issue 27 item 13): a resume skips
/// only finished work, so the killed study did all the uninterrupted one's work and more, and
/// its cells' wall time cannot be much below the uninterrupted one's (0.7: room for the noise of
/// a shared machine; counting only each cell's last attempt gave far less).
fn assert_costs_count_every_attempt(straight: &Path, killed: &Path, straight_s: f64, killed_s: f64, schedule: &str) {
    let (a, b) = (cell_costs(straight, straight_s, "no kill"), cell_costs(killed, killed_s, schedule));
    eprintln!("cells' wall time: uninterrupted {a:.2} s, killed {b:.2} s");
    assert!(
        b >= 0.7 * a,
        "the killed study's cells cost {b:.2} s against {a:.2} s uninterrupted: attempts lost after {schedule}"
    );
}

/// The fault-injection test of issue 19: a seeded schedule of SIGKILLs of the whole process
/// group, each at a random moment of one phase, then a restart that must finish, with results
/// identical to an uninterrupted run's.
#[test]
fn killed_and_restarted_study_ends_identical_to_an_uninterrupted_one() {
    let _serial = serial();
    let t0 = Instant::now();
    let seed: u64 = std::env::var("FEATDROP_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(19);
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_experiment(tmp.path(), &["expert", "viewmaker"], true, true);
    let (a, b) = (tmp.path().join("straight"), tmp.path().join("killed"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let report_ms = run_to_end(&exp, &a);
    let straight_s = t0.elapsed().as_secs_f64();

    let plan = [
        Phase::Training,
        Phase::Training,
        Phase::Evaluation,
        Phase::BetweenDestructionTasks,
        Phase::Training,
        Phase::Evaluation,
        Phase::Evaluation,
        Phase::BetweenDestructionTasks,
        Phase::Theory,
        Phase::Theory,
        Phase::Report,
        Phase::Report,
    ];
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (mut landed, mut schedule) = (Vec::new(), Vec::new());
    let exp_dir = b.join("runs/faults");
    for phase in plan {
        let mut child = start(&exp, &b);
        let pgid = child.id() as i32;
        if !reached(&mut child, phase, &exp_dir) {
            // Finished (or failed) before this phase came: the restarts below find out which.
            continue;
        }
        let limit = match phase {
            Phase::Report => report_ms * 9 / 10,
            // At once: the next task's rates are not written yet.
            Phase::BetweenDestructionTasks => 1,
            Phase::Theory => 100,
            Phase::Training | Phase::Evaluation => 400,
        };
        let delay = rng.below(limit);
        std::thread::sleep(Duration::from_millis(delay));
        let killed_live = child.try_wait().unwrap().is_none();
        sigkill(-pgid);
        child.wait().unwrap();
        wait_group_gone(pgid);
        schedule.push(format!("{phase:?}+{delay}ms"));
        if killed_live {
            landed.push(phase);
        }
    }
    let schedule = format!("kills [{}] (seed {seed})", schedule.join(", "));
    for phase in [Phase::Training, Phase::Evaluation, Phase::BetweenDestructionTasks, Phase::Theory, Phase::Report] {
        assert!(landed.contains(&phase), "no kill landed during {phase:?}: {schedule}\n{}", log_of(&b));
    }
    let mut last = start(&exp, &b);
    let status = last.wait().unwrap();
    assert!(status.success(), "the restart after {schedule} failed:\n{}", log_of(&b));
    let killed_s = t0.elapsed().as_secs_f64() - straight_s;

    for id in CELLS {
        assert_same_cell(&a, &b, id, &schedule);
    }
    assert_costs_count_every_attempt(&a, &b, straight_s, killed_s, &schedule);
    let theory = |r: &Path| timeless(&r.join("runs/faults/theory/theory.json"));
    assert_eq!(theory(&a), theory(&b), "theory.json differs after {schedule}");
    let results = |r: &Path| timeless(&r.join("report/results.json"));
    assert_eq!(results(&a), results(&b), "report/results.json differs after {schedule}");
    let total = t0.elapsed().as_secs_f64();
    eprintln!("fault injection: {schedule}; uninterrupted {straight_s:.1} s, whole test {total:.1} s");
}

/// SIGKILL of `reproduce` alone (not its group): the trainer it started ends with it, so no
/// orphan goes on writing the run directory; a restart then finishes the study.
#[test]
fn a_killed_reproduce_leaves_no_trainer_running() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_experiment(tmp.path(), &["expert"], false, false);
    let mut child = start(&exp, tmp.path());
    let pgid = child.id() as i32;
    let t0 = Instant::now();
    let trainer = loop {
        if let Some((pid, _)) = group_members(pgid).into_iter().find(|(_, n)| n == "featdrop-train") {
            break pid;
        }
        assert!(child.try_wait().unwrap().is_none(), "reproduce ended before training:\n{}", log_of(tmp.path()));
        assert!(t0.elapsed() < Duration::from_secs(60), "no trainer started:\n{}", log_of(tmp.path()));
        std::thread::sleep(Duration::from_millis(5));
    };
    sigkill(child.id() as i32);
    child.wait().unwrap();
    let t1 = Instant::now();
    while alive(trainer) && t1.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let orphan = alive(trainer);
    if orphan {
        sigkill(trainer);
    }
    assert!(!orphan, "featdrop-train (pid {trainer}) outlived the reproduce that started it");
    wait_group_gone(pgid);
    let status = start(&exp, tmp.path()).wait().unwrap();
    assert!(status.success(), "restart failed:\n{}", log_of(tmp.path()));
}

/// Two `reproduce` at once on one folder: one runs the study, the other stops at once with an
/// error naming the first one's pid (it does not wait); every step ran once, every metrics line
/// is written once.
#[test]
fn two_reproduce_on_one_folder_write_every_result_once() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_experiment(tmp.path(), &["expert", "dropout:0.5"], false, false);
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    for d in [&one, &two] {
        std::fs::create_dir_all(d).unwrap();
    }
    // Both write the same runs folder; each keeps its own log.
    let runs = tmp.path().join("shared");
    let spawn = |log_dir: &Path| {
        let log = std::fs::File::create(log_dir.join("reproduce.log")).unwrap();
        xtask()
            .args(["reproduce", "--experiment"])
            .arg(&exp)
            .arg("--bin-dir")
            .arg(bin_dir())
            .arg("--out")
            .arg(&runs)
            .arg("--report")
            .arg(log_dir.join("report"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let (mut c1, mut c2) = (spawn(&one), spawn(&two));
    let (pid1, pid2) = (c1.id(), c2.id());
    let (s1, s2) = (c1.wait().unwrap(), c2.wait().unwrap());
    let (l1, l2) = (log_of(&one), log_of(&two));
    assert!(s1.success() != s2.success(), "exactly one must run the study:\n--- one\n{l1}\n--- two\n{l2}");
    let (winner, loser_log) = if s1.success() { (pid1, &l2) } else { (pid2, &l1) };
    let last = loser_log.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("cargo xtask reproduce (pid {winner}) holds its lock"))
            && last.contains(&runs.join("faults").display().to_string()),
        "the second writer must name the first one's pid and the folder: {last}"
    );
    for id in ["photos+digits/expert/seed-0", "photos+digits/dropout-0.5/seed-0"] {
        let run = runs.join("faults").join(id);
        let log = std::fs::read_to_string(run.join("log.txt")).unwrap();
        let started: Vec<&str> = log.lines().filter(|l| l.starts_with("$ ")).collect();
        assert_eq!(started.len(), 2, "{id}: each step (train, probe) runs once: {started:?}");
        let epochs: Vec<String> =
            metrics(&run).iter().filter(|r| r["kind"] == "epoch").map(|r| r["epoch"].to_string()).collect();
        assert_eq!(epochs, ["1", "2", "3"], "{id}: every epoch logged once");
    }
}
