//! One simulation: a configuration in, a learned encoder and its measurements out.

use crate::measure::{probe_accuracy, subspace_overlap, weight_share};
use crate::model::{AugmentConfig, Group, ModelConfig, population_moments, sample_clean};
use crate::spectral::{Prediction, closed_form, predict, spectral_loss};
use crate::train::{Objective, TrainConfig, train};
use anyhow::{Result, ensure};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How the encoder is obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Solver {
    /// The exact minimiser of the population spectral contrastive loss (eigen-decomposition).
    ClosedForm,
    /// Minibatch gradient descent on the spectral contrastive loss (checks the closed form).
    SpectralGd,
    /// Minibatch gradient descent on InfoNCE.
    InfoNce,
}

impl Solver {
    /// Short name used in file names and tables.
    pub fn name(self) -> &'static str {
        match self {
            Solver::ClosedForm => "closed-form",
            Solver::SpectralGd => "spectral-gd",
            Solver::InfoNce => "info-nce",
        }
    }
}

/// Linear-probe settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Clean training examples for each probe.
    pub train_size: usize,
    /// Clean test examples the accuracy is measured on.
    pub test_size: usize,
    /// Ridge penalty, relative to the mean squared feature value.
    pub ridge: f64,
}

impl Default for ProbeConfig {
    /// 2000 training and 2000 test examples, ridge 1e-6.
    fn default() -> Self {
        ProbeConfig { train_size: 2000, test_size: 2000, ridge: 1e-6 }
    }
}

/// Everything one simulation needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// The input distribution.
    pub model: ModelConfig,
    /// The augmentations making positive pairs.
    pub augment: AugmentConfig,
    /// Embedding size `k` (rows of `W`).
    pub k: usize,
    /// How `W` is obtained.
    pub solver: Solver,
    /// Gradient-descent settings (unused by the closed form).
    pub train: TrainConfig,
    /// Linear-probe settings.
    pub probe: ProbeConfig,
    /// Seed of every random draw (initialisation, batches, probe data).
    pub seed: u64,
}

impl Default for SimConfig {
    /// The default model and augmentations, `k = 4`, the closed-form solver, seed 0.
    fn default() -> Self {
        SimConfig {
            model: ModelConfig::default(),
            augment: AugmentConfig::default(),
            k: 4,
            solver: Solver::ClosedForm,
            train: TrainConfig::default(),
            probe: ProbeConfig::default(),
            seed: 0,
        }
    }
}

impl SimConfig {
    /// Checks that every field is in range.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.augment.validate()?;
        self.train.validate()?;
        ensure!(
            self.k >= 1 && self.k <= self.model.dim(),
            "k must lie in 1..={} (the input dimension), got {}",
            self.model.dim(),
            self.k
        );
        ensure!(
            !(self.solver == Solver::InfoNce && self.train.normalize && self.k < 2),
            "InfoNCE with normalised embeddings needs k ≥ 2 (a 1-d unit vector is only a sign); \
             use k ≥ 2 or turn normalisation off"
        );
        ensure!(
            self.probe.train_size >= 2 && self.probe.test_size >= 1,
            "probe needs at least 2 training and 1 test example"
        );
        ensure!(self.probe.ridge.is_finite() && self.probe.ridge >= 0.0, "probe ridge must be a finite number ≥ 0");
        Ok(())
    }
}

