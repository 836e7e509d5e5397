//! TensorBoard event files of a run (issue 29): what `metrics.jsonl` and the view grids hold, in
//! the format `tensorboard --logdir runs/<experiment>` reads, each `seed-N` folder one run.
//!
//! The events are computed from the metrics records ([`scalars_of`]), never measured apart, so the
//! two files cannot disagree. Each writer owns the files of its own suffix (`train`: the trainer's;
//! `probe`: `featdrop-eval probe`'s) and writes them whole under a new name — the old ones removed
//! first — whenever what they stand for may have changed: the trainer at each start (its
//! `metrics.jsonl` was just trimmed to the restart point), then appending; the probe at each
//! write of `probe.json`. So no step is ever written twice, whatever was killed when.
//!
//! Tags: `loss/encoder`, `loss/viewmaker` at the optimisation step; `loss/epoch`, `knn/<task>`,
//! `destruction/<task>`, `lr/encoder`, `lr/viewmaker`, `speed/images_per_s`, `probe/<task>` and
//! the image `views` at the pretraining epoch (1 = after the first).

use anyhow::{Context, Result};
use featdrop_core::RunDir;
use featdrop_core::io::{JsonLines, temp_path};
use featdrop_core::layout::epoch_tag;
use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use tfrecord::protobuf::event::What;
use tfrecord::protobuf::summary::{self, Image};
use tfrecord::protobuf::{Event, Summary};
use tfrecord::{EventWriter, EventWriterConfig};

/// The suffix of the trainer's event files.
pub const TRAIN: &str = "train";
/// The suffix of the linear probes' event file.
pub const PROBE: &str = "probe";
/// What every event file name starts with (TensorBoard reads the files whose name holds
/// `tfevents`).
const PREFIX: &str = "events.out.tfevents.";

/// One scalar point: tag, step, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    /// `knn/photo`, `loss/encoder`, ...
    pub tag: String,
    /// The optimisation step (`loss/encoder`, `loss/viewmaker`) or the pretraining epoch (the rest).
    pub step: i64,
    /// The value, as TensorBoard stores it.
    pub value: f32,
}

impl Scalar {
    fn new(tag: impl Into<String>, step: u64, value: f64) -> Self {
        Self { tag: tag.into(), step: step as i64, value: value as f32 }
    }
}

/// The scalars a `metrics.jsonl` record stands for (none for a record of another kind, nor for a
/// value that is null: a destruction rate without a clean baseline).
pub fn scalars_of(record: &Value) -> Vec<Scalar> {
    let num = |v: &Value| v.as_f64();
    let mut out = Vec::new();
    match record["kind"].as_str() {
        Some("step") => {
            let Some(step) = record["step"].as_u64() else { return out };
            out.extend(num(&record["loss"]).map(|v| Scalar::new("loss/encoder", step, v)));
            out.extend(num(&record["viewmaker_loss"]).map(|v| Scalar::new("loss/viewmaker", step, v)));
        }
        Some("epoch") => {
            let Some(epoch) = record["epoch"].as_u64() else { return out };
            out.extend(num(&record["loss"]).map(|v| Scalar::new("loss/epoch", epoch, v)));
            out.extend(num(&record["images_per_s"]).map(|v| Scalar::new("speed/images_per_s", epoch, v)));
            for (group, field) in [("knn", "knn"), ("destruction", "destruction"), ("lr", "lr")] {
                let Some(map) = record[field].as_object() else { continue };
                for (name, v) in map {
                    out.extend(num(v).map(|v| Scalar::new(format!("{group}/{name}"), epoch, v)));
                }
            }
        }
        _ => {}
    }
    out
}

/// An event file being appended to.
pub struct EventFile {
    path: PathBuf,
    out: EventWriter<BufWriter<File>>,
}

