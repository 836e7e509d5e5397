//! End-to-end checks of the simulator: closed form against gradient descent, suppression,
//! recovery past the predicted threshold, InfoNCE's suppression and recovery, sweep
//! determinism and outputs.

use featdrop_theory::model::{population_moments, sample_pairs};
use featdrop_theory::spectral::spectral_loss;
use featdrop_theory::sweep::{Grid, SweepConfig, run_sweep, write_outputs};
use featdrop_theory::{Group, SimConfig, SimResult, Solver, closed_form, predict, simulate};
use ndarray::{Array2, s};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn config(ratio: f64, p: f64, k: usize, solver: Solver) -> SimConfig {
    let mut cfg = SimConfig::default();
    cfg.model.b.strength = ratio * cfg.model.a.strength;
    cfg.augment.dropout_p = p;
    cfg.k = k;
    cfg.solver = solver;
    cfg.probe.train_size = 1000;
    cfg.probe.test_size = 1000;
    cfg
}

fn run(cfg: &SimConfig) -> SimResult {
    simulate(cfg).expect("simulation runs")
}

/// Margin of the eigenvalue ranking: how far each group's signal eigenvalue is from the
/// boundary between the k kept and the dropped eigenvalues of `T`, so that tests stay away
/// from near-ties that no finite run resolves.
fn margin(cfg: &SimConfig) -> f64 {
    let eig = closed_form(&population_moments(&cfg.model, &cfg.augment), cfg.k).eigenvalues;
    let (kth, next) = (eig[cfg.k - 1], eig.get(cfg.k).copied().unwrap_or(f64::NEG_INFINITY));
    let pred = predict(&cfg.model, &cfg.augment, cfg.k);
    [pred.spectrum_a.signal, pred.spectrum_b.signal]
        .into_iter()
        .map(|t| if t >= kth - 1e-9 { t - next } else { kth - t })
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn closed_form_and_gradient_descent_agree() {
    // (ratio, p, k): A alone, B alone, both, B with B's instance noise, both at equal
    // strength, and A displaced by B entirely.
    let cases = [(0.33, 0.0, 1), (0.33, 0.3, 1), (0.33, 0.0, 4), (0.2, 0.8, 2), (1.0, 0.0, 8), (0.33, 0.6, 4)];
    for (ratio, p, k) in cases {
        let mut cf = config(ratio, p, k, Solver::ClosedForm);
        // Task A's signal stands clearer of its instance noise than in the default model, so
        // that no case is a near-tie (minibatch noise cannot resolve those in a few hundred
        // steps).
        cf.model.a.dim = 8;
        cf.model.a.noise_std = 0.5;
        cf.model.a.strength = 4.0;
        cf.model.b.strength = ratio * 4.0;
        let m = margin(&cf);
        assert!(m > 0.05, "case ({ratio}, {p}, {k}) sits near a threshold (margin {m})");
        let closed = run(&cf);
        cf.solver = Solver::SpectralGd;
        cf.train.steps = 800;
        cf.train.lr = 0.02;
        let gd = run(&cf);
        for (g, c, name) in [(gd.overlap_a, closed.overlap_a, "a"), (gd.overlap_b, closed.overlap_b, "b")] {
            assert!(
                (g - c).abs() < 0.05,
                "ratio {ratio}, p {p}, k {k}: overlap_{name} GD {g:.3} vs closed form {c:.3}"
            );
        }
        // Gradient descent cannot beat the minimiser of the population loss, and gets close.
        assert!(gd.spectral_loss >= closed.spectral_loss - 1e-9);
        assert!(
            gd.spectral_loss - closed.spectral_loss < 0.005 * closed.spectral_loss.abs(),
            "ratio {ratio}, p {p}, k {k}: loss GD {} vs {}",
            gd.spectral_loss,
            closed.spectral_loss
        );
        // And the prediction says what the closed form does.
        assert!((closed.overlap_a - closed.prediction.overlap_a).abs() < 1e-6);
        assert!((closed.overlap_b - closed.prediction.overlap_b).abs() < 1e-6);
    }
}

#[test]
fn without_dropout_a_small_k_suppresses_task_b() {
    // k = 1 with one signal direction per group: room for only one of the two tasks.
    for ratio in [0.2, 0.5, 0.9] {
        let r = run(&config(ratio, 0.0, 1, Solver::ClosedForm));
        assert!(r.ceiling_b > r.chance_b + 0.1, "task B is learnable from x");
        assert!((r.acc_b - r.chance_b).abs() < 0.04, "ratio {ratio}: B {}", r.acc_b);
        assert!(r.acc_a > 0.9 && r.acc_a > r.ceiling_a - 0.02, "ratio {ratio}: A {}", r.acc_a);
        assert!(r.overlap_b < 1e-6);
    }
    // The same holds for gradient descent.
    let mut cfg = config(0.5, 0.0, 1, Solver::SpectralGd);
    cfg.train.steps = 600;
    let r = run(&cfg);
    assert!((r.acc_b - r.chance_b).abs() < 0.04 && r.acc_a > 0.9, "{r:?}");
    // And with k = 4: group a's instance content outranks B's weak signal.
    let r = run(&config(0.33, 0.0, 4, Solver::ClosedForm));
    assert!((r.acc_b - r.chance_b).abs() < 0.04 && r.acc_a > 0.9, "{r:?}");
}

#[test]
fn dropout_past_the_predicted_threshold_recovers_task_b() {
    for (ratio, k) in [(0.1, 4), (0.33, 4), (0.5, 1), (0.2, 8)] {
        let base = config(ratio, 0.0, k, Solver::ClosedForm);
        let pred = predict(&base.model, &base.augment, k);
        let onset = pred.onset_p.expect("B has signal");
        assert!(onset > 0.0, "ratio {ratio}: suppressed without dropout");
        let before = run(&config(ratio, (onset - 0.04).max(0.0), k, Solver::ClosedForm));
        let after = run(&config(ratio, (onset + 0.04).min(1.0), k, Solver::ClosedForm));
        let margin = after.ceiling_b - after.chance_b;
        assert!((before.acc_b - before.chance_b).abs() < 0.04, "ratio {ratio}, k {k}: {before:?}");
        assert!(
            after.acc_b > after.chance_b + 0.8 * margin,
            "ratio {ratio}, k {k}: B {} (ceiling {})",
            after.acc_b,
            after.ceiling_b
        );
        assert!(after.overlap_b > 0.99);
        // The cost to A: nothing while A's signal outranks what B brings (k > 1), all of it
        // when the two compete for one slot.
        let no_dropout = run(&base);
        if pred.loss_p > onset + 0.04 {
            assert!((after.acc_a - no_dropout.acc_a).abs() < 0.02, "ratio {ratio}, k {k}");
            let late = run(&config(ratio, (pred.loss_p + 0.04).min(1.0), k, Solver::ClosedForm));
            assert!((late.acc_a - late.chance_a).abs() < 0.04, "A lost past loss_p: {late:?}");
        } else {
            assert!((after.acc_a - after.chance_a).abs() < 0.04);
        }
    }
}

#[test]
fn infonce_suppresses_task_b_without_dropout_and_learns_it_with_dropout() {
    let cfg0 = config(1.0 / 3.0, 0.0, 4, Solver::InfoNce);
    // The setting: group a alone identifies every instance of a batch (nearest second view
    // by group-a coordinates only).
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (v1, v2) = sample_pairs(&cfg0.model, &cfg0.augment, 128, &mut rng);
    let a = cfg0.model.coords(Group::A);
    let (a1, a2) = (v1.slice(s![.., a.clone()]), v2.slice(s![.., a]));
    let matched = (0..a1.nrows())
        .filter(|&i| {
            let d = |j: usize| (&a1.row(i) - &a2.row(j)).mapv(|x| x * x).sum();
            (0..a2.nrows()).all(|j| j == i || d(j) > d(i))
        })
        .count();
    assert!(matched as f64 >= 0.98 * 128.0, "group a identifies {matched}/128");

    let mut cfg = cfg0.clone();
    cfg.train.steps = 700;
    cfg.train.lr = 0.02;
    let without = run(&cfg);
    cfg.augment.dropout_p = 0.3;
    let with = run(&cfg);
    assert!(without.ceiling_b > 0.9, "B is easy from x: {}", without.ceiling_b);
    assert!((without.acc_b - without.chance_b).abs() < 0.05 && without.overlap_b < 0.1, "no dropout: {without:?}");
    assert!(without.acc_a > 0.9);
    assert!(with.acc_b > 0.85 && with.overlap_b > 0.9, "dropout 0.3: {with:?}");
    assert!(with.acc_a > 0.9, "A survives p = 0.3: {with:?}");
}

fn small_sweep() -> SweepConfig {
    let mut cfg = SweepConfig::default();
    cfg.base.probe.train_size = 300;
    cfg.base.probe.test_size = 300;
    cfg.base.train.steps = 40;
    cfg.base.train.batch_size = 32;
    cfg.closed_form =
        Grid { p_values: vec![0.0, 0.2, 0.4, 0.6], ratios: vec![0.2, 0.4, 0.8], ks: vec![1, 4], seeds: vec![0, 1] };
    cfg.spectral_gd = Some(Grid { p_values: vec![0.0, 0.5], ratios: vec![0.4], ks: vec![4], seeds: vec![3] });
    cfg.info_nce = Some(Grid { p_values: vec![0.0, 0.5], ratios: vec![0.4], ks: vec![4], seeds: vec![3, 4] });
    cfg
}

#[test]
fn sweeps_are_deterministic_for_a_seed() {
    let cfg = small_sweep();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let first = one.install(|| run_sweep(&cfg, &|| {})).unwrap();
    let second = two.install(|| run_sweep(&cfg, &|| {})).unwrap();
    assert_eq!(first, second);
    assert_eq!(first.points.len(), cfg.points().len());
    // Seeds matter: another seed gives other gradient-descent results.
    let mut other = cfg.clone();
    other.info_nce.as_mut().unwrap().seeds = vec![5, 6];
    let third = run_sweep(&other, &|| {}).unwrap();
    let nce = |o: &featdrop_theory::SweepOutput| -> Vec<f64> {
        o.points.iter().filter(|p| p.params.solver == Solver::InfoNce).map(|p| p.result.spectral_loss).collect()
    };
    assert_ne!(nce(&first), nce(&third));
}

#[test]
fn sweep_writes_json_report_and_figures() {
    let cfg = small_sweep();
    let mut ticks = std::sync::atomic::AtomicUsize::new(0);
    let out = run_sweep(&cfg, &|| {
        ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(*ticks.get_mut(), cfg.points().len());
    let dir = tempfile::tempdir().unwrap();
    let paths = write_outputs(&out, dir.path(), true, 1.5).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("theory.json")).unwrap()).unwrap();
    assert_eq!(json["points"].as_array().unwrap().len(), cfg.points().len());
    let pt = &json["points"][0];
    for key in ["solver", "k", "ratio", "p", "seed", "strength_b", "result"] {
        assert!(pt.get(key).is_some(), "point lacks {key}");
    }
    assert!(json["summary"]["base_prediction"]["onset_p"].is_number());
    assert!(json["summary"]["thresholds"].as_array().unwrap().len() >= 6);
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    let onset = out.summary.base_prediction.onset_p.unwrap();
    assert!(md.contains(&format!("p* = {onset:.3}")), "report quotes the threshold");
    assert!(md.contains("## Headline") && md.contains("| ratio |"));
    let figures = json["figures"].as_array().unwrap();
    assert!(figures.len() >= 6);
    for f in figures {
        let bytes = std::fs::read(dir.path().join(f.as_str().unwrap())).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(bytes.len() > 5000);
    }
    assert_eq!(paths.len(), 2 + figures.len());
    // No temporary files are left behind.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(!name.starts_with('.'), "left-over {name}");
    }
}

#[test]
fn population_loss_is_what_minibatches_estimate() {
    // The minibatch spectral loss is an unbiased estimate of the population loss.
    let cfg = config(0.4, 0.3, 2, Solver::ClosedForm);
    let m = population_moments(&cfg.model, &cfg.augment);
    let w = Array2::from_shape_fn((2, cfg.model.dim()), |(i, j)| ((i * 7 + j * 3) % 5) as f64 * 0.1 - 0.2);
    let exact = spectral_loss(&w, &m);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let reps = 200;
    let mut sum = 0.0;
    for _ in 0..reps {
        let (v1, v2) = sample_pairs(&cfg.model, &cfg.augment, 64, &mut rng);
        sum += featdrop_theory::train::spectral_batch_grad(&w, &v1, &v2).0;
    }
    let est = sum / reps as f64;
    assert!((est - exact).abs() < 0.05 * exact.abs().max(0.1), "{est} vs {exact}");
}
