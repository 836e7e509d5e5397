//! Experiment files (`experiments/*.json`): a grid of dataset × view mode × seed plus the
//! hyperparameters every run of the grid shares, resolved into one typed run config per cell.
//!
//! Schema (unknown keys are errors that name the file and the field):
//! ```json
//! {
//!   "name": "small",                       // experiment name: runs/<name>/…
//!   "description": "…",
//!   "datasets": ["photos+digits", …],      // names of the dataset catalogue
//!   "view_modes": ["expert", "viewmaker", "expert+viewmaker", "dropout:0.5"],
//!   "seeds": [0, 1, 2],
//!   "run": { … },                          // fields of featdrop_core::RunConfig shared by all cells
//!   "per_dataset": { "speech+noise": { … } },  // further RunConfig fields for one dataset
//!   "per_cell": { "speech+noise/dropout:0.5": { … } },  // further fields for one dataset/view mode
//!   "variants": { "speech+noise/expert@spectral": { … } },  // an extra cell per seed beside
//!                                          // speech+noise/expert, with these fields on top
//!   "destruction": true,                   // run featdrop-eval destruction per cell
//!   "destruction_args": ["--epochs", "3"], // extra featdrop-eval destruction arguments
//!   "theory": ["--seeds", "0,1"],          // extra featdrop-theory sweep arguments (null: no sweep)
//!   "slurm": {"partition": "gpu", "time": "12:00:00"},  // optional: `--executor slurm` resources
//!   "jobs": 2                              // optional: cells at once on the local executor
//!                                          // (`--jobs` wins; default: one per GPU, or per core)
//! }
//! ```
//! The run config of a cell is its dataset's defaults (the catalogue's published values), then
//! `run`, then `per_dataset[dataset]`, then `per_cell["dataset/view_mode"]`, then for a variant
//! cell `variants["dataset/view_mode@label"]`, then the cell's dataset, view mode and seed — parsed
//! and validated once, by `RunConfig::from_value`, before anything runs. Each binary then gets the
//! cell's one config file.

use anyhow::{Context, Result, bail, ensure};
use featdrop_core::config::{merge_json, set_path};
use featdrop_core::{RunConfig, ViewMode, catalogue};
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
    pub view_modes: Vec<ViewMode>,
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub run: Map<String, Value>,
    #[serde(default)]
    pub per_dataset: BTreeMap<String, Map<String, Value>>,
    /// Further fields for one dataset and view mode, keyed `"dataset/view_mode"`.
    #[serde(default)]
    pub per_cell: BTreeMap<String, Map<String, Value>>,
    /// Extra cells beside a grid cell, keyed `"dataset/view_mode@label"`: the same dataset, view
    /// mode and seeds with further fields (e.g. the other audio expert variant). Their folders are
    /// `<dataset>/<view-mode dir>@<label>/seed-<n>` and the report shows them as `view_mode@label`.
    #[serde(default)]
    pub variants: BTreeMap<String, Map<String, Value>>,
    #[serde(default = "yes")]
    pub destruction: bool,
    #[serde(default)]
    pub destruction_args: Vec<String>,
    #[serde(default)]
    pub theory: Option<Vec<String>>,
    /// Resources of the Slurm array's tasks (`--executor slurm`; flags override them).
    #[serde(default)]
    pub slurm: Option<super::slurm::SlurmSection>,
    /// How many cells the local executor runs at once unless `--jobs` says (see `super::slots`).
    #[serde(default)]
    pub jobs: Option<usize>,
    /// Where the file was read from (for errors).
    #[serde(skip)]
    pub file: PathBuf,
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
    pub view_mode: ViewMode,
    /// The label of a variant cell (`spectral` of `expert@spectral`).
    pub variant: Option<String>,
    pub seed: u64,
    /// The run directory (`runs/<experiment>/<id>`).
    pub run_dir: PathBuf,
    /// The resolved, validated run config.
    pub config: RunConfig,
}

