//! A view family of your own, compared against the expert (SimCLR) views on the same data, encoder
//! initialisation and training budget.
//!
//! The new family is a plain closure (any `Fn(&Tensor, u64) -> Tensor` is a [`ViewFamily`]):
//! per-example horizontal flips, a random erased square and pixel noise, then the usual
//! normalisation. Both runs pretrain a small ResNet for a few epochs on the built-in
//! `photos+digits` dataset (synthetic sources) and report the kNN monitor's accuracy per task.
//!
//! `cargo run -p featdrop-contrastive --example custom_views` (a few seconds on a CPU).

use featdrop_augment::{ExpertImage, ImageRecipe, Normalize};
use featdrop_contrastive::{EncoderSpec, ResNet, Stem, StopAfter, TrainSummary, Trainer};
use featdrop_core::seed::with_torch_seed;
use featdrop_core::{BaseViews, RunConfig, RunDir, ViewFamily};
use featdrop_data::DatasetSpec;
use tch::{Device, Kind, Tensor, nn::VarStore};

/// Flip each example with probability ½, zero one random 12×12 square, add noise of std 0.05,
/// normalise. Seeded from `seed`, so a seed always gives the same views.
fn flip_erase_noise(x: &Tensor, seed: u64) -> Tensor {
    let v = with_torch_seed(seed, || {
        let (n, h, w) = (x.size()[0], x.size()[2], x.size()[3]);
        let opts = (Kind::Float, x.device());
        let flip = Tensor::rand([n, 1, 1, 1], opts).lt(0.5);
        let flipped = x.flip([3]).where_self(&flip, x);
        // The erased square: rows top..top+12, columns left..left+12, per example.
        let (top, left) = (
            Tensor::randint(h - 12, [n, 1, 1, 1], (Kind::Int64, x.device())),
            Tensor::randint(w - 12, [n, 1, 1, 1], (Kind::Int64, x.device())),
        );
        let rows = Tensor::arange(h, (Kind::Int64, x.device())).view([1, 1, h, 1]);
        let cols = Tensor::arange(w, (Kind::Int64, x.device())).view([1, 1, 1, w]);
        let inside = |i: &Tensor, lo: &Tensor| i.ge_tensor(lo).logical_and(&i.lt_tensor(&(lo + 12)));
        let erase = inside(&rows, &top).logical_and(&inside(&cols, &left));
        let erased = flipped.masked_fill(&erase, 0.0);
        (erased + x.randn_like() * 0.05).clamp(0.0, 1.0)
    });
    Normalize::default().apply(&v)
}

/// Pretrains a fresh small ResNet (same initialisation every call) with `views`.
fn pretrain(name: &str, views: Box<dyn ViewFamily>) -> anyhow::Result<TrainSummary> {
    let dataset = featdrop_data::open(&DatasetSpec::synthetic("photos+digits", 512, 256, 0))?;
    let mut cfg = RunConfig::new("custom-views", "photos+digits", BaseViews::Expert, 0);
    (cfg.train.epochs, cfg.train.batch_size, cfg.train.knn_k, cfg.train.view_grid_every) = (3, 64, 10, 0);
    cfg.data.monitor_size = 256;
    let vs = VarStore::new(Device::Cpu);
    let encoder = with_torch_seed(1, || ResNet::new(&vs.root(), EncoderSpec::small(3, Stem::SmallImage, 8)));
    let dir = tempfile::tempdir()?;
    let mut trainer = Trainer::with_parts(cfg, RunDir::at(dir.path()), dataset, vs, Box::new(encoder), views)?;
    let s = trainer.run(StopAfter::default())?;
    println!(
        "{name:<22} loss {:.3} -> {:.3}   kNN top-1: photo {:.3}, digit {:.3}   ({:.1} s)",
        s.first_epoch_loss.unwrap_or(f64::NAN),
        s.last_epoch_loss,
        s.knn["photo"],
        s.knn["digit"],
        s.seconds
    );
    Ok(s)
}

fn main() -> anyhow::Result<()> {
    println!("photos+digits, 512 training examples, small ResNet (width 8), 3 epochs; chance 0.100");
    pretrain("expert (SimCLR recipe)", Box::new(ExpertImage::new(ImageRecipe::default())?))?;
    pretrain("flip+erase+noise", Box::new(flip_erase_noise))?;
    Ok(())
}
