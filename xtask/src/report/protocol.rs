//! The protocol table: every run-config number of docs/PROTOCOL.md §2–§5 with the value the runs
//! used, read from their `config.json` files, beside the published value, and each difference
//! marked. Published values that depend on the dataset come from the dataset catalogue; the others
//! are the published protocol's, written here once.

use super::load::{Cell, Experiment};
use super::stats::view_mode_of;
use featdrop_core::catalogue::{self, DatasetInfo};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Which runs a protocol number concerns.
#[derive(Clone, Copy)]
enum Applies {
    All,
    /// Runs whose view mode has a viewmaker (its settings are unused otherwise).
    Viewmaker,
    /// Audio runs.
    Audio,
}

/// One protocol number: where `config.json` holds it, and its published value for a dataset and
/// view mode (`None`: the published protocol has no such case, e.g. a featdrop view mode).
struct Item {
    section: &'static str,
    name: &'static str,
    pointer: &'static str,
    applies: Applies,
    published: fn(&DatasetInfo, &str) -> Option<Value>,
}

macro_rules! item {
    ($sec:literal, $name:literal, $ptr:literal, $applies:ident, |$d:ident, $m:ident| $published:expr) => {
        Item {
            section: $sec,
            name: $name,
            pointer: $ptr,
            applies: Applies::$applies,
            published: |$d: &DatasetInfo, $m: &str| {
                let _ = (&$d, &$m);
                $published
            },
        }
    };
    ($sec:literal, $name:literal, $ptr:literal, $applies:ident, $value:expr) => {
        item!($sec, $name, $ptr, $applies, |d, m| Some(json!($value)))
    };
}

/// docs/PROTOCOL.md §2–§5, in its order.
const ITEMS: &[Item] = &[
    item!("§2", "data source", "/data/source", All, "real"),
    item!("§2", "training examples (0: the full split)", "/data/train_size", All, 0),
    item!("§2", "test examples (0: the full split)", "/data/test_size", All, 0),
    // With `+dropout:p` (featdrop's control) the noise must be shared; the published code has no such mode.
    item!("§2.2", "audio pair noise", "/data/pair_noise", Audio, |d, m| (!m.contains("dropout"))
        .then(|| json!("independent"))),
    // Both audio expert variants are published; the paper grid runs `spectral` as `expert@spectral`.
    item!("§3.1", "audio expert views", "/views/audio_expert", Audio, |d, m| (view_mode_of(m) == "expert")
        .then(|| { json!(if m.ends_with("@spectral") { "spectral" } else { "waveform" }) })),
    item!("§3.2", "audio viewmaker input", "/views/viewmaker_input", Audio, |d, m| (m == "viewmaker")
        .then(|| json!("waveform-views"))),
    item!("§3.2", "viewmaker budget ε", "/viewmaker/epsilon", Viewmaker, |d, m| Some(json!(d.epsilon))),
    item!("§3.2", "viewmaker residual blocks", "/viewmaker/num_res_blocks", Viewmaker, 3),
    item!("§3.2", "viewmaker width multiplier", "/viewmaker/width_mult", Viewmaker, 1.0),
    item!("§3.2", "viewmaker clamp", "/viewmaker/clamp", Viewmaker, false),
    item!("§4", "viewmaker Adam lr", "/viewmaker/lr", Viewmaker, 1e-3),
    item!("§4", "viewmaker loss weight", "/viewmaker/loss_weight", Viewmaker, 1.0),
    item!("§4", "encoder", "/encoder/arch", All, "resnet18"),
    item!("§4", "encoder width", "/encoder/width", All, 64),
    item!("§4", "embedding size", "/encoder/embed_dim", All, 128),
    item!("§4", "projection head", "/encoder/projection_head", All, false),
    item!("§4", "objective", "/train/objective", All, "simclr-published"),
    item!("§4", "temperature", "/train/temperature", All, 0.07),
    item!("§4", "encoder SGD lr", "/train/lr", All, 0.03),
    item!("§4", "encoder SGD momentum", "/train/momentum", All, 0.9),
    item!("§4", "encoder weight decay", "/train/weight_decay", All, 1e-4),
    item!("§4", "update order", "/train/update", Viewmaker, "alternating"),
    item!("§4", "batch size", "/train/batch_size", All, |d, m| Some(json!(d.train_batch_size))),
    item!("§4", "pretraining epochs", "/train/epochs", All, 200),
    item!("§4", "bf16 autocast", "/train/bf16", All, false),
    item!("§5.1", "probed earlier checkpoints (epochs)", "/train/keep_epochs", All, |d, m| Some(json!(
        d.probe_checkpoint_epochs
    ))),
    item!("§5.1", "probe features", "/probe/features", All, "views"),
    item!("§5.1", "probe epochs", "/probe/epochs", All, 100),
    item!("§5.1", "probe batch size", "/probe/batch_size", All, |d, m| Some(json!(d.probe_batch_size))),
    item!("§5.1", "probe SGD lr", "/probe/lr", All, 0.01),
    item!("§5.1", "probe SGD momentum", "/probe/momentum", All, 0.9),
    item!("§5.1", "probe lr drops at epochs", "/probe/lr_milestones", All, |d, m| Some(json!(d.probe_lr_milestones))),
    item!("§5.1", "probe lr factor per drop", "/probe/lr_gamma", All, 0.1),
];

