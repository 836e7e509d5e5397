//! Experiment files (`experiments/*.json`): a grid of dataset × view mode × seed plus the
//! hyperparameters every run of the grid shares, resolved into one run config per cell.
//!
//! Schema (unknown keys are errors that name the file and the field):
//! ```json
//! {
//!   "name": "small",                       // experiment name: runs/<name>/…
//!   "description": "…",
//!   "datasets": ["photos+digits", …],
//!   "view_modes": ["expert", "viewmaker", "expert+viewmaker", "dropout:0.5"],
//!   "seeds": [0, 1, 2],
//!   "run": { … },                          // fields of featdrop_core::RunConfig shared by all cells
//!   "per_dataset": { "speech+noise": { … } },  // further RunConfig fields for one dataset
//!   "probe_features": "cached",            // featdrop-eval probe --features (views | cached)
//!   "destruction": true,                   // run featdrop-eval destruction per cell
//!   "destruction_args": ["--epochs", "3"], // extra featdrop-eval destruction arguments
//!   "theory": ["--seeds", "0,1"],          // extra featdrop-theory sweep arguments (null: no sweep)
//!   "slurm": {"partition": "gpu", "time": "12:00:00"}  // optional: `--executor slurm` resources
//! }
//! ```
//! The run config of a cell is the published defaults, then `run`, then `per_dataset[dataset]`,
//! then the cell's dataset, view mode and seed; featdrop-train validates it before anything runs.

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A parsed experiment file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub datasets: Vec<String>,
    pub view_modes: Vec<String>,
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub run: Map<String, Value>,
    #[serde(default)]
    pub per_dataset: BTreeMap<String, Map<String, Value>>,
    #[serde(default = "default_features")]
    pub probe_features: String,
    #[serde(default = "yes")]
    pub destruction: bool,
    #[serde(default)]
    pub destruction_args: Vec<String>,
    #[serde(default)]
    pub theory: Option<Vec<String>>,
    /// Resources of the Slurm array's tasks (`--executor slurm`; flags override them).
    #[serde(default)]
    pub slurm: Option<super::slurm::SlurmSection>,
}

fn default_features() -> String {
    "views".into()
}

fn yes() -> bool {
    true
}

/// One grid cell: what to run and where its results go.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    /// `<dataset>/<view-mode dir>/seed-<n>`, unique in the grid.
    pub id: String,
    pub dataset: String,
    pub view_mode: String,
    pub seed: u64,
    /// The run directory (`runs/<experiment>/<id>`).
    pub run_dir: PathBuf,
    /// The resolved run config (validated later by featdrop-train).
    pub config: Value,
}

impl Experiment {
    /// Reads and checks an experiment file; errors name the file and the field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        let exp: Self = serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("{}: field `{}`: {}", path.display(), e.path(), e.inner()))?;
        exp.check(path)?;
        Ok(exp)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let f = path.display();
        ensure!(
            !self.name.is_empty() && !self.name.contains('/'),
            "{f}: field `name` must be a non-empty name without '/'"
        );
        for (field, empty) in [
            ("datasets", self.datasets.is_empty()),
            ("view_modes", self.view_modes.is_empty()),
            ("seeds", self.seeds.is_empty()),
        ] {
            ensure!(!empty, "{f}: field `{field}` must list at least one value");
        }
        ensure!(
            ["views", "cached"].contains(&self.probe_features.as_str()),
            "{f}: field `probe_features` = \"{}\"; expected views or cached",
            self.probe_features
        );
        for key in self.per_dataset.keys() {
            ensure!(
                self.datasets.contains(key),
                "{f}: field `per_dataset.{key}` names a dataset that is not in `datasets`"
            );
        }
        for reserved in ["experiment", "dataset", "view_mode", "seed"] {
            ensure!(!self.run.contains_key(reserved), "{f}: field `run.{reserved}` is set by the grid; remove it");
        }
        Ok(())
    }

    /// Every cell of the grid, in a stable order (dataset, view mode, seed).
    pub fn cells(&self, runs_root: &Path) -> Vec<Cell> {
        let mut out = Vec::new();
        for dataset in &self.datasets {
            for mode in &self.view_modes {
                for &seed in &self.seeds {
                    let id = format!("{dataset}/{}/seed-{seed}", mode.replace(':', "-"));
                    let mut config = Value::Object(self.run.clone());
                    if let Some(extra) = self.per_dataset.get(dataset) {
                        merge(&mut config, &Value::Object(extra.clone()));
                    }
                    let cell = serde_json::json!({"experiment": self.name, "dataset": dataset, "view_mode": mode, "seed": seed});
                    merge(&mut config, &cell);
                    let run_dir = runs_root.join(&self.name).join(&id);
                    out.push(Cell { id, dataset: dataset.clone(), view_mode: mode.clone(), seed, run_dir, config });
                }
            }
        }
        out
    }
}

/// Deep-merges `over` into `base`: objects merge key by key, anything else replaces.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, v: Value) -> PathBuf {
        let p = dir.join("exp.json");
        std::fs::write(&p, v.to_string()).unwrap();
        p
    }

    fn base() -> Value {
        serde_json::json!({"name": "t", "datasets": ["photos+digits", "photos"], "view_modes": ["expert", "dropout:0.5"],
            "seeds": [0, 1], "run": {"train": {"epochs": 2, "lr": 0.1}, "encoder": {"arch": "small"}},
            "per_dataset": {"photos": {"train": {"epochs": 5}}}})
    }

    #[test]
    fn grid_resolves_every_cell_with_layered_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let exp = Experiment::load(&write(dir.path(), base())).unwrap();
        let cells = exp.cells(Path::new("runs"));
        assert_eq!(cells.len(), 8);
        let c = cells.iter().find(|c| c.id == "photos/dropout-0.5/seed-1").unwrap();
        assert_eq!(c.config["train"]["epochs"], 5, "per-dataset value wins");
        assert_eq!(c.config["train"]["lr"], 0.1, "shared value kept beside it");
        assert_eq!(c.config["view_mode"], "dropout:0.5");
        assert_eq!(c.run_dir, Path::new("runs/t/photos/dropout-0.5/seed-1"));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = base();
        v["seed"] = 3.into();
        let e = Experiment::load(&write(dir.path(), v)).unwrap_err().to_string();
        assert!(e.contains("exp.json: field `seed`") && e.contains("unknown field"), "{e}");
        let mut v = base();
        v["seeds"] = serde_json::json!(["zero"]);
        let e = Experiment::load(&write(dir.path(), v)).unwrap_err().to_string();
        assert!(e.contains("field `seeds[0]`"), "{e}");
        let mut v = base();
        v["per_dataset"]["photos+emoji"] = serde_json::json!({});
        let e = Experiment::load(&write(dir.path(), v)).unwrap_err().to_string();
        assert!(e.contains("`per_dataset.photos+emoji`"), "{e}");
        let mut v = base();
        v["run"]["seed"] = 1.into();
        assert!(
            Experiment::load(&write(dir.path(), v)).unwrap_err().to_string().contains("`run.seed` is set by the grid")
        );
    }
}
