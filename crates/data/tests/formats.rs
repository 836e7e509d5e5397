//! Real-data parsers on files this test writes in the official formats (docs/PROTOCOL.md §2.1).

use featdrop_data::{DatasetSpec, Source, cifar, glyphs, idx, open};
use flate2::{Compression, write::GzEncoder};
use std::io::Write;
use std::path::Path;

fn idx_bytes(magic: u32, dims: &[u32], fill: impl Fn(usize) -> u8) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    dims.iter().for_each(|d| b.extend(d.to_be_bytes()));
    let n: u32 = dims.iter().product();
    b.extend((0..n as usize).map(fill));
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `n` MNIST-like 28×28 images whose label is `i % 10`, gzip or raw.
fn write_mnist(dir: &Path, n: u32, gzip: bool, labels: u32) {
    let images = idx_bytes(idx::IMAGES_MAGIC, &[n, 28, 28], |i| if (i % 784) / 28 % 3 == 0 { 255 } else { 0 });
    let lab = idx_bytes(idx::LABELS_MAGIC, &[labels], |i| (i % 10) as u8);
    let suffix = if gzip { ".gz" } else { "" };
    let encode = |b: &[u8]| if gzip { gz(b) } else { b.to_vec() };
    std::fs::write(dir.join(format!("train-images-idx3-ubyte{suffix}")), encode(&images)).unwrap();
    std::fs::write(dir.join(format!("train-labels-idx1-ubyte{suffix}")), encode(&lab)).unwrap();
}

#[test]
fn mnist_gzip_and_raw_load_into_a_digit_bank() {
    for gzip in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        write_mnist(dir.path(), 30, gzip, 30);
        let (x, y) = idx::load_mnist(dir.path(), "train").unwrap();
        assert_eq!(x.size(), [30, 28, 28]);
        assert_eq!(y.int64_value(&[13]), 3);
        let bank = glyphs::mnist_digits(dir.path()).unwrap();
        assert_eq!((bank.len(), bank.size(), bank.classes), (30, 10, 10));
    }
}

#[test]
fn broken_mnist_files_are_named_with_expected_and_found() {
    let dir = tempfile::tempdir().unwrap();
    // Label count that does not match the images.
    write_mnist(dir.path(), 30, true, 29);
    let e = format!("{:#}", idx::load_mnist(dir.path(), "train").unwrap_err());
    assert!(
        e.contains("train-labels-idx1-ubyte.gz") && e.contains("expected 30 labels") && e.contains("found 29"),
        "{e}"
    );
    // Wrong magic: a labels file where images belong.
    let lab = idx_bytes(idx::LABELS_MAGIC, &[30], |_| 0);
    std::fs::write(dir.path().join("train-images-idx3-ubyte.gz"), gz(&lab)).unwrap();
    let e = format!("{:#}", idx::load_mnist(dir.path(), "train").unwrap_err());
    assert!(
        e.contains("train-images-idx3-ubyte.gz") && e.contains("0x00000803") && e.contains("found 0x00000801"),
        "{e}"
    );
    // Truncated gzip stream.
    let full = gz(&idx_bytes(idx::IMAGES_MAGIC, &[30, 28, 28], |i| i as u8));
    std::fs::write(dir.path().join("train-images-idx3-ubyte.gz"), &full[..full.len() / 2]).unwrap();
    let e = format!("{:#}", idx::load_mnist(dir.path(), "train").unwrap_err());
    assert!(e.contains("train-images-idx3-ubyte.gz") && e.contains("gzip"), "{e}");
    // Truncated raw data.
    let raw = idx_bytes(idx::IMAGES_MAGIC, &[30, 28, 28], |i| i as u8);
    let p = dir.path().join("cut.idx");
    std::fs::write(&p, &raw[..raw.len() - 100]).unwrap();
    let e = format!("{:#}", idx::read_idx(&p, idx::IMAGES_MAGIC).unwrap_err());
    assert!(e.contains("cut.idx") && e.contains("expected 23520 data bytes") && e.contains("found 23420"), "{e}");
}

