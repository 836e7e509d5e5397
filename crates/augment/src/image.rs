//! The expert image recipe (SimCLR, docs/PROTOCOL.md §3.1), the `expert` and `none` view families
//! (§3.3), and per-channel normalisation. Implements the augmentations of Chen et al., "A Simple
//! Framework for Contrastive Learning of Visual Representations" (ICML 2020).

use crate::blur::blur_where;
use crate::color::{JitterParams, color_jitter, grayscale};
use crate::consts::constant;
use crate::geometry::{CropBoxes, flip_where, resized_crop, sample_crop_boxes};
use crate::{check_prob, check_range, coin, on_selected, uniform, with_seed};
use anyhow::{Result, ensure};
use featdrop_core::ViewFamily;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

/// Per-channel normalisation `(x − mean) / std` (docs/PROTOCOL.md §3.1). Defaults: the CIFAR-10 values
/// mean (0.491, 0.482, 0.446), std (0.247, 0.243, 0.261).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Normalize {
    /// Mean per channel.
    pub mean: Vec<f64>,
    /// Standard deviation per channel (> 0).
    pub std: Vec<f64>,
}

impl Default for Normalize {
    fn default() -> Self {
        Self { mean: vec![0.491, 0.482, 0.446], std: vec![0.247, 0.243, 0.261] }
    }
}

impl Normalize {
    /// Checks matching lengths, finite means and positive standard deviations.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            !self.mean.is_empty() && self.mean.len() == self.std.len(),
            "normalisation has {} means and {} stds; expected the same number, at least one",
            self.mean.len(),
            self.std.len()
        );
        ensure!(self.mean.iter().all(|m| m.is_finite()), "field `mean` = {:?} must be finite", self.mean);
        ensure!(
            self.std.iter().all(|s| s.is_finite() && *s > 0.0),
            "field `std` = {:?} must be finite and > 0",
            self.std
        );
        Ok(())
    }

    /// Undoes [`Normalize::apply`]: `x · std + mean`, e.g. to show a view as an image.
    pub fn invert(&self, normalised: &Tensor) -> Tensor {
        let c = self.mean.len() as i64;
        let as_tensor = |v: &[f64]| constant(v, &[1, c, 1, 1], normalised.kind(), normalised.device());
        normalised * as_tensor(&self.std) + as_tensor(&self.mean)
    }

    /// Normalises `[N, C, H, W]` (C = number of means) on its own device and kind.
    pub fn apply(&self, images: &Tensor) -> Tensor {
        let c = self.mean.len() as i64;
        assert_eq!(images.size()[1], c, "normalisation has {c} channels; the inputs have shape {:?}", images.size());
        // Built once per device and kind (no upload per view).
        let as_tensor = |v: &[f64]| constant(v, &[1, c, 1, 1], images.kind(), images.device());
        (images - as_tensor(&self.mean)) / as_tensor(&self.std)
    }
}

/// The SimCLR image recipe; every probability and range is a field, `Default` is the published
/// setup (docs/PROTOCOL.md §3.1). JSON field names are the Rust names; unknown fields are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageRecipe {
    /// Output (height, width) of the resized crop: [32, 32].
    pub output_size: [i64; 2],
    /// Crop area as a fraction of the image, U[lo, hi]: [0.2, 1]. [1, 1] with ratio [1, 1] on a
    /// square image of the output size is exactly the identity (skipped).
    pub crop_scale: [f64; 2],
    /// Crop aspect ratio (width/height), log-uniform in [lo, hi]: [3/4, 4/3].
    pub crop_ratio: [f64; 2],
    /// Draws per sample before falling back to the central crop: 10 (torchvision).
    pub crop_attempts: i64,
    /// Probability of colour jitter: 0.8.
    pub jitter_p: f64,
    /// Brightness strength b, factor U[max(0, 1 − b), 1 + b]: 0.4.
    pub brightness: f64,
    /// Contrast strength: 0.4.
    pub contrast: f64,
    /// Saturation strength: 0.4.
    pub saturation: f64,
    /// Hue strength h, shift U[−h, h] turns, h ≤ 0.5: 0.1.
    pub hue: f64,
    /// Probability of grayscale: 0.2.
    pub grayscale_p: f64,
    /// Probability of Gaussian blur: 0.5.
    pub blur_p: f64,
    /// Blur σ range in pixels, U[lo, hi]: [0.1, 2].
    pub blur_sigma: [f64; 2],
    /// Blur kernel half-width in units of σ: 3 (a full Gaussian; the odd size 2⌈3σ⌉ + 1 is capped
    /// at the image size).
    pub blur_truncate: f64,
    /// Probability of horizontal flip: 0.5.
    pub flip_p: f64,
    /// The final normalisation.
    pub normalize: Normalize,
}

