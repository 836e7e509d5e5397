//! The one interface every view family implements (expert augmentations, identity, the learned
//! viewmaker, a user's own), so the trainer never special-cases a family (docs/PROTOCOL.md §3).

use tch::Tensor;

/// Makes views of a batch of inputs.
///
/// `inputs` are `[N, C, H, W]` on any device (images in [0, 1] before normalisation; audio the
/// normalised log-mel). The result has the same shape and device and is ready for the encoder
/// (normalised). Each call is one independent view per example: call twice for a pair.
///
/// `seed` makes the call reproducible: an implementation seeds its randomness from it (e.g.
/// `tch::manual_seed`) so the same inputs and seed give the same views on the CPU. Trainers
/// derive it from [`crate::Seeds::derive`] with [`crate::Stream::Views`] and the step.
///
/// # Example: your own view family
///
/// ```
/// use featdrop_core::ViewFamily;
/// use featdrop_core::seed::with_torch_seed;
/// use tch::{Device, Kind, Tensor};
///
/// // A closure is a view family: Gaussian pixel noise, seeded so that a seed gives one view.
/// let noisy = |x: &Tensor, seed: u64| with_torch_seed(seed, || x + x.randn_like() * 0.1);
///
/// // A type implementing the trait names itself (in logs and reports) and can carry settings.
/// struct Flip;
/// impl ViewFamily for Flip {
///     fn name(&self) -> String {
///         "flip".into()
///     }
///     fn view(&self, x: &Tensor, _seed: u64) -> Tensor {
///         x.flip([3])
///     }
/// }
///
/// let families: Vec<Box<dyn ViewFamily>> = vec![Box::new(noisy), Box::new(Flip)];
/// let x = Tensor::rand([4, 3, 32, 32], (Kind::Float, Device::Cpu));
/// for family in &families {
///     assert_eq!(family.view(&x, 7).size(), [4, 3, 32, 32]);
/// }
/// assert!(families[0].view(&x, 7).equal(&families[0].view(&x, 7)));
/// assert_eq!((families[0].name(), families[1].name()), ("custom".to_string(), "flip".to_string()));
/// ```
pub trait ViewFamily: Send {
    /// A short name for logs and reports (`expert`, `identity`, `viewmaker`, …).
    fn name(&self) -> String;

    /// One view of each example.
    fn view(&self, inputs: &Tensor, seed: u64) -> Tensor;

    /// Named parameters a trainer should optimise adversarially (a learned family such as the
    /// viewmaker); empty for fixed families. Checkpoints save them under these names.
    fn trainable(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
}

/// Any closure `Fn(&Tensor, u64) -> Tensor` is a view family (named `custom`).
impl<F: Fn(&Tensor, u64) -> Tensor + Send> ViewFamily for F {
    fn name(&self) -> String {
        "custom".into()
    }

    fn view(&self, inputs: &Tensor, seed: u64) -> Tensor {
        self(inputs, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closures_are_view_families() {
        let flip = |x: &Tensor, _seed: u64| x.flip([3]);
        let fam: Box<dyn ViewFamily> = Box::new(flip);
        let x = Tensor::arange(4, (tch::Kind::Float, tch::Device::Cpu)).view([1, 1, 1, 4]);
        assert_eq!(Vec::<f32>::try_from(fam.view(&x, 0).flatten(0, -1)).unwrap(), [3.0, 2.0, 1.0, 0.0]);
        assert_eq!(fam.name(), "custom");
    }
}
