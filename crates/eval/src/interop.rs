//! Encoder weights PyTorch can load, and PyTorch's weights featdrop can probe.
//!
//! featdrop's [`ResNet`](featdrop_contrastive::ResNet) names its variables as torchvision's
//! `resnet18` does, so its state dict *is* a torchvision state dict, save for the batch-norm
//! counter `num_batches_tracked`, which PyTorch keeps and featdrop does not (it is only read when a
//! batch norm's momentum is None; both use momentum 0.1). [`export_run`] writes a run's encoder as
//! a safetensors state dict with those counters added; `torchvision.models.resnet18(num_classes=128)`
//! with the small-image stem (`conv1 = Conv2d(3, 64, 3, 1, 1, bias=False)`, `maxpool = Identity()`)
//! loads it with `strict=True`. [`load_torchvision_weights`] is the other way: it fills a featdrop
//! encoder from such a file (made by PyTorch, solo-learn, lightly, …), for `featdrop-eval probe
//! --encoder-weights FILE`.

use anyhow::{Context, Result, bail, ensure};
use featdrop_contrastive::assembly::ENCODER_PREFIX;
use featdrop_core::{RunDir, checkpoint};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tch::{Device, Kind, Tensor, nn::VarStore};

/// PyTorch's batch-norm step counter, which featdrop does not keep.
const COUNTER: &str = "num_batches_tracked";

/// What [`export_run`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExportSummary {
    /// The checkpoint tag exported (e.g. `epoch-0200`).
    pub checkpoint: String,
    /// Tensors written (parameters, running statistics and counters).
    pub tensors: usize,
    /// Parameters (weights and biases) in all.
    pub parameters: i64,
    /// The file written.
    pub out: std::path::PathBuf,
}

/// The state dict of `vs` with torchvision's names: every variable (parameters and batch-norm
/// running statistics), plus a `num_batches_tracked` of 0 beside each batch norm's `running_mean`.
///
/// The counter is 0 because featdrop does not count batch-norm steps; PyTorch reads it only when a
/// batch norm's momentum is None (a cumulative average), never with the default 0.1.
pub fn torchvision_state_dict(vs: &VarStore) -> Vec<(String, Tensor)> {
    with_counters(vs.variables().into_iter().collect())
}

fn with_counters(tensors: BTreeMap<String, Tensor>) -> Vec<(String, Tensor)> {
    let mut out: Vec<(String, Tensor)> = Vec::with_capacity(tensors.len() * 5 / 4);
    for (name, t) in tensors {
        if let Some(bn) = name.strip_suffix(".running_mean") {
            out.push((format!("{bn}.{COUNTER}"), Tensor::zeros([], (Kind::Int64, Device::Cpu))));
        }
        out.push((name, t));
    }
    out
}

/// Writes `tensors` (moved to the CPU, contiguous) to `out` atomically: a temporary file beside it,
/// then a rename.
pub fn write_state_dict(tensors: &[(String, Tensor)], out: &Path) -> Result<()> {
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    ensure!(dir.is_dir(), "--out {}: folder {} does not exist", out.display(), dir.display());
    let name = out.file_name().with_context(|| format!("--out {}: not a file name", out.display()))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let cpu: Vec<(String, Tensor)> =
        tensors.iter().map(|(n, t)| (n.clone(), t.detach().to_device(Device::Cpu).contiguous())).collect();
    let written = Tensor::write_safetensors(&cpu, &tmp)
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|()| std::fs::rename(&tmp, out).with_context(|| format!("renaming to {}", out.display())));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The checkpoint tag of `epoch` (the run's latest when `None`), checked to exist; the error for
/// a missing one lists the checkpoints the run has.
pub(crate) fn checkpoint_tag(run: &RunDir, epoch: Option<usize>) -> Result<String> {
    let dir = run.checkpoints();
    match epoch {
        None => checkpoint::latest(&dir)?.with_context(|| {
            format!("{} has no checkpoint (checkpoints/latest.json is made by featdrop-train)", run.root().display())
        }),
        Some(e) => {
            let tag = featdrop_core::layout::epoch_tag(e);
            if dir.join(format!("{tag}.json")).exists() {
                return Ok(tag);
            }
            let mut have: Vec<String> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
                        .filter(|t| t.starts_with("epoch-"))
                        .collect()
                })
                .unwrap_or_default();
            have.sort();
            bail!(
                "--epoch {e}: {} has no checkpoint {tag}; it has: {} (a run keeps the latest checkpoint and \
                 those of the epochs in its train.keep_epochs)",
                dir.display(),
                if have.is_empty() { "none".to_string() } else { have.join(", ") }
            )
        }
    }
}