impl Experiment {
    /// Reads and checks an experiment file; errors name the file and the field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let raw: Value = serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?;
        if raw.get("probe_features").is_some() {
            bail!(
                "{}: field `probe_features` is no longer read (it overrode every cell's probe.features); \
                 set `run.probe.features` (or `per_dataset.<name>.probe.features`) instead",
                path.display()
            );
        }
        let mut exp: Self = serde_path_to_error::deserialize(raw)
            .map_err(|e| anyhow::anyhow!("{}: field `{}`: {}", path.display(), e.path(), e.inner()))?;
        exp.file = path.to_path_buf();
        exp.check()?;
        Ok(exp)
    }

    fn check(&self) -> Result<()> {
        let f = self.file.display();
        ensure!(
            featdrop_core::config::is_name(&self.name),
            "{f}: field `name` = \"{}\" must be a name of 1–100 bytes that is one path component (no '/', not '.' or '..'): it names the folder runs/<name>",
            self.name
        );
        for (field, empty) in [
            ("datasets", self.datasets.is_empty()),
            ("view_modes", self.view_modes.is_empty()),
            ("seeds", self.seeds.is_empty()),
        ] {
            ensure!(!empty, "{f}: field `{field}` must list at least one value");
        }
        for (i, d) in self.datasets.iter().enumerate() {
            catalogue::lookup(d).map_err(|e| anyhow::anyhow!("{f}: field `datasets[{i}]`: {e}"))?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in self.seeds.iter().enumerate() {
            ensure!(seen.insert(s), "{f}: field `seeds[{i}]`: seed {s} is listed twice; each seed is one run");
        }
        for key in self.per_dataset.keys() {
            ensure!(
                self.datasets.contains(key),
                "{f}: field `per_dataset.{key}` names a dataset that is not in `datasets`"
            );
        }
        for key in self.per_cell.keys() {
            let known = self.datasets.iter().any(|d| self.view_modes.iter().any(|m| *key == format!("{d}/{m}")));
            ensure!(known, "{f}: field `per_cell.{key}` names no dataset/view_mode pair of the grid");
        }
        for key in self.variants.keys() {
            let known = self.variant_cells().any(|(d, m, label)| *key == format!("{d}/{m}@{label}"));
            ensure!(
                known
                    && key.rsplit_once('@').is_some_and(|(_, l)| featdrop_core::config::is_name(l) && !l.contains('@')),
                "{f}: field `variants.{key}` must be `<dataset>/<view_mode>@<label>` with a dataset/view_mode pair of \
                 the grid and a label that can be part of a folder name"
            );
        }
        ensure!(
            self.jobs != Some(0),
            "{f}: field `jobs` = 0: expected the number of cells to run at once, at least 1 (or no field: one \
             per GPU, or per core on a CPU)"
        );
        for reserved in ["experiment", "dataset", "view_mode", "seed"] {
            ensure!(!self.run.contains_key(reserved), "{f}: field `run.{reserved}` is set by the grid; remove it");
        }
        Ok(())
    }

    /// Every cell of the grid, in a stable order (dataset, view mode, seed), each config resolved
    /// and validated; an invalid one is an error naming the file, the cell and the field.
    /// `device` (from `--device`) replaces every cell's device.
    pub fn cells(&self, runs_root: &Path, device: Option<&str>) -> Result<Vec<Cell>> {
        let mut out = Vec::new();
        for dataset in &self.datasets {
            for &mode in &self.view_modes {
                let labels = self.variant_cells().filter(|(d, m, _)| *d == dataset && *m == mode).map(|c| c.2);
                for variant in std::iter::once(None).chain(labels.map(Some)) {
                    for &seed in &self.seeds {
                        out.push(self.cell(runs_root, device, dataset, mode, variant.as_deref(), seed)?);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every `(dataset, view_mode, label)` a `variants` key may name (labels left open).
    fn variant_cells(&self) -> impl Iterator<Item = (&String, ViewMode, String)> {
        self.variants.keys().filter_map(move |k| {
            let (head, label) = k.rsplit_once('@')?;
            let (d, m) = self
                .datasets
                .iter()
                .flat_map(|d| self.view_modes.iter().map(move |m| (d, *m)))
                .find(|(d, m)| head == format!("{d}/{m}"))?;
            Some((d, m, label.to_string()))
        })
    }

    fn cell(
        &self,
        runs_root: &Path,
        device: Option<&str>,
        dataset: &str,
        mode: ViewMode,
        variant: Option<&str>,
        seed: u64,
    ) -> Result<Cell> {
        let label = variant.map(|v| format!("@{v}")).unwrap_or_default();
        let id = format!("{dataset}/{}{label}/seed-{seed}", mode.dir_name());
        let mut value = Value::Object(self.run.clone());
        let layers = [
            self.per_dataset.get(dataset),
            self.per_cell.get(&format!("{dataset}/{mode}")),
            variant.and_then(|_| self.variants.get(&format!("{dataset}/{mode}{label}"))),
        ];
        for extra in layers.into_iter().flatten() {
            merge_json(&mut value, &Value::Object(extra.clone()));
        }
        let cell = serde_json::json!({"experiment": self.name, "dataset": dataset,
            "view_mode": mode.to_string(), "seed": seed});
        merge_json(&mut value, &cell);
        if let Some(d) = device {
            set_path(&mut value, "device", d.into());
        }
        let origin = format!("{} (cell {id})", self.file.display());
        let config = RunConfig::from_value(value, &origin)
            .with_context(|| format!("{} resolves to an invalid run config", self.file.display()))?;
        let run_dir = runs_root.join(&self.name).join(&id);
        Ok(Cell {
            id,
            dataset: dataset.into(),
            view_mode: mode,
            variant: variant.map(str::to_string),
            seed,
            run_dir,
            config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use featdrop_core::config::PairNoise;

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
        let cells = exp.cells(Path::new("runs"), None).unwrap();
        assert_eq!(cells.len(), 8);
        let c = cells.iter().find(|c| c.id == "photos/dropout-0.5/seed-1").unwrap();
        assert_eq!(c.config.train.epochs, 5, "per-dataset value wins");
        assert_eq!(c.config.train.lr, 0.1, "shared value kept beside it");
        assert_eq!(c.config.view_mode, ViewMode::dropout(0.5));
        assert_eq!(c.config.viewmaker.epsilon, Some(0.05), "the catalogue's budget, resolved");
        assert_eq!(c.run_dir, Path::new("runs/t/photos/dropout-0.5/seed-1"));
        let on_gpu = exp.cells(Path::new("runs"), Some("cuda:1")).unwrap();
        assert!(on_gpu.iter().all(|c| c.config.device.to_string() == "cuda:1"));
    }

    #[test]
    fn audio_pair_noise_is_independent_unless_a_cell_says_shared() {
        // Published default (issue 15.1): every speech+noise cell re-draws the second view's noise,
        // except the `+dropout` cell, which needs `shared` and gets it through `per_cell`.
        let dir = tempfile::tempdir().unwrap();
        let mut v = base();
        v["datasets"] = serde_json::json!(["speech+noise"]);
        v["per_dataset"] = serde_json::json!({});
        let e = format!(
            "{:#}",
            Experiment::load(&write(dir.path(), v.clone())).unwrap().cells(Path::new("r"), None).unwrap_err()
        );
        assert!(e.contains("speech+noise/dropout-0.5") && e.contains("data.pair_noise = shared"), "{e}");
        v["per_cell"] = serde_json::json!({"speech+noise/dropout:0.5": {"data": {"pair_noise": "shared"}}});
        let cells = Experiment::load(&write(dir.path(), v.clone())).unwrap().cells(Path::new("r"), None).unwrap();
        for c in &cells {
            let want = if c.view_mode.dropout.is_some() { PairNoise::Shared } else { PairNoise::Independent };
            assert_eq!(c.config.data.pair_noise, want, "{}", c.id);
        }
        v["per_cell"] = serde_json::json!({"speech+noise/viewmaker": {}});
        let e = Experiment::load(&write(dir.path(), v)).unwrap_err().to_string();
        assert!(e.contains("`per_cell.speech+noise/viewmaker` names no dataset/view_mode pair"), "{e}");
    }

    #[test]
    fn a_variant_adds_cells_beside_its_grid_cell_with_its_fields_on_top() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = base();
        v["variants"] = serde_json::json!({"photos/expert@slow": {"train": {"lr": 0.01}}});
        let cells = Experiment::load(&write(dir.path(), v.clone())).unwrap().cells(Path::new("r"), None).unwrap();
        assert_eq!(cells.len(), 8 + 2, "one extra cell per seed");
        let slow = cells.iter().find(|c| c.id == "photos/expert@slow/seed-1").unwrap();
        assert_eq!((slow.config.train.lr, slow.config.train.epochs), (0.01, 5), "variant over per_dataset");
        assert_eq!(
            (slow.variant.as_deref(), slow.run_dir.clone()),
            (Some("slow"), "r/t/photos/expert@slow/seed-1".into())
        );
        let plain = cells.iter().find(|c| c.id == "photos/expert/seed-1").unwrap();
        assert_eq!((plain.config.train.lr, plain.variant.as_deref()), (0.1, None));
        for bad in ["photos/viewmaker@x", "photos/expert", "photos/expert@a/b"] {
            v["variants"] = serde_json::json!({ bad: {} });
            let e = Experiment::load(&write(dir.path(), v.clone())).unwrap_err().to_string();
            assert!(e.contains(&format!("field `variants.{bad}` must be")), "{bad}: {e}");
        }
    }

    #[test]
    fn the_paper_grid_runs_both_audio_expert_variants_and_the_published_viewmaker_input() {
        use featdrop_core::config::{AudioExpert, ViewmakerInput};
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/paper.json");
        let cells = Experiment::load(&path).unwrap().cells(Path::new("r"), None).unwrap();
        let audio = |mode: &'static str| {
            cells.iter().filter(move |c| c.dataset == "speech+noise" && c.id.split('/').nth(1) == Some(mode))
        };
        assert!(audio("expert").count() > 0 && audio("expert").count() == audio("expert@spectral").count());
        assert!(audio("expert").all(|c| c.config.views.audio_expert == AudioExpert::Waveform));
        assert!(audio("expert@spectral").all(|c| c.config.views.audio_expert == AudioExpert::Spectral));
        assert!(audio("viewmaker").all(|c| c.config.views.viewmaker_input == ViewmakerInput::WaveformViews));
    }

    #[test]
    fn every_experiment_file_of_the_repository_resolves() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
        let pilots = ["pilots/power", "pilots/viewmaker"];
        for name in super::super::SCALES.into_iter().chain(pilots) {
            let exp = Experiment::load(&dir.join(format!("{name}.json"))).unwrap();
            let cells = exp.cells(Path::new("r"), None).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            for c in cells.iter().filter(|c| c.dataset == "speech+noise" && c.view_mode.dropout.is_none()) {
                assert_eq!(c.config.data.pair_noise, PairNoise::Independent, "{name}: {}", c.id);
            }
        }
    }

    /// Issue 28 item 3: the cures grid is the mechanism study's run section and seeds, with each
    /// cure one change to `colour` on both datasets — IFM, the projection head, a 4× embedding
    /// as variants — and its cells reach the fields.
    #[test]
    fn the_cures_grid_is_the_mechanism_study_plus_one_change_per_cure() {
        use featdrop_core::config::Objective;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
        let cures = Experiment::load(&dir.join("cures.json")).unwrap();
        let mechanism = Experiment::load(&dir.join("mechanism.json")).unwrap();
        // The cures were compared at the mechanism study's earlier size (1 024 × 3, 512 test images,
        // seeds 0–4; issue 28), where their results were measured; the mechanism study has since
        // grown (issue 26). Everything else of its run section is the same.
        let mut earlier = mechanism.run.clone();
        earlier["data"]["train_size"] = 1024.into();
        earlier["data"]["test_size"] = 512.into();
        assert_eq!((&cures.run, &cures.seeds), (&earlier, &vec![0, 1, 2, 3, 4]));
        let cells = cures.cells(Path::new("r"), None).unwrap();
        let modes = |ds: &str| {
            let mut m: Vec<String> = cells
                .iter()
                .filter(|c| c.dataset == ds)
                .map(|c| format!("{}{}", c.view_mode, c.variant.as_ref().map(|v| format!("@{v}")).unwrap_or_default()))
                .collect();
            m.dedup();
            m
        };
        let want = ["colour", "colour@head", "colour@ifm", "colour@wide", "colour+dropout:0.5", "viewmaker"];
        for ds in ["photos", "photos+digits"] {
            assert_eq!(modes(ds), want, "{ds}");
        }
        assert_eq!(cells.len(), 2 * want.len() * 5);
        let of = |id: &str| &cells.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no {id}")).config;
        let plain = of("photos+digits/colour/seed-0");
        let ifm = of("photos+digits/colour@ifm/seed-0");
        assert_eq!((ifm.train.objective, ifm.train.ifm_epsilon, ifm.train.ifm_alpha), (Objective::Ifm, 0.1, 1.0));
        assert!(of("photos+digits/colour@head/seed-3").encoder.projection_head);
        assert_eq!(of("photos/colour@wide/seed-4").encoder.embed_dim, 4 * plain.encoder.embed_dim);
        // Each variant differs from `colour` in its own fields only.
        for (label, fields) in [
            ("ifm", vec!["train.objective"]),
            ("head", vec!["encoder.projection_head"]),
            ("wide", vec!["encoder.embed_dim"]),
        ] {
            let changed =
                featdrop_core::config::changed_fields(plain, of(&format!("photos+digits/colour@{label}/seed-0")));
            let names: Vec<&str> = changed.iter().map(|c| c.split(' ').next().unwrap()).collect();
            assert_eq!(names, fields, "{label}: {changed:?}");
        }
        assert_eq!(plain.train.objective, Objective::SimclrPublished);
        assert!(!plain.encoder.projection_head);
        assert!(
            cures.theory.as_ref().is_some_and(|t| t.iter().any(|a| a == "--ks")),
            "a k sweep for the theory figure"
        );
    }

    #[test]
    fn each_cell_keeps_its_own_probe_features() {
        // The old top-level `probe_features` overrode every cell's probe.features on the command
        // line; now the run config is the only place, per dataset if need be.
        let dir = tempfile::tempdir().unwrap();
        let mut v = base();
        v["run"]["probe"] = serde_json::json!({"features": "cached"});
        v["per_dataset"]["photos"]["probe"] = serde_json::json!({"features": "views"});
        let exp = Experiment::load(&write(dir.path(), v.clone())).unwrap();
        let cells = exp.cells(Path::new("runs"), None).unwrap();
        let features = |id: &str| cells.iter().find(|c| c.id == id).unwrap().config.probe.features.to_string();
        assert_eq!(features("photos/expert/seed-0"), "views");
        assert_eq!(features("photos+digits/expert/seed-0"), "cached");
        for c in &cells {
            let steps = super::super::steps(&exp, c, Path::new("runs/t"));
            let probe = steps.iter().find(|s| s.get(1).is_some_and(|a| a == "probe")).unwrap();
            assert!(!probe.iter().any(|a| a == "--features"), "no override of the config: {probe:?}");
        }
        v["probe_features"] = "views".into();
        let e = Experiment::load(&write(dir.path(), v)).unwrap_err().to_string();
        assert!(e.contains("`probe_features` is no longer read") && e.contains("run.probe.features"), "{e}");
    }

    #[test]
    fn every_cell_is_validated_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = base();
        v["per_dataset"]["photos"]["viewmaker"] = serde_json::json!({"epsilon": -1});
        let exp = Experiment::load(&write(dir.path(), v)).unwrap();
        let e = format!("{:#}", exp.cells(Path::new("runs"), None).unwrap_err());
        assert!(e.contains("exp.json resolves to an invalid run config"), "{e}");
        assert!(e.contains("(cell photos/expert/seed-0)") && e.contains("`viewmaker.epsilon` = -1"), "{e}");
        let mut v = base();
        v["datasets"][1] = "photos+emoji".into();
        v["per_dataset"] = serde_json::json!({});
        let e = Experiment::load(&write(dir.path(), v)).unwrap_err().to_string();
        assert!(e.contains("field `datasets[1]`: unknown dataset `photos+emoji`"), "{e}");
        for bad in ["..", "a/b"] {
            let mut v = base();
            v["name"] = bad.into();
            let e = Experiment::load(&write(dir.path(), v)).unwrap_err().to_string();
            assert!(e.contains("field `name`") && e.contains("one path component"), "{e}");
        }
        let mut v = base();
        v["seeds"] = serde_json::json!([0, 0]);
        let e = Experiment::load(&write(dir.path(), v)).unwrap_err().to_string();
        assert!(e.contains("field `seeds[1]`: seed 0 is listed twice"), "{e}");
        let mut v = base();
        v["view_modes"] = serde_json::json!(["expert", "viewmaker+dropout:2"]);
        let e = Experiment::load(&write(dir.path(), v)).unwrap_err().to_string();
        assert!(e.contains("field `view_modes[1]`") && e.contains("outside [0, 1]"), "{e}");
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
        v["jobs"] = 0.into();
        let e = Experiment::load(&write(dir.path(), v.clone())).unwrap_err().to_string();
        assert!(e.contains("exp.json: field `jobs` = 0: expected the number of cells"), "{e}");
        v["jobs"] = "two".into();
        let e = Experiment::load(&write(dir.path(), v.clone())).unwrap_err().to_string();
        assert!(e.contains("exp.json: field `jobs`: invalid type"), "{e}");
        v["jobs"] = 2.into();
        assert_eq!(Experiment::load(&write(dir.path(), v)).unwrap().jobs, Some(2));
        let mut v = base();
        v["run"]["seed"] = 1.into();
        assert!(
            Experiment::load(&write(dir.path(), v)).unwrap_err().to_string().contains("`run.seed` is set by the grid")
        );
    }
}