impl Default for ImageRecipe {
    fn default() -> Self {
        Self {
            output_size: [32, 32],
            crop_scale: [0.2, 1.0],
            crop_ratio: [3.0 / 4.0, 4.0 / 3.0],
            crop_attempts: 10,
            jitter_p: 0.8,
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.1,
            grayscale_p: 0.2,
            blur_p: 0.5,
            blur_sigma: [0.1, 2.0],
            blur_truncate: 3.0,
            flip_p: 0.5,
            normalize: Normalize::default(),
        }
    }
}

/// Every random parameter of one recipe application, `[N]` tensors on the batch's device
/// (bool masks for the optional ops).
#[derive(Debug)]
pub struct ImageParams {
    /// Crop boxes; `None` when the crop is the identity.
    pub crop: Option<CropBoxes>,
    /// Colour jitter parameters.
    pub jitter: JitterParams,
    /// Which samples become grayscale.
    pub grayscale: Tensor,
    /// Which samples are blurred.
    pub blur: Tensor,
    /// Blur σ per sample.
    pub blur_sigma: Tensor,
    /// Which samples are flipped.
    pub flip: Tensor,
}

impl ImageRecipe {
    /// A recipe with every probability 0 and an identity crop: only normalisation remains.
    pub fn disabled() -> Self {
        Self {
            crop_scale: [1.0, 1.0],
            crop_ratio: [1.0, 1.0],
            jitter_p: 0.0,
            grayscale_p: 0.0,
            blur_p: 0.0,
            flip_p: 0.0,
            ..Self::default()
        }
    }

