//! One call of the linear-model simulator (docs/PROTOCOL.md §6), printed: the closed-form minimiser of the
//! spectral contrastive loss with feature dropout on the stronger group `a`, and what it keeps of
//! each task, next to the eigenvalue-ranking prediction of where dropout starts to help.
//!
//! `cargo run -p featdrop-theory --example theory_quick -- [P]` (P: dropout probability on group
//! `a`, default 0.3; try 0 to see task B suppressed).

use featdrop_theory::{SimConfig, simulate};

fn main() -> anyhow::Result<()> {
    let p: f64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|e| anyhow::anyhow!("P = `{arg}`: {e}"))?,
        None => 0.3,
    };
    // Default model: task A (group a) is the easy, strong feature, task B has 1/3 of its strength;
    // embedding size k = 4; closed-form solver.
    let mut cfg = SimConfig::default();
    cfg.augment.dropout_p = p;
    cfg.probe.train_size = 1000;
    cfg.probe.test_size = 1000;

    let r = simulate(&cfg)?;

    println!("linear contrastive model, k = {}, feature dropout p = {p} on group a ({:?})", cfg.k, cfg.solver);
    let pr = &r.prediction;
    match pr.onset_p {
        Some(onset) => {
            println!("predicted: task B's signal enters past p* = {onset:.3}; A's leaves past {:.3}", pr.loss_p)
        }
        None => println!("predicted: task B's signal never enters the representation"),
    }
    println!(
        "{:<5} {:>17} {:>15} {:>10} {:>7} {:>16}",
        "task", "predicted overlap", "learned overlap", "probe acc", "chance", "ceiling (raw x)"
    );
    let rows = [
        ("A", pr.overlap_a, r.overlap_a, r.acc_a, r.chance_a, r.ceiling_a),
        ("B", pr.overlap_b, r.overlap_b, r.acc_b, r.chance_b, r.ceiling_b),
    ];
    for (task, predicted, overlap, acc, chance, ceiling) in rows {
        println!("{task:<5} {predicted:>17.3} {overlap:>15.3} {acc:>10.3} {chance:>7.3} {ceiling:>16.3}");
    }
    println!("population spectral loss {:.4}", r.spectral_loss);
    Ok(())
}
