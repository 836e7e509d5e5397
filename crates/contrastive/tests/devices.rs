//! `Trainer::with_parts` refuses parts on different devices before it touches the run directory
//! (issue 30 item 5): a mix would otherwise panic at the first step.

use featdrop_contrastive::{EncoderSpec, ResNet, Stem, Trainer};
use featdrop_core::{BaseViews, RunConfig, RunDir};
use featdrop_data::DatasetSpec;
use tch::{Device, Tensor, nn::VarStore};

/// The dataset on the CPU, the encoder's VarStore on `cuda:0`: buildable without a GPU, since an
/// empty VarStore allocates nothing (the encoder's weights here sit in a CPU store).
#[test]
fn an_encoder_on_another_device_than_the_dataset_is_refused_up_front() {
    let dataset = featdrop_data::open(&DatasetSpec::synthetic("photos", 32, 16, 0)).unwrap();
    let cpu = VarStore::new(Device::Cpu);
    let encoder = ResNet::new(&cpu.root(), EncoderSpec::small(3, Stem::SmallImage, 4));
    let on_gpu = VarStore::new(Device::Cuda(0));
    let views = |x: &Tensor, _seed: u64| x.shallow_clone();
    let cfg = RunConfig::new("devices", "photos", BaseViews::None, 0);
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::at(dir.path().join("run"));
    let e = Trainer::with_parts(cfg, run, dataset, on_gpu, Box::new(encoder), Box::new(views))
        .err()
        .expect("a device mix is an error")
        .to_string();
    assert!(e.contains("the encoder's VarStore is on Cuda(0) but the dataset is on Cpu"), "{e}");
    assert!(!dir.path().join("run").exists(), "nothing is written for a refused mix");
}
