//! A small stroke font written for featdrop (docs/PROTOCOL.md §2.1): every digit 0–9 and letter A–Z is a
//! few polylines and elliptic arcs in a unit box (x right, y down), rendered with random stroke
//! width, slant, scale, aspect and point jitter into banks of many distinct glyphs per class.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

/// A polyline in unit-box coordinates.
type Line = Vec<(f64, f64)>;

/// Builds polylines: straight segments and arcs appended to the current line.
#[derive(Default)]
struct Pen {
    lines: Vec<Line>,
}

impl Pen {
    /// Starts a new polyline at `(x, y)`.
    fn m(mut self, x: f64, y: f64) -> Self {
        self.lines.push(vec![(x, y)]);
        self
    }
    /// Continues the current polyline straight to `(x, y)`.
    fn l(mut self, x: f64, y: f64) -> Self {
        self.lines.last_mut().expect("m before l").push((x, y));
        self
    }
    /// A whole polyline through `pts`.
    fn p(self, pts: &[(f64, f64)]) -> Self {
        pts[1..].iter().fold(self.m(pts[0].0, pts[0].1), |s, &(x, y)| s.l(x, y))
    }
    /// Continues (or starts, if `new`) with an elliptic arc from angle `a0` to `a1` in degrees
    /// (0 = right, 90 = down, since y grows downward).
    fn arc(mut self, new: bool, c: (f64, f64), r: (f64, f64), a0: f64, a1: f64) -> Self {
        let steps = (((a1 - a0).abs() / 20.0).ceil() as usize).max(2);
        let pts = (0..=steps).map(|i| {
            let a = (a0 + (a1 - a0) * i as f64 / steps as f64).to_radians();
            (c.0 + r.0 * a.cos(), c.1 + r.1 * a.sin())
        });
        if new || self.lines.is_empty() {
            self.lines.push(Vec::new());
        }
        self.lines.last_mut().expect("a line").extend(pts);
        self
    }
    fn ellipse(self, c: (f64, f64), r: (f64, f64)) -> Self {
        self.arc(true, c, r, 0.0, 360.0)
    }
}

/// The strokes of a digit `0..=9`.
fn digit(d: usize) -> Vec<Line> {
    let p = Pen::default();
    let p = match d {
        0 => p.ellipse((0.5, 0.5), (0.4, 0.5)),
        1 => p.p(&[(0.25, 0.25), (0.55, 0.0), (0.55, 1.0)]).p(&[(0.25, 1.0), (0.85, 1.0)]),
        2 => p.arc(true, (0.5, 0.3), (0.4, 0.3), 180.0, 405.0).l(0.08, 1.0).l(0.92, 1.0),
        3 => p.arc(true, (0.5, 0.27), (0.37, 0.25), 200.0, 450.0).arc(false, (0.5, 0.75), (0.4, 0.25), 270.0, 520.0),
        4 => p.p(&[(0.72, 1.0), (0.72, 0.0), (0.05, 0.7), (0.95, 0.7)]),
        5 => p.p(&[(0.85, 0.0), (0.22, 0.0), (0.17, 0.45)]).arc(false, (0.5, 0.68), (0.4, 0.32), 215.0, 500.0),
        6 => p.p(&[(0.75, 0.0), (0.3, 0.35), (0.12, 0.7)]).ellipse((0.5, 0.7), (0.38, 0.3)),
        7 => p.p(&[(0.08, 0.0), (0.92, 0.0), (0.35, 1.0)]),
        8 => p.ellipse((0.5, 0.25), (0.32, 0.25)).ellipse((0.5, 0.74), (0.4, 0.26)),
        _ => p.ellipse((0.5, 0.3), (0.38, 0.3)).p(&[(0.88, 0.3), (0.72, 0.7), (0.3, 1.0)]),
    };
    p.lines
}

