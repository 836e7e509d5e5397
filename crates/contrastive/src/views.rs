//! The learned viewmaker as a view family (docs/PROTOCOL.md §3.2), the expert operations it can
//! run first (`expert+viewmaker`, §3.3), and the clean transforms probes and monitors use. Which
//! family a view mode gets is decided in [`crate::assembly`].

use anyhow::Result;
use featdrop_augment::{ExpertSpectral, Identity, ImageRecipe, Normalize, SpectralRecipe, with_seed};
use featdrop_core::{Modality, ViewFamily};
use featdrop_viewmaker::{Viewmaker, ViewmakerSpec};
use tch::{Device, Tensor, nn::VarStore};

/// Expert operations applied before the viewmaker in `expert+viewmaker` (unseeded: they run
/// inside the viewmaker family's seeded call).
pub enum ExpertFirst {
    /// The image recipe without its normalisation ([0, 1] in and out).
    Image(ImageRecipe),
    /// The spectral audio recipe (normalised log-mel in and out).
    Spectral(ExpertSpectral),
}

impl ExpertFirst {
    /// The expert operations of a modality, as the viewmaker's first stage.
    pub fn for_modality(modality: Modality) -> Result<Self> {
        Ok(match modality {
            Modality::Image => Self::Image(ImageRecipe::default()),
            Modality::Audio => Self::Spectral(ExpertSpectral::new(SpectralRecipe::default())?),
        })
    }

    fn apply(&self, x: &Tensor) -> Tensor {
        match self {
            Self::Image(r) => r.augment(x),
            Self::Spectral(s) => s.augment(x),
        }
    }
}

/// The viewmaker as a view family: `normalise(x + δ)`, or for `expert+viewmaker`
/// `normalise(expert_unnormalised(x) + δ)` (audio: no normalisation, the spectrogram already is).
/// Its parameters are [`ViewFamily::trainable`], so a trainer optimises it adversarially.
pub struct ViewmakerViews {
    vs: VarStore,
    net: Viewmaker,
    expert_first: Option<ExpertFirst>,
    normalize: Option<Normalize>,
}

impl ViewmakerViews {
    /// A freshly initialised viewmaker on `device` (initialisation draws from torch's current
    /// generator state: seed it first).
    pub fn new(
        spec: ViewmakerSpec,
        device: Device,
        expert_first: Option<ExpertFirst>,
        normalize: Option<Normalize>,
    ) -> Result<Self> {
        let vs = VarStore::new(device);
        let net = Viewmaker::new(&vs.root(), spec)?;
        Ok(Self { vs, net, expert_first, normalize })
    }

    /// The perturbed view before normalisation.
    pub fn perturb(&self, inputs: &Tensor, seed: u64) -> Tensor {
        with_seed(seed, || {
            let base = match &self.expert_first {
                Some(expert) => expert.apply(inputs),
                None => inputs.shallow_clone(),
            };
            self.net.perturb(&base)
        })
    }
}

impl ViewFamily for ViewmakerViews {
    fn name(&self) -> String {
        if self.expert_first.is_some() { "expert+viewmaker" } else { "viewmaker" }.into()
    }

    fn view(&self, inputs: &Tensor, seed: u64) -> Tensor {
        let v = self.perturb(inputs, seed);
        match &self.normalize {
            Some(n) => n.apply(&v),
            None => v,
        }
    }

    fn trainable(&self) -> Vec<(String, Tensor)> {
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }
}

/// The clean transform for a modality: what probes and monitors feed the encoder (normalised
/// images; audio spectrograms are normalised already).
pub fn clean(modality: Modality) -> Box<dyn ViewFamily> {
    match modality {
        Modality::Image => Box::new(Identity::default()),
        Modality::Audio => Box::new(AudioIdentity),
    }
}

/// The identity family for normalised spectrograms (named `identity` like the image one).
pub struct AudioIdentity;

impl ViewFamily for AudioIdentity {
    fn name(&self) -> String {
        "identity".into()
    }

    fn view(&self, inputs: &Tensor, _seed: u64) -> Tensor {
        inputs.shallow_clone()
    }
}
