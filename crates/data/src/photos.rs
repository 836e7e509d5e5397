//! Synthetic photographs (docs/PROTOCOL.md §2.1): 10 classes of 32×32 colour scenes. A class is carried
//! by object form, surface texture and colour statistics *together*; each image varies in
//! position, scale, rotation, aspect, background, distractor blob, lighting and noise, so no single
//! pixel statistic gives the class away and the task is harder than reading an overlay.
//! Generated in batches with tensor ops on the CPU (device-independent, ≈50 000 images in seconds).

use std::f64::consts::PI;
use tch::{Device, Kind, Tensor};

/// Class names of the synthetic photos, by their object's form.
pub const CLASS_NAMES: [&str; 10] =
    ["disk", "square", "triangle", "ring", "cross", "bar", "star", "crescent", "dumbbell", "diamond"];

/// Each class's mean object colour (RGB); per-image colours scatter widely around it.
const PALETTE: [[f64; 3]; 10] = [
    [0.85, 0.25, 0.2],
    [0.2, 0.45, 0.85],
    [0.25, 0.7, 0.3],
    [0.9, 0.75, 0.2],
    [0.6, 0.3, 0.75],
    [0.9, 0.5, 0.15],
    [0.2, 0.75, 0.75],
    [0.75, 0.4, 0.55],
    [0.5, 0.55, 0.3],
    [0.55, 0.55, 0.6],
];

/// Images generated per tensor batch. Small enough that each class's ≈100-image intermediates stay
/// in cache: 60 000 photos take ≈3 s on 2 cores at 1024, ≈6 s at 4096 and ≈37 s at 16384.
const CHUNK: i64 = 1024;

/// Generates `n` photos with balanced classes in random order, deterministic from `seed`:
/// images `[n, 3, 32, 32]` uint8 (0–255) and labels `[n]` int64 in 0..10, on the CPU.
/// Draws from libtorch's global generator under [`crate::with_seed`].
pub fn generate(n: usize, seed: u64) -> (Tensor, Tensor) {
    crate::with_seed(seed, || generate_seeded(n as i64))
}

fn generate_seeded(n: i64) -> (Tensor, Tensor) {
    let balanced = Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(10);
    let labels = balanced.index_select(0, &Tensor::randperm(n, (Kind::Int64, Device::Cpu)));
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        // Each class's images are made together, so only its own form and texture are computed.
        let chunk = labels.narrow(0, start, len);
        let mut x = Tensor::zeros([len, 3, 32, 32], (Kind::Float, Device::Cpu));
        for c in 0..10 {
            let at = chunk.eq(c).nonzero().flatten(0, -1);
            if at.numel() > 0 {
                x = x.index_copy(0, &at, &scenes(c, at.numel() as i64));
            }
        }
        parts.push((x * 255.0).round().to_kind(Kind::Uint8));
        start += len;
    }
    let images = if parts.is_empty() {
        Tensor::zeros([0, 3, 32, 32], (Kind::Uint8, Device::Cpu))
    } else {
        Tensor::cat(&parts, 0)
    };
    (images, labels)
}

/// Uniform `[b, 1, 1]` in `[lo, hi)`.
fn uniform(b: i64, lo: f64, hi: f64) -> Tensor {
    Tensor::rand([b, 1, 1], (Kind::Float, Device::Cpu)) * (hi - lo) + lo
}

/// Signed distance (negative inside, object units ≈ radius 1) of class `c`'s form at object
/// coordinates `(u, v)` (`[b, 32, 32]`).
fn form(c: i64, u: &Tensor, v: &Tensor) -> Tensor {
    let r = (u.square() + v.square()).sqrt();
    let dist = |x: f64, y: f64| ((u - x).square() + (v - y).square()).sqrt();
    let (au, av) = (u.abs(), v.abs());
    match c {
        0 => &r - 0.8,
        1 => au.maximum(&av) - 0.68,
        2 => (&au * 0.866 + v * 0.5).maximum(&(-v - 0.1)) - 0.45,
        3 => (&r - 0.62).abs() - 0.2,
        4 => (&au - 0.25).maximum(&(&av - 0.85)).minimum(&(&au - 0.85).maximum(&(&av - 0.25))),
        5 => (((u / 0.95).square() + (v / 0.38).square()).sqrt() - 1.0) * 0.38,
        6 => &r - ((v.atan2(u) * 5.0).cos() * 0.3 + 0.55),
        7 => (&r - 0.8).maximum(&(-(dist(0.4, -0.1) - 0.62))),
        8 => (dist(-0.5, 0.0) - 0.4).minimum(&(dist(0.5, 0.0) - 0.4)).minimum(&(&av - 0.12).maximum(&(&au - 0.5))),
        _ => &au + &av - 0.9,
    }
}

/// Class `c`'s surface pattern in [-1, 1] at object coordinates, with per-image frequency `f`.
fn texture(c: i64, u: &Tensor, v: &Tensor, f: &Tensor) -> Tensor {
    let r = || (u.square() + v.square()).sqrt();
    match c {
        0 => (r() * f * 2.0).sin(),
        1 => ((u * f).sin() * (v * f).sin()).sign() * 0.8,
        2 => (v * f).sin(),
        3 => (v.atan2(u) * 6.0).sin(),
        4 => ((u * f).cos() * (v * f).cos()).square() * 2.0 - 1.0,
        5 => ((u + v) * f).sin(),
        6 => (Tensor::rand_like(u) * 2.0 - 1.0) * 0.7,
        7 => (u * f).sin(),
        8 => (v.atan2(u) * 3.0 + r() * f).sin(),
        _ => (u * f).sin().abs().maximum(&(v * f).sin().abs()) * 2.0 - 1.0,
    }
}

