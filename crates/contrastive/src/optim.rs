//! SGD with momentum and Adam, written out so that their state (momentum buffers, moments, step
//! count) is plain named tensors that checkpoints save and restore exactly — tch's built-in
//! optimisers keep that state inside libtorch where it cannot be saved, which would break
//! bit-identical resume (§4). Update rules follow PyTorch's `SGD` and `Adam`.

use tch::Tensor;

/// SGD with momentum and weight decay (PyTorch semantics, no dampening, no Nesterov).
#[derive(Debug)]
pub struct Sgd {
    params: Vec<(String, Tensor)>,
    bufs: Vec<Tensor>,
    /// Learning rate.
    pub lr: f64,
    momentum: f64,
    weight_decay: f64,
}

impl Sgd {
    /// An optimiser over named parameters.
    pub fn new(params: Vec<(String, Tensor)>, lr: f64, momentum: f64, weight_decay: f64) -> Self {
        let bufs = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Self { params, bufs, lr, momentum, weight_decay }
    }

    /// Clears the parameters' gradients.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// One update from the current gradients. The first step's buffer is the gradient itself
    /// (PyTorch), which a zero buffer and `momentum·0 + g` reproduce exactly.
    pub fn step(&mut self) {
        tch::no_grad(|| {
            for ((_, p), buf) in self.params.iter_mut().zip(&mut self.bufs) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let g = if self.weight_decay != 0.0 { g + &*p * self.weight_decay } else { g };
                let _ = buf.g_mul_scalar_(self.momentum).g_add_(&g);
                let _ = p.g_sub_(&(&*buf * self.lr));
            }
        });
    }

    /// Optimiser state as named tensors, for checkpoints (`<prefix>.<param>.momentum`).
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.bufs)
            .map(|((n, _), b)| (format!("{prefix}.{n}.momentum"), b.shallow_clone()))
            .collect()
    }
}

/// Adam (PyTorch semantics, bias-corrected, no weight decay).
#[derive(Debug)]
pub struct Adam {
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Steps taken so far (kept as a tensor so checkpoints carry it).
    steps: Tensor,
    /// The same count on the host, read from `steps` once at the first step (after any restore
    /// into it), then kept in step: the bias corrections need it every step, and reading the
    /// tensor each time would be a read-back per step (issue 30 item 7).
    host_steps: Option<i64>,
    /// Learning rate.
    pub lr: f64,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl Adam {
    /// An optimiser over named parameters.
    pub fn new(params: Vec<(String, Tensor)>, lr: f64) -> Self {
        let m = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let v = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Self { params, m, v, steps: Tensor::from_slice(&[0i64]), host_steps: None, lr }
    }

    /// Clears the parameters' gradients.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// One update from the current gradients.
    pub fn step(&mut self) {
        let t = self.host_steps.unwrap_or_else(|| self.steps.int64_value(&[0])) + 1;
        self.host_steps = Some(t);
        let _ = self.steps.g_add_scalar_(1);
        let t = t as i32;
        let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        tch::no_grad(|| {
            for (((_, p), m), v) in self.params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = m.g_mul_scalar_(BETA1).g_add_(&(&g * (1.0 - BETA1)));
                let _ = v.g_mul_scalar_(BETA2).g_add_(&(&g * &g * (1.0 - BETA2)));
                let denom = (&*v / c2).sqrt() + EPS;
                let _ = p.g_sub_(&(&*m / c1 / denom * self.lr));
            }
        });
    }

    /// Optimiser state as named tensors, for checkpoints.
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = vec![(format!("{prefix}.steps"), self.steps.shallow_clone())];
        for ((n, _), (m, v)) in self.params.iter().zip(self.m.iter().zip(&self.v)) {
            out.push((format!("{prefix}.{n}.m"), m.shallow_clone()));
            out.push((format!("{prefix}.{n}.v"), v.shallow_clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn param(v: &[f32]) -> Tensor {
        Tensor::from_slice(v).set_requires_grad(true)
    }

    /// Two SGD steps on f(p) = Σ p², checked against the update rule by hand.
    #[test]
    fn sgd_follows_the_pytorch_rule() {
        let p = param(&[1.0, -2.0]);
        let mut opt = Sgd::new(vec![("p".into(), p.shallow_clone())], 0.1, 0.9, 0.01);
        let mut expect = [1.0f64, -2.0];
        let mut buf = [0.0f64; 2];
        for _ in 0..2 {
            opt.zero_grad();
            (&p * &p).sum(Kind::Float).backward();
            opt.step();
            for i in 0..2 {
                let g = 2.0 * expect[i] + 0.01 * expect[i];
                buf[i] = 0.9 * buf[i] + g;
                expect[i] -= 0.1 * buf[i];
            }
        }
        let got = Vec::<f32>::try_from(&p).unwrap();
        for i in 0..2 {
            assert!((got[i] as f64 - expect[i]).abs() < 1e-6, "{got:?} vs {expect:?}");
        }
        assert_eq!(opt.state("enc")[0].0, "enc.p.momentum");
    }

    #[test]
    fn adam_first_step_moves_each_coordinate_by_lr() {
        // With bias correction, Adam's first step is lr · g/|g| per coordinate.
        let p = param(&[3.0, -1.0, 0.5]);
        let mut opt = Adam::new(vec![("p".into(), p.shallow_clone())], 0.01);
        (&p * &p).sum(Kind::Float).backward();
        opt.step();
        let got = Vec::<f32>::try_from(&p).unwrap();
        for (g, want) in got.iter().zip([2.99f32, -0.99, 0.49]) {
            assert!((g - want).abs() < 1e-5, "{got:?}");
        }
        let q = param(&[1.0]);
        let mut opt = Adam::new(vec![("q".into(), q.shallow_clone())], 0.05);
        for _ in 0..200 {
            opt.zero_grad();
            ((&q - 4.0) * (&q - 4.0)).sum(Kind::Float).backward();
            opt.step();
        }
        assert!((f64::try_from(&q).unwrap() - 4.0).abs() < 0.1, "Adam converges on a quadratic");
        assert_eq!(opt.state("vm").len(), 3);
    }

    #[test]
    fn adam_takes_its_step_count_from_a_restored_state_and_keeps_it_in_step() {
        // A resumed run restores `steps` into the tensor before the first step; the host count
        // must start from there (bias corrections of step 6, not of step 1).
        let p = param(&[2.0]);
        let mut opt = Adam::new(vec![("p".into(), p.shallow_clone())], 0.01);
        let restored = Tensor::from_slice(&[5i64]);
        featdrop_core::checkpoint::restore_into(&[("vm.steps".into(), restored)], &opt.state("vm")[..1]).unwrap();
        (&p * &p).sum(Kind::Float).backward();
        opt.step();
        let (g, t) = (4.0f64, 6);
        let (m, v) = (0.1 * g / (1.0 - 0.9f64.powi(t)), 0.001 * g * g / (1.0 - 0.999f64.powi(t)));
        let want = 2.0 - 0.01 * m / (v.sqrt() + 1e-8);
        let got = f64::try_from(&p).unwrap();
        assert!((got - want).abs() < 1e-6, "{got} vs {want} (the step count was not read from the state)");
        opt.step();
        assert_eq!(opt.state("vm")[0].1.int64_value(&[0]), 7);
    }
}
