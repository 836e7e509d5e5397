//! The image datasets of docs/PROTOCOL.md §2.1 (`photos`, `photos+shapes`, `photos+digits`,
//! `photos+letters`), built from synthetic or real sources, and [`open`], the constructor by name.

use crate::glyphs::{self, GlyphBank};
use crate::overlay::{Overlay, OverlayDraw, OverlayKind, SYNTHETIC_LETTER_CONTRAST};
use crate::{MultiTaskDataset, Pair, cifar, files, photos, ttf, with_seed};
use anyhow::{Result, bail, ensure};
use featdrop_core::{Batch, Modality, Seeds, Split, Stream, TaskSet, catalogue};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Default split sizes (CIFAR-10's), used when a size is 0.
pub const DEFAULT_SIZES: (usize, usize) = (50_000, 10_000);
/// CIFAR-10 class names.
pub const CIFAR_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
/// Stroke-font looks rendered per class for synthetic glyph banks.
const STROKE_VARIANTS: usize = 200;
/// TTF looks rendered per letter.
const TTF_VARIANTS: usize = 60;
/// Counters of the data stream reserved for building a dataset (far from per-step counters).
const BUILD_COUNTER: u64 = 1 << 48;

pub use featdrop_core::config::{PairNoise, Source};

/// Everything [`open`] needs.
#[derive(Clone, Debug)]
pub struct DatasetSpec {
    /// A dataset of the catalogue ([`featdrop_core::catalogue`]).
    pub name: String,
    /// Synthetic or real.
    pub source: Source,
    /// Real data folder: `data/raw` (holding `cifar-10-batches-bin/` and `mnist/`), or one such
    /// folder itself. `None` is [`default_data_dir`], the checkout's `data/raw`. For `speech+noise`
    /// the audio folder (AudioMNIST speaker folders plus `noise/`, see [`crate::audio::dataset`]),
    /// `None` being `audio/` in [`default_data_dir`].
    pub data_dir: Option<PathBuf>,
    /// TTF font for letters (else a system sans for real sources, the stroke font otherwise).
    pub font: Option<PathBuf>,
    /// Training examples (0: 50 000, or all there are).
    pub train_size: usize,
    /// Test examples (0: 10 000, or all there are).
    pub test_size: usize,
    /// Run seed: synthetic photos and glyphs and the test overlays derive from it.
    pub seed: u64,
    /// Where tensors live and batches are composed.
    pub device: Device,
    /// Audio: how the second view of a pair gets its background noise.
    pub pair_noise: PairNoise,
}

impl DatasetSpec {
    /// A synthetic dataset on the CPU (audio pair noise `independent`, the published default).
    pub fn synthetic(name: &str, train_size: usize, test_size: usize, seed: u64) -> Self {
        Self {
            name: name.into(),
            source: Source::Synthetic,
            data_dir: None,
            font: None,
            train_size,
            test_size,
            seed,
            device: Device::Cpu,
            pair_noise: PairNoise::Independent,
        }
    }
}

/// Base photos of one split: `[N, 3, 32, 32]` uint8 and `[N]` int64 labels, on the device.
#[derive(Debug)]
struct Photos {
    images: Tensor,
    labels: Tensor,
}

/// A photo dataset with an optional overlay (docs/PROTOCOL.md §2.1).
#[derive(Debug)]
pub struct ImageDataset {
    name: String,
    tasks: TaskSet,
    device: Device,
    photo_names: Vec<String>,
    train: Photos,
    test: Photos,
    overlay: Option<Overlay>,
    /// The test split's overlays, drawn once from the run seed so the test set is fixed.
    test_draw: Option<OverlayDraw>,
    /// One line per source used, for logs and `stats`.
    pub sources: Vec<String>,
}

/// Builds the dataset `spec.name`; an unknown name is an error listing the known ones.
pub fn open(spec: &DatasetSpec) -> Result<Box<dyn MultiTaskDataset>> {
    let info = catalogue::lookup(&spec.name).map_err(anyhow::Error::msg)?;
    Ok(match info.modality {
        Modality::Audio => Box::new(crate::audio::SpeechNoiseDataset::build(spec)?),
        Modality::Image => Box::new(ImageDataset::build(spec)?),
    })
}

impl ImageDataset {
    /// Builds the dataset described by `spec` (see [`open`]).
    pub fn build(spec: &DatasetSpec) -> Result<Self> {
        let info = catalogue::lookup(&spec.name).map_err(anyhow::Error::msg)?;
        ensure!(info.modality == Modality::Image, "dataset `{}` is not an image dataset", spec.name);
        let kind = info.overlay_task().map(|t| OverlayKind::for_task(t.name)).transpose()?;
        let seeds = Seeds::new(spec.seed);
        let mut sources = Vec::new();
        // The glyph bank first: it is the smaller read (MNIST, a font), so its errors come early.
        let overlay = match kind {
            None => None,
            Some(k) => {
                let bank = glyph_bank(k, spec, &seeds, &mut sources)?.to_device(spec.device);
                let overlay = Overlay::new(k, bank);
                // The built-in letters keep a contrast floor; real sources keep the published rule.
                Some(match spec.source {
                    Source::Synthetic => overlay.with_letter_contrast(SYNTHETIC_LETTER_CONTRAST),
                    Source::Real => overlay,
                })
            }
        };
        let (train, test, photo_names) = load_photos(spec, &seeds, &mut sources)?;
        let test_draw = overlay
            .as_ref()
            .map(|o| with_seed(seeds.derive(Stream::Data, BUILD_COUNTER + 10), || o.draw(test.labels.size()[0])));
        for s in &sources {
            tracing::info!(dataset = %spec.name, "source: {s}");
        }
        Ok(Self {
            name: spec.name.clone(),
            tasks: info.task_set(),
            device: spec.device,
            photo_names,
            train: train.to(spec.device),
            test: test.to(spec.device),
            overlay,
            test_draw,
            sources,
        })
    }

    /// The overlay rule and bank, if the dataset has one.
    pub fn overlay(&self) -> Option<&Overlay> {
        self.overlay.as_ref()
    }

    fn split(&self, split: Split) -> &Photos {
        match split {
            Split::Train => &self.train,
            Split::Test => &self.test,
        }
    }

    /// Photos `[B, 3, 32, 32]` float in [0, 1] and photo labels for `idx` (on the device).
    fn photos(&self, split: Split, idx: &Tensor) -> (Tensor, Tensor) {
        let p = self.split(split);
        (p.images.index_select(0, idx).to_kind(Kind::Float) / 255.0, p.labels.index_select(0, idx))
    }

    /// The overlays of `idx`: fresh from the generator on train, the fixed ones on test.
    fn draw(&self, overlay: &Overlay, split: Split, idx: &Tensor) -> OverlayDraw {
        match (split, &self.test_draw) {
            (Split::Test, Some(d)) => d.index(idx),
            _ => overlay.draw(idx.size()[0]),
        }
    }
}

impl Photos {
    fn to(self, device: Device) -> Self {
        Self { images: self.images.to_device(device), labels: self.labels.to_device(device) }
    }
}

impl MultiTaskDataset for ImageDataset {
    fn name(&self) -> &str {
        &self.name
    }

    fn tasks(&self) -> &TaskSet {
        &self.tasks
    }

    fn modality(&self) -> Modality {
        Modality::Image
    }

    fn device(&self) -> Device {
        self.device
    }

    fn len(&self, split: Split) -> usize {
        self.split(split).labels.size()[0] as usize
    }

    fn class_names(&self, task: usize) -> Vec<String> {
        match (task, &self.overlay) {
            (0, _) => self.photo_names.clone(),
            (_, Some(o)) => o.kind.class_names(),
            (_, None) => Vec::new(),
        }
    }

    fn batch(&self, split: Split, indices: &Tensor, seed: u64) -> Batch {
        with_seed(seed, || self.batch_seeded(split, indices))
    }

    fn pair(&self, split: Split, indices: &Tensor, redraw_p: f64, seed: u64) -> Pair {
        with_seed(seed, || self.pair_seeded(split, indices, redraw_p))
    }
}

impl ImageDataset {
    /// [`MultiTaskDataset::batch`] once the generator is seeded.
    fn batch_seeded(&self, split: Split, indices: &Tensor) -> Batch {
        let idx = indices.to_device(self.device).to_kind(Kind::Int64);
        let (x, photo) = self.photos(split, &idx);
        match &self.overlay {
            None => Batch { inputs: x, labels: vec![photo] },
            Some(o) => {
                let d = self.draw(o, split, &idx);
                Batch { inputs: o.compose(&x, &d), labels: vec![photo, d.class] }
            }
        }
    }

    /// [`MultiTaskDataset::pair`] once the generator is seeded.
    fn pair_seeded(&self, split: Split, indices: &Tensor, redraw_p: f64) -> Pair {
        let idx = indices.to_device(self.device).to_kind(Kind::Int64);
        let (x, photo) = self.photos(split, &idx);
        let Some(o) = &self.overlay else {
            let first = Batch { inputs: x.shallow_clone(), labels: vec![photo.shallow_clone()] };
            return Pair { first, second: x, second_labels: vec![photo] };
        };
        let d1 = self.draw(o, split, &idx);
        let fresh = o.draw(idx.size()[0]);
        let redraw = Tensor::rand([idx.size()[0]], (Kind::Float, self.device)).lt(redraw_p);
        let d2 = d1.select(&redraw, &fresh);
        let first = Batch { inputs: o.compose(&x, &d1), labels: vec![photo.shallow_clone(), d1.class] };
        Pair { first, second: o.compose(&x, &d2), second_labels: vec![photo, d2.class] }
    }
}

/// The default real-data folder, absolute so errors say where it looked: `data/raw` of the
/// checkout this binary was built from (`cargo xtask fetch` fills it), found from any working
/// directory; `data/raw` under the working directory if that checkout is gone (an installed binary).
pub fn default_data_dir() -> PathBuf {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    match checkout.join("Cargo.toml").is_file().then(|| checkout.canonicalize()) {
        Some(Ok(root)) => root.join("data/raw"),
        _ => std::path::absolute("data/raw").unwrap_or_else(|_| PathBuf::from("data/raw")),
    }
}

/// The real-data folder of `spec` and whether the user named it (then it is authoritative:
/// [`crate::files::locate`]).
fn data_dir(spec: &DatasetSpec) -> (PathBuf, bool) {
    match &spec.data_dir {
        Some(d) => (d.clone(), true),
        None => (default_data_dir(), false),
    }
}

/// What to do when a real dataset's files are not found.
const FETCH_HINT: &str = "run `cargo xtask fetch`, or pass --data-dir naming data/raw (holding cifar-10-batches-bin/ \
                          and mnist/) or one of those folders";

/// Takes the first `n` examples (0 = all), or errors when fewer exist.
fn take(images: Tensor, labels: Tensor, n: usize, what: &str) -> Result<Photos> {
    let have = labels.size()[0] as usize;
    let n = if n == 0 { have } else { n };
    ensure!(n <= have, "{what}: asked for {n} examples, only {have} available");
    Ok(Photos { images: images.narrow(0, 0, n as i64), labels: labels.narrow(0, 0, n as i64) })
}

/// Train and test photos (CPU) and the photo class names.
fn load_photos(spec: &DatasetSpec, seeds: &Seeds, sources: &mut Vec<String>) -> Result<(Photos, Photos, Vec<String>)> {
    match spec.source {
        Source::Synthetic => {
            let size = |n: usize, d: usize| if n == 0 { d } else { n };
            let (ntr, nte) = (size(spec.train_size, DEFAULT_SIZES.0), size(spec.test_size, DEFAULT_SIZES.1));
            let t0 = std::time::Instant::now();
            let (xtr, ytr) = photos::generate(ntr, seeds.derive(Stream::Data, BUILD_COUNTER));
            let (xte, yte) = photos::generate(nte, seeds.derive(Stream::Data, BUILD_COUNTER + 1));
            sources.push(format!("photos: synthetic, {ntr} train + {nte} test in {:.1} s", t0.elapsed().as_secs_f64()));
            let names = photos::CLASS_NAMES.map(String::from).to_vec();
            Ok((Photos { images: xtr, labels: ytr }, Photos { images: xte, labels: yte }, names))
        }
        Source::Real => {
            let (dir, given) = data_dir(spec);
            let missing = "no CIFAR-10 binary files (data_batch_1.bin …)";
            let found = files::locate(&dir, given, "cifar-10-batches-bin", cifar::has_cifar, missing, FETCH_HINT)?;
            note_unverified(spec, &found);
            cifar::ensure_files(&found, &[&cifar::TRAIN_FILES[..], &[cifar::TEST_FILE]].concat())?;
            let (xtr, ytr) = cifar::load_cifar(&found, &cifar::TRAIN_FILES, cifar::RECORDS_PER_FILE)?;
            let (xte, yte) = cifar::load_cifar(&found, &[cifar::TEST_FILE], cifar::RECORDS_PER_FILE)?;
            let train = take(xtr, ytr, spec.train_size, "CIFAR-10 train")?;
            let test = take(xte, yte, spec.test_size, "CIFAR-10 test")?;
            sources.push(format!("photos: CIFAR-10 from {}", found.display()));
            Ok((train, test, CIFAR_CLASSES.map(String::from).to_vec()))
        }
    }
}

/// A user's own folder is checked by format and record count only; say so once per folder.
fn note_unverified(spec: &DatasetSpec, dir: &Path) {
    if spec.data_dir.is_some() {
        tracing::info!("note: {} is checked by format and record count, not by checksum", dir.display());
    }
}

/// The glyph bank of an overlay kind, from the spec's sources (CPU).
fn glyph_bank(kind: OverlayKind, spec: &DatasetSpec, seeds: &Seeds, sources: &mut Vec<String>) -> Result<GlyphBank> {
    let seed = seeds.derive(Stream::Data, BUILD_COUNTER + 2);
    let bank = match (kind, spec.source) {
        (OverlayKind::Shapes, _) => glyphs::shape_masks()?,
        (OverlayKind::Digits, Source::Synthetic) => glyphs::stroke_digits(STROKE_VARIANTS, seed)?,
        (OverlayKind::Digits, Source::Real) => {
            let (dir, given) = data_dir(spec);
            let missing = "no MNIST train-images-idx3-ubyte(.gz)";
            let found = files::locate(&dir, given, "mnist", crate::idx::has_mnist, missing, FETCH_HINT)?;
            note_unverified(spec, &found);
            glyphs::mnist_digits(&found)?
        }
        // Real letters: one glyph per letter at the published size, never the stroke font.
        (OverlayKind::Letters, Source::Real) => {
            glyphs::published_letters(&real_letter_font(spec.font.as_deref(), &ttf::SYSTEM_SANS)?)?
        }
        (OverlayKind::Letters, Source::Synthetic) => match &spec.font {
            Some(f) => glyphs::ttf_letters(f, TTF_VARIANTS, seed)?,
            None => glyphs::stroke_letters(STROKE_VARIANTS, seed)?,
        },
    };
    sources.push(format!("{}: {} ({} glyphs)", kind.task().name, bank.source, bank.len()));
    Ok(bank)
}

/// The font of real letters: `font` if given, else the first installed of `system`. None found
/// is an error saying where it looked, never the stroke font (real letters are one font's glyphs).
fn real_letter_font(font: Option<&Path>, system: &[&str]) -> Result<PathBuf> {
    if let Some(f) = font {
        return Ok(f.to_path_buf());
    }
    match system.iter().map(PathBuf::from).find(|p| p.is_file()) {
        Some(f) => Ok(f),
        None => bail!(
            "letters on --source real need an Arial-metric TTF font and none was found (looked at {}); \
             install Liberation Sans (Debian: apt-get install fonts-liberation) or pass a font with \
             `data.font` in the run config or `--font`",
            system.join(", ")
        ),
    }
}

#[cfg(test)]
mod letter_tests {
    use super::*;

    /// Issue 15.7: real letters are one glyph per letter at the published size from a found TTF
    /// font (capitals of a 12 px em ≈ 8.6–8.8 px tall); with no font the error says where it
    /// looked and how to pass one. Works whether or not a system font is installed.
    #[test]
    fn real_letters_are_one_published_size_glyph_each_or_a_clear_error() {
        let spec = DatasetSpec { source: Source::Real, ..DatasetSpec::synthetic("photos+letters", 0, 0, 0) };
        let mut sources = Vec::new();
        let got = glyph_bank(OverlayKind::Letters, &spec, &Seeds::new(0), &mut sources);
        match ttf::system_sans() {
            Some(font) => {
                let bank = got.unwrap();
                assert_eq!(bank.len(), 26, "one glyph per letter");
                assert!(sources[0].contains(&font.display().to_string()) && sources[0].contains("published size"));
                // Rows the `H` (class 7) inks: a ≈ 8.6 px capital spans 9 or 10 pixel rows (the old
                // 10.2–12 px glyphs span 11 or more).
                let rows = bank.glyphs.get(7).amax([1], false).gt(0.1).sum(Kind::Int64).int64_value(&[]);
                assert!((8..=10).contains(&rows), "`H` spans {rows} rows; the published capitals are ≈ 8.6 px");
            }
            None => {
                let e = got.unwrap_err().to_string();
                assert!(e.contains(ttf::SYSTEM_SANS[0]) && e.contains("data.font") && e.contains("--font"), "{e}");
            }
        }
        let missing = DatasetSpec { font: Some("/nonexistent/arial.ttf".into()), ..spec };
        let e = glyph_bank(OverlayKind::Letters, &missing, &Seeds::new(0), &mut sources).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/arial.ttf"), "{e:#}");
    }

    /// Issue 19.8: with no `--font` and no system font, real letters are an error saying where it
    /// looked — never a silent fall-back to the stroke font (the machine's fonts do not matter).
    #[test]
    fn real_letters_without_any_font_are_an_error_not_the_stroke_font() {
        let nowhere = ["/nonexistent/fonts/LiberationSans-Regular.ttf", "/nonexistent/DejaVuSans.ttf"];
        let e = real_letter_font(None, &nowhere).unwrap_err().to_string();
        assert!(e.contains(nowhere[0]) && e.contains(nowhere[1]) && e.contains("--font"), "{e}");
        let given = Path::new("/my/font.ttf");
        assert_eq!(real_letter_font(Some(given), &nowhere).unwrap(), given);
    }
}

/// featdrop-core estimates GPU memory from the whole-split sizes (`memory::whole_splits`), which
/// it cannot import from here; this keeps its copy equal to the sizes this crate builds.
#[cfg(test)]
mod whole_split_tests {
    use super::DEFAULT_SIZES;
    use crate::audio::{dataset::SYNTH_REPS, split_speakers};
    use featdrop_core::{Split, catalogue, config::Source, memory::whole_splits};

    #[test]
    fn cores_whole_splits_are_the_ones_built_here() {
        let image = catalogue::find("photos+digits").unwrap();
        let audio = catalogue::find("speech+noise").unwrap();
        let (tr, te) = (split_speakers(Split::Train).len(), split_speakers(Split::Test).len());
        assert_eq!(whole_splits(image, Source::Real), (DEFAULT_SIZES.0 as u64, DEFAULT_SIZES.1 as u64));
        let synthetic = ((tr * 10 * SYNTH_REPS) as u64, (te * 10 * SYNTH_REPS) as u64);
        assert_eq!(whole_splits(audio, Source::Synthetic), synthetic);
        // AudioMNIST: 50 recordings of each digit per speaker.
        assert_eq!(whole_splits(audio, Source::Real), ((tr * 500) as u64, (te * 500) as u64));
    }
}