/// The strokes of an uppercase letter, `0` = A … `25` = Z.
fn letter(l: usize) -> Vec<Line> {
    let p = Pen::default();
    let p = match l {
        0 => p.p(&[(0.0, 1.0), (0.5, 0.0), (1.0, 1.0)]).p(&[(0.22, 0.62), (0.78, 0.62)]),
        1 => p
            .p(&[(0.6, 0.5), (0.1, 0.5), (0.1, 0.0), (0.55, 0.0)])
            .arc(false, (0.55, 0.25), (0.3, 0.25), 270.0, 450.0)
            .m(0.1, 0.5)
            .l(0.1, 1.0)
            .l(0.6, 1.0)
            .arc(false, (0.6, 0.75), (0.33, 0.25), 90.0, -90.0),
        2 => p.arc(true, (0.55, 0.5), (0.45, 0.5), 45.0, 315.0),
        3 => p.p(&[(0.1, 0.0), (0.1, 1.0), (0.45, 1.0)]).arc(false, (0.45, 0.5), (0.45, 0.5), 90.0, -90.0).l(0.1, 0.0),
        4 => p.p(&[(0.9, 0.0), (0.1, 0.0), (0.1, 1.0), (0.9, 1.0)]).p(&[(0.1, 0.5), (0.7, 0.5)]),
        5 => p.p(&[(0.9, 0.0), (0.1, 0.0), (0.1, 1.0)]).p(&[(0.1, 0.5), (0.7, 0.5)]),
        6 => p.arc(true, (0.55, 0.5), (0.45, 0.5), 315.0, 45.0).l(0.95, 0.55).l(0.55, 0.55),
        7 => p.p(&[(0.1, 0.0), (0.1, 1.0)]).p(&[(0.9, 0.0), (0.9, 1.0)]).p(&[(0.1, 0.5), (0.9, 0.5)]),
        8 => p.p(&[(0.5, 0.0), (0.5, 1.0)]).p(&[(0.25, 0.0), (0.75, 0.0)]).p(&[(0.25, 1.0), (0.75, 1.0)]),
        9 => p.p(&[(0.8, 0.0), (0.8, 0.7)]).arc(false, (0.5, 0.7), (0.3, 0.3), 0.0, 180.0),
        10 => p.p(&[(0.1, 0.0), (0.1, 1.0)]).p(&[(0.9, 0.0), (0.1, 0.62)]).p(&[(0.35, 0.45), (0.9, 1.0)]),
        11 => p.p(&[(0.1, 0.0), (0.1, 1.0), (0.85, 1.0)]),
        12 => p.p(&[(0.05, 1.0), (0.1, 0.0), (0.5, 0.65), (0.9, 0.0), (0.95, 1.0)]),
        13 => p.p(&[(0.1, 1.0), (0.1, 0.0), (0.9, 1.0), (0.9, 0.0)]),
        14 => p.ellipse((0.5, 0.5), (0.45, 0.5)),
        15 => p
            .p(&[(0.1, 1.0), (0.1, 0.0), (0.55, 0.0)])
            .arc(false, (0.55, 0.27), (0.35, 0.27), 270.0, 450.0)
            .l(0.1, 0.54),
        16 => p.ellipse((0.5, 0.5), (0.45, 0.5)).p(&[(0.55, 0.7), (0.95, 1.05)]),
        17 => p
            .p(&[(0.1, 1.0), (0.1, 0.0), (0.55, 0.0)])
            .arc(false, (0.55, 0.27), (0.35, 0.27), 270.0, 450.0)
            .l(0.1, 0.54)
            .p(&[(0.45, 0.54), (0.9, 1.0)]),
        18 => p.arc(true, (0.5, 0.26), (0.38, 0.26), 330.0, 90.0).arc(false, (0.5, 0.76), (0.4, 0.24), 270.0, 510.0),
        19 => p.p(&[(0.0, 0.0), (1.0, 0.0)]).p(&[(0.5, 0.0), (0.5, 1.0)]),
        20 => p.p(&[(0.1, 0.0), (0.1, 0.6)]).arc(false, (0.5, 0.6), (0.4, 0.4), 180.0, 0.0).l(0.9, 0.0),
        21 => p.p(&[(0.0, 0.0), (0.5, 1.0), (1.0, 0.0)]),
        22 => p.p(&[(0.0, 0.0), (0.25, 1.0), (0.5, 0.35), (0.75, 1.0), (1.0, 0.0)]),
        23 => p.p(&[(0.05, 0.0), (0.95, 1.0)]).p(&[(0.95, 0.0), (0.05, 1.0)]),
        24 => p.p(&[(0.0, 0.0), (0.5, 0.5), (1.0, 0.0)]).p(&[(0.5, 0.5), (0.5, 1.0)]),
        _ => p.p(&[(0.05, 0.0), (0.95, 0.0), (0.05, 1.0), (0.95, 1.0)]),
    };
    p.lines
}

