//! Label destruction (§5.2): per task, a classifier trained on clean data is scored on clean test
//! inputs and on views of them; a family's destruction rate is `1 − accuracy on views / clean
//! accuracy`. Resumable per task; written to `destruction.json`, whole once every task is done,
//! with a grid `destruction.png`.

pub use crate::classifier::ClassifierCache;
pub use crate::classifier::DestructionConfig;
use crate::classifier::{SmallCnn, accuracy, cached_or_trained, remove_stale_cache_temps, train_steps};
use crate::frozen::FrozenRun;
use crate::pending::pending_tasks;
use crate::report::{DESTRUCTION_SCHEMA, DestructionReport, DestructionTask, FamilyDestruction, read_report};
use anyhow::{Context, Result, bail, ensure};
use featdrop_contrastive::grid::{heat, show};
use featdrop_core::io::{remove_stale_temps, write_json_atomic};
use featdrop_core::{BaseViews, Modality, Seeds, Split, Stream, ViewFamily, ViewMode};
use featdrop_data::MultiTaskDataset;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tch::{Kind, Tensor};

/// A kind of view the classifiers are scored on.
pub enum ViewSource<'a> {
    /// One view per test input from a family (`identity`, `expert`, a frozen viewmaker, …).
    Family(&'a dyn ViewFamily),
    /// The second view of a test pair whose overlay is re-drawn with probability p, scored
    /// against the pair's (first view's) labels: the `dropout:<p>` control.
    Dropout(f64),
}

impl ViewSource<'_> {
    /// The name results are filed under.
    pub fn name(&self) -> String {
        match self {
            Self::Family(f) => f.name(),
            Self::Dropout(p) => format!("dropout:{p}"),
        }
    }
}

/// What to measure; the classifier budget defaults to [`DestructionConfig::default`].
#[derive(Clone, Debug, Default)]
pub struct DestructionOptions {
    /// Task names (`None`: all tasks).
    pub tasks: Option<Vec<String>>,
    /// The classifier and its training budget.
    pub classifier: DestructionConfig,
    /// Recompute tasks already in `destruction.json`.
    pub force: bool,
    /// Show progress bars.
    pub progress: bool,
    /// Rows of the grid `destruction.png` (0: no grid).
    pub grid_rows: i64,
    /// A folder where task classifiers are kept and reused (see [`ClassifierCache`]).
    pub classifier_cache: Option<PathBuf>,
}

// Counters of the evaluation stream for test batches and views.
const TEST_BATCH: u64 = 5 << 32;
const TEST_VIEWS: u64 = 6 << 32;
const CHUNK: i64 = 256;

/// Trains task `task`'s classifier and scores it on clean test inputs and on each source.
pub fn measure_task(
    dataset: &dyn MultiTaskDataset,
    task: usize,
    sources: &[ViewSource<'_>],
    cfg: &DestructionConfig,
    seeds: &Seeds,
    progress: bool,
) -> Result<DestructionTask> {
    let net = classifier(dataset, task, cfg, seeds, progress, None)?;
    score_task(dataset, task, &net, sources, seeds)
}

/// Task `task`'s classifier: from `cache` when it holds one for the same settings, otherwise
/// trained on clean inputs (and stored in `cache`).
fn classifier(
    dataset: &dyn MultiTaskDataset,
    task: usize,
    cfg: &DestructionConfig,
    seeds: &Seeds,
    progress: bool,
    cache: Option<&ClassifierCache>,
) -> Result<SmallCnn> {
    let t = &dataset.tasks().0[task];
    let bar = crate::progress::bar(
        train_steps(dataset.len(Split::Train), cfg),
        &format!("classifier `{}`", t.name),
        progress,
    );
    let net = cached_or_trained(dataset, task, cfg, seeds, &bar, cache)?;
    bar.finish_and_clear();
    Ok(net)
}

/// Scores a trained classifier of task `task` on clean test inputs and on each source.
fn score_task(
    dataset: &dyn MultiTaskDataset,
    task: usize,
    net: &SmallCnn,
    sources: &[ViewSource<'_>],
    seeds: &Seeds,
) -> Result<DestructionTask> {
    let clean = clean_family(dataset);
    let t = &dataset.tasks().0[task];
    let clean_accuracy = score(dataset, task, net, &ViewSource::Family(clean.as_ref()), seeds)?;
    ensure!(clean_accuracy > 0.0, "the classifier for `{}` got no clean test input right; train it longer", t.name);
    let mut families = BTreeMap::new();
    for s in sources {
        let accuracy = score(dataset, task, net, s, seeds)?;
        families.insert(s.name(), FamilyDestruction { accuracy, destruction_rate: 1.0 - accuracy / clean_accuracy });
    }
    Ok(DestructionTask { num_classes: t.num_classes, chance: t.chance(), clean_accuracy, families })
}

/// The classifier's accuracy on the whole test split seen through `source`.
fn score(
    ds: &dyn MultiTaskDataset,
    task: usize,
    net: &SmallCnn,
    source: &ViewSource<'_>,
    seeds: &Seeds,
) -> Result<f64> {
    let n = ds.len(Split::Test) as i64;
    let clean = clean_family(ds);
    let (mut hits, mut total) = (0i64, 0i64);
    for (c, start) in (0..n).step_by(CHUNK as usize).enumerate() {
        let idx = Tensor::arange_start(start, (start + CHUNK).min(n), (Kind::Int64, tch::Device::Cpu));
        let (data_seed, view_seed) =
            (seeds.derive(Stream::Eval, TEST_BATCH + c as u64), seeds.derive(Stream::Views, TEST_VIEWS + c as u64));
        let (x, labels) = match source {
            ViewSource::Family(f) => {
                let b = ds.batch(Split::Test, &idx, data_seed);
                (tch::no_grad(|| f.view(&b.inputs, view_seed)), b.labels)
            }
            ViewSource::Dropout(p) => {
                let pair = ds.pair(Split::Test, &idx, *p, data_seed);
                (clean.view(&pair.second, 0), pair.first.labels)
            }
        };
        let (h, t) = accuracy(net, &x, &labels[task]);
        hits += h;
        total += t;
    }
    ensure!(total > 0, "dataset `{}` has no test examples", ds.name());
    Ok(hits as f64 / total as f64)
}

/// What a classifier sees as clean input: normalised images or the log-mel of the clean clip
/// (the `identity` family).
fn clean_family(ds: &dyn MultiTaskDataset) -> Box<dyn ViewFamily> {
    featdrop_contrastive::views::clean(ds.modality(), ds.device())
}

/// The families of §5.2 for a run: identity, expert, the run's own family when it is neither
/// (its frozen viewmaker, `colour`, any other base family) and `dropout:p` (the run's p, or 1).
fn run_sources<'a>(
    run: &'a FrozenRun,
    identity: &'a dyn ViewFamily,
    expert: &'a dyn ViewFamily,
) -> Vec<ViewSource<'a>> {
    let mut s = vec![ViewSource::Family(identity), ViewSource::Family(expert)];
    if !matches!(run.cfg.view_mode.base, BaseViews::Expert | BaseViews::None) {
        s.push(ViewSource::Family(run.views.as_ref()));
    }
    s.push(ViewSource::Dropout(dropout_p(run.cfg.view_mode)));
    s
}

