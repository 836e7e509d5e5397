//! The `colour` image view family (docs/PROTOCOL.md §3.3): the photometric half of the SimCLR
//! recipe — colour jitter, grayscale, Gaussian blur — plus additive pixel noise, with no crop and
//! no flip. Every pixel stays where it was, so an overlay pasted on a photo sits at the same place
//! in both views of a pair; only its colours change. The ops are those of [`crate::image`].

use crate::blur::blur_where;
use crate::color::{JitterParams, color_jitter, grayscale};
use crate::image::Normalize;
use crate::{check_prob, check_range, coin, on_selected, uniform, with_seed};
use anyhow::{Result, ensure};
use featdrop_core::ViewFamily;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

/// The `colour` recipe; `Default` takes the SimCLR photometric settings of
/// [`crate::ImageRecipe`] and a small pixel noise. JSON field names are the Rust names; unknown
/// fields are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColourRecipe {
    /// Probability of colour jitter (the four ops in a random order per sample): 0.8.
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
    /// Blur kernel half-width in units of σ: 3.
    pub blur_truncate: f64,
    /// Standard deviation of the additive Gaussian pixel noise on [0, 1] images, applied to every
    /// sample last and clamped back to [0, 1]: 0.02 (about 5 grey levels of 255 — visible
    /// texture, far below the contrast of an overlay's strokes).
    pub noise_std: f64,
    /// The final normalisation.
    pub normalize: Normalize,
}

impl Default for ColourRecipe {
    fn default() -> Self {
        let image = crate::ImageRecipe::default();
        Self {
            jitter_p: image.jitter_p,
            brightness: image.brightness,
            contrast: image.contrast,
            saturation: image.saturation,
            hue: image.hue,
            grayscale_p: image.grayscale_p,
            blur_p: image.blur_p,
            blur_sigma: image.blur_sigma,
            blur_truncate: image.blur_truncate,
            noise_std: 0.02,
            normalize: image.normalize,
        }
    }
}

/// Every random parameter of one [`ColourRecipe`] application, `[N]` tensors on the batch's device.
#[derive(Debug)]
pub struct ColourParams {
    /// Colour jitter parameters.
    pub jitter: JitterParams,
    /// Which samples become grayscale.
    pub grayscale: Tensor,
    /// Which samples are blurred.
    pub blur: Tensor,
    /// Blur σ per sample.
    pub blur_sigma: Tensor,
}

impl ColourRecipe {
    /// A recipe with every op off: only normalisation remains (a control for tests).
    pub fn disabled() -> Self {
        Self { jitter_p: 0.0, grayscale_p: 0.0, blur_p: 0.0, noise_std: 0.0, ..Self::default() }
    }

    /// Checks every field's range; the message names the field, the value and the accepted range.
    pub fn validate(&self) -> Result<()> {
        for (name, p) in [("jitter_p", self.jitter_p), ("grayscale_p", self.grayscale_p), ("blur_p", self.blur_p)] {
            check_prob(name, p)?;
        }
        for (name, s) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
            ("noise_std", self.noise_std),
        ] {
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

    /// Draws the per-sample parameters for `n` images on `device`, in a fixed order (jitter,
    /// grayscale, blur); the pixel noise is drawn in [`ColourRecipe::apply`].
    pub fn sample(&self, n: i64, device: Device) -> ColourParams {
        let strength = [self.brightness, self.contrast, self.saturation, self.hue];
        ColourParams {
            jitter: JitterParams::sample(n, self.jitter_p, strength, device),
            grayscale: coin(n, self.grayscale_p, device),
            blur: coin(n, self.blur_p, device),
            blur_sigma: uniform(n, self.blur_sigma, device),
        }
    }

    /// Applies drawn parameters, then the pixel noise, to `[N, 3, H, W]` images in [0, 1]; the
    /// result has the same shape, in [0, 1], not normalised.
    pub fn apply(&self, images: &Tensor, params: &ColourParams) -> Tensor {
        let x = color_jitter(images, &params.jitter);
        let x = on_selected(&x, &params.grayscale, |x, _| grayscale(x));
        let x = blur_where(&x, &params.blur, &params.blur_sigma, self.blur_truncate, self.blur_sigma[1]);
        if self.noise_std == 0.0 {
            return x;
        }
        (&x + x.randn_like() * self.noise_std).clamp(0.0, 1.0)
    }

    /// Draws parameters from libtorch's current generator state and applies them.
    pub fn augment(&self, images: &Tensor) -> Tensor {
        let s = images.size();
        assert!(s.len() == 4 && s[1] == 3, "expected RGB images [N, 3, H, W]; got shape {s:?}");
        let params = self.sample(s[0], images.device());
        self.apply(images, &params)
    }
}

/// The `colour` image view family: [`ColourRecipe`] then its normalisation.
#[derive(Clone, Debug)]
pub struct ColourImage {
    recipe: ColourRecipe,
}

impl ColourImage {
    /// The family for a validated recipe.
    pub fn new(recipe: ColourRecipe) -> Result<Self> {
        recipe.validate()?;
        Ok(Self { recipe })
    }

