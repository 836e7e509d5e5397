//! Glyph banks: many looks of every overlay class as tensors on the device, from which a batch's
//! overlays are picked with one gather (docs/PROTOCOL.md §2.1).

use crate::stroke_font::{self, Charset, Style};
use crate::{idx, ttf};
use anyhow::{Result, ensure};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Glyphs of an overlay task, grouped by class.
#[derive(Debug)]
pub struct GlyphBank {
    /// `[M, S, S]` float in [0, 1]: coverage (letters, shapes) or grey level (digits); 0 is
    /// background.
    pub glyphs: Tensor,
    /// `[M]` int64 class of each glyph, ascending.
    pub labels: Tensor,
    /// `[C]` int64 index of each class's first glyph.
    offsets: Tensor,
    /// `[C]` int64 number of glyphs of each class.
    counts: Tensor,
    /// Number of classes `C`.
    pub classes: usize,
    /// Where the glyphs came from (for logs and `stats`).
    pub source: String,
}

impl GlyphBank {
    /// A bank from glyphs `[M, S, S]` and labels `[M]` in any order; every class must be present.
    pub fn new(glyphs: Tensor, labels: Tensor, classes: usize, source: impl Into<String>) -> Result<Self> {
        let order = labels.argsort_stable(true, 0, false);
        let (glyphs, labels) = (glyphs.index_select(0, &order), labels.index_select(0, &order));
        let counts = labels.bincount(None::<Tensor>, classes as i64);
        let source = source.into();
        ensure!(counts.size() == [classes as i64], "{source}: labels exceed {classes} classes");
        ensure!(counts.min().int64_value(&[]) > 0, "{source}: some class of {classes} has no glyph");
        let offsets = counts.cumsum(0, Kind::Int64) - &counts;
        Ok(Self { glyphs: glyphs.to_kind(Kind::Float), labels, offsets, counts, classes, source })
    }

    /// Cell side `S` in pixels.
    pub fn size(&self) -> i64 {
        self.glyphs.size()[1]
    }

    /// Number of glyphs `M`.
    pub fn len(&self) -> usize {
        self.glyphs.size()[0] as usize
    }

    /// Whether the bank is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same bank on `device`.
    pub fn to_device(&self, device: Device) -> Self {
        Self {
            glyphs: self.glyphs.to_device(device),
            labels: self.labels.to_device(device),
            offsets: self.offsets.to_device(device),
            counts: self.counts.to_device(device),
            classes: self.classes,
            source: self.source.clone(),
        }
    }

    /// A uniformly random glyph of each requested class (`class` `[B]` int64, on the bank's
    /// device); draws from libtorch's global generator. Returns bank indices `[B]`.
    pub fn pick(&self, class: &Tensor) -> Tensor {
        let n = self.counts.index_select(0, class);
        let u = Tensor::rand([class.size()[0]], (Kind::Float, class.device()));
        let within = (u * n.to_kind(Kind::Float)).floor().to_kind(Kind::Int64).minimum(&(n - 1));
        self.offsets.index_select(0, class) + within
    }
}

/// Synthetic handwriting-like digits from the stroke font: 10×10, `per_class` looks each.
pub fn stroke_digits(per_class: usize, seed: u64) -> Result<GlyphBank> {
    let (g, y) = stroke_font::render_bank(Charset::Digits, Style::digits(), per_class, seed);
    GlyphBank::new(g, y, 10, "stroke font (synthetic digits)")
}

/// Synthetic capitals from the stroke font: 12×12, `per_class` looks each.
pub fn stroke_letters(per_class: usize, seed: u64) -> Result<GlyphBank> {
    let (g, y) = stroke_font::render_bank(Charset::Letters, Style::letters(), per_class, seed);
    GlyphBank::new(g, y, 26, "stroke font (synthetic letters)")
}

/// Capitals rendered from a TTF font: 12×12, `per_class` looks each.
pub fn published_letters(font: &Path) -> Result<GlyphBank> {
    let (g, y) = ttf::render_published_letters(font, 12, ttf::PUBLISHED_EM_PX)?;
    GlyphBank::new(
        g,
        y,
        26,
        format!("TTF font {} at the published size (12 px em, one glyph per letter)", font.display()),
    )
}

/// Letters from a TTF font with size and placement jitter (synthetic source with a font).
pub fn ttf_letters(font: &Path, per_class: usize, seed: u64) -> Result<GlyphBank> {
    let (g, y) = ttf::render_letters(font, 12, per_class, seed)?;
    GlyphBank::new(g, y, 26, format!("TTF font {}", font.display()))
}

/// MNIST training digits from `dir`, area-resized from 28×28 to 10×10 (docs/PROTOCOL.md §2.1).
/// Grey levels are kept at 8-bit resolution, so a pixel that rounds to 0 is background.
pub fn mnist_digits(dir: &Path) -> Result<GlyphBank> {
    let (x, y) = idx::load_mnist(dir, "train")?;
    let x = (x.to_kind(Kind::Float) / 255.0).unsqueeze(1).adaptive_avg_pool2d([10, 10]).squeeze_dim(1);
    let x = (x * 255.0).round() / 255.0;
    GlyphBank::new(x, y, 10, format!("MNIST {}", dir.display()))
}

/// Shape masks on the full 32×32 canvas (docs/PROTOCOL.md §2.1): class 0 a filled square, 1 a triangle
/// with its apex at the top centre, 2 a circle, each filling the central-third box
/// `32/3 … 64/3`; coverage from 4×4 supersampling.
pub fn shape_masks() -> Result<GlyphBank> {
    let (lo, hi) = (32.0 / 3.0, 64.0 / 3.0);
    let (c, r) = ((lo + hi) / 2.0, (hi - lo) / 2.0);
    let inside = |k: usize, x: f64, y: f64| -> bool {
        let in_box = (lo..=hi).contains(&x) && (lo..=hi).contains(&y);
        match k {
            0 => in_box,
            // Apex (c, lo), base corners (lo, hi) and (hi, hi): half-width grows linearly with y.
            1 => in_box && (x - c).abs() <= (y - lo) / (hi - lo) * r,
            _ => (x - c).powi(2) + (y - c).powi(2) <= r * r,
        }
    };
    let mut cells = vec![0f32; 3 * 32 * 32];
    for k in 0..3 {
        for py in 0..32 {
            for px in 0..32 {
                let hits = (0..16)
                    .filter(|s| {
                        inside(k, px as f64 + (s % 4) as f64 / 4.0 + 0.125, py as f64 + (s / 4) as f64 / 4.0 + 0.125)
                    })
                    .count();
                cells[k * 1024 + py * 32 + px] = hits as f32 / 16.0;
            }
        }
    }
    GlyphBank::new(Tensor::from_slice(&cells).view([3, 32, 32]), Tensor::from_slice(&[0i64, 1, 2]), 3, "shapes")
}
