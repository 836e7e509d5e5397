//! MNIST IDX files (docs/PROTOCOL.md §2.1): a big-endian header (magic `0x0000_08NN`, where `08` means
//! unsigned bytes and `NN` the number of dimensions), one big-endian `u32` per dimension, then the
//! bytes. Files may be gzip-compressed (the official `*.gz`) or raw.

use anyhow::{Context, Result, bail, ensure};
use flate2::bufread::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Magic number of an IDX file of unsigned-byte images (3 dimensions: count, rows, columns).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels (1 dimension: count).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// A parsed IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Reads a whole file, transparently gunzipping it when it starts with the gzip magic `1f 8b`.
/// Bytes after the gzip stream are an error (a concatenated second gzip member is read on, as
/// `gunzip` does): a file with something appended is not the file it claims to be.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if raw.starts_with(&GZIP_MAGIC) { gunzip_all(&raw, path) } else { Ok(raw) }
}

/// The two bytes every gzip member starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Decodes every gzip member of `raw`; anything after the last member is an error naming `path`.
fn gunzip_all(raw: &[u8], path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len() * 4);
    let mut rest = raw;
    while !rest.is_empty() {
        if !rest.starts_with(&GZIP_MAGIC) {
            bail!(
                "{}: {} bytes of something else after the gzip stream (which ends at byte {} of {}); \
                 the file was appended to or corrupted — fetch it again",
                path.display(),
                rest.len(),
                raw.len() - rest.len(),
                raw.len()
            );
        }
        // The bufread decoder over a slice consumes exactly its member, so `rest` is what follows.
        let mut member = GzDecoder::new(rest);
        member
            .read_to_end(&mut out)
            .with_context(|| format!("{}: corrupted or truncated gzip stream", path.display()))?;
        rest = member.into_inner();
    }
    Ok(out)
}

/// Parses IDX bytes; `name` (the file) and `magic` (what the caller expects) go into errors.
pub fn parse_idx(bytes: &[u8], name: &str, magic: u32) -> Result<IdxArray> {
    let ndim = (magic & 0xff) as usize;
    let header = 4 + 4 * ndim;
    ensure!(bytes.len() >= 4, "{name}: truncated header: expected at least {header} bytes, found {}", bytes.len());
    let found = u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes"));
    ensure!(
        found == magic,
        "{name}: wrong magic number: expected {magic:#010x} (unsigned bytes, {ndim} dimensions), found {found:#010x}"
    );
    ensure!(bytes.len() >= header, "{name}: truncated header: expected {header} bytes, found {}", bytes.len());
    let dims: Vec<usize> = (0..ndim)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let want: usize = dims.iter().product();
    let have = bytes.len() - header;
    if have != want {
        bail!("{name}: expected {want} data bytes for dimensions {dims:?}, found {have} (truncated or corrupted)");
    }
    Ok(IdxArray { dims, data: bytes[header..].to_vec() })
}

/// Reads and parses one IDX file (gzip or raw).
pub fn read_idx(path: &Path, magic: u32) -> Result<IdxArray> {
    parse_idx(&read_maybe_gz(path)?, &path.display().to_string(), magic)
}

/// The side of an MNIST image: 28 × 28 pixels.
pub const MNIST_SIDE: usize = 28;

/// The file `stem` in `dir`, raw or with `.gz`, whichever exists (raw first); a folder of that
/// name is an error naming it.
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    let candidates = [dir.join(stem), dir.join(format!("{stem}.gz"))];
    crate::files::first_file(&candidates)?.ok_or_else(|| {
        anyhow::anyhow!("{}: no MNIST file `{stem}` or `{stem}.gz` (run `cargo xtask fetch`)", dir.display())
    })
}

/// Whether `dir` holds MNIST training images (raw or gzip; or a folder of that name, which
/// [`load_mnist`] then names).
pub fn has_mnist(dir: &Path) -> bool {
    let stem = "train-images-idx3-ubyte";
    [dir.join(stem), dir.join(format!("{stem}.gz"))]
        .iter()
        .any(|p| crate::files::entry(p) != crate::files::Entry::Missing)
}

