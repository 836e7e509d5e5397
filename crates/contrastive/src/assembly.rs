//! From a [`RunConfig`] to the parts of a run — dataset, encoder, view families — and the
//! checkpoint layout that stores them. The trainer and the evaluation crate both build runs here,
//! so a config means the same thing to both (docs/PROTOCOL.md §2–§5).

use crate::encoder::{Encoder, EncoderSpec, ResNet, Stem};
use crate::views::{AudioOps, AudioViews, ExpertFirst, ViewmakerViews, clean};
use anyhow::{Context, Result};
use featdrop_augment::{
    ExpertImage, ExpertSpectral, ExpertWaveform, ImageRecipe, Normalize, SpectralRecipe, WaveformRecipe,
};
use featdrop_core::config::{Arch, AudioExpert, ChannelsLast, ViewmakerInput};
use featdrop_core::seed::with_torch_seed;
use featdrop_core::{BaseViews, Modality, RunConfig, Seeds, Stream, ViewFamily, catalogue};
use featdrop_data::{DatasetSpec, MultiTaskDataset};
use featdrop_viewmaker::ViewmakerSpec;
use tch::{Device, Tensor, nn::VarStore};

/// Checkpoint names of the encoder's variables start with this.
pub const ENCODER_PREFIX: &str = "enc.";
/// Checkpoint names of the view family's trainable parameters start with this.
pub const VIEWS_PREFIX: &str = "views.";

/// A run's parts, freshly initialised from the run seed.
pub struct Parts {
    /// The dataset.
    pub dataset: Box<dyn MultiTaskDataset>,
    /// The encoder's variables.
    pub enc_vs: VarStore,
    /// The encoder (its parameters live in `enc_vs`).
    pub encoder: Box<dyn Encoder>,
    /// The view family of the run's view mode.
    pub views: Box<dyn ViewFamily>,
}

/// Builds every part `cfg` asks for on `device`. Initialisation draws go through the seeded-call
/// lock, so a run built beside another thread's seeded work still starts from the same weights.
pub fn assemble(cfg: &RunConfig, device: Device) -> Result<Parts> {
    let dataset = open_dataset(cfg, device)?;
    let seeds = Seeds::new(cfg.seed);
    let enc_vs = VarStore::new(device);
    let spec = encoder_spec(cfg, dataset.modality());
    let encoder: Box<dyn Encoder> =
        with_torch_seed(seeds.derive(Stream::Init, 0), || Box::new(ResNet::new(&enc_vs.root(), spec)));
    let views = with_torch_seed(seeds.derive(Stream::Init, 1), || view_family(cfg, dataset.modality(), device))?;
    Ok(Parts { dataset, enc_vs, encoder, views })
}

/// What `featdrop_data::open` needs to build a config's dataset on `device`.
pub fn dataset_spec(cfg: &RunConfig, device: Device) -> DatasetSpec {
    DatasetSpec {
        name: cfg.dataset.clone(),
        source: cfg.data.source,
        data_dir: cfg.data.data_dir.as_ref().map(Into::into),
        font: cfg.data.font.as_ref().map(Into::into),
        train_size: cfg.data.train_size,
        test_size: cfg.data.test_size,
        seed: cfg.seed,
        device,
        pair_noise: cfg.data.pair_noise,
    }
}

/// Opens a config's dataset on `device`.
pub fn open_dataset(cfg: &RunConfig, device: Device) -> Result<Box<dyn MultiTaskDataset>> {
    let _data = featdrop_core::costs::phase(featdrop_core::costs::DATA);
    featdrop_data::open(&dataset_spec(cfg, device))
}

/// The encoder a config asks for, for a dataset's modality: images get the 3×3 stride-1 stem,
/// audio the standard 7×7 stride-2 stem with max-pool (§4).
pub fn encoder_spec(cfg: &RunConfig, modality: Modality) -> EncoderSpec {
    let (channels, stem) = match modality {
        Modality::Image => (3, Stem::SmallImage),
        Modality::Audio => (1, Stem::Standard),
    };
    let width = cfg.encoder.width as i64;
    let base = match cfg.encoder.arch {
        Arch::Small => EncoderSpec::small(channels, stem, width),
        Arch::Resnet18 => EncoderSpec { in_channels: channels, stem, width, ..EncoderSpec::resnet18_small_images() },
    };
    EncoderSpec { embed_dim: cfg.encoder.embed_dim as i64, projection_head: cfg.encoder.projection_head, ..base }
}

/// The expert family of a config's modality (§3.1): the SimCLR recipe for images; for audio the
/// waveform or spectral variant (`views.audio_expert`), from the mixed waveform to the log-mel.
pub fn expert_family(cfg: &RunConfig, modality: Modality, device: Device) -> Result<Box<dyn ViewFamily>> {
    Ok(match modality {
        Modality::Image => Box::new(ExpertImage::new(ImageRecipe::default())?),
        Modality::Audio => Box::new(AudioViews::new(audio_expert_ops(cfg.views.audio_expert)?, device)),
    })
}

