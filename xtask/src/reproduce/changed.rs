//! Results on disk made with something else than the experiment now says: a cell's run config
//! (its `config.json`), its `destruction_args`, the theory sweep's `theory` arguments. Such
//! results are never reported under the new values: they are an error naming what changed, or
//! with `--rerun-changed` they are deleted and made again.
//!
//! The tool arguments are recorded next to the outputs they make, *before* the tool runs (see
//! [`record_args`]), so a kill between the tool's outputs and the record cannot leave outputs
//! whose arguments look current. Outputs without a matching record — a record missing, unreadable
//! or different — count as changed: what made them is not known.

use super::experiment::{Cell, Experiment};
use anyhow::{Context, Result, bail};
use featdrop_core::RunConfig;
use featdrop_core::config::changed_fields;
use serde_json::json;
use std::path::{Path, PathBuf};

/// The file next to `destruction.json` that records the `destruction_args` it was made with.
pub const DESTRUCTION_ARGS: &str = "destruction-args.json";

/// The file in `theory/` that records the experiment's `theory` arguments of its outputs.
pub const THEORY_ARGS: &str = "reproduce-args.json";

/// The files of a run directory that are results: with any of them and no `config.json`, the
/// config they were made with is unknown.
const RESULTS: [&str; 4] = ["pretrain.done.json", "probe.json", "destruction.json", "metrics.jsonl"];

/// Results made with something else than the experiment now gives.
#[derive(Debug)]
pub struct Changed {
    /// The cell's id, or "theory sweep".
    pub id: String,
    /// Its run directory (or the sweep's folder), for messages.
    pub dir: PathBuf,
    /// `field old → new`, one per difference.
    pub fields: Vec<String>,
    /// What `--rerun-changed` deletes so that the stale results are made again.
    pub remove: Vec<PathBuf>,
}

/// The cells among `cells` holding results of another config or other `destruction_args`.
pub fn cells(exp: &Experiment, cells: &[Cell]) -> Result<Vec<Changed>> {
    let mut out = Vec::new();
    for c in cells {
        out.extend(cell(exp, c)?);
    }
    Ok(out)
}

fn cell(exp: &Experiment, c: &Cell) -> Result<Option<Changed>> {
    let mut fields = config_changes(c)?;
    // A changed config reruns the whole cell; changed destruction arguments only its destruction.
    let mut remove = if fields.is_empty() { Vec::new() } else { vec![c.run_dir.clone()] };
    if exp.destruction && c.run_dir.join("destruction.json").exists() {
        let recorded = c.run_dir.join(DESTRUCTION_ARGS);
        if let Some(field) = args_change("destruction_args", &recorded, &exp.destruction_args) {
            fields.push(field);
            if remove.is_empty() {
                remove = ["destruction.json", "destruction.png", DESTRUCTION_ARGS].map(|f| c.run_dir.join(f)).to_vec();
            }
        }
    }
    Ok((!fields.is_empty()).then(|| Changed { id: c.id.clone(), dir: c.run_dir.clone(), fields, remove }))
}

/// How the cell's `config.json` differs from the config it resolves to now (the device aside);
/// a run directory holding results but no `config.json` differs in an unknown way.
fn config_changes(c: &Cell) -> Result<Vec<String>> {
    let path = c.run_dir.join("config.json");
    if !path.exists() {
        let results: Vec<&str> = RESULTS.into_iter().filter(|f| c.run_dir.join(f).exists()).collect();
        if results.is_empty() {
            return Ok(Vec::new());
        }
        return Ok(vec![format!(
            "config.json is missing beside {} (the config those results were made with is unknown)",
            results.join(", ")
        )]);
    }
    let old = RunConfig::from_file(&path)
        .with_context(|| format!("{} is not a run config this version reads", path.display()))?;
    Ok(changed_fields(&old, &c.config))
}