    /// Checks every field's range; the message names the field, the value and the accepted range.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.output_size.iter().all(|&s| s >= 1), "field `output_size` = {:?} must be >= 1", self.output_size);
        check_range("crop_scale", self.crop_scale, f64::MIN_POSITIVE, 1.0)?;
        check_range("crop_ratio", self.crop_ratio, f64::MIN_POSITIVE, f64::MAX)?;
        ensure!(self.crop_attempts >= 1, "field `crop_attempts` = {} must be >= 1", self.crop_attempts);
        for (name, p) in [
            ("jitter_p", self.jitter_p),
            ("grayscale_p", self.grayscale_p),
            ("blur_p", self.blur_p),
            ("flip_p", self.flip_p),
        ] {
            check_prob(name, p)?;
        }
        for (name, s) in [("brightness", self.brightness), ("contrast", self.contrast), ("saturation", self.saturation)]
        {
            ensure!(s.is_finite() && s >= 0.0, "field `{name}` = {s} is out of range; expected a finite number >= 0");
        }
        check_range("hue", [0.0, self.hue], 0.0, 0.5)?;
        check_range("blur_sigma", self.blur_sigma, f64::MIN_POSITIVE, f64::MAX)?;
        ensure!(
            self.blur_truncate.is_finite() && self.blur_truncate > 0.0,
            "field `blur_truncate` = {} must be a finite number > 0",
            self.blur_truncate
        );
        self.normalize.validate()
    }

    /// Whether the crop is exactly the identity for an `h`×`w` input.
    fn crop_is_identity(&self, h: i64, w: i64) -> bool {
        self.crop_scale == [1.0, 1.0] && self.crop_ratio == [1.0, 1.0] && h == w && self.output_size == [h, w]
    }

    /// Draws all parameters for `n` images of `h`×`w` from libtorch's generator on `device`, in a
    /// fixed order (crop, jitter, grayscale, blur, flip).
    pub fn sample(&self, n: i64, (h, w): (i64, i64), device: Device) -> ImageParams {
        let crop = (!self.crop_is_identity(h, w))
            .then(|| sample_crop_boxes(n, (h, w), self.crop_scale, self.crop_ratio, self.crop_attempts, device));
        let strength = [self.brightness, self.contrast, self.saturation, self.hue];
        ImageParams {
            crop,
            jitter: JitterParams::sample(n, self.jitter_p, strength, device),
            grayscale: coin(n, self.grayscale_p, device),
            blur: coin(n, self.blur_p, device),
            blur_sigma: uniform(n, self.blur_sigma, device),
            flip: coin(n, self.flip_p, device),
        }
    }

    /// Applies drawn parameters to `[N, 3, H, W]` images in [0, 1]; the result is
    /// `[N, 3, out_h, out_w]` in [0, 1], not normalised.
    pub fn apply(&self, images: &Tensor, params: &ImageParams) -> Tensor {
        let x = match &params.crop {
            Some(boxes) => resized_crop(images, boxes, (self.output_size[0], self.output_size[1])),
            None => images.shallow_clone(),
        };
        let x = color_jitter(&x, &params.jitter);
        let x = on_selected(&x, &params.grayscale, |x, _| grayscale(x));
        let x = blur_where(&x, &params.blur, &params.blur_sigma, self.blur_truncate, self.blur_sigma[1]);
        flip_where(&x, &params.flip)
    }

    /// Draws parameters from libtorch's current generator state and applies them: the recipe
    /// without normalisation, `[N, 3, H, W]` in [0, 1] to `[N, 3, out_h, out_w]` in [0, 1].
    pub fn augment(&self, images: &Tensor) -> Tensor {
        let s = images.size();
        assert!(s.len() == 4 && s[1] == 3, "expected RGB images [N, 3, H, W]; got shape {s:?}");
        let params = self.sample(s[0], (s[2], s[3]), images.device());
        self.apply(images, &params)
    }
}

/// The `expert` image view family: [`ImageRecipe`] then its normalisation.
#[derive(Clone, Debug)]
pub struct ExpertImage {
    recipe: ImageRecipe,
}

impl ExpertImage {
    /// The family for a validated recipe.
    pub fn new(recipe: ImageRecipe) -> Result<Self> {
        recipe.validate()?;
        Ok(Self { recipe })
    }

    /// The recipe.
    pub fn recipe(&self) -> &ImageRecipe {
        &self.recipe
    }

    /// One view without the final normalisation (`[0, 1]`), for `expert+viewmaker`: seeds
    /// libtorch from `seed` like [`ViewFamily::view`].
    pub fn augment(&self, images: &Tensor, seed: u64) -> Tensor {
        with_seed(seed, || self.recipe.augment(images))
    }
}

impl ViewFamily for ExpertImage {
    fn name(&self) -> String {
        "expert".into()
    }

    fn view(&self, inputs: &Tensor, seed: u64) -> Tensor {
        self.recipe.normalize.apply(&self.augment(inputs, seed))
    }
}

/// The `none` view family: normalisation only (the seed is unused).
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// The normalisation applied.
    pub normalize: Normalize,
}

impl ViewFamily for Identity {
    fn name(&self) -> String {
        "identity".into()
    }

    fn view(&self, inputs: &Tensor, _seed: u64) -> Tensor {
        self.normalize.apply(inputs)
    }
}
