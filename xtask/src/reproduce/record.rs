//! Per-cell status records: `<experiment>/status/<cell>.json`, one file per cell, each written
//! whole (temp file + rename) by whoever runs that cell at the time — the local executor, or the
//! Slurm array task that runs it. Many array tasks finish at once, so no file is ever shared by
//! several writers: `status.json` is assembled from the records by one reader (see
//! `docs/PROTOCOL.md §8` for the run-directory layout).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What is known about one cell's latest attempt.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `running`, `done` or `failed`; `same` for a twin cell, which is never run (see
    /// `same_as`).
    pub state: String,
    /// Wall time of the cell over every attempt so far, killed ones included (`wall.json`; 0
    /// while running).
    #[serde(default)]
    pub seconds: f64,
    /// The attempt's exit code: 0 done, 1 a step failed; absent while running or when the task
    /// was killed before it could write one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// `local` or `slurm`.
    #[serde(default)]
    pub executor: String,
    /// The machine that ran it.
    #[serde(default)]
    pub node: String,
    /// Where it ran: `cpu`, or `cuda:K` — for the local executor as `cargo xtask doctor` numbers
    /// the GPUs of the `reproduce` that ran it, for a `cargo xtask cell` (a Slurm task) as its
    /// trainer saw them (`trained_on.json`). Absent in records of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The libtorch threads its processes were given (`OMP_NUM_THREADS`); absent as `device`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Slurm: the array's job id and this cell's task id (its index in the grid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<u64>,
    /// Slurm's word for how the task ended (FAILED, CANCELLED, TIMEOUT, …) when it did not end
    /// by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_state: Option<String>,
    /// The cell's own step log, and Slurm's stdout/stderr files of the task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<PathBuf>,
    /// Why it failed, with the tail of its log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How the record came to be when no run wrote it (rebuilt from the cell's files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A twin cell (`super::twins`): the id of the cell whose results are this one's, whose
    /// state is this one's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_as: Option<String>,
    /// Why a twin cell cannot differ from the cell it is the same as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_why: Option<String>,
    /// The wall time (`seconds`) by part, once an attempt ended (`super::costs`; absent in
    /// records of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub costs: Option<super::costs::CellCosts>,
}

/// The records' folder.
pub fn dir(exp_dir: &Path) -> PathBuf {
    exp_dir.join("status")
}

/// A cell's record file: its id with `/` as `__`, as for its config file.
pub fn path(exp_dir: &Path, id: &str) -> PathBuf {
    dir(exp_dir).join(format!("{}.json", id.replace('/', "__")))
}

/// Writes one cell's record whole: a temp file unique to this process and thread, then a rename,
/// so a reader sees the old record or the new one, never a mix.
pub fn write(exp_dir: &Path, id: &str, rec: &Record) -> Result<()> {
    let dest = path(exp_dir, id);
    std::fs::create_dir_all(dir(exp_dir)).with_context(|| format!("creating {}", dir(exp_dir).display()))?;
    write_atomic(&dest, &serde_json::to_string_pretty(&RecordFile { id: id.to_string(), record: rec.clone() })?)
}