/// `field old → new` when the arguments recorded in `recorded` are not `now` (or are missing or
/// unreadable), else None.
fn args_change(field: &str, recorded: &Path, now: &[String]) -> Option<String> {
    let old = if recorded.exists() {
        match featdrop_core::io::read_json::<Vec<String>>(recorded) {
            Ok(old) if old == now => return None,
            Ok(old) => json!(old).to_string(),
            Err(e) => format!("unreadable ({e:#})"),
        }
    } else {
        format!("not recorded ({} is missing)", recorded.display())
    };
    Some(format!("{field} {old} → {}", json!(now)))
}

/// The theory sweep, as a changed "cell", when its folder holds outputs that the experiment's
/// `theory` arguments, as recorded before the sweep ran, do not match.
pub fn theory(exp_dir: &Path, extra: &[String]) -> Result<Option<Changed>> {
    let dir = exp_dir.join("theory");
    if !has_outputs(&dir)? {
        return Ok(None);
    }
    Ok(args_change("theory", &dir.join(THEORY_ARGS), extra).map(|field| Changed {
        id: "theory sweep".into(),
        dir: dir.clone(),
        fields: vec![field],
        remove: vec![dir.clone()],
    }))
}

/// Whether `dir` holds anything but the arguments' record (a folder, or a plain file in the
/// way: either is something the sweep left or will trip on).
fn has_outputs(dir: &Path) -> Result<bool> {
    if !dir.is_dir() {
        return Ok(false);
    }
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        if e?.file_name() != THEORY_ARGS {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Records the arguments a tool is about to make its outputs with (before it runs: see the
/// module's doc).
pub fn record_args(path: &Path, args: &[String]) -> Result<()> {
    featdrop_core::io::write_json_atomic(path, args)
}

/// Changed results are an error naming each cell and field, unless `rerun` (`--rerun-changed`):
/// then what each one lists is removed (with its status record), so it is made again.
pub fn handle(exp: &Experiment, exp_dir: &Path, changed: &[Changed], rerun: bool) -> Result<()> {
    if changed.is_empty() {
        return Ok(());
    }
    if !rerun {
        bail!(
            "{}: {} cell(s) hold results made with another config than the experiment now gives them:\n{}\n\
             their results would be reported as this config's; pass --rerun-changed to delete those cells' \
             results and run them again, or restore the experiment's values (or give it another `name`)",
            exp.file.display(),
            changed.len(),
            list(changed)
        );
    }
    for c in changed {
        eprintln!("rerun {}: its config changed ({}); deleting {}", c.id, c.fields.join(", "), names(&c.remove));
        for p in &c.remove {
            remove(p)?;
        }
        remove(&super::record::path(exp_dir, &c.id))?;
    }
    Ok(())
}

/// `--only`: cells outside the selection that hold results of another config are an error. The
/// report covers the whole experiment folder, so it would show them beside the selected cells'
/// results of this config, as if one config had made both.
pub fn refuse_outside_only(exp: &Experiment, only: &str, outside: &[Changed]) -> Result<()> {
    if outside.is_empty() {
        return Ok(());
    }
    bail!(
        "{}: --only {only}: {} cell(s) outside the selection hold results made with another config than the \
         experiment now gives them:\n{}\nthe report covers every cell of `{}`, so it would mix two configs; \
         run without --only (with --rerun-changed to rerun those cells too), or restore the experiment's values \
         (or give it another `name`)",
        exp.file.display(),
        outside.len(),
        list(outside),
        exp.name
    )
}

fn list(changed: &[Changed]) -> String {
    let line = |c: &Changed| format!("  {} ({}): {}", c.id, c.dir.display(), c.fields.join(", "));
    changed.iter().map(line).collect::<Vec<_>>().join("\n")
}

fn names(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Removes a file or folder, if present.
fn remove(p: &Path) -> Result<()> {
    let result = if p.is_dir() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("deleting {}", p.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 27.5: the sweep's arguments are recorded before its outputs; outputs without a record
    /// (a kill after summary.md but before the record, by the old order) or with another one are
    /// changed, and the record alone (a sweep killed before any output) is not.
    #[test]
    fn theory_outputs_without_their_recorded_arguments_are_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("theory");
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(theory(tmp.path(), &args(&["--ks", "2"])).unwrap().is_none(), "no folder");
        record_args(&dir.join(THEORY_ARGS), &args(&["--ks", "2"])).unwrap();
        assert!(theory(tmp.path(), &args(&["--ks", "3"])).unwrap().is_none(), "a record alone is no output");
        std::fs::write(dir.join("theory.json"), "{}").unwrap();
        std::fs::write(dir.join("summary.md"), "#").unwrap();
        assert!(theory(tmp.path(), &args(&["--ks", "2"])).unwrap().is_none(), "recorded, the same");
        let c = theory(tmp.path(), &args(&["--ks", "3"])).unwrap().unwrap();
        assert_eq!(c.fields, [r#"theory ["--ks","2"] → ["--ks","3"]"#]);
        assert_eq!(c.remove, std::slice::from_ref(&dir));
        std::fs::remove_file(dir.join(THEORY_ARGS)).unwrap();
        let c = theory(tmp.path(), &args(&["--ks", "2"])).unwrap().unwrap();
        assert!(c.fields[0].starts_with("theory not recorded ("), "{:?}", c.fields);
        std::fs::write(dir.join(THEORY_ARGS), "[\"--ks\"").unwrap();
        let c = theory(tmp.path(), &args(&["--ks", "2"])).unwrap().unwrap();
        assert!(c.fields[0].starts_with("theory unreadable ("), "{:?}", c.fields);
    }

    /// Issues 27.3 and 27.4: a finished cell without `config.json` is changed (it escaped the
    /// check), and so is its destruction when `destruction_args` differ from those recorded with
    /// it, or none were recorded; only the destruction's files are then made again.
    #[test]
    fn a_missing_config_and_changed_destruction_args_are_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let mut exp = Experiment::load(&crate::paths::repo_root().join("experiments/smoke.json")).unwrap();
        assert!(exp.destruction);
        let c = exp.cells(tmp.path(), None).unwrap().remove(0);
        std::fs::create_dir_all(&c.run_dir).unwrap();
        for f in ["pretrain.done.json", "probe.json", "destruction.json"] {
            std::fs::write(c.run_dir.join(f), "{}").unwrap();
        }
        let found = cells(&exp, std::slice::from_ref(&c)).unwrap();
        assert_eq!(found.len(), 1);
        let missing = "config.json is missing beside pretrain.done.json, probe.json, destruction.json";
        assert!(found[0].fields[0].starts_with(missing), "{:?}", found[0].fields);
        assert_eq!(found[0].remove, std::slice::from_ref(&c.run_dir), "the whole cell runs again");

        featdrop_core::io::write_json_atomic(&c.run_dir.join("config.json"), &c.config).unwrap();
        let found = cells(&exp, std::slice::from_ref(&c)).unwrap();
        assert!(found[0].fields[0].starts_with("destruction_args not recorded ("), "{:?}", found[0].fields);
        let only_destruction = ["destruction.json", "destruction.png", DESTRUCTION_ARGS].map(|f| c.run_dir.join(f));
        assert_eq!(found[0].remove, only_destruction);

        record_args(&c.run_dir.join(DESTRUCTION_ARGS), &exp.destruction_args).unwrap();
        assert!(cells(&exp, std::slice::from_ref(&c)).unwrap().is_empty(), "recorded and the same");
        let before = json!(exp.destruction_args).to_string();
        exp.destruction_args.extend(["--epochs".to_string(), "2".to_string()]);
        let found = cells(&exp, std::slice::from_ref(&c)).unwrap();
        assert_eq!(found[0].fields, [format!("destruction_args {before} → {}", json!(exp.destruction_args))]);
        exp.destruction = false;
        assert!(cells(&exp, std::slice::from_ref(&c)).unwrap().is_empty(), "no destruction, nothing to compare");
    }
}