/// Writes the encoder of run `run` at `epoch` (default: its latest checkpoint) to `out` as a
/// safetensors state dict with torchvision's names (see the module docs).
pub fn export_run(run: &RunDir, epoch: Option<usize>, out: &Path) -> Result<ExportSummary> {
    ensure!(run.root().is_dir(), "--run {} does not exist", run.root().display());
    let tag = checkpoint_tag(run, epoch)?;
    let dir = run.checkpoints();
    let (tensors, _state): (_, serde_json::Value) = checkpoint::load(&dir, &tag)?;
    let encoder: BTreeMap<String, Tensor> =
        tensors.into_iter().filter_map(|(n, t)| n.strip_prefix(ENCODER_PREFIX).map(|s| (s.to_string(), t))).collect();
    ensure!(!encoder.is_empty(), "{}/{tag}.safetensors holds no encoder tensors (`enc.*`)", dir.display());
    if !encoder.contains_key("conv1.weight") {
        let example = encoder.keys().next().cloned().unwrap_or_default();
        bail!(
            "{}/{tag}.safetensors names its encoder tensors the way featdrop did before it took torchvision's \
             names (e.g. `enc.{example}`, where `enc.conv1.weight` was expected); such older runs cannot be \
             exported or probed by this version: train the run again",
            dir.display()
        );
    }
    let parameters = encoder
        .iter()
        .filter(|(n, _)| n.ends_with(".weight") || n.ends_with(".bias"))
        .map(|(_, t)| t.numel() as i64)
        .sum();
    let state = with_counters(encoder);
    write_state_dict(&state, out)?;
    Ok(ExportSummary { checkpoint: tag, tensors: state.len(), parameters, out: out.to_path_buf() })
}

/// Fills every variable of `vs` (parameters and running statistics) from the safetensors state dict
/// `file`, matched by torchvision's names. Strict, as PyTorch's `load_state_dict(strict=True)`: a
/// missing name, an unexpected one or a shape mismatch is an error naming the file and the tensors;
/// `num_batches_tracked` counters are accepted and not used. Dtypes are converted to the
/// variables' own.
pub fn load_torchvision_weights(vs: &VarStore, file: &Path) -> Result<()> {
    ensure!(file.is_file(), "--encoder-weights {}: no such file", file.display());
    let loaded = Tensor::read_safetensors(file)
        .with_context(|| format!("--encoder-weights {}: not a readable safetensors file", file.display()))?;
    let targets = vs.variables();
    let present: BTreeSet<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
    let wanted: BTreeSet<&str> = targets.keys().map(String::as_str).collect();
    let missing: Vec<&str> = wanted.difference(&present).copied().collect();
    let unexpected: Vec<&str> =
        present.difference(&wanted).copied().filter(|n| !n.ends_with(&format!(".{COUNTER}"))).collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        bail!(
            "--encoder-weights {}: its names do not match the run's encoder (torchvision resnet18 names such as \
             `conv1.weight`, `layer1.0.bn1.running_mean`, `fc.weight` are expected); missing {}: {}; unexpected {}: {}",
            file.display(),
            missing.len(),
            preview(&missing),
            unexpected.len(),
            preview(&unexpected)
        );
    }
    let by_name: BTreeMap<&str, &Tensor> = loaded.iter().map(|(n, t)| (n.as_str(), t)).collect();
    // Sorted, so that the first mismatch reported does not depend on hash order.
    let targets: BTreeMap<String, Tensor> = targets.into_iter().collect();
    tch::no_grad(|| {
        for (name, dst) in &targets {
            let src = by_name[name.as_str()];
            ensure!(
                src.size() == dst.size(),
                "--encoder-weights {}: tensor `{name}` has shape {:?}, the run's encoder wants {:?} (is the run's \
                 `encoder` config the architecture these weights were trained with?)",
                file.display(),
                src.size(),
                dst.size()
            );
            let mut dst = dst.shallow_clone();
            dst.copy_(src);
        }
        Ok(())
    })
}

