//! `results.json` and the settings table: the same numbers as REPORT.md, machine-readable.
//! Accuracies and rates are fractions here (REPORT.md shows them in %).

use super::load::{Cell, Experiment};
use super::stats::{Summary, is_best, task_roles};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

fn text(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

/// (setting, value); a setting whose runs disagree lists every value.
pub fn settings(exp: &Experiment) -> Vec<(String, String)> {
    let cfg = |ptr: &'static str| move |c: &Cell| c.config.as_ref()?.pointer(ptr).map(text);
    let probe = |f: fn(&super::load::ProbeProtocol) -> String| move |c: &Cell| c.probe.as_ref().map(|p| f(&p.protocol));
    type Getter<'a> = Box<dyn Fn(&Cell) -> Option<String> + 'a>;
    let rows: Vec<(&str, Getter)> = vec![
        ("view modes", Box::new(|c: &Cell| Some(c.mode.clone()))),
        ("seeds", Box::new(|c: &Cell| Some(c.seed.to_string()))),
        ("data source", Box::new(cfg("/data/source"))),
        ("train size", Box::new(cfg("/data/train_size"))),
        ("test size", Box::new(cfg("/data/test_size"))),
        ("audio pair noise", Box::new(|c: &Cell| (c.dataset == "speech+noise").then(|| cfg("/data/pair_noise")(c))?)),
        ("pretraining epochs", Box::new(cfg("/train/epochs"))),
        ("batch size", Box::new(cfg("/train/batch_size"))),
        (
            "objective / update",
            Box::new(|c: &Cell| Some(format!("{} / {}", cfg("/train/objective")(c)?, cfg("/train/update")(c)?))),
        ),
        ("encoder arch", Box::new(cfg("/encoder/arch"))),
        ("encoder width", Box::new(cfg("/encoder/width"))),
        ("viewmaker width multiplier", Box::new(cfg("/viewmaker/width_mult"))),
        ("viewmaker residual blocks", Box::new(cfg("/viewmaker/num_res_blocks"))),
        ("probe features", Box::new(probe(|p| p.features.clone()))),
        ("probe epochs", Box::new(probe(|p| p.epochs.to_string()))),
        ("probe batch size", Box::new(probe(|p| p.batch_size.to_string()))),
        ("probe feature dim", Box::new(probe(|p| p.feature_dim.to_string()))),
        ("probe train / test size", Box::new(probe(|p| format!("{} / {}", p.train_size, p.test_size)))),
        ("device", Box::new(|c: &Cell| c.done.as_ref().map(|d| d.device.clone()))),
        ("torch version", Box::new(|c: &Cell| c.done.as_ref()?.torch_version.clone())),
    ];
    let mut out = vec![("experiment".to_string(), exp.name.clone())];
    for (name, get) in rows {
        let values: BTreeSet<String> = exp.cells.iter().filter_map(get).collect();
        let mut values: Vec<String> = values.into_iter().collect();
        if name == "view modes" {
            values.sort_by_key(|m| super::stats::mode_key(m));
        }
        match values.len() {
            0 => {}
            1 => out.push((name.to_string(), values.remove(0))),
            _ if matches!(name, "view modes" | "seeds") => out.push((name.to_string(), values.join(", "))),
            _ => out.push((name.to_string(), format!("{} (differs across runs)", values.join(" / ")))),
        }
    }
    out
}

fn cell(c: &Cell) -> Value {
    let probe: Map<String, Value> =
        c.probe.iter().flat_map(|p| p.tasks.iter().map(|(t, r)| (t.clone(), json!(r.top1)))).collect();
    // Every probed checkpoint by pretraining epoch (the final one included), task → top-1.
    let probe_epochs: Map<String, Value> = c
        .probe
        .iter()
        .flat_map(|p| p.by_epoch())
        .map(|(e, tasks)| {
            (e.to_string(), json!(tasks.iter().map(|(t, r)| (t.clone(), json!(r.top1))).collect::<Map<_, _>>()))
        })
        .collect();
    let destruction: Map<String, Value> = c
        .destruction
        .iter()
        .flat_map(|d| d.tasks.iter())
        .map(|(t, r)| {
            let fams: Map<String, Value> =
                r.families.iter().map(|(f, v)| (f.clone(), json!(v.destruction_rate))).collect();
            (t.clone(), json!({"clean_accuracy": r.clean_accuracy, "families": fams}))
        })
        .collect();
    let state = c
        .status
        .as_ref()
        .map(|s| s.state.clone())
        .unwrap_or_else(|| if c.finished() { "done" } else { "incomplete" }.into());
    json!({
        "id": c.id, "dataset": c.dataset, "view_mode": c.mode, "seed": c.seed, "state": state,
        "seconds": c.status.as_ref().map(|s| s.seconds),
        "costs": c.status.as_ref().and_then(|s| s.costs.clone()),
        "same_as": c.same_as.as_ref().map(|t| json!({"id": t.id, "view_mode": t.mode, "why": t.why})),
        "error": c.status.as_ref().and_then(|s| s.error.clone()),
        "probe": if c.probe.is_some() { Value::Object(probe) } else { Value::Null },
        "probe_epochs": if c.probe.is_some() { Value::Object(probe_epochs) } else { Value::Null },
        "destruction": if c.destruction.is_some() { Value::Object(destruction) } else { Value::Null },
        "knn": c.done.as_ref().map(|d| json!(d.knn)),
        "final_loss": c.done.as_ref().map(|d| d.last_epoch_loss),
        "epochs": c.done.as_ref().map(|d| d.epochs),
        "train_seconds": c.done.as_ref().map(|d| d.seconds),
        "images_per_s": c.done.as_ref().map(|d| d.images_per_s),
        "device": c.done.as_ref().map(|d| d.device.clone()),
    })
}

fn theory(exp: &Experiment) -> Value {
    let Some(t) = &exp.theory else { return Value::Null };
    json!({
        "wall_s": t.json.get("wall_s"),
        "figures": t.json.get("figures"),
        "base_prediction": t.json.pointer("/summary/base_prediction"),
        "gd_agreement": t.json.pointer("/summary/gd_agreement"),
        "headline": t.summary_md.as_deref().and_then(super::markdown::headline),
    })
}

/// The per-(dataset, task, mode) probe aggregates, destruction aggregates and clean accuracies.
fn aggregates(s: &Summary) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let probe: Vec<Value> = s
        .probe
        .iter()
        .map(|(k, a)| {
            let best = is_best(s, k);
            let same_as = s.same.get(&(k.0.clone(), k.2.clone())).map(|t| t.mode.clone());
            json!({"dataset": k.0, "task": k.1, "view_mode": k.2, "mean": a.mean, "std": a.std, "n": a.n, "best": best,
                "same_as": same_as})
        })
        .collect();
    let destruction: Vec<Value> = s
        .destruction
        .iter()
        .map(|(k, a)| json!({"dataset": k.0, "task": k.1, "family": k.2, "mean": a.mean, "std": a.std, "n": a.n}))
        .collect();
    let clean: Vec<Value> = s
        .clean
        .iter()
        .map(|(k, a)| json!({"dataset": k.0, "task": k.1, "mean": a.mean, "std": a.std, "n": a.n}))
        .collect();
    (probe, destruction, clean)
}

