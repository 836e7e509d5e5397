//! Overlay geometry, independence, re-drawing, pairs and determinism (docs/PROTOCOL.md §2.1, §3.3),
//! on small synthetic datasets.

use featdrop_core::Split;
use featdrop_data::glyphs;
use featdrop_data::overlay::{DIGIT_CORNERS, Overlay, OverlayKind};
use featdrop_data::{DatasetSpec, MultiTaskDataset, open};
use tch::{Device, IndexOp, Kind, Tensor};

fn dataset(name: &str, train: usize) -> Box<dyn MultiTaskDataset> {
    open(&DatasetSpec::synthetic(name, train, 100, 3)).unwrap()
}

fn ids(n: i64) -> Tensor {
    Tensor::arange(n, (Kind::Int64, Device::Cpu))
}

/// Pixels an overlay changed on all-zero photos: `[B, 32, 32]` bool.
fn changed(o: &Overlay, n: i64, seed: u64) -> (Tensor, Tensor, featdrop_data::OverlayDraw) {
    let d = featdrop_data::with_seed(seed, || o.draw(n));
    let out = o.compose(&Tensor::zeros([n, 3, 32, 32], (Kind::Float, Device::Cpu)), &d);
    (out.abs().sum_dim_intlist(1, false, Kind::Float).gt(0.0), out, d)
}

#[test]
fn shapes_stay_in_the_central_third() {
    let o = Overlay::new(OverlayKind::Shapes, glyphs::shape_masks().unwrap());
    let (mask, out, d) = changed(&o, 300, 1);
    let inside = Tensor::zeros([32, 32], (Kind::Bool, Device::Cpu));
    let _ = inside.i((10..22, 10..22)).fill_(1);
    assert!(mask.logical_and(&inside.logical_not()).sum(Kind::Int64).int64_value(&[]) == 0, "ink outside the box");
    // A square fills the box, so its full pixels show the colour at opacity 180/255.
    let sq = d.class.eq(0).nonzero().int64_value(&[0, 0]);
    let expect = d.color.double_value(&[sq, 0]) * 180.0 / 255.0;
    assert!((out.double_value(&[sq, 0, 16, 16]) - expect).abs() < 1e-5);
    assert!(mask.get(sq).sum(Kind::Int64).int64_value(&[]) >= 100);
    // Triangle: apex at the top centre, so the top row of the box is nearly empty at its corners.
    let tri = d.class.eq(1).nonzero().int64_value(&[0, 0]);
    assert!(mask.get(tri).int64_value(&[11, 11]) == 0 && mask.get(tri).int64_value(&[11, 16]) == 1);
    assert!(mask.get(tri).int64_value(&[21, 11]) == 1);
    let circ = d.class.eq(2).nonzero().int64_value(&[0, 0]);
    assert!(mask.get(circ).int64_value(&[11, 11]) == 0 && mask.get(circ).int64_value(&[16, 11]) == 1);
}

#[test]
fn digits_sit_at_the_four_corners_opaque_with_grey_kept() {
    let o = Overlay::new(OverlayKind::Digits, glyphs::stroke_digits(20, 1).unwrap());
    let (mask, out, _) = changed(&o, 200, 2);
    let inside = Tensor::zeros([32, 32], (Kind::Bool, Device::Cpu));
    for (x, y) in DIGIT_CORNERS {
        let _ = inside.i((y..y + 10, x..x + 10)).fill_(1);
    }
    assert_eq!(mask.logical_and(&inside.logical_not()).sum(Kind::Int64).int64_value(&[]), 0);
    // The same digit four times, grey (R = G = B).
    let tl = out.i((.., .., 4..14, 4..14));
    for (x, y) in DIGIT_CORNERS {
        assert!(out.i((.., .., y..y + 10, x..x + 10)).equal(&tl));
    }
    assert!(out.i((.., 0)).equal(&out.i((.., 2))));
    // Opaque stroke: on a white photo the stroke pixels show exactly the grey level.
    let d = featdrop_data::with_seed(5, || o.draw(50));
    let on_white = o.compose(&Tensor::ones([50, 3, 32, 32], (Kind::Float, Device::Cpu)), &d);
    let on_black = o.compose(&Tensor::zeros([50, 3, 32, 32], (Kind::Float, Device::Cpu)), &d);
    let ink = on_black.gt(0.0);
    assert!(on_white.masked_select(&ink).equal(&on_black.masked_select(&ink)));
}

