//! Overlays drawn onto a batch of photos with a handful of tensor ops on the device
//! (docs/PROTOCOL.md §2.1): pick a class and glyph per example, its colour and positions, paste the glyph
//! into 32×32 canvases with one batched gather, and alpha-blend once.

use crate::glyphs::GlyphBank;
use featdrop_core::Task;
use tch::{Device, Kind, Tensor};

/// Opacity of the shape overlay (docs/PROTOCOL.md §2.1).
pub const SHAPE_ALPHA: f64 = 180.0 / 255.0;
/// Top-left corners `(x, y)` of the four digit copies.
pub const DIGIT_CORNERS: [(i64, i64); 4] = [(4, 4), (16, 4), (4, 16), (16, 16)];
/// Inclusive ranges of a letter copy's top-left coordinate on each axis: low half, high half.
pub const LETTER_RANGES: [(i64, i64); 2] = [(0, 6), (16, 21)];

/// Which overlay a dataset draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlayKind {
    /// One filled square/triangle/circle in the central third, random RGB at opacity 180/255.
    Shapes,
    /// One 10×10 digit pasted opaque (grey level kept) at the four [`DIGIT_CORNERS`].
    Digits,
    /// One capital ≈12 px tall in one opaque random RGB colour, once per quadrant at independent
    /// positions within [`LETTER_RANGES`].
    Letters,
}

impl OverlayKind {
    /// The overlay that carries the catalogue's overlay task `name` (`shape`, `digit`, `letter`).
    pub fn for_task(name: &str) -> anyhow::Result<Self> {
        [Self::Shapes, Self::Digits, Self::Letters]
            .into_iter()
            .find(|k| k.task().name == name)
            .ok_or_else(|| anyhow::anyhow!("no image overlay draws the task `{name}`; known: shape, digit, letter"))
    }

    /// The overlay's downstream task (`shape` 3, `digit` 10, `letter` 26 classes).
    pub fn task(self) -> Task {
        match self {
            Self::Shapes => Task::new("shape", 3),
            Self::Digits => Task::new("digit", 10),
            Self::Letters => Task::new("letter", 26),
        }
    }

    /// Human names of the classes, by label.
    pub fn class_names(self) -> Vec<String> {
        match self {
            Self::Shapes => ["square", "triangle", "circle"].map(String::from).to_vec(),
            Self::Digits => (0..10).map(|d| d.to_string()).collect(),
            Self::Letters => (b'A'..=b'Z').map(|c| (c as char).to_string()).collect(),
        }
    }
}

/// The random choices of one batch's overlays; all tensors on the overlay's device.
#[derive(Debug)]
pub struct OverlayDraw {
    /// `[B]` int64 overlay class (the overlay task's label).
    pub class: Tensor,
    /// `[B]` int64 index into the glyph bank.
    pub glyph: Tensor,
    /// `[B, 3]` float RGB colour in [0, 1] (unused by digits, which keep their grey level).
    pub color: Tensor,
    /// `[B, K]` int64 left edge of each of the K copies (1 for shapes, 4 otherwise).
    pub dx: Tensor,
    /// `[B, K]` int64 top edge of each copy.
    pub dy: Tensor,
}

impl OverlayDraw {
    /// Takes `other`'s draw where `mask` (`[B]` bool) is true, this one's elsewhere.
    pub fn select(&self, mask: &Tensor, other: &OverlayDraw) -> OverlayDraw {
        let col = mask.view([-1, 1]);
        OverlayDraw {
            class: other.class.where_self(mask, &self.class),
            glyph: other.glyph.where_self(mask, &self.glyph),
            color: other.color.where_self(&col, &self.color),
            dx: other.dx.where_self(&col, &self.dx),
            dy: other.dy.where_self(&col, &self.dy),
        }
    }

    /// The draws of examples `idx` (`[B]` int64).
    pub fn index(&self, idx: &Tensor) -> OverlayDraw {
        let f = |t: &Tensor| t.index_select(0, idx);
        OverlayDraw {
            class: f(&self.class),
            glyph: f(&self.glyph),
            color: f(&self.color),
            dx: f(&self.dx),
            dy: f(&self.dy),
        }
    }
}

/// Luminance gap the built-in letters keep from their photo (see [`Overlay::with_letter_contrast`]).
pub const SYNTHETIC_LETTER_CONTRAST: f64 = 0.35;

