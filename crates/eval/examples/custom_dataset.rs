//! Pretraining and probing on your own data: a complete program using only the crates' public API.
//!
//! The data are a user's in-memory tensors with two label sets: 32×32 images whose `colour` task
//! (3 classes) is the image's hue and whose `pattern` task (4 classes) is the orientation of a
//! stripe texture (horizontal, vertical, diagonal, checkerboard, at a random phase). The two labels
//! are independent. [`ColourPatterns`] implements [`MultiTaskDataset`]; a small ResNet is pretrained
//! on it with the expert (SimCLR) views through [`Trainer::with_parts`], then the linear probes of
//! docs/PROTOCOL.md §5.1 are fitted on both tasks in memory with [`probe_encoder`].
//!
//! `cargo run -p featdrop-eval --example custom_dataset` (a few seconds on a CPU).

use featdrop_augment::{ExpertImage, ImageRecipe};
use featdrop_contrastive::{EncoderSpec, ResNet, Stem, StopAfter, Trainer};
use featdrop_core::config::ProbeFeatures;
use featdrop_core::seed::with_torch_seed;
use featdrop_core::{BaseViews, Batch, Modality, RunConfig, RunDir, Split, TaskSet};
use featdrop_data::{MultiTaskDataset, Pair};
use featdrop_eval::{FrozenEncoder, probe_encoder};
use tch::{Device, Kind, Tensor, nn::VarStore};

/// A user's dataset: images `[N, 3, 32, 32]` in [0, 1] and one `[N]` int64 label tensor per task,
/// for a training and a test split, all held in memory.
pub struct ColourPatterns {
    tasks: TaskSet,
    train: Batch,
    test: Batch,
}

impl ColourPatterns {
    /// `train` + `test` examples drawn from `seed`.
    pub fn new(train: i64, test: i64, seed: u64) -> Self {
        let (train, test) = with_torch_seed(seed, || (Self::draw(train), Self::draw(test)));
        Self { tasks: TaskSet::from_pairs(&[("colour", 3), ("pattern", 4)]), train, test }
    }

    /// `n` images: a red, green or blue tint of random brightness, darkened along a stripe pattern.
    fn draw(n: i64) -> Batch {
        let opts = (Kind::Int64, Device::Cpu);
        let (colour, pattern) = (Tensor::randint(3, [n], opts), Tensor::randint(4, [n], opts));
        // Hue: the class's channel at 0.8, the others at 0.2, times a brightness in [0.6, 1].
        let hue = colour.one_hot(3).to_kind(Kind::Float) * 0.6 + 0.2;
        let brightness = Tensor::rand([n, 1], (Kind::Float, Device::Cpu)) * 0.4 + 0.6;
        let tint = (hue * brightness).view([n, 3, 1, 1]);
        // Stripes 4 pixels wide at a random phase, in one of four orientations.
        let y = Tensor::arange(32, opts).view([1, 32, 1]);
        let x = Tensor::arange(32, opts).view([1, 1, 32]);
        let phase = Tensor::randint(8, [n, 1, 1], opts);
        let band = |t: Tensor| (t + &phase).floor_divide_scalar(4).remainder(2);
        let (h, v) = (band(y.shallow_clone()), band(x.shallow_clone()));
        let masks = Tensor::stack(
            &[h.expand([n, 32, 32], false), v.expand([n, 32, 32], false), band(&x + &y), (&h + &v).remainder(2)],
            1,
        );
        let mask = (masks * pattern.one_hot(4).view([n, 4, 1, 1])).sum_dim_intlist(1, true, Kind::Float);
        let noise = Tensor::randn([n, 3, 32, 32], (Kind::Float, Device::Cpu)) * 0.03;
        let shade: Tensor = 1.0 - mask * 0.5;
        let images = (tint * shade + noise).clamp(0.0, 1.0);
        Batch { inputs: images, labels: vec![colour, pattern] }
    }

    fn split(&self, split: Split) -> &Batch {
        match split {
            Split::Train => &self.train,
            Split::Test => &self.test,
        }
    }
}

impl MultiTaskDataset for ColourPatterns {
    fn name(&self) -> &str {
        "colour+pattern"
    }
    fn tasks(&self) -> &TaskSet {
        &self.tasks
    }
    fn modality(&self) -> Modality {
        Modality::Image
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn len(&self, split: Split) -> usize {
        self.split(split).len()
    }
    fn class_names(&self, task: usize) -> Vec<String> {
        let names: &[&str] = if task == 0 { &["red", "green", "blue"] } else { &["horiz", "vert", "diag", "checker"] };
        names.iter().map(|s| s.to_string()).collect()
    }
    fn batch(&self, split: Split, indices: &Tensor, _seed: u64) -> Batch {
        // Nothing random to draw: the examples are fixed tensors.
        let (all, idx) = (self.split(split), indices.to_device(Device::Cpu));
        Batch {
            inputs: all.inputs.index_select(0, &idx),
            labels: all.labels.iter().map(|l| l.index_select(0, &idx)).collect(),
        }
    }
    fn pair(&self, split: Split, indices: &Tensor, _redraw_p: f64, seed: u64) -> Pair {
        // Both views start from the same example; the view family makes them differ.
        let first = self.batch(split, indices, seed);
        let (second, second_labels) =
            (first.inputs.shallow_clone(), first.labels.iter().map(Tensor::shallow_clone).collect());
        Pair { first, second, second_labels }
    }
}

fn main() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let dataset = ColourPatterns::new(512, 256, 0);

    // The run's hyperparameters: the published defaults, scaled down to seconds on a CPU.
    let mut cfg = RunConfig::new("custom", dataset.name(), BaseViews::Expert, 0);
    (cfg.train.epochs, cfg.train.batch_size, cfg.train.knn_k, cfg.train.view_grid_every) = (3, 64, 10, 0);
    (cfg.probe.epochs, cfg.probe.lr_milestones, cfg.probe.features) = (20, vec![15], ProbeFeatures::Cached);

    let vs = VarStore::new(Device::Cpu);
    let encoder = with_torch_seed(1, || ResNet::new(&vs.root(), EncoderSpec::small(3, Stem::SmallImage, 8)));
    let views = ExpertImage::new(ImageRecipe::default())?;
    let dir = tempfile::tempdir()?; // config.json, metrics.jsonl and checkpoints go here
    let probe_cfg = cfg.probe.clone();
    let mut trainer =
        Trainer::with_parts(cfg, RunDir::at(dir.path()), Box::new(dataset), vs, Box::new(encoder), Box::new(views))?;
    let summary = trainer.run(StopAfter::default())?;
    println!(
        "pretrained {} epochs ({} steps): loss {:.3} -> {:.3}",
        summary.epochs,
        summary.steps,
        summary.first_epoch_loss.unwrap_or(f64::NAN),
        summary.last_epoch_loss
    );

    let report = probe_encoder(&FrozenEncoder::from_trainer(&trainer), &probe_cfg)?;
    println!(
        "linear probes on {} pre-pool features ({} features):",
        report.protocol.feature_dim, report.protocol.features
    );
    for (task, r) in &report.tasks {
        println!("  {task:<8} top-1 {:.3}  (chance {:.3}; kNN monitor {:.3})", r.top1, r.chance, summary.knn[task]);
    }
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
