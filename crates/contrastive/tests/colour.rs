//! The `colour` view family with and without the feature-dropout modifier (docs/PROTOCOL.md §3.3):
//! the overlay stays in place in both views, `+dropout:p` re-draws the second view's overlay at
//! rate p, and the photo under it does not depend on p.

use featdrop_augment::{ColourImage, ColourRecipe};
use featdrop_contrastive::assembly::view_family;
use featdrop_core::{Modality, RunConfig, Split, ViewFamily, ViewMode};
use featdrop_data::overlay::DIGIT_CORNERS;
use featdrop_data::{DatasetSpec, MultiTaskDataset, open};
use tch::{Device, IndexOp, Kind, Tensor};

/// libtorch's random generator is global to the process: seeded tests must not interleave.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn mode(s: &str) -> ViewMode {
    s.parse().unwrap()
}

fn dataset(name: &str, n: usize) -> Box<dyn MultiTaskDataset> {
    open(&DatasetSpec::synthetic(name, n, 64, 11)).unwrap()
}

fn ids(n: i64) -> Tensor {
    Tensor::arange(n, (Kind::Int64, Device::Cpu))
}

/// The view family a run of `view_mode` on photos+digits gets.
fn family(view_mode: &str) -> Box<dyn ViewFamily> {
    let cfg = RunConfig::new("t", "photos+digits", mode(view_mode), 0);
    view_family(&cfg, Modality::Image, Device::Cpu).unwrap()
}

/// `[32, 32]` bool: the four 10×10 boxes the digits are pasted into.
fn digit_boxes() -> Tensor {
    let mask = Tensor::zeros([32, 32], (Kind::Bool, Device::Cpu));
    for (x, y) in DIGIT_CORNERS {
        let _ = mask.i((y..y + 10, x..x + 10)).fill_(1);
    }
    mask
}

/// Mean over examples of the Pearson correlation between the two views' luma inside `mask`.
fn correlation_inside(v1: &Tensor, v2: &Tensor, mask: &Tensor) -> f64 {
    let pick = |v: &Tensor| {
        let luma = v.mean_dim(&[1i64][..], false, Kind::Float); // [N, 32, 32]
        let flat = luma.masked_select(mask).view([v.size()[0], -1]);
        let centred = &flat - flat.mean_dim(&[1i64][..], true, Kind::Float);
        &centred / (centred.square().sum_dim_intlist(&[1i64][..], true, Kind::Float).sqrt() + 1e-8)
    };
    (pick(v1) * pick(v2)).sum_dim_intlist(&[1i64][..], false, Kind::Float).mean(Kind::Float).double_value(&[])
}

/// Per example: whether the second input differs from the first anywhere (`[N]` bool).
fn differs(pair: &featdrop_data::Pair) -> Tensor {
    (&pair.first.inputs - &pair.second).abs().amax(&[1i64, 2, 3][..], false).gt(0.0)
}

#[test]
fn colour_views_keep_the_overlay_in_place() {
    let _serial = serial();
    let ds = dataset("photos+digits", 256);
    let redraw = mode("colour").overlay_redraw_p();
    let pair = ds.pair(Split::Train, &ids(256), redraw, 3);
    assert!(pair.first.labels[1].equal(&pair.second_labels[1]), "`colour` alone shares the overlay label");

    // Without its colour ops the family is normalisation only: no crop, no flip, so the two views
    // of a pair are equal, the overlay's pixels included.
    let bare = ColourImage::new(ColourRecipe::disabled()).unwrap();
    let (b1, b2) = (bare.view(&pair.first.inputs, 1), bare.view(&pair.second, 2));
    let boxes = digit_boxes();
    assert!(b1.equal(&b2));
    assert!(b1.masked_select(&boxes).equal(&b2.masked_select(&boxes)));

    // With them, the overlay's strokes stay where they were: inside the digit boxes the two views
    // are strongly correlated, far more than under the expert recipe, whose crops and flips move
    // the digits.
    let corr = |f: &dyn ViewFamily| {
        let (v1, v2) = (f.view(&pair.first.inputs, 1), f.view(&pair.second, 2));
        correlation_inside(&v1, &v2, &boxes)
    };
    let colour = corr(family("colour").as_ref());
    let expert = corr(family("expert").as_ref());
    assert!(colour > 0.6, "colour views disagree inside the overlay boxes: correlation {colour}");
    assert!(colour > expert + 0.2, "colour {colour} vs expert {expert}");
    assert_eq!(family("colour+dropout:0.5").name(), "colour");
}

