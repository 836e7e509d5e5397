//! `featdrop-data`: look at and count the multi-task datasets (docs/PROTOCOL.md §2).

use anyhow::{Result, bail, ensure};
use clap::{Args, Parser, Subcommand};
use featdrop_core::logging::{self, Verbosity};
use featdrop_core::{DeviceChoice, Modality, RunConfig, Seeds, Split, Stream, ViewMode};
use featdrop_data::audio::{LogMel, MelConfig, SPEECH_NOISE, dataset::Mix, spectrogram_images, wav};
use featdrop_data::{DatasetSpec, MultiTaskDataset, PairNoise, Source, SpeechNoiseDataset, grid, open};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Build the featdrop multi-task datasets and inspect them.
///
/// Datasets (docs/PROTOCOL.md §2.1): `photos`, `photos+shapes`, `photos+digits`, `photos+letters` — a
/// photograph (synthetic, or CIFAR-10 with --source real) with an independent overlay whose class
/// is a second task. Overlays are re-drawn on every read; the test split's are fixed by the seed.
///
/// Audio (docs/PROTOCOL.md §2.2): `speech+noise` — a spoken digit (synthetic, or AudioMNIST with --source
/// real --audio-dir DIR) plus one of three background noises, as a 1×64×64 log-mel spectrogram;
/// tasks `digit` and `noise`. DIR holds AudioMNIST's speaker folders `01/ … 60/` (files
/// `<digit>_<speaker>_<rep>.wav`, directly or under DIR/data/) and `noise/babble.wav`,
/// `noise/traffic.wav`, `noise/machinery.wav` (WAV or FLAC, any rate; resampled to 48 kHz).
#[derive(Parser)]
#[command(name = "featdrop-data", version)]
struct Cli {
    #[command(flatten)]
    verbosity: Verbosity,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a PNG grid of examples with their labels under each image.
    Preview(Preview),
    /// Print JSON: split sizes and per-task class counts.
    Stats(DataArgs),
}