/// Temp file + rename; the temp name is unique to this process and thread, so writers never
/// share one (its extension is not `.json`, so readers of the folder skip it).
pub fn write_atomic(dest: &Path, text: &str) -> Result<()> {
    let tmp = dest.with_extension(format!("tmp-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dest).with_context(|| format!("writing {}", dest.display()))
}

/// A record with the cell id inside, so the folder can be read without decoding file names.
#[derive(Serialize, Deserialize)]
struct RecordFile {
    id: String,
    #[serde(flatten)]
    record: Record,
}

/// One cell's record, if it has one (rebuilt from the cell's files if it does not parse).
pub fn read(exp_dir: &Path, id: &str) -> Result<Option<Record>> {
    let p = path(exp_dir, id);
    match std::fs::read_to_string(&p) {
        Ok(text) => Ok(Some(parse_or_rebuild(exp_dir, &p, &text).1)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// A record file's cell id and record. One that does not parse (a disk fault; writes are
/// atomic) is not the end of every later `reproduce` and `report`: it is rebuilt from the cell's
/// run directory, as `status.json` is from the records, with a warning naming it. Returns
/// whether it was rebuilt.
fn parse_or_rebuild(exp_dir: &Path, p: &Path, text: &str) -> (String, Record, bool) {
    match serde_json::from_str::<RecordFile>(text) {
        Ok(f) => (f.id, f.record, false),
        Err(e) => {
            // The file's name is the cell id with `/` as `__` (see `path`).
            let stem = p.file_stem().unwrap_or_default().to_string_lossy();
            let id = stem.replace("__", "/");
            let rec = rebuild(exp_dir, &id, &format!("{}: not a cell record ({e})", p.display()));
            eprintln!(
                "warning: {}; rebuilt from {} as `{}`",
                rec.note.as_deref().unwrap_or_default(),
                exp_dir.join(&id).display(),
                rec.state
            );
            (id, rec, true)
        }
    }
}

/// A cell's record made from its run directory: `done` when it holds a finished run
/// (`pretrain.done.json` and `probe.json`), else `failed` with why nothing better is known.
pub fn rebuild(exp_dir: &Path, id: &str, why: &str) -> Record {
    let run = exp_dir.join(id);
    let finished = ["pretrain.done.json", "probe.json"].iter().all(|f| run.join(f).is_file());
    let note = Some(format!("{why}; rebuilt from the cell's files"));
    if finished {
        return Record { state: "done".into(), note, ..Default::default() };
    }
    let error = format!("its record was lost ({why}) and {} holds no finished run", run.display());
    Record { state: "failed".into(), error: Some(error), note, ..Default::default() }
}

/// Every record of the experiment, by cell id (temp files of writers at work are not records),
/// each unreadable one rebuilt (see [`parse_or_rebuild`]); and the ids of those rebuilt.
fn scan(exp_dir: &Path) -> Result<(BTreeMap<String, Record>, Vec<String>)> {
    let (mut out, mut rebuilt) = (BTreeMap::new(), Vec::new());
    let d = dir(exp_dir);
    let Ok(entries) = std::fs::read_dir(&d) else { return Ok((out, rebuilt)) };
    for entry in entries {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            let (id, rec, was_rebuilt) = parse_or_rebuild(exp_dir, &p, &text);
            if was_rebuilt {
                rebuilt.push(id.clone());
            }
            out.insert(id, rec);
        }
    }
    Ok((out, rebuilt))
}

/// Every record of the experiment, by cell id; unreadable ones rebuilt in memory.
pub fn read_all(exp_dir: &Path) -> Result<BTreeMap<String, Record>> {
    Ok(scan(exp_dir)?.0)
}

/// Writes the rebuilt record over each unreadable one; returns their cell ids. Only for a process
/// that keeps the cells' own writers out (it might otherwise replace a record a cell just wrote).
pub fn repair(exp_dir: &Path) -> Result<Vec<String>> {
    let (all, rebuilt) = scan(exp_dir)?;
    for id in &rebuilt {
        write(exp_dir, id, &all[id])?;
    }
    Ok(rebuilt)
}

/// Writes `status.json` (cell id → record) from the records, atomically; returns what it wrote.
pub fn assemble(exp_dir: &Path) -> Result<BTreeMap<String, Record>> {
    let all = read_all(exp_dir)?;
    let status: Map<String, Value> =
        all.iter().map(|(k, v)| Ok((k.clone(), serde_json::to_value(v)?))).collect::<Result<_>>()?;
    write_atomic(&exp_dir.join("status.json"), &serde_json::to_string_pretty(&status)?)?;
    Ok(all)
}

/// This machine's name, for records.
pub fn node_name() -> String {
    std::env::var("SLURMD_NODENAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string()))
        .unwrap_or_default()
}

/// The last `n` lines of a log file (empty when it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many writers finishing at once (as array tasks do), each rewriting its own record several
    /// times while readers assemble `status.json`: every reader sees whole records only, and the
    /// final status holds every cell's last record.
    #[test]
    fn concurrent_writers_lose_no_record() {
        let tmp = tempfile::tempdir().unwrap();
        let exp_dir = tmp.path();
        let cells = 48;
        std::thread::scope(|s| {
            for i in 0..cells {
                s.spawn(move || {
                    let id = format!("photos+digits/expert/seed-{i}");
                    for (n, state) in ["running", "running", "done"].iter().enumerate() {
                        let rec = Record {
                            state: state.to_string(),
                            seconds: n as f64,
                            executor: "slurm".into(),
                            task_id: Some(i),
                            ..Default::default()
                        };
                        write(exp_dir, &id, &rec).unwrap();
                    }
                });
            }
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20 {
                        // A torn or half-written record would be an error here.
                        assemble(exp_dir).unwrap();
                    }
                });
            }
        });
        let status: Map<String, Value> =
            serde_json::from_str(&std::fs::read_to_string(exp_dir.join("status.json")).unwrap()).unwrap();
        // The assemblers may have finished before the last writers; a final assembly sees all.
        let all = assemble(exp_dir).unwrap();
        assert!(status.len() <= cells as usize);
        assert_eq!(all.len(), cells as usize);
        for i in 0..cells {
            let r = &all[&format!("photos+digits/expert/seed-{i}")];
            assert_eq!((r.state.as_str(), r.seconds, r.task_id), ("done", 2.0, Some(i)));
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir(exp_dir))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| !n.to_string_lossy().ends_with(".json"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left behind: {leftovers:?}");
    }

    /// Issue 25 item 1: a record says where the local executor ran its cell and with how many
    /// threads; a record of an older version, without them, is read as before.
    #[test]
    fn records_say_device_and_threads_and_old_ones_still_read() {
        let tmp = tempfile::tempdir().unwrap();
        let rec =
            Record { state: "done".into(), device: Some("cuda:2".into()), threads: Some(4), ..Default::default() };
        write(tmp.path(), "a/b/seed-0", &rec).unwrap();
        let text = std::fs::read_to_string(path(tmp.path(), "a/b/seed-0")).unwrap();
        assert!(text.contains("\"device\": \"cuda:2\"") && text.contains("\"threads\": 4"), "{text}");
        assert_eq!(read(tmp.path(), "a/b/seed-0").unwrap(), Some(rec));
        let old = r#"{"id": "a/b/seed-1", "state": "done", "seconds": 3.0, "executor": "local", "node": "n"}"#;
        std::fs::write(path(tmp.path(), "a/b/seed-1"), old).unwrap();
        let r = read(tmp.path(), "a/b/seed-1").unwrap().unwrap();
        assert_eq!((r.state.as_str(), r.device, r.threads, r.note), ("done", None, None, None));
    }

    /// Issue 27.8: a garbled record no longer fails every reader: it is rebuilt from the cell's
    /// files (done when they hold a finished run, failed with why otherwise), and `repair` writes
    /// the rebuilt one back.
    #[test]
    fn a_missing_record_is_none_and_a_garbled_one_is_rebuilt_from_the_cells_files() {
        let tmp = tempfile::tempdir().unwrap();
        let exp_dir = tmp.path();
        assert_eq!(read(exp_dir, "a/b/seed-0").unwrap(), None);
        std::fs::create_dir_all(dir(exp_dir)).unwrap();
        let run = exp_dir.join("a/b/seed-0");
        std::fs::create_dir_all(&run).unwrap();
        for f in ["pretrain.done.json", "probe.json"] {
            std::fs::write(run.join(f), "{}").unwrap();
        }
        std::fs::write(path(exp_dir, "a/b/seed-0"), "{").unwrap();
        std::fs::write(path(exp_dir, "a/b/seed-1"), "\0\0\0").unwrap();
        write(exp_dir, "a/c/seed-0", &Record { state: "failed".into(), ..Default::default() }).unwrap();

        let all = assemble(exp_dir).unwrap();
        assert_eq!(all.len(), 3);
        let (done, lost) = (&all["a/b/seed-0"], &all["a/b/seed-1"]);
        assert_eq!(done.state, "done");
        assert!(done.note.as_deref().unwrap().contains("a__b__seed-0.json: not a cell record"), "{done:?}");
        assert_eq!(lost.state, "failed");
        assert!(lost.error.as_deref().unwrap().contains("holds no finished run"), "{lost:?}");
        assert_eq!(all["a/c/seed-0"].state, "failed", "a readable record is kept as it is");
        assert_eq!(read(exp_dir, "a/b/seed-0").unwrap().as_ref(), Some(done));

        let mut repaired = repair(exp_dir).unwrap();
        repaired.sort();
        assert_eq!(repaired, ["a/b/seed-0", "a/b/seed-1"]);
        let text = std::fs::read_to_string(path(exp_dir, "a/b/seed-0")).unwrap();
        let f: RecordFile = serde_json::from_str(&text).unwrap();
        assert_eq!((f.id.as_str(), &f.record), ("a/b/seed-0", done));
        assert!(repair(exp_dir).unwrap().is_empty(), "nothing left to repair");
    }
}
