//! Letters A–Z from a TrueType/OpenType font through `ab_glyph` (docs/PROTOCOL.md §2.1: a sans-serif face
//! about 12 px tall). Variants differ in height and sub-pixel placement.

use ab_glyph::{Font, FontVec, PxScale, point};
use anyhow::{Context, Result, anyhow, ensure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// System sans-serif fonts tried, in order, when no `--font` is given.
pub const SYSTEM_SANS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// The first installed system sans-serif font, if any.
pub fn system_sans() -> Option<PathBuf> {
    SYSTEM_SANS.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Loads a font file, naming it in errors.
pub fn load_font(path: &Path) -> Result<FontVec> {
    let bytes = std::fs::read(path).with_context(|| format!("reading font {}", path.display()))?;
    FontVec::try_from_vec(bytes).map_err(|e| anyhow!("{}: not a usable TTF/OTF font: {e}", path.display()))
}

/// Renders `variants` looks of each capital A–Z into `size`×`size` cells: glyphs
/// `[26·variants, size, size]` coverage in [0, 1] (8-bit levels) and labels `[26·variants]`.
pub fn render_letters(path: &Path, size: usize, variants: usize, seed: u64) -> Result<(Tensor, Tensor)> {
    let font = load_font(path)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cells = Vec::with_capacity(26 * variants * size * size);
    let mut labels = Vec::with_capacity(26 * variants);
    for class in 0..26u8 {
        let ch = (b'A' + class) as char;
        let id = font.glyph_id(ch);
        ensure!(id.0 != 0, "{}: the font has no glyph for `{ch}`", path.display());
        // Measure once at a large size to pick the scale that makes the glyph the wanted height.
        let probe =
            font.outline_glyph(id.with_scale(PxScale::from(100.0))).ok_or_else(|| anyhow!("`{ch}` has no outline"))?;
        let b = probe.px_bounds();
        for _ in 0..variants {
            let target = size as f32 * rng.random_range(0.85f32..=1.0);
            let k = (target / b.height()).min(size as f32 * 0.98 / b.width());
            let scale = PxScale::from(100.0 * k);
            let at = font.outline_glyph(id.with_scale(scale)).expect("outline exists at any scale");
            let bb = at.px_bounds();
            let (ox, oy) = (rng.random_range(-0.4f32..=0.4), rng.random_range(-0.4f32..=0.4));
            let pos = point(
                ox + (size as f32 - bb.width()) / 2.0 - bb.min.x,
                oy + (size as f32 - bb.height()) / 2.0 - bb.min.y,
            );
            let g = font.outline_glyph(id.with_scale_and_position(scale, pos)).expect("outline exists");
            let mut cell = vec![0f32; size * size];
            let min = g.px_bounds().min;
            g.draw(|x, y, c| {
                let (px, py) = (min.x as i64 + x as i64, min.y as i64 + y as i64);
                if (0..size as i64).contains(&px) && (0..size as i64).contains(&py) {
                    cell[py as usize * size + px as usize] = (c.clamp(0.0, 1.0) * 255.0).round() / 255.0;
                }
            });
            cells.extend(cell);
            labels.push(class as i64);
        }
    }
    Ok((Tensor::from_slice(&cells).view([-1, size as i64, size as i64]), Tensor::from_slice(&labels)))
}