/// The re-draw probability the `dropout:<p>` source uses: the run's own, or 1 (a run without
/// the modifier is scored against complete feature dropout).
fn dropout_p(mode: ViewMode) -> f64 {
    mode.dropout.unwrap_or(1.0)
}

/// Measures label destruction for the tasks of `opts` on `run`, merges them into
/// `destruction.json` (finished tasks are kept unless `force`) and writes `destruction.png`.
///
/// `destruction.json` is written once, whole, after every requested task and the grid: a file
/// there is a finished analysis. Meanwhile each finished task is kept in
/// `destruction.partial.json`, so that an interrupted analysis resumes after its last task.
pub fn run_destruction(run: &FrozenRun, opts: &DestructionOptions) -> Result<DestructionReport> {
    opts.classifier.validate()?;
    remove_stale_outputs(run, opts)?;
    let ds = run.dataset.as_ref();
    let expert = featdrop_contrastive::assembly::expert_family(&run.cfg, ds.modality(), ds.device())?;
    let identity = clean_family(ds);
    let sources = run_sources(run, identity.as_ref(), expert.as_ref());
    let (mut report, mut changed) = existing(run, opts)?;
    let seeds = Seeds::new(run.cfg.seed);
    for (i, name) in pending_tasks(ds, opts.tasks.as_deref(), opts.force, |t| report.tasks.contains_key(t))? {
        let cache = opts
            .classifier_cache
            .as_ref()
            .map(|d| ClassifierCache::new(d, &run.cfg, run.device, &name, &opts.classifier));
        let net = {
            let _classifiers = featdrop_core::costs::phase(featdrop_core::costs::CLASSIFIERS);
            classifier(ds, i, &opts.classifier, &seeds, opts.progress, cache.as_ref())?
        };
        let result = score_task(ds, i, &net, &sources, &seeds)?;
        let rates: Vec<String> =
            result.families.iter().map(|(f, r)| format!("{f}={:.3}", r.destruction_rate)).collect();
        tracing::info!(task = %name, clean = format!("{:.4}", result.clean_accuracy), rates = %rates.join(" "), "destruction");
        report.tasks.insert(name, result);
        write_json_atomic(&run.run.destruction_partial(), &report)?;
        changed = true;
    }
    // The grid shows pictures; spectrogram runs skip it.
    if opts.grid_rows > 0 && ds.modality() == Modality::Image {
        let learned = run.has_viewmaker().then_some(run.views.as_ref());
        write_destruction_grid(
            ds,
            expert.as_ref(),
            learned,
            &seeds,
            opts.grid_rows,
            &run.run.root().join("destruction.png"),
        )?;
    }
    if changed || !run.run.destruction().exists() {
        write_json_atomic(&run.run.destruction(), &report)?;
    }
    remove_if_present(&run.run.destruction_partial())?;
    Ok(report)
}