/// Loads MNIST images and labels from `dir` (`prefix` is `train` or `t10k`):
/// images `[N, H, W]` uint8 (0–255) and labels `[N]` int64 in 0..=9, on the CPU.
///
/// Checks format and record count (images and labels agree, labels are digits), not checksums.
pub fn load_mnist(dir: &Path, prefix: &str) -> Result<(Tensor, Tensor)> {
    let ipath = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lpath = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = read_idx(&ipath, IMAGES_MAGIC)?;
    // Any other image size reads the same bytes as garbled digits (14 × 56 holds as many as 28 × 28).
    ensure!(
        images.dims[1..] == [MNIST_SIDE, MNIST_SIDE],
        "{}: expected {MNIST_SIDE}×{MNIST_SIDE} images (MNIST), found {}×{} (dimensions {:?})",
        ipath.display(),
        images.dims[1],
        images.dims[2],
        images.dims
    );
    let labels = read_idx(&lpath, LABELS_MAGIC)?;
    ensure!(
        labels.dims[0] == images.dims[0],
        "{}: expected {} labels (one per image in {}), found {}",
        lpath.display(),
        images.dims[0],
        ipath.display(),
        labels.dims[0]
    );
    if let Some((i, &l)) = labels.data.iter().enumerate().find(|(_, l)| **l > 9) {
        bail!("{}: label {i} expected 0..=9, found {l}", lpath.display());
    }
    let dims: Vec<i64> = images.dims.iter().map(|&d| d as i64).collect();
    let x = Tensor::from_slice(&images.data).view(dims.as_slice());
    let y = Tensor::from_slice(&labels.data).to_kind(Kind::Int64);
    Ok((x, y))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IDX bytes of `n` 2×3 images with the given header magic.
    fn images(n: u32, magic: u32) -> Vec<u8> {
        let mut b = magic.to_be_bytes().to_vec();
        for d in [n, 2, 3] {
            b.extend(d.to_be_bytes());
        }
        b.extend((0..n * 6).map(|i| i as u8));
        b
    }

    #[test]
    fn parses_and_rejects() {
        let a = parse_idx(&images(4, IMAGES_MAGIC), "x.idx", IMAGES_MAGIC).unwrap();
        assert_eq!(a.dims, [4, 2, 3]);
        assert_eq!(a.data[23], 23);
        let e = parse_idx(&images(4, LABELS_MAGIC), "x.idx", IMAGES_MAGIC).unwrap_err().to_string();
        assert!(e.contains("x.idx") && e.contains("expected 0x00000803") && e.contains("found 0x00000801"), "{e}");
        let bytes = images(4, IMAGES_MAGIC);
        let e = parse_idx(&bytes[..bytes.len() - 5], "x.idx", IMAGES_MAGIC).unwrap_err().to_string();
        assert!(e.contains("x.idx") && e.contains("expected 24 data bytes") && e.contains("found 19"), "{e}");
        let e = parse_idx(&bytes[..6], "x.idx", IMAGES_MAGIC).unwrap_err().to_string();
        assert!(e.contains("truncated header") && e.contains("expected 16") && e.contains("found 6"), "{e}");
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// Issue 19.2: bytes appended after the gzip stream were silently ignored.
    #[test]
    fn gzip_with_bytes_after_the_stream_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = images(4, IMAGES_MAGIC);
        let path = dir.path().join("t.idx.gz");
        let mut file = gz(&bytes);
        let stream = file.len();
        std::fs::write(&path, &file).unwrap();
        assert_eq!(read_idx(&path, IMAGES_MAGIC).unwrap().data, bytes[16..]);
        file.extend_from_slice(b"garbage!");
        std::fs::write(&path, &file).unwrap();
        let e = format!("{:#}", read_idx(&path, IMAGES_MAGIC).unwrap_err());
        let at = format!("ends at byte {stream} of {}", stream + 8);
        assert!(e.contains("t.idx.gz") && e.contains("8 bytes") && e.contains(&at), "{e}");
        // Two gzip members concatenated are one valid gzip file (as `gunzip` reads it).
        let two = [gz(&bytes[..10]), gz(&bytes[10..])].concat();
        std::fs::write(&path, two).unwrap();
        assert_eq!(read_idx(&path, IMAGES_MAGIC).unwrap().data, bytes[16..]);
    }
}