#[test]
fn cifar_files_load_and_broken_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let record = |label: u8, v: u8| std::iter::once(label).chain(std::iter::repeat_n(v, 3072));
    let file = |labels: &[u8]| labels.iter().flat_map(|&l| record(l, l * 20)).collect::<Vec<u8>>();
    std::fs::write(dir.path().join("a.bin"), file(&[1, 2, 3])).unwrap();
    std::fs::write(dir.path().join("b.bin"), file(&[4, 5, 6])).unwrap();
    let (x, y) = cifar::load_cifar(dir.path(), &["a.bin", "b.bin"], 3).unwrap();
    assert_eq!(x.size(), [6, 3, 32, 32]);
    assert_eq!(Vec::<i64>::try_from(&y).unwrap(), [1, 2, 3, 4, 5, 6]);
    assert_eq!(x.int64_value(&[4, 2, 31, 31]), 100);
    // Wrong record count.
    std::fs::write(dir.path().join("c.bin"), file(&[1, 2])).unwrap();
    let e = format!("{:#}", cifar::load_cifar(dir.path(), &["c.bin"], 3).unwrap_err());
    assert!(
        e.contains("c.bin") && e.contains("expected 9219 bytes (3 records") && e.contains("found 6146 (2 records)"),
        "{e}"
    );
    // Truncated mid-record.
    let mut t = file(&[1, 2, 3]);
    t.truncate(9000);
    std::fs::write(dir.path().join("d.bin"), t).unwrap();
    let e = format!("{:#}", cifar::load_cifar(dir.path(), &["d.bin"], 3).unwrap_err());
    assert!(e.contains("d.bin") && e.contains("found 9000") && e.contains("truncated one of 2854 bytes"), "{e}");
    // Corrupted label byte.
    let mut bad = file(&[1, 2, 3]);
    bad[3073] = 77;
    std::fs::write(dir.path().join("e.bin"), bad).unwrap();
    let e = format!("{:#}", cifar::load_cifar(dir.path(), &["e.bin"], 3).unwrap_err());
    assert!(e.contains("e.bin") && e.contains("record 1") && e.contains("found 77"), "{e}");
}

#[test]
fn real_source_without_files_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let spec = DatasetSpec {
        source: Source::Real,
        data_dir: Some(dir.path().into()),
        ..DatasetSpec::synthetic("photos", 0, 0, 0)
    };
    let e = open(&spec).err().unwrap().to_string();
    assert!(e.contains(&dir.path().display().to_string()) && e.contains("CIFAR-10"), "{e}");
}

#[test]
fn ttf_letters_render_when_a_system_font_exists() {
    let Some(font) = featdrop_data::ttf::system_sans() else { return };
    let bank = glyphs::ttf_letters(&font, 3, 0).unwrap();
    assert_eq!((bank.len(), bank.size()), (78, 12));
    // Every letter has ink, and its rows span most of the 12 px cell (≈12 px tall).
    for i in 0..78 {
        let g = bank.glyphs.get(i);
        let rows = g.amax(1, false).gt(0.3).sum(tch::Kind::Int64).int64_value(&[]);
        assert!(rows >= 9, "glyph {i} is {rows} px tall");
    }
}

/// Issue 27.19: IDX images of other dimensions holding as many bytes as 28 × 28 (here 14 × 56)
/// were accepted and every digit came out garbled.
#[test]
fn mnist_images_of_another_size_are_an_error_naming_the_file_and_the_size() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), 30, false, 30);
    let other = idx_bytes(idx::IMAGES_MAGIC, &[30, 14, 56], |i| i as u8);
    std::fs::write(dir.path().join("train-images-idx3-ubyte"), other).unwrap();
    let e = format!("{:#}", idx::load_mnist(dir.path(), "train").unwrap_err());
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("expected 28×28") && e.contains("found 14×56"), "{e}");
    let e = format!("{:#}", glyphs::mnist_digits(dir.path()).unwrap_err());
    assert!(e.contains("found 14×56"), "{e}");
}

/// Issue 27.22: a folder where an MNIST file is expected was "no MNIST file".
#[test]
fn a_folder_named_like_an_mnist_file_is_reported_as_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), 30, false, 30);
    std::fs::remove_file(dir.path().join("train-images-idx3-ubyte")).unwrap();
    std::fs::create_dir(dir.path().join("train-images-idx3-ubyte")).unwrap();
    assert!(idx::has_mnist(dir.path()));
    let e = format!("{:#}", idx::load_mnist(dir.path(), "train").unwrap_err());
    assert!(e.contains("train-images-idx3-ubyte: a folder where a file is expected"), "{e}");
}

/// Issue 27.20: a folder given explicitly is the folder used: `photos+digits` pointed at a
/// sibling of `mnist/` found it anyway; a folder that does not exist was never said not to.
#[test]
fn a_given_data_folder_is_not_completed_from_its_siblings() {
    let raw = tempfile::tempdir().unwrap();
    let (mnist, audio) = (raw.path().join("mnist"), raw.path().join("audio"));
    std::fs::create_dir_all(&mnist).unwrap();
    std::fs::create_dir_all(&audio).unwrap();
    write_mnist(&mnist, 30, false, 30);
    let spec = |dir: &Path| DatasetSpec {
        source: Source::Real,
        data_dir: Some(dir.into()),
        ..DatasetSpec::synthetic("photos+digits", 0, 0, 0)
    };
    let e = open(&spec(&audio)).err().unwrap().to_string();
    assert!(e.contains("no MNIST") && e.contains(&audio.join("mnist").display().to_string()), "{e}");
    assert!(!e.contains(&mnist.display().to_string()), "the sibling mnist/ was searched: {e}");
    let e = open(&spec(&raw.path().join("nowhere"))).err().unwrap().to_string();
    assert!(e.contains("nowhere: the data folder given does not exist"), "{e}");
    // The data/raw layout itself still works: MNIST found, then CIFAR-10 missing.
    let e = open(&spec(raw.path())).err().unwrap().to_string();
    assert!(e.contains("no CIFAR-10"), "{e}");
}
