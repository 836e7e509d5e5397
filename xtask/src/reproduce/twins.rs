//! Twin cells (issue 25 item 2): a cell whose resolved config cannot give other results than an
//! earlier cell of the grid is that cell's twin. It is never run: its status record says
//! `same_as` the earlier cell, whose state and results are its own, and the report shows them
//! marked as such.
//!
//! Twins are found from the configs and the dataset catalogue, never from names: each cell's
//! config is reduced to its [`effective`] config — what it trains and measures, without the
//! settings that cannot act on it — and cells with equal effective configs (seed and everything
//! else alike) are twins; the first in grid order is the one that runs.

use super::experiment::Cell;
use super::record::{self, Record};
use anyhow::Result;
use featdrop_core::{RunConfig, catalogue};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A cell that is not run, and the cell it is the same as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Twin {
    /// The id of the earlier cell whose results are this one's.
    pub same_as: String,
    /// Why no result can differ.
    pub why: String,
}

/// `cfg` without the settings that cannot change its results, and why each was dropped.
///
/// - `+dropout:p` on a dataset with no overlay task: the modifier re-draws the second view's
///   overlay (`MultiTaskDataset::pair`); with no overlay there is nothing to re-draw, and the
///   pairs (no random draw is made for them), the training and every evaluation are the base
///   family's — the destruction analysis's `dropout:p` source is then the clean view for any p.
pub fn effective(cfg: &RunConfig) -> (RunConfig, Vec<String>) {
    let mut out = cfg.clone();
    let mut why = Vec::new();
    let overlay = catalogue::find(&cfg.dataset).map(|d| d.overlay_task().is_some());
    if cfg.view_mode.dropout.is_some() && overlay == Some(false) {
        out.view_mode.dropout = None;
        why.push(format!("no overlay to drop (`{}` has no overlay task)", cfg.dataset));
    }
    (out, why)
}

/// Every twin of `cells` (in grid order) by cell id: a cell whose effective config equals an
/// earlier cell's; the earliest of such cells is the one each twin names.
pub fn find(cells: &[Cell]) -> BTreeMap<String, Twin> {
    // Each distinct effective config, with the first cell that has it and what was dropped.
    let mut first: Vec<(serde_json::Value, &str, Vec<String>)> = Vec::new();
    let mut twins = BTreeMap::new();
    for c in cells {
        let (cfg, why) = effective(&c.config);
        let key = serde_json::to_value(&cfg).expect("a run config is JSON");
        match first.iter().find(|(k, _, _)| *k == key) {
            Some((_, id, first_why)) => {
                let why = match (why.is_empty(), first_why.is_empty()) {
                    (false, _) => why.join("; "),
                    (true, false) => first_why.join("; "),
                    // A variant with no fields of its own.
                    (true, true) => "the same resolved config".to_string(),
                };
                twins.insert(c.id.clone(), Twin { same_as: id.to_string(), why });
            }
            None => first.push((key, &c.id, why)),
        }
    }
    twins
}

/// The cells a run plans — those `selected`, and the cells their twins are the same as (a
/// twin's results are its twin's) — and the rest of the grid, both in grid order.
pub fn plan(grid: &[Cell], twins: &BTreeMap<String, Twin>, selected: impl Fn(&Cell) -> bool) -> (Vec<Cell>, Vec<Cell>) {
    let needed: BTreeSet<&str> =
        grid.iter().filter(|c| selected(c)).filter_map(|c| Some(twins.get(&c.id)?.same_as.as_str())).collect();
    grid.iter().cloned().partition(|c| selected(c) || needed.contains(c.id.as_str()))
}

/// A twin's status record: never run, its state is the cell it names.
pub fn record(twin: &Twin) -> Record {
    Record {
        state: "same".into(),
        same_as: Some(twin.same_as.clone()),
        same_why: Some(twin.why.clone()),
        ..Default::default()
    }
}

