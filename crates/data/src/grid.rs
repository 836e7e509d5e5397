//! Labelled PNG grids of images (previews of datasets, view grids of runs; docs/PROTOCOL.md §8):
//! images `[N, 3, H, W]` in [0, 1] become an upscaled grid with a text label under each cell,
//! written atomically.

use ab_glyph::{Font, FontVec, PxScale, ScaleFont, point};
use anyhow::{Result, ensure};
use image::{ImageFormat, Rgb, RgbImage};
use std::path::Path;
use std::sync::OnceLock;
use tch::{Kind, Tensor};

/// Label text height in pixels.
const TEXT_PX: f32 = 12.0;
/// Gap between cells in pixels.
const GAP: u32 = 4;

/// The label font (a system sans), loaded once; `None` when none is installed (labels are then
/// left out, with a warning).
fn label_font() -> Option<&'static FontVec> {
    static FONT: OnceLock<Option<FontVec>> = OnceLock::new();
    FONT.get_or_init(|| {
        let font = crate::ttf::system_sans().and_then(|p| crate::ttf::load_font(&p).ok());
        if font.is_none() {
            tracing::warn!("no system sans font found; grid labels are left out");
        }
        font
    })
    .as_ref()
}

/// Lays out a grid: `cols` cells per row, each image upscaled `scale`× (nearest neighbour) with
/// its label (may hold `\n`) underneath.
pub fn render_grid(images: &Tensor, labels: &[String], cols: usize, scale: u32) -> Result<RgbImage> {
    let size = images.size();
    ensure!(size.len() == 4 && size[1] == 3, "grid images must be [N, 3, H, W]; got {size:?}");
    let (n, h, w) = (size[0] as usize, size[2] as u32, size[3] as u32);
    ensure!(labels.len() == n, "grid has {n} images but {} labels", labels.len());
    let (cols, scale) = (cols.clamp(1, n.max(1)), scale.max(1));
    let rows = n.div_ceil(cols);
    let lines = labels.iter().map(|l| l.lines().count()).max().unwrap_or(0) as u32;
    let label_h = lines * (TEXT_PX as u32 + 2) + 2;
    let (cw, ch) = (w * scale, h * scale + label_h);
    let mut img = RgbImage::from_pixel(cols as u32 * (cw + GAP) + GAP, rows as u32 * (ch + GAP) + GAP, Rgb([255; 3]));
    let pixels: Vec<u8> = Vec::try_from(
        (images.to_device(tch::Device::Cpu).to_kind(Kind::Float).clamp(0.0, 1.0) * 255.0)
            .round()
            .to_kind(Kind::Uint8)
            .permute([0, 2, 3, 1])
            .contiguous()
            .flatten(0, -1),
    )?;
    for (i, label) in labels.iter().enumerate() {
        let (x0, y0) = (GAP + (i % cols) as u32 * (cw + GAP), GAP + (i / cols) as u32 * (ch + GAP));
        for y in 0..h * scale {
            for x in 0..w * scale {
                let at = ((i as u32 * h + y / scale) * w + x / scale) as usize * 3;
                img.put_pixel(x0 + x, y0 + y, Rgb([pixels[at], pixels[at + 1], pixels[at + 2]]));
            }
        }
        if let Some(font) = label_font() {
            for (l, line) in label.lines().enumerate() {
                draw_text(&mut img, font, line, x0 + 1, y0 + h * scale + 2 + l as u32 * (TEXT_PX as u32 + 2), x0 + cw);
            }
        }
    }
    Ok(img)
}

/// Draws `text` in black with its top-left at `(x, y)`, clipped at column `x_max`.
fn draw_text(img: &mut RgbImage, font: &FontVec, text: &str, x: u32, y: u32, x_max: u32) {
    let scaled = font.as_scaled(PxScale::from(TEXT_PX));
    let mut caret = x as f32;
    let baseline = y as f32 + scaled.ascent();
    for c in text.chars() {
        let mut g = scaled.scaled_glyph(c);
        let advance = scaled.h_advance(g.id);
        g.position = point(caret, baseline);
        if let Some(o) = font.outline_glyph(g) {
            let b = o.px_bounds();
            o.draw(|gx, gy, cov| {
                let (px, py) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
                if px >= 0 && (px as u32) < x_max.min(img.width()) && py >= 0 && (py as u32) < img.height() {
                    let p = img.get_pixel_mut(px as u32, py as u32);
                    let v = (255.0 * (1.0 - cov.clamp(0.0, 1.0))) as u8;
                    *p = Rgb([p[0].min(v), p[1].min(v), p[2].min(v)]);
                }
            });
        }
        caret += advance;
    }
}

/// Renders a grid (see [`render_grid`]) and writes it as PNG atomically.
pub fn write_grid(path: &Path, images: &Tensor, labels: &[String], cols: usize, scale: u32) -> Result<()> {
    let img = render_grid(images, labels, cols, scale)?;
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Png)?;
    featdrop_core::io::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_size_and_pixels() {
        let x = Tensor::zeros([3, 3, 2, 2], (Kind::Float, tch::Device::Cpu));
        let _ = x.get(1).get(0).fill_(1.0); // image 1 is red
        let labels: Vec<String> = ["a", "b\nc", "d"].map(String::from).to_vec();
        let img = render_grid(&x, &labels, 2, 3).unwrap();
        let label_h = 2 * (TEXT_PX as u32 + 2) + 2;
        assert_eq!(img.width(), 2 * (6 + GAP) + GAP);
        assert_eq!(img.height(), 2 * (6 + label_h + GAP) + GAP);
        assert_eq!(img.get_pixel(GAP + 6 + GAP + 5, GAP + 5), &Rgb([255, 0, 0]));
        assert_eq!(img.get_pixel(GAP, GAP), &Rgb([0, 0, 0]));
        assert!(render_grid(&x, &labels[..2], 2, 3).is_err());
    }
}