    /// The recipe.
    pub fn recipe(&self) -> &ColourRecipe {
        &self.recipe
    }
}

impl ViewFamily for ColourImage {
    fn name(&self) -> String {
        "colour".into()
    }

    fn view(&self, inputs: &Tensor, seed: u64) -> Tensor {
        self.recipe.normalize.apply(&with_seed(seed, || self.recipe.augment(inputs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{images, max_diff};

    #[test]
    fn keeps_every_pixel_in_place_and_in_range() {
        // With only the blur off and colour ops on, a pixel's value may change but the image is
        // never moved: a per-pixel op commutes with any pixel permutation, so permuting the
        // input columns and the output columns the same way must agree.
        let x = images(8, 16, 16);
        let recipe = ColourRecipe { blur_p: 0.0, noise_std: 0.0, ..ColourRecipe::default() };
        let a = with_seed(7, || recipe.augment(&x));
        let perm = Tensor::from_slice(&(0..16).rev().collect::<Vec<i64>>());
        let b = with_seed(7, || recipe.augment(&x.index_select(3, &perm))).index_select(3, &perm);
        assert!(max_diff(&a, &b) < 1e-5, "a colour op moved pixels: {}", max_diff(&a, &b));
        assert!(max_diff(&a, &x) > 0.01, "the colour ops changed nothing");
        let noisy = with_seed(7, || ColourRecipe::default().augment(&x));
        assert_eq!(noisy.size(), x.size());
        let (lo, hi) = (noisy.min().double_value(&[]), noisy.max().double_value(&[]));
        assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi), "range [{lo}, {hi}]");
    }

    #[test]
    fn noise_has_the_documented_std_and_disabled_is_the_identity() {
        let x = Tensor::full([64, 3, 16, 16], 0.5, (tch::Kind::Float, Device::Cpu));
        let only_noise = ColourRecipe { noise_std: 0.05, ..ColourRecipe::disabled() };
        let std = (with_seed(3, || only_noise.augment(&x)) - &x).std(true).double_value(&[]);
        assert!((std - 0.05).abs() < 0.002, "noise std {std}");
        assert!(max_diff(&with_seed(3, || ColourRecipe::disabled().augment(&x)), &x) == 0.0);
    }

    #[test]
    fn rejects_out_of_range_fields_by_name() {
        let e = ColourRecipe { noise_std: -0.1, ..ColourRecipe::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("noise_std"), "{e}");
        let e = ColourRecipe { jitter_p: 1.5, ..ColourRecipe::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("jitter_p"), "{e}");
        let parsed: ColourRecipe = serde_json::from_str(r#"{"noise_std": 0.01}"#).unwrap();
        assert_eq!(parsed, ColourRecipe { noise_std: 0.01, ..ColourRecipe::default() });
        assert!(serde_json::from_str::<ColourRecipe>(r#"{"crop_scale": [1, 1]}"#).is_err());
    }
}
