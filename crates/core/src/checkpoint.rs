//! Checkpoints: named tensors as safetensors plus trainer state as JSON (docs/PROTOCOL.md §4).
//!
//! A checkpoint `<tag>` is `<tag>.safetensors` and `<tag>.json`, each written atomically, the
//! JSON last: a checkpoint whose JSON exists is complete. `latest.json` names the newest tag.

use crate::io::{read_json, temp_path, write_json_atomic};
use anyhow::{Context, Result, ensure};
use serde::{Serialize, de::DeserializeOwned};
use std::path::{Path, PathBuf};
use tch::Tensor;

#[derive(serde::Serialize, serde::Deserialize)]
struct Latest {
    tag: String,
}

fn weights_path(dir: &Path, tag: &str) -> PathBuf {
    dir.join(format!("{tag}.safetensors"))
}

/// Saves `tensors` and `state` as checkpoint `tag` in `dir` and marks it the latest.
pub fn save<S: Serialize>(dir: &Path, tag: &str, tensors: &[(String, Tensor)], state: &S) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let final_path = weights_path(dir, tag);
    let tmp = temp_path(&final_path);
    // safetensors wants contiguous CPU tensors.
    let cpu: Vec<(String, Tensor)> =
        tensors.iter().map(|(n, t)| (n.clone(), t.to_device(tch::Device::Cpu).contiguous())).collect();
    let written =
        Tensor::write_safetensors(&cpu, &tmp).with_context(|| format!("writing {}", tmp.display())).and_then(|()| {
            std::fs::rename(&tmp, &final_path).with_context(|| format!("renaming to {}", final_path.display()))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    write_json_atomic(&dir.join(format!("{tag}.json")), state)?;
    write_json_atomic(&dir.join("latest.json"), &Latest { tag: tag.into() })
}

/// Loads checkpoint `tag` from `dir`: its tensors (on the CPU) and state.
pub fn load<S: DeserializeOwned>(dir: &Path, tag: &str) -> Result<(Vec<(String, Tensor)>, S)> {
    let state: S = read_json(&dir.join(format!("{tag}.json")))?;
    let path = weights_path(dir, tag);
    let tensors = Tensor::read_safetensors(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok((tensors, state))
}

/// The newest complete checkpoint's tag in `dir`, if any.
pub fn latest(dir: &Path) -> Result<Option<String>> {
    let p = dir.join("latest.json");
    if !p.exists() {
        return Ok(None);
    }
    let l: Latest = read_json(&p)?;
    ensure!(
        dir.join(format!("{}.json", l.tag)).exists(),
        "{} names checkpoint `{}` whose state file is missing",
        p.display(),
        l.tag
    );
    Ok(Some(l.tag))
}

/// A loaded checkpoint: its tag, its tensors (on the CPU) and its state.
pub type Loaded<S> = (String, Vec<(String, Tensor)>, S);

/// The tags of the checkpoints in `dir` (those with a state or a weights file), sorted.
pub fn tags(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut tags: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .filter_map(|n| n.strip_suffix(".json").or_else(|| n.strip_suffix(".safetensors")).map(str::to_string))
        .filter(|t| t != "latest")
        .collect();
    tags.sort_unstable();
    tags.dedup();
    Ok(tags)
}

/// Removes the checkpoints of `dir` whose tag `keep` rejects — its state first, so that what a
/// kill leaves half-removed is no longer a complete checkpoint — and returns their tags.
pub fn prune(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for tag in tags(dir)?.into_iter().filter(|t| !keep(t)) {
        for path in [dir.join(format!("{tag}.json")), weights_path(dir, &tag)] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing old checkpoint file {}", path.display()));
                }
                _ => {}
            }
        }
        removed.push(tag);
    }
    Ok(removed)
}

/// The newest checkpoint in `dir` that loads: the latest first, then older ones, newest first. A
/// checkpoint that cannot be read (a truncated file after a crash or a full disk) is skipped with
/// a warning naming it; `None` when none loads (the run starts over, and says so).
pub fn load_newest_intact<S: DeserializeOwned>(dir: &Path) -> Result<Option<Loaded<S>>> {
    // Complete checkpoints only: the state file is written last.
    let mut tags: Vec<String> = tags(dir)?.into_iter().filter(|t| dir.join(format!("{t}.json")).exists()).collect();
    tags.sort_unstable_by(|a, b| b.cmp(a));
    let latest = latest(dir).ok().flatten();
    if let Some(l) = &latest {
        tags.retain(|t| t != l);
        tags.insert(0, l.clone());
    }
    let had_any = !tags.is_empty();
    for tag in tags {
        match load(dir, &tag) {
            Ok((tensors, state)) => return Ok(Some((tag, tensors, state))),
            Err(e) => {
                tracing::warn!(checkpoint = %tag, dir = %dir.display(), error = %format!("{e:#}"), "checkpoint unreadable; trying an older one")
            }
        }
    }
    if had_any {
        tracing::warn!(dir = %dir.display(), "no intact checkpoint: the run starts over");
    }
    Ok(None)
}

/// Copies loaded tensors into `targets` by name (e.g. a VarStore's variables), failing on a missing
/// name or a shape mismatch.
pub fn restore_into(loaded: &[(String, Tensor)], targets: &[(String, Tensor)]) -> Result<()> {
    let by_name: std::collections::HashMap<&str, &Tensor> = loaded.iter().map(|(n, t)| (n.as_str(), t)).collect();
    tch::no_grad(|| {
        for (name, dst) in targets {
            let src = by_name.get(name.as_str()).with_context(|| format!("checkpoint has no tensor `{name}`"))?;
            ensure!(
                src.size() == dst.size(),
                "tensor `{name}`: checkpoint shape {:?}, model shape {:?}",
                src.size(),
                dst.size()
            );
            let mut dst = dst.shallow_clone();
            dst.copy_(src);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct State {
        epoch: usize,
        step: u64,
    }

    #[test]
    fn round_trip_restores_identical_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let (w, b) = crate::seed::with_torch_seed(3, || {
            (Tensor::randn([3, 4], (Kind::Float, Device::Cpu)), Tensor::randn([4], (Kind::Double, Device::Cpu)))
        });
        let steps = Tensor::from_slice(&[7i64]);
        let named =
            vec![("enc.w".to_string(), w.shallow_clone()), ("enc.b".into(), b.shallow_clone()), ("n".into(), steps)];
        assert_eq!(latest(dir.path()).unwrap(), None);
        save(dir.path(), "epoch-2", &named, &State { epoch: 2, step: 40 }).unwrap();
        assert_eq!(latest(dir.path()).unwrap().as_deref(), Some("epoch-2"));
        let (loaded, state): (_, State) = load(dir.path(), "epoch-2").unwrap();
        assert_eq!(state, State { epoch: 2, step: 40 });
        let targets: Vec<(String, Tensor)> = named.iter().map(|(n, t)| (n.clone(), t.zeros_like())).collect();
        restore_into(&loaded, &targets).unwrap();
        for ((_, a), (_, b)) in named.iter().zip(&targets) {
            assert!(a.equal(b), "tensor differs after round trip");
            assert_eq!(a.kind(), b.kind());
        }
        let wrong = vec![("enc.w".to_string(), Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)))];
        assert!(restore_into(&loaded, &wrong).unwrap_err().to_string().contains("checkpoint shape [3, 4]"));
    }
}
