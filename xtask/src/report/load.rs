//! Reading an experiment's run directories, status file and theory sweep. Files are read
//! tolerantly (extra fields are ignored, so a newer writer does not break the report) but a file
//! that is not the JSON it should be is an error naming it.

use anyhow::{Context, Result, anyhow};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::reproduce::costs::{CellCosts, StudyCosts};

/// One `status.json` entry.
#[derive(Clone, Debug, Deserialize)]
pub struct Status {
    pub state: String,
    #[serde(default)]
    pub seconds: f64,
    #[serde(default)]
    pub error: Option<String>,
    /// A twin cell: the id of the cell whose results are its own, and why.
    #[serde(default)]
    pub same_as: Option<String>,
    #[serde(default)]
    pub same_why: Option<String>,
    /// The wall time by part (absent in records of older versions).
    #[serde(default)]
    pub costs: Option<CellCosts>,
}

/// A twin cell's twin: the cell whose results it shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Same {
    pub id: String,
    /// Its view mode (as the report labels modes).
    pub mode: String,
    pub why: String,
}

/// `pretrain.done.json` (featdrop-train's TrainSummary), the fields the report uses.
#[derive(Clone, Debug, Deserialize)]
pub struct Done {
    pub epochs: usize,
    pub last_epoch_loss: f64,
    #[serde(default)]
    pub knn: BTreeMap<String, f64>,
    pub seconds: f64,
    #[serde(default)]
    pub images_per_s: f64,
    pub device: String,
    /// Not written by every version; reported only when present.
    #[serde(default, alias = "libtorch_version")]
    pub torch_version: Option<String>,
    /// The training sessions `seconds` and `images_per_s` sum over (absent in older files, whose
    /// costs are the last session's only).
    #[serde(default)]
    pub attempts: Vec<Value>,
}