/// An overlay rule with its glyph bank on the device.
#[derive(Debug)]
pub struct Overlay {
    /// The rule.
    pub kind: OverlayKind,
    /// Glyphs: `[3, 32, 32]` masks for shapes, `[M, 10, 10]` digits, `[M, 12, 12]` letters.
    pub bank: GlyphBank,
    /// Least luminance gap between a letter's colour and its photo's mean; 0 keeps the colour as
    /// drawn (the published rule).
    letter_contrast: f64,
}

impl Overlay {
    /// An overlay of `kind` drawing from `bank`, colours exactly as drawn (docs/PROTOCOL.md §2.1).
    pub fn new(kind: OverlayKind, bank: GlyphBank) -> Self {
        Self { kind, bank, letter_contrast: 0.0 }
    }

    /// Keeps each letter's luminance (Rec. 601 weights) at least `gap` (in [0, 0.5]) away from its
    /// photo's mean luminance, moving the drawn colour towards black or white when it is closer.
    ///
    /// Why: with uniformly random colours a letter often nearly vanishes into a busy synthetic
    /// photo, and the letter task then becomes harder than the photo task; docs/PROTOCOL.md §7 asks the
    /// built-in sources to make the overlay an easy, reliable shortcut (strong contrast). Real
    /// sources keep the published rule (gap 0).
    pub fn with_letter_contrast(mut self, gap: f64) -> Self {
        assert!((0.0..=0.5).contains(&gap), "letter contrast gap {gap} outside [0, 0.5]");
        self.letter_contrast = gap;
        self
    }

    /// The device the bank (and so every draw) lives on.
    pub fn device(&self) -> Device {
        self.bank.glyphs.device()
    }

    /// Draws `n` overlays from libtorch's global generator: classes uniform and independent of
    /// anything else, a random glyph of that class, colour uniform in RGB, positions by the rule.
    pub fn draw(&self, n: i64) -> OverlayDraw {
        let dev = self.device();
        let class = Tensor::randint(self.bank.classes as i64, [n], (Kind::Int64, dev));
        let glyph = self.bank.pick(&class);
        let color = Tensor::rand([n, 3], (Kind::Float, dev));
        let fixed = |v: [i64; 4]| Tensor::from_slice(&v).to_device(dev).view([1, 4]).expand([n, 4], false).contiguous();
        let (dx, dy) = match self.kind {
            OverlayKind::Shapes => {
                let z = Tensor::zeros([n, 1], (Kind::Int64, dev));
                (z.shallow_clone(), z)
            }
            OverlayKind::Digits => (fixed(DIGIT_CORNERS.map(|c| c.0)), fixed(DIGIT_CORNERS.map(|c| c.1))),
            OverlayKind::Letters => {
                // Copies in reading order: top-left, top-right, bottom-left, bottom-right.
                let [(l0, l1), (h0, h1)] = LETTER_RANGES;
                let lo = fixed([l0, h0, l0, h0]);
                let width = fixed([l1 - l0 + 1, h1 - h0 + 1, l1 - l0 + 1, h1 - h0 + 1]);
                let offset = |w: &Tensor| (Tensor::rand([n, 4], (Kind::Float, dev)) * w).floor().to_kind(Kind::Int64);
                let dx = &lo + offset(&width);
                let (lo_y, w_y) =
                    (fixed([l0, l0, h0, h0]), fixed([l1 - l0 + 1, l1 - l0 + 1, h1 - h0 + 1, h1 - h0 + 1]));
                (dx, &lo_y + offset(&w_y))
            }
        };
        OverlayDraw { class, glyph, color, dx, dy }
    }

    /// Composes `photos` (`[B, 3, 32, 32]` float in [0, 1], on the overlay's device) with `draw`;
    /// returns the overlaid images, same shape, in [0, 1].
    pub fn compose(&self, photos: &Tensor, draw: &OverlayDraw) -> Tensor {
        let glyphs = self.bank.glyphs.index_select(0, &draw.glyph);
        let cover = paste(&glyphs, &draw.dx, &draw.dy).amax(1, false).unsqueeze(1); // [B, 1, 32, 32]
        let color = draw.color.view([-1, 3, 1, 1]);
        match self.kind {
            OverlayKind::Shapes => blend(photos, &color, &(cover * SHAPE_ALPHA)),
            // MNIST convention: zero pixels transparent, stroke opaque with its own grey level.
            OverlayKind::Digits => blend(photos, &cover, &cover.gt(0.0).to_kind(Kind::Float)),
            OverlayKind::Letters => blend(photos, &self.contrasted(photos, &color), &cover),
        }
    }

