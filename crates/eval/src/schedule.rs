//! The probes' learning-rate schedule (§5.1): PyTorch's `MultiStepLR`.

/// The learning rate of epoch `epoch` (0-based): `base · gamma^k`, where `k` counts the milestones
/// `m` with `epoch ≥ m`. With the published milestones 60 and 80 and 100 epochs, epochs 0–59 use
/// `base`, 60–79 `base·γ` and 80–99 `base·γ²`, as `MultiStepLR` stepped once per epoch does.
pub fn lr_at(base: f64, milestones: &[usize], gamma: f64, epoch: usize) -> f64 {
    let k = milestones.iter().filter(|&&m| epoch >= m).count();
    base * gamma.powi(k as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_at_the_published_milestones() {
        let lr = |e| lr_at(0.01, &[60, 80], 0.1, e);
        assert_eq!(lr(0), 0.01);
        assert_eq!(lr(59), 0.01);
        assert!((lr(60) - 0.001).abs() < 1e-15, "{}", lr(60));
        assert!((lr(79) - 0.001).abs() < 1e-15);
        assert!((lr(80) - 0.0001).abs() < 1e-15, "{}", lr(80));
        assert!((lr(99) - 0.0001).abs() < 1e-15);
    }

    #[test]
    fn no_milestones_is_constant_and_order_does_not_matter() {
        assert!((0..300).all(|e| lr_at(0.01, &[], 0.1, e) == 0.01), "audio: constant lr");
        assert_eq!(lr_at(1.0, &[80, 60], 0.5, 70), 0.5);
        assert_eq!(lr_at(1.0, &[2, 2], 0.5, 2), 0.25, "a repeated milestone applies twice, like MultiStepLR");
    }
}