fn preview(names: &[&str]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    let head: Vec<String> = names.iter().take(4).map(|n| format!("`{n}`")).collect();
    let more = if names.len() > 4 { format!(", … ({} more)", names.len() - 4) } else { String::new() };
    format!("{}{more}", head.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use featdrop_contrastive::{Encoder, EncoderSpec, ResNet, Stem};

    fn small(vs: &VarStore) -> ResNet {
        ResNet::new(&vs.root(), EncoderSpec::small(3, Stem::SmallImage, 4))
    }

    #[test]
    fn state_dict_round_trip_restores_the_same_network() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("enc.safetensors");
        let vs = VarStore::new(Device::Cpu);
        let net = small(&vs);
        let x = Tensor::rand([3, 3, 32, 32], (Kind::Float, Device::Cpu));
        // A training-mode pass moves the running statistics away from their initial 0 and 1.
        let _ = tch::no_grad(|| net.embed(&x, true));
        let sd = torchvision_state_dict(&vs);
        assert!(sd.iter().any(|(n, _)| n == "layer2.0.downsample.1.num_batches_tracked"));
        assert!(sd.iter().any(|(n, _)| n == "bn1.running_var"));
        write_state_dict(&sd, &file).unwrap();

        let vs2 = VarStore::new(Device::Cpu);
        let net2 = small(&vs2);
        let before = tch::no_grad(|| net2.embed(&x, false));
        load_torchvision_weights(&vs2, &file).unwrap();
        let (a, b) = tch::no_grad(|| (net.embed(&x, false), net2.embed(&x, false)));
        assert!(a.equal(&b), "a reloaded encoder computes the same embeddings");
        assert!(!before.equal(&b), "loading changed the weights");
    }

    #[test]
    fn mismatched_files_are_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let vs = VarStore::new(Device::Cpu);
        let _net = small(&vs);
        let err = |f: &Path| load_torchvision_weights(&vs, f).unwrap_err().to_string();

        let e = err(&tmp.path().join("nope.safetensors"));
        assert!(e.contains("nope.safetensors: no such file"), "{e}");

        let mut sd = torchvision_state_dict(&vs);
        sd.retain(|(n, _)| n != "fc.bias");
        sd.push(("stem.conv.weight".into(), Tensor::zeros([1], (Kind::Float, Device::Cpu))));
        let f = tmp.path().join("renamed.safetensors");
        write_state_dict(&sd, &f).unwrap();
        let e = err(&f);
        assert!(e.contains("missing 1: `fc.bias`") && e.contains("unexpected 1: `stem.conv.weight`"), "{e}");

        let vs_wide = VarStore::new(Device::Cpu);
        let _wide = ResNet::new(&vs_wide.root(), EncoderSpec::small(3, Stem::SmallImage, 8));
        let f = tmp.path().join("wide.safetensors");
        write_state_dict(&torchvision_state_dict(&vs_wide), &f).unwrap();
        let e = err(&f);
        assert!(e.contains("`bn1.bias` has shape [8], the run's encoder wants [4]"), "{e}");
    }

    #[test]
    fn export_names_old_checkpoints_and_missing_epochs() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::at(tmp.path());
        let out = tmp.path().join("encoder.safetensors");
        let e = export_run(&run, None, &out).unwrap_err().to_string();
        assert!(e.contains("has no checkpoint"), "{e}");
        let old = vec![("enc.stem.conv.weight".to_string(), Tensor::zeros([4, 3, 3, 3], (Kind::Float, Device::Cpu)))];
        checkpoint::save(&run.checkpoints(), "epoch-0001", &old, &serde_json::json!({})).unwrap();
        let e = export_run(&run, Some(3), &out).unwrap_err().to_string();
        assert!(e.contains("--epoch 3") && e.contains("it has: epoch-0001"), "{e}");
        let e = export_run(&run, Some(1), &out).unwrap_err().to_string();
        assert!(e.contains("`enc.stem.conv.weight`") && e.contains("train the run again"), "{e}");
        assert!(!out.exists(), "nothing written on error");
    }
}
