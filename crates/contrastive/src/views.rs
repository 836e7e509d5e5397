//! View families for each view mode (§3.3), including the learned viewmaker family.

use anyhow::Result;
use featdrop_augment::{ExpertImage, ExpertSpectral, Identity, ImageRecipe, Normalize, SpectralRecipe, with_seed};
use featdrop_core::{Modality, RunConfig, ViewFamily, ViewMode};
use featdrop_viewmaker::{Viewmaker, ViewmakerSpec, default_epsilon};
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

/// The view family a run's config asks for: images use the SimCLR recipe and normalisation, audio
/// the spectral recipe on the already-normalised log-mel (DESIGN §3.1–§3.3).
pub fn view_family(cfg: &RunConfig, modality: Modality, device: Device) -> Result<Box<dyn ViewFamily>> {
    let channels = if modality == Modality::Image { 3 } else { 1 };
    let vm_spec = || ViewmakerSpec {
        in_channels: channels,
        num_res_blocks: cfg.viewmaker.num_res_blocks,
        width_mult: cfg.viewmaker.width_mult,
        epsilon: cfg.viewmaker.epsilon.unwrap_or_else(|| default_epsilon(&cfg.dataset)),
        clamp: cfg.viewmaker.clamp,
    };
    let expert = || -> Result<ExpertFirst> {
        Ok(match modality {
            Modality::Image => ExpertFirst::Image(ImageRecipe::default()),
            Modality::Audio => ExpertFirst::Spectral(ExpertSpectral::new(SpectralRecipe::default())?),
        })
    };
    let normalize = (modality == Modality::Image).then(Normalize::default);
    Ok(match (cfg.view_mode, modality) {
        (ViewMode::Expert | ViewMode::Dropout(_), Modality::Image) => {
            Box::new(ExpertImage::new(ImageRecipe::default())?)
        }
        (ViewMode::Expert | ViewMode::Dropout(_), Modality::Audio) => {
            Box::new(ExpertSpectral::new(SpectralRecipe::default())?)
        }
        (ViewMode::None, _) => clean(modality),
        (ViewMode::Viewmaker, _) => Box::new(ViewmakerViews::new(vm_spec(), device, None, normalize)?),
        (ViewMode::ExpertViewmaker, _) => Box::new(ViewmakerViews::new(vm_spec(), device, Some(expert()?), normalize)?),
    })
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
