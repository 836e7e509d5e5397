//! The learned viewmaker as a view family (docs/PROTOCOL.md §3.2), what it can run first (the
//! image expert operations for `expert+viewmaker`, an audio front stage), the audio families that
//! go from mixed waveforms to log-mel spectrograms (§3.1), and the clean transforms probes and
//! monitors use. Which family a view mode gets is decided in [`crate::assembly`].

use anyhow::Result;
use featdrop_augment::{ExpertSpectral, ExpertWaveform, Identity, ImageRecipe, Normalize, with_seed};
use featdrop_core::{Modality, ViewFamily};
use featdrop_data::audio::{LogMel, MelConfig};
use featdrop_viewmaker::{Viewmaker, ViewmakerSpec};
use tch::{Device, Tensor, nn::VarStore};

/// What an audio view does to the mixed waveform on its way to the normalised log-mel.
pub enum AudioOps {
    /// Nothing: the log-mel of the clip (the clean transform).
    Clean,
    /// The waveform expert operations, then the log-mel.
    Waveform(ExpertWaveform),
    /// The log-mel with the spectral expert operations inside it (masks on the mel power, noise
    /// on the log-mel in dB).
    Spectral(ExpertSpectral),
}

/// An audio view family: mixed waveforms `[N, samples]` in, normalised log-mel `[N, 1, 64, 64]`
/// out, through the published front end (docs/PROTOCOL.md §2.2) and the chosen operations.
pub struct AudioViews {
    ops: AudioOps,
    mel: LogMel,
}

impl AudioViews {
    /// The family of `ops` with the published log-mel front end on `device`.
    pub fn new(ops: AudioOps, device: Device) -> Self {
        Self { ops, mel: LogMel::new(MelConfig::default(), device) }
    }

    /// One view from libtorch's current generator state (the caller seeds).
    pub fn apply(&self, waves: &Tensor) -> Tensor {
        match &self.ops {
            AudioOps::Clean => self.mel.features(waves),
            AudioOps::Waveform(w) => self.mel.features(&w.augment(waves)),
            AudioOps::Spectral(s) => self.mel.features_via(waves, |p| s.mask_power(&p), |db| s.add_noise_db(&db)),
        }
    }
}

impl ViewFamily for AudioViews {
    fn name(&self) -> String {
        match self.ops {
            AudioOps::Clean => "identity",
            AudioOps::Waveform(_) | AudioOps::Spectral(_) => "expert",
        }
        .into()
    }

    fn view(&self, inputs: &Tensor, seed: u64) -> Tensor {
        match self.ops {
            // Deterministic: no generator to seed (and no lock to take).
            AudioOps::Clean => self.apply(inputs),
            _ => with_seed(seed, || self.apply(inputs)),
        }
    }
}

/// What runs before the viewmaker, unseeded (inside the viewmaker family's seeded call).
pub enum ExpertFirst {
    /// The image recipe without its normalisation ([0, 1] in and out): `expert+viewmaker`.
    Image(ImageRecipe),
    /// An audio family from the waveform to the normalised log-mel: the clean log-mel, the
    /// waveform operations (the published audio viewmaker's input) or the spectral ones.
    Audio(AudioViews),
}

impl ExpertFirst {
    fn apply(&self, x: &Tensor) -> Tensor {
        match self {
            Self::Image(r) => r.augment(x),
            Self::Audio(a) => a.apply(x),
        }
    }
}

/// The viewmaker as a view family: `normalise(x + δ)`, or for `expert+viewmaker`
/// `normalise(expert_unnormalised(x) + δ)` (audio: no normalisation, the spectrogram already is).
/// Its parameters are [`ViewFamily::trainable`], so a trainer optimises it adversarially.
pub struct ViewmakerViews {
    name: String,
    vs: VarStore,
    net: Viewmaker,
    expert_first: Option<ExpertFirst>,
    normalize: Option<Normalize>,
    channels_last: bool,
}

impl ViewmakerViews {
    /// A freshly initialised viewmaker on `device` (initialisation draws from torch's current
    /// generator state: seed it first), named after its view mode, `viewmaker` or
    /// `expert+viewmaker` (for audio the front stage alone does not say which).
    pub fn new(
        name: &str,
        spec: ViewmakerSpec,
        device: Device,
        expert_first: Option<ExpertFirst>,
        normalize: Option<Normalize>,
    ) -> Result<Self> {
        let vs = VarStore::new(device);
        let net = Viewmaker::new(&vs.root(), spec)?;
        Ok(Self { name: name.into(), vs, net, expert_first, normalize, channels_last: false })
    }

    /// The same viewmaker with its weights and inputs in the channels-last memory format
    /// (`train.channels_last`): the same views up to float rounding, made faster where that layout
    /// is (measured in `cargo bench -p featdrop-contrastive --bench layout`). Call it before an
    /// optimiser takes the parameters, so that its state shares their layout.
    pub fn into_channels_last(mut self) -> Result<Self> {
        featdrop_torch_ext::module_to_channels_last(&self.vs)?;
        self.channels_last = true;
        Ok(self)
    }

    /// The perturbed view before normalisation.
    pub fn perturb(&self, inputs: &Tensor, seed: u64) -> Tensor {
        with_seed(seed, || {
            let base = match &self.expert_first {
                Some(expert) => expert.apply(inputs),
                None => inputs.shallow_clone(),
            };
            let base = if self.channels_last { featdrop_torch_ext::to_channels_last(&base) } else { base };
            self.net.perturb(&base)
        })
    }
}

impl ViewFamily for ViewmakerViews {
    fn name(&self) -> String {
        self.name.clone()
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

/// The clean transform for a modality on `device`: what probes and monitors feed the encoder
/// (normalised images; for audio, the log-mel of the mixed clip).
pub fn clean(modality: Modality, device: Device) -> Box<dyn ViewFamily> {
    match modality {
        Modality::Image => Box::new(Identity::default()),
        Modality::Audio => Box::new(AudioViews::new(AudioOps::Clean, device)),
    }
}
