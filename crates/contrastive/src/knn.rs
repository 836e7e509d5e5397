//! The kNN monitor (§4): classify held-out embeddings by their nearest neighbours (cosine) in a
//! bank of training embeddings, per task — cheap evidence, each epoch, of what the encoder keeps.

use tch::{Kind, Tensor};

/// Top-1 accuracy of a weighted k-nearest-neighbour vote (weights `exp(cos/0.07)`, the usual
/// monitor) of `query` `[Q, D]` against `bank` `[M, D]` with labels `bank_labels` `[M]`.
pub fn knn_accuracy(
    bank: &Tensor,
    bank_labels: &Tensor,
    query: &Tensor,
    query_labels: &Tensor,
    k: i64,
    classes: i64,
) -> f64 {
    let unit = |z: &Tensor| z / z.norm_scalaropt_dim(2, [1i64].as_slice(), true).clamp_min(1e-12);
    let sim = unit(query).matmul(&unit(bank).tr());
    let k = k.min(bank.size()[0]);
    let (top, idx) = sim.topk(k, 1, true, true);
    let neighbour_labels = bank_labels.index_select(0, &idx.flatten(0, -1)).view([-1, k]);
    let votes = neighbour_labels.one_hot(classes).to_kind(Kind::Float) * (top / 0.07).exp().unsqueeze(-1);
    let pred = votes.sum_dim_intlist([1i64].as_slice(), false, Kind::Float).argmax(1, false);
    f64::try_from(pred.eq_tensor(query_labels).to_kind(Kind::Float).mean(Kind::Float)).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn separable_embeddings_score_high_and_noise_scores_chance() {
        tch::manual_seed(1);
        let opts = (Kind::Float, Device::Cpu);
        let centres = Tensor::randn([4, 16], opts) * 3.0;
        let labels = Tensor::randint(4, [400], (Kind::Int64, Device::Cpu));
        let emb = centres.index_select(0, &labels) + Tensor::randn([400, 16], opts) * 0.5;
        let (bank, query) = (emb.narrow(0, 0, 300), emb.narrow(0, 300, 100));
        let (bl, ql) = (labels.narrow(0, 0, 300), labels.narrow(0, 300, 100));
        assert!(knn_accuracy(&bank, &bl, &query, &ql, 20, 4) > 0.95);
        let noise = Tensor::randn([400, 16], opts);
        let acc = knn_accuracy(&noise.narrow(0, 0, 300), &bl, &noise.narrow(0, 300, 100), &ql, 20, 4);
        assert!(acc < 0.45, "random embeddings should sit near chance (0.25), got {acc}");
    }
}