    /// Letter colours `[B, 3, 1, 1]` moved to keep [`Self::with_letter_contrast`]'s gap: a colour
    /// too close in luminance to the photo's mean is darkened to sit `gap` below it (bright photos)
    /// or lightened to sit `gap` above it (dark ones). Deterministic in photo and draw, so a pair's
    /// views still agree.
    fn contrasted(&self, photos: &Tensor, color: &Tensor) -> Tensor {
        if self.letter_contrast == 0.0 {
            return color.shallow_clone();
        }
        let gap = self.letter_contrast;
        let weights = Tensor::from_slice(&[0.299f32, 0.587, 0.114]).to_device(color.device()).view([1, 3, 1, 1]);
        let lum = |x: &Tensor| (x * &weights).sum_dim_intlist(1, true, Kind::Float);
        let (l_bg, l_c) = (lum(&photos.mean_dim(&[2i64, 3][..], true, Kind::Float)), lum(color));
        let darker = l_bg.gt(0.5);
        let target = (&l_bg - gap).where_self(&darker, &(&l_bg + gap));
        // Scale towards black (or white) to reach the target luminance exactly, keeping the hue
        // and never leaving [0, 1]; only colours inside the gap are moved, so the factor is < 1.
        let to_black = color * (&target / l_c.clamp_min(1e-6));
        let room = (1.0 - &target) / (l_c.neg() + 1.0).clamp_min(1e-6);
        let to_white: Tensor = 1.0 - (1.0 - color) * room;
        let moved = to_black.where_self(&darker, &to_white);
        moved.where_self(&(l_c - l_bg).abs().lt(gap), color)
    }
}

/// `x·(1−α) + value·α`.
fn blend(x: &Tensor, value: &Tensor, alpha: &Tensor) -> Tensor {
    x * (1.0 - alpha) + value * alpha
}

/// Pastes glyphs `[B, S, S]` into `K` 32×32 canvases per example with top-left corners `dx`,
/// `dy` (`[B, K]`, may push the glyph partly off the canvas): `[B, K, 32, 32]`. One gather: each
/// canvas pixel reads glyph pixel `(y − dy, x − dx)` when that lies inside the glyph.
pub fn paste(glyphs: &Tensor, dx: &Tensor, dy: &Tensor) -> Tensor {
    let (b, s) = (glyphs.size()[0], glyphs.size()[1]);
    let k = dx.size()[1];
    let axis = Tensor::arange(32, (Kind::Int64, glyphs.device()));
    let ys = axis.view([1, 1, 32, 1]) - dy.view([b, k, 1, 1]);
    let xs = axis.view([1, 1, 1, 32]) - dx.view([b, k, 1, 1]);
    let valid = ys.ge(0).logical_and(&ys.lt(s)).logical_and(&xs.ge(0)).logical_and(&xs.lt(s));
    let flat = ys.clamp(0, s - 1) * s + xs.clamp(0, s - 1); // [B, K, 32, 32]
    let src = glyphs.reshape([b, 1, s * s]).expand([b, k, s * s], false);
    src.gather(2, &flat.reshape([b, k, 1024]), false).view([b, k, 32, 32]) * valid.to_kind(glyphs.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paste_places_and_clips() {
        let g = Tensor::ones([1, 2, 2], (Kind::Float, Device::Cpu));
        let c = paste(&g, &Tensor::from_slice(&[3i64, 31]).view([1, 2]), &Tensor::from_slice(&[5i64, 0]).view([1, 2]));
        assert_eq!(c.size(), [1, 2, 32, 32]);
        assert_eq!(c.get(0).get(0).sum(Kind::Float).double_value(&[]), 4.0);
        assert_eq!(c.double_value(&[0, 0, 5, 3]), 1.0);
        assert_eq!(c.double_value(&[0, 0, 6, 4]), 1.0);
        assert_eq!(c.double_value(&[0, 0, 4, 3]), 0.0);
        // Partly off the right edge: only one column stays.
        assert_eq!(c.get(0).get(1).sum(Kind::Float).double_value(&[]), 2.0);
    }
}