#[test]
fn letters_once_per_quadrant_in_one_colour() {
    let o = Overlay::new(OverlayKind::Letters, glyphs::stroke_letters(20, 1).unwrap());
    let (mask, out, d) = changed(&o, 400, 3);
    let (dx, dy) =
        (Vec::<i64>::try_from(d.dx.flatten(0, -1)).unwrap(), Vec::<i64>::try_from(d.dy.flatten(0, -1)).unwrap());
    for (k, (&x, &y)) in dx.iter().zip(&dy).enumerate() {
        let (qx, qy) = ((k % 4) % 2, (k % 4) / 2);
        let range = |q| if q == 0 { 0..=6 } else { 16..=21 };
        assert!(range(qx).contains(&x) && range(qy).contains(&y), "copy {k}: ({x}, {y})");
    }
    // Every position in the ranges is used (independent draws per copy).
    assert_eq!(d.dx.select(1, 0).min().int64_value(&[]), 0);
    assert_eq!(d.dx.select(1, 0).max().int64_value(&[]), 6);
    assert_eq!(d.dy.select(1, 3).max().int64_value(&[]), 21);
    assert!(!d.dx.select(1, 0).equal(&d.dx.select(1, 2)));
    // Each quadrant's ink lies inside its copy's 12×12 box, and there is ink in each.
    for b in 0..20 {
        let m = mask.get(b);
        let mut boxes = Tensor::zeros([32, 32], (Kind::Bool, Device::Cpu));
        for k in 0..4 {
            let (x, y) = (dx[b as usize * 4 + k], dy[b as usize * 4 + k]);
            let bx = Tensor::zeros([32, 32], (Kind::Bool, Device::Cpu));
            let _ = bx.i((y..(y + 12).min(32), x..(x + 12).min(32))).fill_(1);
            assert!(m.logical_and(&bx).sum(Kind::Int64).int64_value(&[]) > 3, "no ink in copy {k}");
            boxes = boxes.logical_or(&bx);
        }
        assert_eq!(m.logical_and(&boxes.logical_not()).sum(Kind::Int64).int64_value(&[]), 0);
        // Fully covered pixels show the one colour exactly.
        let ink = out.get(b).sum_dim_intlist(0, false, Kind::Float).flatten(0, -1).argmax(0, false).int64_value(&[]);
        let (py, px) = (ink / 32, ink % 32);
        for c in 0..3 {
            assert!((out.double_value(&[b, c, py, px]) - d.color.double_value(&[b, c])).abs() < 0.02);
        }
    }
}

#[test]
fn built_in_letters_keep_a_contrast_floor_the_published_rule_does_not() {
    let bank = || glyphs::stroke_letters(20, 1).unwrap();
    let gap = featdrop_data::overlay::SYNTHETIC_LETTER_CONTRAST;
    let (plain, floored) = (Overlay::new(OverlayKind::Letters, bank()), Overlay::new(OverlayKind::Letters, bank()));
    let floored = floored.with_letter_contrast(gap);
    let n = 400;
    let d = featdrop_data::with_seed(9, || plain.draw(n));
    // Flat photos of random colours: the photo's mean is its colour.
    let photo_color = featdrop_data::with_seed(10, || Tensor::rand([n, 3, 1, 1], (Kind::Float, Device::Cpu)));
    let photos = photo_color.expand([n, 3, 32, 32], false).contiguous();
    let lum = |x: &Tensor| {
        (x * Tensor::from_slice(&[0.299f32, 0.587, 0.114]).view([1, 3, 1, 1])).sum_dim_intlist(1, false, Kind::Float)
    };
    let (out_plain, out_floor) = (plain.compose(&photos, &d), floored.compose(&photos, &d));
    // The most-covered pixel of each image shows the letter's colour.
    let cover = (&out_floor - &photos).abs().sum_dim_intlist(1, false, Kind::Float).flatten(1, -1).argmax(1, true);
    let ink = lum(&out_floor).flatten(1, -1).gather(1, &cover, false).squeeze_dim(1);
    let g_floor = (ink - lum(&photo_color).flatten(0, -1)).abs();
    assert!(g_floor.min().double_value(&[]) >= gap - 0.01, "{}", g_floor.min());
    // The published rule leaves many letters closer than the gap; the floor moves only those.
    let drawn_gap = (lum(&d.color.view([n, 3, 1, 1])) - lum(&photo_color)).abs().flatten(0, -1);
    let close = drawn_gap.lt(gap);
    assert!(close.sum(Kind::Int64).int64_value(&[]) > n / 5);
    let far = close.logical_not().nonzero().flatten(0, -1);
    assert!(out_plain.index_select(0, &far).equal(&out_floor.index_select(0, &far)));
    // The built-in dataset uses the floor: a grey letter on a grey photo is lightened to grey + gap.
    let ds = featdrop_data::ImageDataset::build(&DatasetSpec::synthetic("photos+letters", 64, 16, 1)).unwrap();
    let o = ds.overlay().unwrap();
    let d8 = featdrop_data::with_seed(3, || o.draw(8));
    let d8 = featdrop_data::OverlayDraw { color: d8.color.full_like(0.5), ..d8 };
    let out = o.compose(&Tensor::full([8, 3, 32, 32], 0.5, (Kind::Float, Device::Cpu)), &d8);
    assert!((lum(&out).max().double_value(&[]) - (0.5 + gap)).abs() < 1e-4);
}

