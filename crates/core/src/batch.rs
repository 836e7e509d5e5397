//! A batch: inputs plus one label tensor per task, in the dataset's task order.

use crate::task::TaskSet;
use anyhow::{Result, ensure};
use tch::{Device, Kind, Tensor};

/// Inputs `[N, C, H, W]` (float) and, per task, labels `[N]` (int64 class indices).
#[derive(Debug)]
pub struct Batch {
    /// Float inputs; images in [0, 1] before normalisation, audio normalised log-mel.
    pub inputs: Tensor,
    /// One `[N]` int64 tensor per task, in the order of the dataset's [`TaskSet`].
    pub labels: Vec<Tensor>,
}

impl Batch {
    /// A batch, checked for matching sizes.
    pub fn new(inputs: Tensor, labels: Vec<Tensor>) -> Result<Self> {
        let n = inputs.size().first().copied().unwrap_or(0);
        for (i, l) in labels.iter().enumerate() {
            ensure!(l.size() == [n], "label tensor {i} has shape {:?}; expected [{n}] to match the inputs", l.size());
            ensure!(l.kind() == Kind::Int64, "label tensor {i} has kind {:?}; expected Int64", l.kind());
        }
        Ok(Self { inputs, labels })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.inputs.size().first().copied().unwrap_or(0) as usize
    }

    /// Whether the batch has no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same batch on `device`.
    pub fn to_device(&self, device: Device) -> Self {
        Self {
            inputs: self.inputs.to_device(device),
            labels: self.labels.iter().map(|l| l.to_device(device)).collect(),
        }
    }

    /// A shallow copy sharing storage.
    pub fn shallow_clone(&self) -> Self {
        Self { inputs: self.inputs.shallow_clone(), labels: self.labels.iter().map(Tensor::shallow_clone).collect() }
    }

    /// Checks that labels exist for every task and lie in `0..num_classes`.
    pub fn check_tasks(&self, tasks: &TaskSet) -> Result<()> {
        ensure!(
            self.labels.len() == tasks.len(),
            "batch has {} label tensors; the task set [{}] needs {}",
            self.labels.len(),
            tasks.names().join(", "),
            tasks.len()
        );
        for (task, l) in tasks.iter().zip(&self.labels) {
            if l.numel() == 0 {
                continue;
            }
            let (lo, hi) = (l.min().int64_value(&[]), l.max().int64_value(&[]));
            ensure!(
                lo >= 0 && hi < task.num_classes as i64,
                "task `{}` labels span {lo}..={hi}; expected 0..{}",
                task.name,
                task.num_classes
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_shapes_kinds_and_ranges() {
        let x = Tensor::zeros([4, 3, 2, 2], (Kind::Float, Device::Cpu));
        let ok = Tensor::from_slice(&[0i64, 1, 2, 9]);
        let b = Batch::new(x.shallow_clone(), vec![ok.shallow_clone(), ok.shallow_clone()]).unwrap();
        assert_eq!(b.len(), 4);
        b.check_tasks(&TaskSet::from_pairs(&[("photo", 10), ("digit", 10)])).unwrap();
        let e = b.check_tasks(&TaskSet::from_pairs(&[("photo", 10), ("shape", 3)])).unwrap_err();
        assert!(e.to_string().contains("task `shape` labels span 0..=9; expected 0..3"), "{e}");
        let short = Tensor::from_slice(&[0i64, 1]);
        assert!(Batch::new(x.shallow_clone(), vec![short]).unwrap_err().to_string().contains("expected [4]"));
        let float = Tensor::zeros([4], (Kind::Float, Device::Cpu));
        assert!(Batch::new(x, vec![float]).unwrap_err().to_string().contains("Int64"));
    }
}