/// Which characters a bank holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// `0`–`9`, 10 classes.
    Digits,
    /// `A`–`Z`, 26 classes.
    Letters,
}

impl Charset {
    /// Number of classes.
    pub fn classes(self) -> usize {
        match self {
            Self::Digits => 10,
            Self::Letters => 26,
        }
    }

    fn strokes(self, class: usize) -> Vec<Line> {
        match self {
            Self::Digits => digit(class),
            Self::Letters => letter(class),
        }
    }
}

/// How glyphs vary (docs/PROTOCOL.md §2.1: many distinct looks per class), in pixels of the `size`-pixel
/// cell unless noted.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// Cell side in pixels (10 for digits, 12 for letters).
    pub size: usize,
    /// Glyph height as a fraction of the cell, drawn uniformly in this range.
    pub height: (f64, f64),
    /// Width over height, drawn uniformly in this range.
    pub aspect: (f64, f64),
    /// Stroke width in pixels.
    pub width: (f64, f64),
    /// Horizontal shear per unit height (italic slant), uniform in ±this.
    pub slant: f64,
    /// Standard deviation of each stroke point's jitter, as a fraction of the glyph height.
    pub jitter: f64,
}

impl Style {
    /// Handwriting-like digits in a 10×10 cell (the digit overlay's size).
    pub fn digits() -> Self {
        Self { size: 10, height: (0.8, 0.98), aspect: (0.55, 0.8), width: (1.1, 1.8), slant: 0.3, jitter: 0.035 }
    }

    /// Sans-like capitals about 12 px tall in a 12×12 cell (the letter overlay's size).
    pub fn letters() -> Self {
        Self { size: 12, height: (0.85, 1.0), aspect: (0.6, 0.9), width: (1.5, 2.2), slant: 0.15, jitter: 0.02 }
    }
}

/// Renders `variants` glyphs of every class of `charset`: `[classes·variants, size, size]` float
/// coverage in [0, 1] (quantised to 8-bit levels, so background is exactly 0), with labels
/// `[classes·variants]` int64, grouped by class; deterministic from `seed`, on the CPU.
pub fn render_bank(charset: Charset, style: Style, variants: usize, seed: u64) -> (Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut glyphs = Vec::new();
    let mut labels = Vec::new();
    for class in 0..charset.classes() {
        let strokes = charset.strokes(class);
        let segs: Vec<Vec<[f64; 4]>> = (0..variants).map(|_| variant_segments(&strokes, style, &mut rng)).collect();
        let widths: Vec<f64> = (0..variants).map(|_| rng.random_range(style.width.0..=style.width.1)).collect();
        glyphs.push(rasterise(&segs, &widths, style.size));
        labels.extend(std::iter::repeat_n(class as i64, variants));
    }
    (Tensor::cat(&glyphs, 0), Tensor::from_slice(&labels))
}