impl EventFile {
    /// Writes `run`'s event file of `suffix` anew with `scalars` and `images` (epoch, PNG file),
    /// removing the older files of that suffix, and opens it for appending.
    pub fn rewrite(run: &RunDir, suffix: &str, scalars: &[Scalar], images: &[(usize, PathBuf)]) -> Result<Self> {
        let old = files(run.root(), suffix)?;
        let path = run.root().join(new_name(&old, suffix));
        // The temp name holds no `tfevents`: a TensorBoard reading the folder meanwhile skips it.
        let tmp = temp_path(&run.root().join("tensorboard"));
        let write = || -> Result<()> {
            let mut w = writer(File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?)?;
            scalars.iter().try_for_each(|s| put_scalar(&mut w, s))?;
            images.iter().try_for_each(|(epoch, png)| put_image(&mut w, *epoch, png))?;
            w.flush()?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(e.context(format!("writing {}", path.display())));
        }
        // The old files go first: a kill between the two leaves no file rather than a duplicate,
        // and the next start writes it again.
        for f in &old {
            fs::remove_file(f).with_context(|| format!("removing {}", f.display()))?;
        }
        File::open(&tmp).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        let file =
            OpenOptions::new().append(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
        let out = EventWriter::from_writer(BufWriter::new(file), EventWriterConfig { auto_flush: true })?;
        Ok(Self { path, out })
    }

    /// Appends the scalars of a metrics record.
    pub fn record(&mut self, record: &Value) -> Result<()> {
        let path = &self.path;
        scalars_of(record)
            .iter()
            .try_for_each(|s| put_scalar(&mut self.out, s))
            .with_context(|| format!("appending to {}", path.display()))
    }

    /// Appends the view grid of `epoch` (a PNG file).
    pub fn image(&mut self, epoch: usize, png: &Path) -> Result<()> {
        put_image(&mut self.out, epoch, png).with_context(|| format!("appending to {}", self.path.display()))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The trainer's event file of `run`, written anew from its `metrics.jsonl` and its view grids of
/// epochs up to `epochs_done` (a grid of a later epoch is of work about to be redone), and opened
/// for appending.
pub fn rewrite_train(run: &RunDir, epochs_done: usize) -> Result<EventFile> {
    let metrics = run.metrics();
    let records: Vec<Value> = if metrics.exists() { JsonLines::read_all(&metrics)? } else { Vec::new() };
    let scalars: Vec<Scalar> = records.iter().flat_map(scalars_of).collect();
    let images: Vec<(usize, PathBuf)> = (1..=epochs_done)
        .map(|e| (e, run.views().join(format!("{}.png", epoch_tag(e)))))
        .filter(|(_, p)| p.exists())
        .collect();
    EventFile::rewrite(run, TRAIN, &scalars, &images)
}

/// Removes `run`'s event files of `suffix` (`train.tensorboard` off: none is left to disagree
/// with `metrics.jsonl`).
pub fn remove(run: &RunDir, suffix: &str) -> Result<()> {
    for f in files(run.root(), suffix)? {
        fs::remove_file(&f).with_context(|| format!("removing {}", f.display()))?;
    }
    Ok(())
}

/// The event files of `suffix` in `dir`, oldest first.
pub fn files(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let ending = format!(".{suffix}");
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(&ending))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// `events.out.tfevents.<unix seconds>.featdrop.<suffix>`, its time after every `old` one's: the
/// new file sorts after them, as TensorBoard expects of a run's newer file.
fn new_name(old: &[PathBuf], suffix: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let newest = old
        .iter()
        .filter_map(|p| p.file_name()?.to_str()?.strip_prefix(PREFIX)?.split('.').next()?.parse::<u64>().ok())
        .max();
    let secs = newest.map_or(now, |n| now.max(n + 1));
    format!("{PREFIX}{secs:010}.featdrop.{suffix}")
}

fn writer<W: Write>(w: W) -> Result<EventWriter<BufWriter<W>>> {
    let mut out = EventWriter::from_writer(BufWriter::new(w), EventWriterConfig { auto_flush: false })?;
    out.write_event(Event {
        wall_time: wall_time(),
        step: 0,
        source_metadata: None,
        what: Some(What::FileVersion("brain.Event:2".into())),
    })?;
    Ok(out)
}

fn wall_time() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn put_scalar<W: Write>(w: &mut EventWriter<W>, s: &Scalar) -> Result<()> {
    Ok(w.write_scalar(&s.tag, (s.step, wall_time()), s.value)?)
}

/// A PNG file as the `views` image of `epoch`.
fn put_image<W: Write>(w: &mut EventWriter<W>, epoch: usize, png: &Path) -> Result<()> {
    let bytes = fs::read(png).with_context(|| format!("reading {}", png.display()))?;
    let (width, height) = image::io::Reader::with_format(std::io::Cursor::new(&bytes), image::ImageFormat::Png)
        .into_dimensions()
        .with_context(|| format!("reading the PNG {}", png.display()))?;
    // Colour space 3: RGB (the grids are RGB PNGs).
    let image = Image { height: height as i32, width: width as i32, colorspace: 3, encoded_image_string: bytes };
    let value = summary::Value {
        node_name: String::new(),
        tag: "views".into(),
        metadata: None,
        value: Some(summary::value::Value::Image(image)),
    };
    let what = What::Summary(Summary { value: vec![value] });
    Ok(w.write_event(Event { wall_time: wall_time(), step: epoch as i64, source_metadata: None, what: Some(what) })?)
}