/// The measurements of one simulation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimResult {
    /// Fraction of group `a`'s signal subspace in the row space of `W`.
    pub overlap_a: f64,
    /// Fraction of group `b`'s signal subspace in the row space of `W`.
    pub overlap_b: f64,
    /// Share of `‖W‖²_F` on group `a`'s coordinates.
    pub weight_share_a: f64,
    /// Share of `‖W‖²_F` on group `b`'s coordinates.
    pub weight_share_b: f64,
    /// Test accuracy of the linear probe for task A on `W x`.
    pub acc_a: f64,
    /// Test accuracy of the linear probe for task B on `W x`.
    pub acc_b: f64,
    /// Chance accuracy of task A.
    pub chance_a: f64,
    /// Chance accuracy of task B.
    pub chance_b: f64,
    /// Test accuracy of a probe on the raw input `x` for task A (what any encoder could reach).
    pub ceiling_a: f64,
    /// Test accuracy of a probe on the raw input `x` for task B.
    pub ceiling_b: f64,
    /// Population spectral loss of the learned `W`.
    pub spectral_loss: f64,
    /// Final mean batch loss of gradient descent (`None` for the closed form).
    pub train_loss: Option<f64>,
    /// The eigenvalue-ranking prediction for this configuration.
    pub prediction: Prediction,
    /// The learned encoder, `k` rows of `d` weights (left out of sweeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Vec<Vec<f64>>>,
}

/// Independent random streams of one simulation.
#[derive(Clone, Copy)]
enum Stream {
    Probe = 0,
    Train = 1,
}

fn rng_for(seed: u64, stream: Stream) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream as u64);
    rng
}

/// Runs one simulation: obtains `W` with the configured solver, then measures subspace overlap
/// and linear-probe accuracy on both tasks. Deterministic for a given configuration; the probe
/// data depend only on the model and seed, so configurations that differ only in dropout,
/// `k` or solver are probed on the same examples.
///
/// # Example
///
/// ```
/// use featdrop_theory::{SimConfig, simulate};
///
/// // The default model without dropout: the strong group takes the representation.
/// let r = simulate(&SimConfig::default())?;
/// assert!(r.acc_a > 0.9 && r.overlap_b < 1e-6 && r.acc_b < r.chance_b + 0.05);
/// println!("task A {:.3}, task B {:.3} (dropout helps past p = {:?})", r.acc_a, r.acc_b, r.prediction.onset_p);
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn simulate(cfg: &SimConfig) -> Result<SimResult> {
    cfg.validate()?;
    let model = &cfg.model;
    let moments = population_moments(model, &cfg.augment);
    let (weights, train_loss) = match cfg.solver {
        Solver::ClosedForm => (closed_form(&moments, cfg.k).weights, None),
        Solver::SpectralGd | Solver::InfoNce => {
            let objective = if cfg.solver == Solver::SpectralGd { Objective::Spectral } else { Objective::InfoNce };
            let mut rng = rng_for(cfg.seed, Stream::Train);
            let out = train(model, &cfg.augment, cfg.k, objective, &cfg.train, &mut rng);
            (out.weights, Some(out.final_loss))
        }
    };
    ensure!(
        weights.iter().all(|v| v.is_finite()),
        "the learned encoder has non-finite weights (lower the learning rate)"
    );
    let mut rng = rng_for(cfg.seed, Stream::Probe);
    let train_set = sample_clean(model, cfg.probe.train_size, &mut rng);
    let test_set = sample_clean(model, cfg.probe.test_size, &mut rng);
    let identity = ndarray::Array2::<f64>::eye(model.dim());
    let ridge = cfg.probe.ridge;
    let acc = |w: &ndarray::Array2<f64>, g: Group| probe_accuracy(w, model, &train_set, &test_set, g, ridge);
    Ok(SimResult {
        overlap_a: subspace_overlap(&weights, model, Group::A),
        overlap_b: subspace_overlap(&weights, model, Group::B),
        weight_share_a: weight_share(&weights, model, Group::A),
        weight_share_b: weight_share(&weights, model, Group::B),
        acc_a: acc(&weights, Group::A),
        acc_b: acc(&weights, Group::B),
        chance_a: model.a.chance(),
        chance_b: model.b.chance(),
        ceiling_a: acc(&identity, Group::A),
        ceiling_b: acc(&identity, Group::B),
        spectral_loss: spectral_loss(&weights, &moments),
        train_loss,
        prediction: predict(model, &cfg.augment, cfg.k),
        weights: Some(weights.outer_iter().map(|r| r.to_vec()).collect()),
    })
}