/// One random look of a character: its segments `[x0, y0, x1, y1]` in cell pixels.
fn variant_segments(strokes: &[Line], s: Style, rng: &mut ChaCha8Rng) -> Vec<[f64; 4]> {
    let size = s.size as f64;
    let h = size * rng.random_range(s.height.0..=s.height.1);
    let w = h * rng.random_range(s.aspect.0..=s.aspect.1);
    let slant = rng.random_range(-s.slant..=s.slant);
    // Centre the glyph's box (its slant included) in the cell, with a little sub-pixel play.
    let x0 = (size - w) / 2.0 + rng.random_range(-0.4..=0.4);
    let y0 = (size - h) / 2.0 + rng.random_range(-0.4..=0.4);
    let mut gauss = || {
        let (u, v): (f64, f64) = (rng.random_range(1e-9..1.0), rng.random());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos() * s.jitter * h
    };
    let mut segs = Vec::new();
    for line in strokes {
        let pts: Vec<(f64, f64)> = line
            .iter()
            .map(|&(x, y)| {
                let (jx, jy) = (gauss(), gauss());
                (x0 + x * w + slant * (0.5 - y) * h + jx, y0 + y * h + jy)
            })
            .collect();
        segs.extend(pts.windows(2).map(|p| [p[0].0, p[0].1, p[1].0, p[1].1]));
    }
    segs
}

/// Anti-aliased strokes: each pixel's coverage from its centre's distance to the nearest segment
/// (a one-pixel ramp at the stroke edge). `segs[v]` are variant `v`'s segments; result `[V, size, size]`.
fn rasterise(segs: &[Vec<[f64; 4]>], widths: &[f64], size: usize) -> Tensor {
    let k = segs.iter().map(Vec::len).max().unwrap_or(1);
    // Pad with a far-away degenerate segment so every variant has `k` segments.
    let far = [-1e3, -1e3, -1e3, -1e3];
    let flat: Vec<f32> = segs
        .iter()
        .flat_map(|s| s.iter().copied().chain(std::iter::repeat(far)).take(k).flatten().map(|v| v as f32))
        .collect();
    let opts = (Kind::Float, Device::Cpu);
    let seg = Tensor::from_slice(&flat).view([segs.len() as i64, k as i64, 1, 4]);
    let (a, b) = (seg.narrow(3, 0, 2), seg.narrow(3, 2, 2)); // [V, K, 1, 2]
    let fine = size as i64;
    let c = Tensor::arange(fine, opts) + 0.5;
    let pix = Tensor::stack(
        &[c.view([1, fine]).expand([fine, fine], false), c.view([fine, 1]).expand([fine, fine], false)],
        2,
    )
    .view([1, 1, fine * fine, 2]);
    let ab = &b - &a;
    let t = ((&pix - &a) * &ab).sum_dim_intlist(3, false, Kind::Float)
        / (ab.square().sum_dim_intlist(3, false, Kind::Float) + 1e-9);
    let nearest = &a + t.clamp(0.0, 1.0).unsqueeze(3) * &ab;
    let d = (&pix - nearest).square().sum_dim_intlist(3, false, Kind::Float).sqrt().amin(1, false); // [V, P]
    let half = Tensor::from_slice(&widths.iter().map(|w| (w / 2.0) as f32).collect::<Vec<_>>()).view([-1, 1]);
    let cov = (half - d + 0.5).clamp(0.0, 1.0);
    (cov.view([-1, size as i64, size as i64]) * 255.0).round() / 255.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banks_are_deterministic_varied_and_inside_the_cell() {
        let (g, y) = render_bank(Charset::Letters, Style::letters(), 4, 1);
        assert_eq!(g.size(), [104, 12, 12]);
        assert_eq!(y.int64_value(&[103]), 25);
        assert!(g.equal(&render_bank(Charset::Letters, Style::letters(), 4, 1).0));
        assert!(!g.equal(&render_bank(Charset::Letters, Style::letters(), 4, 2).0));
        let ink = g.sum_dim_intlist([1, 2].as_slice(), false, Kind::Float);
        assert!(ink.min().double_value(&[]) > 8.0, "every glyph has visible strokes");
        assert!(g.max().double_value(&[]) == 1.0 && g.min().double_value(&[]) == 0.0);
        // Two variants of one class differ (jitter, slant, width).
        assert!(!g.get(0).equal(&g.get(1)));
    }
}