#[test]
fn colour_dropout_redraws_the_second_overlay_at_rate_p() {
    let _serial = serial();
    // Shapes: a re-draw always draws a new colour, so a re-drawn overlay always changes pixels.
    let n = 2000;
    let ds = dataset("photos+shapes", n as usize);
    for (spelling, p) in [("colour", 0.0), ("colour+dropout:0.5", 0.5), ("colour+dropout:1", 1.0)] {
        let m = mode(spelling);
        assert_eq!(m.overlay_redraw_p(), p, "{spelling}");
        let pair = ds.pair(Split::Train, &ids(n), m.overlay_redraw_p(), 9);
        let rate = differs(&pair).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        // Four binomial standard deviations (and a sliver for exact 0 and 1).
        let tol = 4.0 * (p * (1.0 - p) / n as f64).sqrt() + 1e-3;
        assert!((rate - p).abs() <= tol, "{spelling}: re-drawn fraction {rate}, expected {p} ± {tol}");
        // The overlay label then disagrees at p · (1 − 1/3): a re-draw may land on the same class.
        let disagree = pair.first.labels[1].ne_tensor(&pair.second_labels[1]).to_kind(Kind::Float);
        let disagree = disagree.mean(Kind::Float).double_value(&[]);
        let expect = p * 2.0 / 3.0;
        let tol = 4.0 * (expect * (1.0 - expect) / n as f64).sqrt() + 1e-3;
        assert!((disagree - expect).abs() <= tol, "{spelling}: label disagreement {disagree}, expected {expect}");
    }
}

#[test]
fn the_photo_does_not_depend_on_the_dropout_probability() {
    let _serial = serial();
    let n = 300;
    let ds = dataset("photos+shapes", n as usize);
    let (p0, p1) = (ds.pair(Split::Train, &ids(n), 0.0, 4), ds.pair(Split::Train, &ids(n), 1.0, 4));
    assert!(p0.first.inputs.equal(&p1.first.inputs), "the first view does not depend on p");
    assert!(p0.second_labels[0].equal(&p1.second_labels[0]), "the photo label does not depend on p");
    // Shapes live in the central 12×12 box (rows and columns 10..22): outside it the second
    // view's input is the bare photo, the same at p = 0 and p = 1.
    let outside = Tensor::ones([32, 32], (Kind::Bool, Device::Cpu));
    let _ = outside.i((10..22, 10..22)).fill_(0);
    let pick = |x: &Tensor| x.masked_select(&outside);
    assert!(pick(&p0.second).equal(&pick(&p1.second)), "the photo changed with p");
    // …while inside it the re-drawn overlay did change the second view.
    assert!(differs(&p1).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]) > 0.99);
    assert!(!p0.second.equal(&p1.second));
}

#[test]
fn colour_is_refused_for_audio_naming_the_field() {
    // A dataset outside the catalogue skips the config's modality check; assembly still refuses.
    let cfg = RunConfig::new("t", "my-own-audio", mode("colour+dropout:0.5"), 0);
    let e = view_family(&cfg, Modality::Audio, Device::Cpu).err().expect("colour on audio must fail").to_string();
    assert!(e.contains("field `view_mode`") && e.contains("image view family") && e.contains("my-own-audio"), "{e}");
}