/// Removes what interrupted writes of this analysis's files left in the run directory (other
/// writers' files there are theirs) and in the classifier cache.
fn remove_stale_outputs(run: &FrozenRun, opts: &DestructionOptions) -> Result<()> {
    let outputs = [run.run.destruction(), run.run.destruction_partial(), run.run.root().join("destruction.png")];
    let ours = |target: &str| outputs.iter().any(|p| p.ends_with(target));
    remove_stale_temps(run.run.root(), Duration::ZERO, ours)?;
    if let Some(dir) = &opts.classifier_cache {
        remove_stale_cache_temps(dir)?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The report to add to — the existing `destruction.json` when it used the same classifier and
/// views, with the tasks an interrupted analysis kept in `destruction.partial.json` — and whether
/// that holds more than `destruction.json` (so it must be written).
fn existing(run: &FrozenRun, opts: &DestructionOptions) -> Result<(DestructionReport, bool)> {
    let ds = run.dataset.as_ref();
    let fresh = DestructionReport {
        schema: DESTRUCTION_SCHEMA.into(),
        dataset: run.cfg.dataset.clone(),
        view_mode: run.cfg.view_mode.to_string(),
        checkpoint: run.has_viewmaker().then(|| run.checkpoint.clone()),
        classifier: opts.classifier.clone(),
        dropout_p: dropout_p(run.cfg.view_mode),
        test_size: ds.len(Split::Test),
        seed: run.cfg.seed,
        tasks: BTreeMap::new(),
    };
    if opts.force {
        return Ok((fresh, false));
    }
    let header = |r: &DestructionReport| DestructionReport { tasks: BTreeMap::new(), ..r.clone() };
    let path = run.run.destruction();
    let mut report = fresh.clone();
    if path.exists() {
        let old: DestructionReport = read_report(&path).map_err(|e| e.context("pass --force to recompute it"))?;
        if header(&old) != fresh {
            bail!(
                "{} was made with another classifier, checkpoint or test set; pass --force to recompute every task",
                path.display()
            );
        }
        report = old;
    }
    let partial = run.run.destruction_partial();
    let mut added = false;
    if partial.exists() {
        match read_report::<DestructionReport>(&partial) {
            Ok(p) if header(&p) == fresh => {
                for (task, result) in p.tasks {
                    if let std::collections::btree_map::Entry::Vacant(slot) = report.tasks.entry(task) {
                        tracing::info!(task = %slot.key(), file = %partial.display(), "kept from an interrupted analysis");
                        slot.insert(result);
                        added = true;
                    }
                }
            }
            // Another analysis's leftovers: redone, and the file replaced.
            Ok(_) => tracing::warn!(file = %partial.display(), "made with other settings; its tasks are recomputed"),
            Err(e) => {
                tracing::warn!(file = %partial.display(), error = %format!("{e:#}"), "unreadable; its tasks are recomputed")
            }
        }
    }
    Ok((report, added))
}

/// Writes `rows` test examples as original | expert view | viewmaker view (when there is one) |
/// |δ| heat-map of the viewmaker view (of the expert view without a viewmaker).
pub fn write_destruction_grid(
    ds: &dyn MultiTaskDataset,
    expert: &dyn ViewFamily,
    learned: Option<&dyn ViewFamily>,
    seeds: &Seeds,
    rows: i64,
    path: &Path,
) -> Result<()> {
    let rows = rows.min(ds.len(Split::Test) as i64);
    let idx = Tensor::arange(rows, (Kind::Int64, tch::Device::Cpu));
    let batch = ds.batch(Split::Test, &idx, seeds.derive(Stream::Eval, TEST_BATCH));
    let x = batch.inputs;
    let seed = seeds.derive(Stream::Views, TEST_VIEWS);
    let e = show(&tch::no_grad(|| expert.view(&x, seed)));
    let l = learned.map(|f| show(&tch::no_grad(|| f.view(&x, seed))));
    let d = heat(l.as_ref().unwrap_or(&e), &x);
    let mut cols: Vec<(&Tensor, String)> = vec![(&x, String::new()), (&e, "expert".into())];
    if let (Some(l), Some(f)) = (&l, learned) {
        cols.push((l, f.name()));
    }
    cols.push((&d, "|δ|".into()));
    let ncols = cols.len();
    let mut cells = Vec::new();
    let mut captions = Vec::new();
    for i in 0..rows {
        for (t, cap) in &cols {
            cells.push(t.get(i));
            captions.push(if cap.is_empty() { row_label(ds, &batch.labels, i) } else { cap.clone() });
        }
    }
    let cells = Tensor::stack(&cells, 0).to_device(tch::Device::Cpu);
    featdrop_data::grid::write_grid(path, &cells, &captions, ncols, 3)
}

fn row_label(ds: &dyn MultiTaskDataset, labels: &[Tensor], i: i64) -> String {
    let tasks = ds.tasks();
    tasks.iter().zip(labels).map(|(t, l)| format!("{}={}", t.name, l.int64_value(&[i]))).collect::<Vec<_>>().join(" ")
}