/// `b` scenes of class `c`: float `[b, 3, 32, 32]` in [0, 1].
fn scenes(c: i64, b: i64) -> Tensor {
    let opts = (Kind::Float, Device::Cpu);
    let axis = Tensor::linspace(-1.0, 1.0, 32, opts);
    let (gx, gy) = (axis.view([1, 1, 32]), axis.view([1, 32, 1]));
    // Object pose: position, scale, rotation, aspect.
    let (cx, cy, s) = (uniform(b, -0.35, 0.35), uniform(b, -0.35, 0.35), uniform(b, 0.4, 0.7));
    let (th, asp) = (uniform(b, 0.0, 2.0 * PI), uniform(b, 0.8, 1.25));
    let (dx, dy) = (&gx - &cx, &gy - &cy);
    let u = (&dx * th.cos() + &dy * th.sin()) / (&s * &asp);
    let v = (-&dx * th.sin() + &dy * th.cos()) * &asp / &s;
    // Edge softness of about one pixel, in object units.
    let pixel: Tensor = (2.0 / 32.0) / &s;
    let mask = (-form(c, &u, &v) / (pixel * 0.6)).sigmoid().unsqueeze(1);
    let tex = (texture(c, &u, &v, &(uniform(b, 2.5, 5.5) * PI)) * 0.5 + 0.5).unsqueeze(1);
    // Colours: class mean plus wide scatter; one image in four takes a random colour instead.
    let palette = Tensor::from_slice(&PALETTE.concat().iter().map(|&c| c as f32).collect::<Vec<_>>()).view([10, 3]);
    let mean = palette.get(c).view([1, 3]);
    let scattered = (mean + Tensor::randn([b, 3], opts) * 0.17).clamp(0.05, 0.95);
    let random = Tensor::rand([b, 3], opts);
    let swap = Tensor::rand([b, 1], opts).lt(0.25);
    let c1 = random.where_self(&swap, &scattered).view([b, 3, 1, 1]);
    let c2 = &c1 * uniform(b, 0.25, 0.65).unsqueeze(1);
    let object = &c2 + (&c1 - &c2) * &tex;
    // Background: random colour, low-frequency blotches and a gradient, plus a distractor blob.
    let base = Tensor::rand([b, 3, 1, 1], opts) * 0.8 + 0.1;
    let blotch = (Tensor::rand([b, 3, 4, 4], opts) - 0.5).upsample_bilinear2d([32, 32], false, None, None);
    let phi = uniform(b, 0.0, 2.0 * PI);
    let grad = (&gx * phi.cos() + &gy * phi.sin()) * uniform(b, 0.0, 0.3);
    let mut bg = base + blotch * 0.35 + grad.unsqueeze(1);
    let (ex, ey, er) = (uniform(b, -0.9, 0.9), uniform(b, -0.9, 0.9), uniform(b, 0.12, 0.3));
    let blob_sdf = (((&gx - ex) / &er).square() + ((&gy - ey) / (&er * uniform(b, 0.5, 1.5))).square()).sqrt() - 1.0;
    let blob = (-blob_sdf * 6.0).sigmoid().unsqueeze(1) * Tensor::rand([b, 1, 1, 1], opts).lt(0.6).to_kind(Kind::Float);
    bg = &bg * (1.0 - &blob) + Tensor::rand([b, 3, 1, 1], opts) * &blob;
    let img = bg * (1.0 - &mask) + object * &mask;
    // Lighting: overall gain and a directional shade; then sensor noise.
    let psi = uniform(b, 0.0, 2.0 * PI);
    let shade = ((&gx * psi.cos() + &gy * psi.sin()) * uniform(b, 0.0, 0.25)).unsqueeze(1);
    let img: Tensor = img * uniform(b, 0.65, 1.25).unsqueeze(1) + shade;
    let noise = Tensor::randn([b, 3, 32, 32], opts) * uniform(b, 0.01, 0.07).unsqueeze(1);
    (img + noise).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_balanced_and_varied() {
        let (x, y) = generate(200, 5);
        assert_eq!(x.size(), [200, 3, 32, 32]);
        assert_eq!(x.kind(), Kind::Uint8);
        let (x2, y2) = generate(200, 5);
        assert!(x.equal(&x2) && y.equal(&y2));
        assert!(!x.equal(&generate(200, 6).0));
        let counts = Vec::<i64>::try_from(y.bincount(None::<Tensor>, 10)).unwrap();
        assert!(counts.iter().all(|&c| c == 20), "{counts:?}");
        // Strong within-class variation: two images of one class differ a lot.
        let same: Vec<i64> = Vec::<i64>::try_from(y.eq(3).nonzero().flatten(0, -1)).unwrap();
        let diff = (x.get(same[0]).to_kind(Kind::Float) - x.get(same[1]).to_kind(Kind::Float)).abs().mean(Kind::Float);
        assert!(diff.double_value(&[]) > 20.0, "{diff}");
    }
}