fn audio_expert_ops(variant: AudioExpert) -> Result<AudioOps> {
    Ok(match variant {
        AudioExpert::Waveform => AudioOps::Waveform(ExpertWaveform::new(WaveformRecipe::default())?),
        AudioExpert::Spectral => AudioOps::Spectral(ExpertSpectral::new(SpectralRecipe::default())?),
    })
}

/// What runs before the viewmaker (§3.2–§3.3). Images: nothing for `viewmaker`, the expert recipe
/// for `expert+viewmaker`. Audio always goes through the log-mel first: `viewmaker` perturbs the
/// log-mel of waveform-augmented clips (`views.viewmaker_input = waveform-views`, published) or of
/// the clean clip; `expert+viewmaker` the `views.audio_expert` variant's view.
fn viewmaker_first(cfg: &RunConfig, modality: Modality, device: Device) -> Result<Option<ExpertFirst>> {
    let expert = cfg.view_mode.base == BaseViews::ExpertViewmaker;
    Ok(match (modality, expert) {
        (Modality::Image, false) => None,
        (Modality::Image, true) => Some(ExpertFirst::Image(ImageRecipe::default())),
        (Modality::Audio, true) => {
            Some(ExpertFirst::Audio(AudioViews::new(audio_expert_ops(cfg.views.audio_expert)?, device)))
        }
        (Modality::Audio, false) => Some(ExpertFirst::Audio(AudioViews::new(
            match cfg.views.viewmaker_input {
                ViewmakerInput::WaveformViews => audio_expert_ops(AudioExpert::Waveform)?,
                ViewmakerInput::Clean => AudioOps::Clean,
            },
            device,
        ))),
    })
}

/// The view family of a config's view mode. Only the base family matters here: the
/// feature-dropout modifier acts on how pairs are drawn, not on each view (§3.3).
pub fn view_family(cfg: &RunConfig, modality: Modality, device: Device) -> Result<Box<dyn ViewFamily>> {
    let viewmaker = || -> Result<Box<dyn ViewFamily>> {
        let epsilon = cfg.viewmaker.epsilon.with_context(|| {
            format!(
                "viewmaker.epsilon: dataset `{}` is not in the catalogue ({}), so it has no published budget; set one",
                cfg.dataset,
                catalogue::names().join(", ")
            )
        })?;
        let spec = ViewmakerSpec {
            in_channels: if modality == Modality::Image { 3 } else { 1 },
            num_res_blocks: cfg.viewmaker.num_res_blocks,
            width_mult: cfg.viewmaker.width_mult,
            epsilon,
            clamp: cfg.viewmaker.clamp,
        };
        // Images are normalised after the perturbation; spectrograms already are.
        let normalize = (modality == Modality::Image).then(Normalize::default);
        let first = viewmaker_first(cfg, modality, device)?;
        let name = if cfg.view_mode.base == BaseViews::ExpertViewmaker { "expert+viewmaker" } else { "viewmaker" };
        let views = ViewmakerViews::new(name, spec, device, first, normalize)?;
        // The layout `train.channels_last` gives the encoder suits the viewmaker too (`auto` is
        // made concrete before a trainer assembles its parts; unresolved, the default layout).
        let channels_last = cfg.train.channels_last == ChannelsLast::Fixed(true);
        Ok(Box::new(if channels_last { views.into_channels_last()? } else { views }))
    };
    match cfg.view_mode.base {
        BaseViews::Expert => expert_family(cfg, modality, device),
        BaseViews::None => Ok(clean(modality, device)),
        BaseViews::Viewmaker | BaseViews::ExpertViewmaker => viewmaker(),
        BaseViews::Colour => colour_family(cfg, modality),
    }
}

/// The `colour` family (§3.3): photometric ops and pixel noise, no geometry, so overlays stay in
/// place. It has no audio counterpart, so an audio dataset is a config error naming `view_mode`.
fn colour_family(cfg: &RunConfig, modality: Modality) -> Result<Box<dyn ViewFamily>> {
    anyhow::ensure!(
        modality == Modality::Image,
        "field `view_mode` = {}: `colour` is an image view family; dataset `{}` is {modality:?}",
        cfg.view_mode,
        cfg.dataset
    );
    Ok(Box::new(featdrop_augment::ColourImage::new(featdrop_augment::ColourRecipe::default())?))
}

/// The tensors a checkpoint stores for the model: the encoder's variables (batch-norm statistics
/// included) under [`ENCODER_PREFIX`], then the view family's trainable parameters under
/// [`VIEWS_PREFIX`], each group in name order.
pub fn model_tensors(enc_vs: &VarStore, views: &dyn ViewFamily) -> Vec<(String, Tensor)> {
    let mut enc: Vec<(String, Tensor)> = enc_vs.variables().into_iter().collect();
    enc.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(String, Tensor)> = enc.into_iter().map(|(n, t)| (format!("{ENCODER_PREFIX}{n}"), t)).collect();
    out.extend(views.trainable().into_iter().map(|(n, t)| (format!("{VIEWS_PREFIX}{n}"), t)));
    out
}