/// Which dataset to build.
#[derive(Args)]
struct DataArgs {
    /// Dataset name: photos, photos+shapes, photos+digits, photos+letters or speech+noise.
    #[arg(long)]
    dataset: String,
    /// `synthetic` (built in) or `real` (CIFAR-10, MNIST and a TTF font). Default: `real` when
    /// --data-dir or --audio-dir is given, `synthetic` otherwise.
    #[arg(long)]
    source: Option<Source>,
    /// Real data (implies --source real): `data/raw` with cifar-10-batches-bin/ and mnist/, or
    /// one of those folders (default: the checkout's data/raw). The folder given is the one
    /// searched, never its siblings: photos+digits needs the folder holding both. A folder of
    /// your own is checked by format and record count, not checksum.
    #[arg(long, conflicts_with = "audio_dir")]
    data_dir: Option<PathBuf>,
    /// speech+noise, real data (implies --source real): the audio folder (AudioMNIST speaker
    /// folders and noise/; default: the checkout's data/raw/audio).
    #[arg(long)]
    audio_dir: Option<PathBuf>,
    /// speech+noise: how a pair's second view gets its noise — `shared` (re-drawn only with
    /// --dropout) or `independent` (always re-drawn, as the published code did).
    #[arg(long, default_value = "shared")]
    pair_noise: PairNoise,
    /// TTF/OTF font for letters (default: a system sans for real data, the stroke font otherwise).
    #[arg(long)]
    font: Option<PathBuf>,
    /// Training examples (0: 50 000 synthetic, or all real ones).
    #[arg(long, default_value_t = 0)]
    train_size: usize,
    /// Test examples (0: 10 000 synthetic, or all real ones).
    #[arg(long, default_value_t = 0)]
    test_size: usize,
    /// Run seed (synthetic data, test overlays, the drawn batch).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Device: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

#[derive(Args)]
struct Preview {
    #[command(flatten)]
    data: DataArgs,
    /// Number of examples (pairs with --pairs), at least 1.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// Show the two views of each pair side by side.
    #[arg(long)]
    pairs: bool,
    /// With --pairs: probability in [0, 1] that the second view's overlay is re-drawn
    /// (dropout:<p>; checked as featdrop-train checks it). Default 0.
    #[arg(long, requires = "pairs", allow_negative_numbers = true, value_parser = dropout_p)]
    dropout: Option<f64>,
    /// Show the test split instead of train.
    #[arg(long)]
    test: bool,
    /// Pixel upscaling of each image (halved for 64×64 spectrograms).
    #[arg(long, default_value_t = 4)]
    scale: u32,
    /// Output PNG.
    #[arg(long)]
    out: PathBuf,
    /// speech+noise: also write the first (up to 8) mixed examples shown as 48 kHz WAV files here
    /// (the grid's own draws: their labels are the grid's).
    #[arg(long)]
    wav: Option<PathBuf>,
}

/// `--dropout`: the probability check of `dropout:<p>` view modes, shared with featdrop-train.
fn dropout_p(text: &str) -> Result<f64, String> {
    featdrop_core::view_mode::parse_dropout(text)
}

fn main() {
    let cli = Cli::parse();
    logging::init(&cli.verbosity);
    let result = match cli.command {
        Command::Preview(p) => preview(&p),
        Command::Stats(d) => stats(&d),
    };
    // The error chain on one line, as featdrop-train prints it: an ordinary error (a bad file)
    // is not a crash, so no backtrace even under RUST_BACKTRACE=1.
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The source: as given, else `real` when a data folder is given (a folder of real data with the
/// synthetic source would be silently unused, so that combination is an error).
fn source(d: &DataArgs) -> Result<Source> {
    let folder = match (&d.data_dir, &d.audio_dir) {
        (Some(_), _) => Some("--data-dir"),
        (None, Some(_)) => Some("--audio-dir"),
        (None, None) => None,
    };
    match (d.source, folder) {
        (Some(Source::Synthetic), Some(flag)) => {
            bail!("{flag} names real data, but --source synthetic builds the data in: drop one of the two")
        }
        (Some(s), _) => Ok(s),
        (None, Some(_)) => Ok(Source::Real),
        (None, None) => Ok(Source::Synthetic),
    }
}

fn spec(d: &DataArgs) -> Result<DatasetSpec> {
    let info = featdrop_core::catalogue::lookup(&d.dataset).map_err(anyhow::Error::msg)?;
    // A font only draws letters: on any other dataset it would be silently unused.
    let letters = info.overlay_task().is_some_and(|t| t.name == "letter");
    ensure!(
        d.font.is_none() || letters,
        "--font draws the letters of photos+letters; dataset `{}` has no letters, so the font would go unused",
        d.dataset
    );
    Ok(DatasetSpec {
        name: d.dataset.clone(),
        source: source(d)?,
        data_dir: d.audio_dir.clone().or_else(|| d.data_dir.clone()),
        font: d.font.clone(),
        train_size: d.train_size,
        test_size: d.test_size,
        seed: d.seed,
        device: d.device.resolve()?,
        pair_noise: d.pair_noise,
    })
}

fn build(d: &DataArgs) -> Result<Box<dyn MultiTaskDataset>> {
    open(&spec(d)?)
}

/// `task: class` lines for example `i`.
fn label_text(ds: &dyn MultiTaskDataset, labels: &[Tensor], i: i64) -> String {
    let names: Vec<Vec<String>> = (0..ds.tasks().len()).map(|t| ds.class_names(t)).collect();
    ds.tasks()
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(t, (task, l))| format!("{}: {}", task.name, names[t][l.int64_value(&[i]) as usize]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `--dropout` checked by the run config's own validation, as featdrop-train checks the same
/// setting: on audio it needs `--pair-noise shared` (independent noise re-draws every pair, so the
/// probability would claim a control the preview does not show).
fn check_dropout(p: &Preview) -> Result<()> {
    let Some(prob) = p.dropout else { return Ok(()) };
    let mut cfg = RunConfig::new("preview", &p.data.dataset, ViewMode::dropout(prob), p.data.seed);
    cfg.data.pair_noise = p.data.pair_noise;
    cfg.validate("--dropout with --pair-noise")?;
    Ok(())
}

fn preview(p: &Preview) -> Result<()> {
    let spec = spec(&p.data)?;
    check_dropout(p)?;
    if spec.name != SPEECH_NOISE {
        ensure!(p.wav.is_none(), "--wav needs --dataset {SPEECH_NOISE}");
        return preview_grid(p, open(&spec)?.as_ref());
    }
    let ds = SpeechNoiseDataset::build(&spec)?;
    preview_grid(p, &ds)?;
    match &p.wav {
        Some(dir) => write_wavs(p, &ds, dir),
        None => Ok(()),
    }
}

/// The split and the indices a preview shows, and the seed its batch is drawn with.
fn shown(p: &Preview, ds: &dyn MultiTaskDataset) -> (Split, Tensor, u64) {
    let split = if p.test { Split::Test } else { Split::Train };
    let n = p.count.min(ds.len(split) as u64) as i64;
    (split, Tensor::arange(n, (Kind::Int64, tch::Device::Cpu)), Seeds::new(p.data.seed).derive(Stream::Data, 0))
}

/// The second view's re-draw probability of a `--pairs` preview.
fn redraw_p(p: &Preview) -> f64 {
    p.dropout.unwrap_or(0.0)
}

/// Most examples `--wav` writes.
const WAV_EXAMPLES: i64 = 8;

/// Writes the first shown examples' mixed waveforms (both views with --pairs): the same draws as
/// the grid, so the whole shown batch is drawn (the draws depend on the batch size) and its first
/// [`WAV_EXAMPLES`] written.
fn write_wavs(p: &Preview, ds: &SpeechNoiseDataset, dir: &Path) -> Result<()> {
    let (split, idx, seed) = shown(p, ds);
    let views: Vec<(String, Mix)> = if p.pairs {
        let (a, b) = ds.pair_waves(split, &idx, redraw_p(p), seed);
        vec![("view1".into(), a), ("view2".into(), b)]
    } else {
        vec![(String::new(), ds.waves(split, &idx, seed))]
    };
    let written = idx.size()[0].min(WAV_EXAMPLES);
    let rate = ds.config().mel.sample_rate as u32;
    let (digits, noises) = (ds.class_names(0), ds.class_names(1));
    for (view, m) in &views {
        for i in 0..written {
            let (d, n) = (m.digit.int64_value(&[i]) as usize, m.noise.int64_value(&[i]) as usize);
            let sep = if view.is_empty() { "" } else { "_" };
            let path = dir.join(format!("{i:02}{sep}{view}_{}_{}.wav", digits[d], noises[n]));
            let samples = Vec::<f32>::try_from(m.waves.get(i).to_device(tch::Device::Cpu).to_kind(Kind::Float))?;
            wav::write_wav(&path, &samples, rate)?;
        }
    }
    tracing::info!(dir = %dir.display(), files = views.len() as i64 * written, "wrote WAV examples");
    Ok(())
}

fn preview_grid(p: &Preview, ds: &dyn MultiTaskDataset) -> Result<()> {
    let (split, idx, seed) = shown(p, ds);
    let n = idx.size()[0];
    let (images, labels): (Tensor, Vec<String>) = if p.pairs {
        let pair = ds.pair(split, &idx, redraw_p(p), seed);
        let images = Tensor::stack(&[&pair.first.inputs, &pair.second], 1).flatten(0, 1);
        let labels = (0..n)
            .flat_map(|i| {
                let shown = label_text(ds, &pair.second_labels, i);
                [format!("view 1\n{}", label_text(ds, &pair.first.labels, i)), format!("view 2\n{shown}")]
            })
            .collect();
        (images, labels)
    } else {
        let b = ds.batch(split, &idx, seed);
        let labels = (0..n).map(|i| label_text(ds, &b.labels, i)).collect();
        (b.inputs, labels)
    };
    let cols = if p.pairs { 8 } else { 8.min(n as usize).max(1) };
    let (images, scale) = match ds.modality() {
        Modality::Audio => (
            spectrogram_images(&LogMel::new(MelConfig::default(), ds.device()).features(&images)),
            (p.scale / 2).max(1),
        ),
        Modality::Image => (images, p.scale),
    };
    grid::write_grid(&p.out, &images, &labels, cols, scale)?;
    tracing::info!(out = %p.out.display(), images = images.size()[0], "wrote preview");
    Ok(())
}

/// Examples per `stats` batch. An audio example's batch work (its 50 000-sample crop, the
/// gather indices, the mix and its spectrogram) takes a few MB, so audio goes in small batches:
/// the peak then stays near the decoded audio itself whatever the split's size.
fn stats_batch(modality: Modality) -> i64 {
    match modality {
        Modality::Audio => 64,
        Modality::Image => 4096,
    }
}

fn stats(d: &DataArgs) -> Result<()> {
    let ds = build(d)?;
    let step = stats_batch(ds.modality());
    let mut splits = serde_json::Map::new();
    for (name, split) in [("train", Split::Train), ("test", Split::Test)] {
        let len = ds.len(split) as i64;
        let mut counts: Vec<Tensor> =
            ds.tasks().iter().map(|t| Tensor::zeros([t.num_classes as i64], (Kind::Int64, ds.device()))).collect();
        let mut start = 0;
        while start < len {
            let m = step.min(len - start);
            let idx = Tensor::arange_start(start, start + m, (Kind::Int64, tch::Device::Cpu));
            let b = ds.batch(split, &idx, Seeds::new(d.seed).derive(Stream::Data, start as u64));
            for (c, (l, t)) in counts.iter_mut().zip(b.labels.iter().zip(ds.tasks().iter())) {
                *c += l.bincount(None::<Tensor>, t.num_classes as i64);
            }
            start += m;
        }
        let classes: serde_json::Map<String, serde_json::Value> = ds
            .tasks()
            .iter()
            .zip(&counts)
            .map(|(t, c)| {
                (
                    t.name.clone(),
                    serde_json::json!(Vec::<i64>::try_from(c.to_device(tch::Device::Cpu)).unwrap_or_default()),
                )
            })
            .collect();
        splits.insert(name.into(), serde_json::json!({"size": len, "class_counts": classes}));
    }
    let out = serde_json::json!({
        "dataset": ds.name(),
        "tasks": ds.tasks(),
        "splits": splits,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