#[test]
fn overlay_label_is_independent_of_the_photo() {
    let ds = dataset("photos+shapes", 1000);
    let mut table = [[0f64; 3]; 10];
    for s in 0..4 {
        let b = ds.batch(Split::Train, &ids(1000), 100 + s);
        let (p, o) = (Vec::<i64>::try_from(&b.labels[0]).unwrap(), Vec::<i64>::try_from(&b.labels[1]).unwrap());
        for (p, o) in p.iter().zip(&o) {
            table[*p as usize][*o as usize] += 1.0;
        }
    }
    let n: f64 = table.iter().flatten().sum();
    let rows: Vec<f64> = table.iter().map(|r| r.iter().sum()).collect();
    let cols: Vec<f64> = (0..3).map(|j| table.iter().map(|r| r[j]).sum()).collect();
    let chi2: f64 = (0..10)
        .flat_map(|i| (0..3).map(move |j| (i, j)))
        .map(|(i, j)| {
            let e = rows[i] * cols[j] / n;
            (table[i][j] - e).powi(2) / e
        })
        .sum();
    // 18 degrees of freedom: the 0.1 % critical value is 42.3.
    assert!(chi2 < 42.3, "chi-square {chi2} suggests dependence: {table:?}");
    assert!(cols.iter().all(|&c| (c / n - 1.0 / 3.0).abs() < 0.03), "{cols:?}");
}

#[test]
fn overlays_are_redrawn_on_every_read_and_deterministic_per_seed() {
    let ds = dataset("photos+letters", 300);
    let a = ds.batch(Split::Train, &ids(300), 1);
    let b = ds.batch(Split::Train, &ids(300), 1);
    let c = ds.batch(Split::Train, &ids(300), 2);
    assert!(a.inputs.equal(&b.inputs) && a.labels[1].equal(&b.labels[1]));
    assert!(a.labels[0].equal(&c.labels[0]), "photo labels never change");
    let same = a.labels[1].eq_tensor(&c.labels[1]).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
    assert!(same < 0.15, "a new seed must re-draw the overlay; {same} agree");
    assert!(!a.inputs.equal(&c.inputs));
    // A second dataset from the same spec gives the same data.
    let again = dataset("photos+letters", 300);
    assert!(again.batch(Split::Train, &ids(300), 1).inputs.equal(&a.inputs));
    assert!(a.inputs.min().double_value(&[]) >= 0.0 && a.inputs.max().double_value(&[]) <= 1.0);
    assert_eq!(a.inputs.size(), [300, 3, 32, 32]);
    a.check_tasks(ds.tasks()).unwrap();
}

#[test]
fn test_split_is_fixed_for_a_seed() {
    let ds = dataset("photos+digits", 50);
    let all = ds.batch(Split::Test, &ids(100), 1);
    let some = ds.batch(Split::Test, &Tensor::from_slice(&[7i64, 3]), 999);
    assert!(some.inputs.get(0).equal(&all.inputs.get(7)) && some.inputs.get(1).equal(&all.inputs.get(3)));
    assert!(some.labels[1].equal(&all.labels[1].index_select(0, &Tensor::from_slice(&[7i64, 3]))));
    let other = open(&DatasetSpec::synthetic("photos+digits", 50, 100, 4)).unwrap();
    assert!(!other.batch(Split::Test, &ids(100), 1).inputs.equal(&all.inputs));
}

#[test]
fn pairs_share_the_overlay_unless_dropout_redraws_it() {
    let ds = dataset("photos+shapes", 3000);
    let idx = ids(3000);
    let p0 = ds.pair(Split::Train, &idx, 0.0, 5);
    assert!(p0.first.inputs.equal(&p0.second));
    assert!(p0.second_labels[1].equal(&p0.first.labels[1]));
    // The first view is exactly the batch of the same seed's draw order.
    assert!(p0.first.inputs.equal(&ds.pair(Split::Train, &idx, 1.0, 5).first.inputs));
    let rate = |p: f64| {
        let pair = ds.pair(Split::Train, &idx, p, 6);
        assert!(pair.first.labels[0].equal(&pair.second_labels[0]), "photo label is shared");
        pair.second_labels[1].ne_tensor(&pair.first.labels[1]).to_kind(Kind::Float).mean(Kind::Float).double_value(&[])
    };
    // Independent re-draws disagree at the chance rate 1 − 1/3.
    assert!((rate(1.0) - 2.0 / 3.0).abs() < 0.04, "{}", rate(1.0));
    assert!((rate(0.5) - 1.0 / 3.0).abs() < 0.04, "{}", rate(0.5));
    assert_eq!(rate(0.0), 0.0);
}

#[test]
fn photos_alone_have_one_task_and_unknown_names_are_listed() {
    let ds = dataset("photos", 20);
    assert_eq!(ds.tasks().names(), ["photo"]);
    let b = ds.batch(Split::Train, &ids(20), 0);
    assert_eq!(b.labels.len(), 1);
    let e = open(&DatasetSpec::synthetic("photos+emoji", 10, 10, 0)).err().unwrap().to_string();
    assert!(e.contains("photos+emoji") && e.contains("photos, photos+shapes, photos+digits, photos+letters"), "{e}");
}
