//! The two ways of selecting samples (`featdrop_augment::masked_selection`: masked `where`s on
//! CUDA, `nonzero` + `index_select` on a CPU) make the same views, bit for bit. Its own test
//! binary: forcing the masked path is process-wide.

use featdrop_augment::{ColourImage, ColourRecipe, ExpertImage, ImageRecipe, force_masked_selection, with_seed};
use featdrop_core::ViewFamily;
use tch::{Device, Kind, Tensor};

#[test]
fn masked_and_selected_paths_make_the_same_views() {
    let x = with_seed(7, || Tensor::rand([128, 3, 32, 32], (Kind::Float, Device::Cpu)));
    let families: [Box<dyn ViewFamily>; 2] = [
        Box::new(ExpertImage::new(ImageRecipe::default()).unwrap()),
        Box::new(ColourImage::new(ColourRecipe::default()).unwrap()),
    ];
    for family in &families {
        for seed in 0..4 {
            force_masked_selection(false);
            let selected = family.view(&x, seed);
            force_masked_selection(true);
            let masked = family.view(&x, seed);
            force_masked_selection(false);
            let differ = selected.ne_tensor(&masked).sum(Kind::Int64).int64_value(&[]);
            assert_eq!(
                differ,
                0,
                "{} views of seed {seed}: {differ} values differ between the two paths",
                family.name()
            );
        }
    }
}
