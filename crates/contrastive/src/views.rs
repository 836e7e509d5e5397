//! View families for each view mode (§3.3), including the learned viewmaker family.

use anyhow::{Result, bail};
use featdrop_augment::{ExpertImage, Identity, ImageRecipe, Normalize, with_seed};
use featdrop_core::{Modality, RunConfig, ViewFamily, ViewMode};
use featdrop_viewmaker::{Viewmaker, ViewmakerSpec, default_epsilon};
use tch::{Device, Tensor, nn::VarStore};

/// The viewmaker as a view family: `normalise(x + δ)`, or for `expert+viewmaker`
/// `normalise(expert_unnormalised(x) + δ)`. Its parameters are [`ViewFamily::trainable`], so a
/// trainer optimises it adversarially.
pub struct ViewmakerViews {
    vs: VarStore,
    net: Viewmaker,
    expert_first: Option<ImageRecipe>,
    normalize: Option<Normalize>,
}

impl ViewmakerViews {
    /// A freshly initialised viewmaker on `device` (initialisation draws from torch's current
    /// generator state: seed it first).
    pub fn new(
        spec: ViewmakerSpec,
        device: Device,
        expert_first: Option<ImageRecipe>,
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
                Some(recipe) => recipe.augment(inputs),
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

/// The view family a run's config asks for. Images only for now: audio families arrive with the
/// audio dataset.
pub fn view_family(cfg: &RunConfig, modality: Modality, device: Device) -> Result<Box<dyn ViewFamily>> {
    if modality != Modality::Image {
        bail!("view families for {modality:?} inputs are not available yet (dataset `{}`)", cfg.dataset);
    }
    let vm_spec = || ViewmakerSpec {
        in_channels: 3,
        num_res_blocks: cfg.viewmaker.num_res_blocks,
        width_mult: cfg.viewmaker.width_mult,
        epsilon: cfg.viewmaker.epsilon.unwrap_or_else(|| default_epsilon(&cfg.dataset)),
        clamp: cfg.viewmaker.clamp,
    };
    Ok(match cfg.view_mode {
        ViewMode::Expert | ViewMode::Dropout(_) => Box::new(ExpertImage::new(ImageRecipe::default())?),
        ViewMode::None => Box::new(Identity::default()),
        ViewMode::Viewmaker => Box::new(ViewmakerViews::new(vm_spec(), device, None, Some(Normalize::default()))?),
        ViewMode::ExpertViewmaker => {
            Box::new(ViewmakerViews::new(vm_spec(), device, Some(ImageRecipe::default()), Some(Normalize::default()))?)
        }
    })
}

/// The clean transform for a modality: what probes and monitors feed the encoder.
pub fn clean(modality: Modality) -> Box<dyn ViewFamily> {
    match modality {
        Modality::Image => Box::new(Identity::default()),
        Modality::Audio => Box::new(|x: &Tensor, _seed: u64| x.shallow_clone()),
    }
}