/// One row of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub section: &'static str,
    pub item: &'static str,
    pub published: String,
    pub used: String,
    /// Datasets with a run whose value differs from the published one.
    pub differs: Vec<String>,
    /// Whether every compared run differs (else only those of `differs` do).
    pub all_differ: bool,
}

/// One run's value of an item, and the published one.
struct Seen {
    dataset: String,
    used: Value,
    published: Option<Value>,
}

pub fn rows(exp: &Experiment) -> Vec<Row> {
    ITEMS.iter().filter_map(|item| row(item, &seen(exp, item))).collect()
}

fn seen(exp: &Experiment, item: &Item) -> Vec<Seen> {
    let mut out = Vec::new();
    for c in &exp.cells {
        let (Some(cfg), Some(info)) = (&c.config, catalogue::find(&c.dataset)) else { continue };
        if !applies(item.applies, c, info) {
            continue;
        }
        let Some(used) = cfg.pointer(item.pointer) else { continue };
        out.push(Seen { dataset: c.dataset.clone(), used: used.clone(), published: (item.published)(info, &c.mode) });
    }
    out
}

fn applies(a: Applies, c: &Cell, info: &DatasetInfo) -> bool {
    match a {
        Applies::All => true,
        Applies::Viewmaker => c.mode.contains("viewmaker"),
        Applies::Audio => info.modality == featdrop_core::Modality::Audio,
    }
}

/// The row of `item`, or `None` when no run records it.
fn row(item: &Item, seen: &[Seen]) -> Option<Row> {
    if seen.is_empty() {
        return None;
    }
    let differs_in = |s: &Seen| s.published.as_ref().is_some_and(|p| !same(p, &s.used));
    let compared = seen.iter().filter(|s| s.published.is_some()).count();
    let differing: Vec<&Seen> = seen.iter().filter(|s| differs_in(s)).collect();
    let differs: Vec<String> =
        differing.iter().map(|s| s.dataset.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    Some(Row {
        section: item.section,
        item: item.name,
        published: by_dataset(seen, |s| {
            s.published.as_ref().map_or_else(|| "— (no published counterpart)".into(), show)
        }),
        used: by_dataset(seen, |s| show(&s.used)),
        all_differ: !differing.is_empty() && differing.len() == compared,
        differs,
    })
}

/// Equal values; numbers within float rounding (configs are written by serde and read back).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        _ => a == b,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "none".into(),
        Value::Array(a) => a.iter().map(show).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// One text when every run agrees; else `datasets: text` groups, each dataset's values joined.
fn by_dataset(seen: &[Seen], text: impl Fn(&Seen) -> String) -> String {
    let mut per_ds: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for s in seen {
        per_ds.entry(s.dataset.as_str()).or_default().insert(text(s));
    }
    let joined: BTreeMap<&str, String> =
        per_ds.into_iter().map(|(d, v)| (d, v.into_iter().collect::<Vec<_>>().join(" / "))).collect();
    let distinct: BTreeSet<&String> = joined.values().collect();
    if distinct.len() == 1 {
        return joined.into_values().next().unwrap_or_default();
    }
    // Datasets in catalogue order, those sharing a text named together.
    let order = |d: &str| catalogue::names().iter().position(|n| *n == d).unwrap_or(usize::MAX);
    let mut groups: Vec<(Vec<&str>, &String)> = Vec::new();
    let mut datasets: Vec<&str> = joined.keys().copied().collect();
    datasets.sort_by_key(|d| order(d));
    for d in datasets {
        let t = &joined[d];
        match groups.iter_mut().find(|(_, g)| *g == t) {
            Some((names, _)) => names.push(d),
            None => groups.push((vec![d], t)),
        }
    }
    groups.iter().map(|(names, t)| format!("{}: {t}", names.join(", "))).collect::<Vec<_>>().join("; ")
}

/// The REPORT.md section.
pub fn markdown(rows: &[Row]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::from("### Protocol: the runs' values against the published ones\n\n");
    s.push_str(
        "Every run-config number of docs/PROTOCOL.md §2–§5 as the runs' `config.json` files record it, beside the \
         published value (dataset-dependent ones from the dataset catalogue); **differs** marks each difference. \
         Viewmaker rows count only runs with a viewmaker. Constants of the code (overlay geometry, the audio window \
         and log-mel features, the expert recipes) are not in `config.json`; docs/PROTOCOL.md lists them.\n\n",
    );
    s.push_str("| § | protocol number | published | used by the runs | |\n|---|---|---|---|---|\n");
    for r in rows {
        let mark = match (r.differs.is_empty(), r.all_differ) {
            (true, _) => String::new(),
            (false, true) => "**differs**".into(),
            (false, false) => format!("**differs** ({})", r.differs.join(", ")),
        };
        s.push_str(&format!("| {} | {} | {} | {} | {mark} |\n", r.section, r.item, r.published, r.used));
    }
    let n = rows.iter().filter(|r| !r.differs.is_empty()).count();
    s.push_str(&match n {
        0 => "\nNo difference from the published protocol.\n\n".to_string(),
        n => format!("\n{n} protocol number(s) differ from the published ones.\n\n"),
    });
    s
}