/// `probe.json` (featdrop-eval's ProbeReport, schema 1 or 2).
#[derive(Clone, Debug, Deserialize)]
pub struct Probe {
    pub protocol: ProbeProtocol,
    /// The final checkpoint's tag (`epoch-0200`), whose results `tasks` holds.
    #[serde(default)]
    pub checkpoint: Option<String>,
    pub tasks: BTreeMap<String, ProbeTask>,
    /// Earlier checkpoints' results by pretraining epoch (schema 2).
    #[serde(default)]
    pub epochs: BTreeMap<usize, EpochProbe>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct EpochProbe {
    pub tasks: BTreeMap<String, ProbeTask>,
}

impl Probe {
    /// Results by pretraining epoch: the earlier checkpoints' and the final one's (its epoch read
    /// from its tag; left out when the tag names none, e.g. an encoder-weights file).
    pub fn by_epoch(&self) -> BTreeMap<usize, &BTreeMap<String, ProbeTask>> {
        let mut out: BTreeMap<usize, &BTreeMap<String, ProbeTask>> =
            self.epochs.iter().map(|(e, p)| (*e, &p.tasks)).collect();
        let last = self.checkpoint.as_deref().and_then(featdrop_core::layout::tag_epoch);
        if let Some(e) = last.filter(|_| !self.tasks.is_empty()) {
            out.insert(e, &self.tasks);
        }
        out
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct ProbeProtocol {
    pub features: String,
    pub feature_dim: i64,
    pub epochs: usize,
    pub batch_size: usize,
    pub train_size: usize,
    pub test_size: usize,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ProbeTask {
    pub top1: f64,
}

/// `destruction.json` (featdrop-eval's DestructionReport).
#[derive(Clone, Debug, Deserialize)]
pub struct Destruction {
    pub tasks: BTreeMap<String, DestructionTask>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct DestructionTask {
    pub clean_accuracy: f64,
    pub families: BTreeMap<String, Family>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Family {
    pub destruction_rate: f64,
}

/// One `{"kind": "epoch"}` record of `metrics.jsonl`.
#[derive(Clone, Debug, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub loss: f64,
    #[serde(default)]
    pub knn: BTreeMap<String, f64>,
    /// The viewmaker's label destruction per task (viewmaker runs only; `null` when undefined).
    #[serde(default)]
    pub destruction: BTreeMap<String, Option<f64>>,
}

/// One grid cell (dataset × view mode × seed) and whatever of it exists.
#[derive(Clone, Debug)]
pub struct Cell {
    pub id: String,
    pub dataset: String,
    pub mode: String,
    pub seed: u64,
    pub status: Option<Status>,
    pub config: Option<Value>,
    pub done: Option<Done>,
    pub probe: Option<Probe>,
    pub destruction: Option<Destruction>,
    pub epochs: Vec<EpochRecord>,
    pub last_grid: Option<PathBuf>,
    pub destruction_png: Option<PathBuf>,
    /// A twin cell (never run): its probe results are those of this cell.
    pub same_as: Option<Same>,
}

impl Cell {
    pub fn failed(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.state == "failed")
    }

    /// Pretrained or probed: something the report can show.
    pub fn finished(&self) -> bool {
        self.probe.is_some() || self.done.is_some()
    }
}

/// The theory sweep's outputs, when the experiment ran one.
#[derive(Clone, Debug)]
pub struct Theory {
    pub json: Value,
    pub summary_md: Option<String>,
    pub figures: Vec<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct Experiment {
    pub name: String,
    pub cells: Vec<Cell>,
    pub theory: Option<Theory>,
    /// The last `reproduce`'s wall time by part (`study.json`).
    pub study: Option<StudyCosts>,
}

impl Experiment {
    pub fn has_finished(&self) -> bool {
        self.cells.iter().any(Cell::finished)
    }
}

/// Parses JSON strictly enough to name the file and the offending field on error.
pub fn parse_json<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        anyhow!("{}: field `{field}`: {}", file.display(), e.into_inner())
    })
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_json(&text, path)
}

/// `None` when the file does not exist (the step that writes it has not finished).
fn read_optional<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if path.exists() { read_json(path).map(Some) } else { Ok(None) }
}

/// Experiment folders under `runs` (sorted), hidden ones skipped.
pub fn experiment_names(runs: &Path) -> Result<Vec<String>> {
    Ok(subdirs(runs)?.into_iter().filter(|n| !n.starts_with('.')).collect())
}

fn subdirs(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// `dropout-0.5` (the directory name) → `dropout:0.5` (the view mode), `colour+dropout-1` →
/// `colour+dropout:1`; a name that is no view mode is kept as it is.
pub fn mode_from_dir(dir: &str) -> String {
    match dir.parse::<featdrop_core::ViewMode>() {
        Ok(m) => m.to_string(),
        Err(_) => dir.to_string(),
    }
}

/// Cell ids found on disk: `<dataset>/<mode-dir>/seed-<n>`.
fn cell_ids_on_disk(exp_dir: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for ds in subdirs(exp_dir)?.into_iter().filter(|d| !d.starts_with('.') && d != "configs" && d != "theory") {
        for mode in subdirs(&exp_dir.join(&ds))? {
            for seed in subdirs(&exp_dir.join(&ds).join(&mode))? {
                if seed.strip_prefix("seed-").is_some_and(|n| n.parse::<u64>().is_ok()) {
                    ids.push(format!("{ds}/{mode}/{seed}"));
                }
            }
        }
    }
    Ok(ids)
}

pub fn load_experiment(exp_dir: &Path, name: &str) -> Result<Experiment> {
    // Cells' own records (written by each Slurm task or the local executor) are the truth;
    // status.json is assembled from them here, so a report gathered after an array ended is current.
    if crate::reproduce::record::dir(exp_dir).is_dir() {
        crate::reproduce::record::assemble(exp_dir)?;
    }
    let status_path = exp_dir.join("status.json");
    let status: BTreeMap<String, Status> = read_optional(&status_path)?.unwrap_or_default();
    let mut ids = cell_ids_on_disk(exp_dir)?;
    // A cell that failed before creating its folder exists only in status.json.
    ids.extend(status.keys().filter(|k| !ids.contains(k)).cloned().collect::<Vec<_>>());
    let mut cells = Vec::new();
    for id in ids {
        cells.push(load_cell(exp_dir, &id, status.get(&id).cloned())?);
    }
    cells.sort_by_key(|c| (c.dataset.clone(), super::stats::mode_key(&c.mode), c.seed));
    link_twins(&mut cells);
    let theory = load_theory(&exp_dir.join("theory"))?;
    let study = StudyCosts::read(exp_dir)?;
    Ok(Experiment { name: name.to_string(), cells, theory, study })
}

/// A twin cell (its record says `same_as`) shows its twin's probe results and nothing of its
/// own (a folder an older version left is not read): it was never run, and the destruction
/// rates, curves and grids of its twin are shown once, under the twin.
fn link_twins(cells: &mut [Cell]) {
    for i in 0..cells.len() {
        let Some(status) = &cells[i].status else { continue };
        let Some(id) = status.same_as.clone() else { continue };
        let why = status.same_why.clone().unwrap_or_default();
        let twin = cells.iter().find(|o| o.id == id && o.same_as.is_none());
        let (mode, probe) = match twin {
            Some(t) => (t.mode.clone(), t.probe.clone()),
            // Its twin is not on disk (not run yet): the mode from the id, no results.
            None => (id.split('/').nth(1).map(mode_from_dir).unwrap_or_default(), None),
        };
        let c = &mut cells[i];
        (c.probe, c.done, c.destruction, c.epochs) = (probe, None, None, Vec::new());
        (c.last_grid, c.destruction_png) = (None, None);
        c.same_as = Some(Same { id, mode, why });
    }
}

fn load_cell(exp_dir: &Path, id: &str, status: Option<Status>) -> Result<Cell> {
    let parts: Vec<&str> = id.split('/').collect();
    let seed = parts.get(2).and_then(|s| s.strip_prefix("seed-")).and_then(|s| s.parse().ok());
    let (Some(ds), Some(mode_dir), Some(seed)) = (parts.first(), parts.get(1), seed) else {
        anyhow::bail!(
            "{}: cell id `{id}` is not <dataset>/<view-mode>/seed-<n>",
            exp_dir.join("status.json").display()
        );
    };
    let dir = exp_dir.join(id);
    let config: Option<Value> = read_optional(&dir.join("config.json"))?;
    // The config's spelling wins over the folder's (`dropout:0.50` and `dropout-0.5` agree); a
    // variant cell (`expert@spectral`) keeps its label from the folder.
    let (base_dir, variant) = match mode_dir.split_once('@') {
        Some((b, v)) => (b, format!("@{v}")),
        None => (*mode_dir, String::new()),
    };
    let base = config.as_ref().and_then(|c| c["view_mode"].as_str().map(str::to_string));
    let mode = base.unwrap_or_else(|| mode_from_dir(base_dir)) + &variant;
    Ok(Cell {
        id: id.to_string(),
        dataset: ds.to_string(),
        mode,
        seed,
        status,
        config,
        done: read_optional(&dir.join("pretrain.done.json"))?,
        probe: read_optional(&dir.join("probe.json"))?,
        destruction: read_optional(&dir.join("destruction.json"))?,
        epochs: read_epochs(&dir.join("metrics.jsonl"))?,
        last_grid: last_png(&dir.join("views"))?,
        destruction_png: Some(dir.join("destruction.png")).filter(|p| p.is_file()),
        same_as: None,
    })
}

/// The epoch records of `metrics.jsonl`; step records are skipped. A torn last line (a run killed
/// mid-append) is left out with a warning: the trainer drops and redoes it on resume.
fn read_epochs(path: &Path) -> Result<Vec<EpochRecord>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let (records, torn) = featdrop_core::io::JsonLines::read_complete::<Value>(path)?;
    if let Some(line) = torn {
        eprintln!("warning: {} line {line} is torn (an interrupted write); left out", path.display());
    }
    let epoch = |(i, v): (usize, Value)| {
        serde_json::from_value(v).map_err(|e| anyhow!("{}: epoch record {}: {e}", path.display(), i + 1))
    };
    records.into_iter().filter(|v| v["kind"] == "epoch").enumerate().map(epoch).collect()
}

/// The latest `epoch-*.png` in `dir` (names sort by epoch: zero-padded).
fn last_png(dir: &Path) -> Result<Option<PathBuf>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    pngs.sort();
    Ok(pngs.pop())
}

fn load_theory(dir: &Path) -> Result<Option<Theory>> {
    let json_path = dir.join("theory.json");
    if !json_path.exists() {
        return Ok(None);
    }
    let json: Value = read_json(&json_path)?;
    let summary = dir.join("summary.md");
    let summary_md = if summary.exists() {
        Some(std::fs::read_to_string(&summary).with_context(|| format!("reading {}", summary.display()))?)
    } else {
        None
    };
    let mut figures: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    figures.sort();
    Ok(Some(Theory { json, summary_md, figures }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_metrics_line_does_not_stop_the_report() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.jsonl");
        let epoch = r#"{"kind":"epoch","epoch":1,"loss":0.5,"knn":{},"seconds":1.0}"#;
        std::fs::write(&p, format!("{epoch}\n{{\"kind\":\"step\",\"epoch\":2,\"lo")).unwrap();
        assert_eq!(read_epochs(&p).unwrap().len(), 1);
        std::fs::write(&p, format!("{{\"kind\":\"ep\n{epoch}\n")).unwrap();
        let e = format!("{:#}", read_epochs(&p).unwrap_err());
        assert!(e.contains("metrics.jsonl line 1"), "a corrupt line in the middle is an error: {e}");
    }
}