/// Writes the status record of every twin among `cells`.
pub fn write_records(exp_dir: &Path, cells: &[Cell], twins: &BTreeMap<String, Twin>) -> Result<()> {
    for c in cells {
        if let Some(t) = twins.get(&c.id) {
            record::write(exp_dir, &c.id, &record(t))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reproduce::experiment::Experiment;
    use std::path::Path;

    fn experiment(file: &str) -> Experiment {
        Experiment::load(&crate::paths::repo_root().join("experiments").join(file)).unwrap()
    }

    fn grid(file: &str) -> Vec<Cell> {
        experiment(file).cells(Path::new("runs"), None).unwrap()
    }

    /// The mechanism grid: exactly its photos × colour+dropout:p cells are twins, each of the
    /// photos × colour cell of its own seed; nothing on photos+digits is.
    #[test]
    fn the_mechanism_grids_twins_are_its_photos_dropout_cells() {
        let cells = grid("mechanism.json");
        let twins = find(&cells);
        let mut want = BTreeMap::new();
        for p in ["0.5", "1"] {
            for seed in experiment("mechanism.json").seeds {
                let twin = Twin {
                    same_as: format!("photos/colour/seed-{seed}"),
                    why: "no overlay to drop (`photos` has no overlay task)".into(),
                };
                want.insert(format!("photos/colour+dropout-{p}/seed-{seed}"), twin);
            }
        }
        assert_eq!(twins, want);
    }

    /// A config that differs in anything else than the dropped modifier is no twin: another seed,
    /// another field, a dataset with an overlay to drop.
    #[test]
    fn a_cell_that_differs_otherwise_is_no_twin() {
        let cells = grid("mechanism.json");
        let (s0, s1) = match experiment("mechanism.json").seeds[..] {
            [a, b, ..] => (a, b),
            _ => panic!("the mechanism grid has two seeds or more"),
        };
        let by_id = |id: String| cells.iter().find(|c| c.id == id).unwrap().clone();
        let (base, half) =
            (by_id(format!("photos/colour/seed-{s0}")), by_id(format!("photos/colour+dropout-0.5/seed-{s0}")));
        assert_eq!(find(&[base.clone(), half.clone()]).len(), 1);
        let mut epochs = half.clone();
        epochs.config.train.epochs += 1;
        assert!(find(&[base.clone(), epochs]).is_empty(), "another epoch count");
        assert!(find(&[by_id(format!("photos/colour/seed-{s1}")), half.clone()]).is_empty(), "another seed");
        let digits = [
            by_id(format!("photos+digits/colour/seed-{s0}")),
            by_id(format!("photos+digits/colour+dropout-0.5/seed-{s0}")),
        ];
        assert!(find(&digits).is_empty(), "photos+digits has an overlay to drop");
        assert!(effective(&digits[1].config).1.is_empty());
        // The twin comes after the cell it is the same as, whatever the order.
        let twins = find(&[half.clone(), base.clone()]);
        assert_eq!(twins.keys().collect::<Vec<_>>(), [&base.id]);
        assert_eq!(twins[&base.id].same_as, half.id);
    }

    /// The other grids: `photos` × `dropout:0.5` is `photos` × `expert` again (expert views,
    /// nothing to drop), once per seed; an audio dataset's noise is an overlay, so speech+noise ×
    /// dropout never is a twin.
    #[test]
    fn the_other_grids_twins_are_their_photos_dropout_cells() {
        for (file, seeds) in [("smoke.json", 0), ("small.json", 1), ("paper.json", 3)] {
            let twins = find(&grid(file));
            let want: BTreeMap<String, String> = (0..seeds)
                .map(|s| (format!("photos/dropout-0.5/seed-{s}"), format!("photos/expert/seed-{s}")))
                .collect();
            let got: BTreeMap<String, String> = twins.into_iter().map(|(k, t)| (k, t.same_as)).collect();
            assert_eq!(got, want, "{file}");
        }
    }

    /// `--only` naming a twin plans the cell it is the same as.
    #[test]
    fn a_selected_twin_brings_its_cell_along() {
        let cells = grid("mechanism.json");
        let twins = find(&cells);
        let (planned, outside) = plan(&cells, &twins, |c| c.id.contains("photos/colour+dropout-1/"));
        let ids: Vec<String> = planned.iter().map(|c| c.id.clone()).collect();
        let mut want = Vec::new();
        for mode in ["colour", "colour+dropout-1"] {
            want.extend(experiment("mechanism.json").seeds.iter().map(|s| format!("photos/{mode}/seed-{s}")));
        }
        want.sort_by_key(|id| cells.iter().position(|c| &c.id == id));
        assert_eq!(ids, want, "grid order");
        assert_eq!(outside.len(), cells.len() - want.len());
        let (planned, outside) = plan(&cells, &twins, |_| true);
        assert_eq!((planned.len(), outside.len()), (cells.len(), 0));
    }

    /// A twin's record names its twin and why; records of older versions, without these fields,
    /// still read.
    #[test]
    fn a_twins_record_names_its_twin_and_old_records_still_read() {
        let tmp = tempfile::tempdir().unwrap();
        let twin = Twin { same_as: "photos/colour/seed-0".into(), why: "no overlay to drop".into() };
        record::write(tmp.path(), "photos/colour+dropout-1/seed-0", &record(&twin)).unwrap();
        let back = record::read(tmp.path(), "photos/colour+dropout-1/seed-0").unwrap().unwrap();
        assert_eq!((back.state.as_str(), back.same_as.as_deref()), ("same", Some("photos/colour/seed-0")));
        assert_eq!(back.same_why.as_deref(), Some("no overlay to drop"));
        let old = r#"{"id": "a/b/seed-0", "state": "done", "seconds": 3.0, "executor": "local", "node": "n"}"#;
        std::fs::write(record::path(tmp.path(), "a/b/seed-0"), old).unwrap();
        let old = record::read(tmp.path(), "a/b/seed-0").unwrap().unwrap();
        assert_eq!((old.state.as_str(), old.seconds, old.same_as, old.costs), ("done", 3.0, None, None));
        assert!(old.note.is_none(), "read as it is, not rebuilt");
    }
}
