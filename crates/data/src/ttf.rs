//! Letters A–Z from a TrueType/OpenType font through `ab_glyph` (docs/PROTOCOL.md §2.1: a sans-serif face
//! about 12 px tall). Variants differ in height and sub-pixel placement.

use ab_glyph::{Font, FontVec, PxScale, point};
use anyhow::{Context, Result, anyhow, ensure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// System sans-serif fonts tried, in order, when no `--font` is given: Liberation Sans first
/// (metric-compatible with the published Arial; Debian's `fonts-liberation`), DejaVu Sans after.
pub const SYSTEM_SANS: [&str; 6] = [
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// The published letters' font size: Arial at size 12, i.e. a 12 px em (capitals ≈ 8.6 px).
pub const PUBLISHED_EM_PX: f32 = 12.0;

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
            cells.extend(raster(&font, id.with_scale_and_position(scale, pos), size));
            labels.push(class as i64);
        }
    }
    Ok((Tensor::from_slice(&cells).view([-1, size as i64, size as i64]), Tensor::from_slice(&labels)))
}

/// One glyph per capital A–Z at the published size (docs/PROTOCOL.md §2.1): a `em_px` em, no size
/// jitter, centred on whole pixels in `size`×`size` cells. Returns glyphs `[26, size, size]` and
/// labels `[26]`.
pub fn render_published_letters(path: &Path, size: usize, em_px: f32) -> Result<(Tensor, Tensor)> {
    let font = load_font(path)?;
    // PIL's size is the em. Rather than rely on how ab_glyph maps a PxScale to the em, measure `H`
    // in font units and at a probe scale, and pick the scale that makes it em_px · cap/em tall.
    let em = font.units_per_em().ok_or_else(|| anyhow!("{}: the font has no units per em", path.display()))?;
    let h = font.glyph_id('H');
    let cap_units = font.outline(h).map(|o| o.bounds.height().abs()).ok_or_else(|| anyhow!("`H` has no outline"))?;
    let probe = font.outline_glyph(h.with_scale(PxScale::from(100.0))).ok_or_else(|| anyhow!("`H` has no outline"))?;
    let scale = PxScale::from(100.0 * (em_px * cap_units / em) / probe.px_bounds().height());
    let mut cells = Vec::with_capacity(26 * size * size);
    for class in 0..26u8 {
        let ch = (b'A' + class) as char;
        let id = font.glyph_id(ch);
        ensure!(id.0 != 0, "{}: the font has no glyph for `{ch}`", path.display());
        let at = font.outline_glyph(id.with_scale(scale)).ok_or_else(|| anyhow!("`{ch}` has no outline"))?;
        let bb = at.px_bounds();
        let pos = point(
            ((size as f32 - bb.width()) / 2.0).round() - bb.min.x,
            ((size as f32 - bb.height()) / 2.0).round() - bb.min.y,
        );
        cells.extend(raster(&font, id.with_scale_and_position(scale, pos), size));
    }
    let labels: Vec<i64> = (0..26).collect();
    Ok((Tensor::from_slice(&cells).view([26, size as i64, size as i64]), Tensor::from_slice(&labels)))
}

/// Coverage of a positioned glyph in a `size`×`size` cell, quantised to 8 bits as a PNG keeps it;
/// what falls outside the cell is cut.
fn raster(font: &impl Font, glyph: ab_glyph::Glyph, size: usize) -> Vec<f32> {
    let g = font.outline_glyph(glyph).expect("outline exists");
    let mut cell = vec![0f32; size * size];
    let min = g.px_bounds().min;
    g.draw(|x, y, c| {
        let (px, py) = (min.x as i64 + x as i64, min.y as i64 + y as i64);
        if (0..size as i64).contains(&px) && (0..size as i64).contains(&py) {
            cell[py as usize * size + px as usize] = (c.clamp(0.0, 1.0) * 255.0).round() / 255.0;
        }
    });
    cell
}