pub fn experiment(
    exp: &Experiment,
    s: &Summary,
    settings: &[(String, String)],
    protocol: &[super::protocol::Row],
) -> Value {
    let (probe, destruction, clean) = aggregates(s);
    let probe_by_epoch: Vec<Value> = s
        .probe_by_epoch
        .iter()
        .map(|(k, a)| json!({"dataset": k.0, "task": k.1, "view_mode": k.2, "epoch": k.3, "mean": a.mean, "std": a.std, "n": a.n}))
        .collect();
    let shown: Map<String, Value> = s
        .datasets
        .iter()
        .filter(|ds| task_roles(&s.tasks[*ds]).is_some())
        .map(|ds| {
            let yes = s
                .comparisons
                .iter()
                .any(|c| &c.dataset == ds && c.role == "suppressed" && c.verdict == super::stats::Verdict::Beats);
            (ds.clone(), json!(yes))
        })
        .collect();
    let total: f64 = exp
        .cells
        .iter()
        .filter_map(|c| c.status.as_ref().map(|s| s.seconds).or(c.done.as_ref().map(|d| d.seconds)))
        .sum();
    let failed: Vec<Value> = exp
        .cells
        .iter()
        .filter(|c| c.failed())
        .map(|c| json!({"id": c.id, "error": c.status.as_ref().and_then(|s| s.error.clone())}))
        .collect();
    json!({
        "name": exp.name,
        "settings": settings.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<_, _>>(),
        "total_seconds": total,
        "study": exp.study,
        "cells": exp.cells.iter().map(cell).collect::<Vec<_>>(),
        "protocol": protocol,
        "probe": probe,
        "probe_by_epoch": probe_by_epoch,
        "destruction": destruction,
        "clean_accuracy": clean,
        "effects": s.comparisons,
        "effect_shown": shown,
        "mechanism": s.mechanism,
        "cures": s.cures,
        "failed": failed,
        "theory": theory(exp),
    })
}
