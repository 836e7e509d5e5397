//! CIFAR-10 binary version (docs/PROTOCOL.md §2.1): `data_batch_1.bin` … `data_batch_5.bin` (train) and
//! `test_batch.bin`, each 10 000 records of 1 label byte (0–9) followed by 3072 pixel bytes
//! (1024 red, 1024 green, 1024 blue, each 32×32 row-major).

use anyhow::{Context, Result, bail, ensure};
use std::path::Path;
use tch::{Kind, Tensor};

/// Bytes per record: one label byte and a 3×32×32 image.
pub const RECORD: usize = 1 + 3 * 32 * 32;
/// Records per file in the official release.
pub const RECORDS_PER_FILE: usize = 10_000;
/// The training files, in order.
pub const TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
/// The test file.
pub const TEST_FILE: &str = "test_batch.bin";

/// Parses one file's bytes (`name` goes into errors) holding exactly `records` records:
/// images `[records, 3, 32, 32]` uint8 and labels `[records]` int64, on the CPU.
pub fn parse_cifar(bytes: &[u8], name: &str, records: usize) -> Result<(Tensor, Tensor)> {
    let want = records * RECORD;
    let found = bytes.len();
    if found > want {
        bail!(
            "{name}: expected {want} bytes ({records} records of {RECORD} bytes), found {found}: {} extra byte{} \
             after the last record",
            found - want,
            if found - want == 1 { "" } else { "s" }
        );
    }
    if found < want {
        let (whole, rest) = (found / RECORD, found % RECORD);
        bail!(
            "{name}: expected {want} bytes ({records} records of {RECORD} bytes), found {found} ({whole} records{})",
            if rest > 0 { format!(" and a truncated one of {rest} bytes") } else { String::new() }
        );
    }
    let mut labels = Vec::with_capacity(records);
    let mut pixels = Vec::with_capacity(records * (RECORD - 1));
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        ensure!(rec[0] <= 9, "{name}: record {i}: expected a label byte in 0..=9, found {}", rec[0]);
        labels.push(rec[0] as i64);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok((Tensor::from_slice(&pixels).view([records as i64, 3, 32, 32]), Tensor::from_slice(&labels)))
}

/// Checks that `dir` holds every file of `names`, naming all missing ones at once (a folder in
/// place of one is an error naming it, not a missing file).
pub fn ensure_files(dir: &Path, names: &[&str]) -> Result<()> {
    for name in names {
        crate::files::first_file(&[dir.join(name)])?;
    }
    let missing: Vec<&str> = names.iter().copied().filter(|n| !dir.join(n).is_file()).collect();
    ensure!(
        missing.is_empty(),
        "{}: missing CIFAR-10 file{} {} (the binary version holds {} and {TEST_FILE})",
        dir.display(),
        if missing.len() > 1 { "s" } else { "" },
        missing.join(", "),
        TRAIN_FILES.join(", ")
    );
    Ok(())
}

/// Loads the files `names` from `dir`, each expected to hold `records` records, concatenated.
/// Missing files are all named at once, before any is read.
pub fn load_cifar(dir: &Path, names: &[&str], records: usize) -> Result<(Tensor, Tensor)> {
    ensure_files(dir, names)?;
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for name in names {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let (x, y) = parse_cifar(&bytes, &path.display().to_string(), records)?;
        xs.push(x);
        ys.push(y);
    }
    Ok((Tensor::cat(&xs, 0), Tensor::cat(&ys, 0).to_kind(Kind::Int64)))
}

/// Whether `dir` looks like an extracted `cifar-10-batches-bin/` folder: it holds any of the
/// release's files (a missing one is then named by [`load_cifar`], not taken for no folder; so is
/// a folder in place of one).
pub fn has_cifar(dir: &Path) -> bool {
    TRAIN_FILES.iter().chain([&TEST_FILE]).any(|f| crate::files::entry(&dir.join(f)) != crate::files::Entry::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_rejects_bad_ones() {
        let mut bytes = vec![0u8; 2 * RECORD];
        bytes[0] = 3;
        bytes[1] = 200; // first red pixel of record 0
        bytes[RECORD] = 9;
        bytes[RECORD + 1 + 1024] = 7; // first green pixel of record 1
        let (x, y) = parse_cifar(&bytes, "b.bin", 2).unwrap();
        assert_eq!(x.size(), [2, 3, 32, 32]);
        assert_eq!(Vec::<i64>::try_from(&y).unwrap(), [3, 9]);
        assert_eq!(x.int64_value(&[0, 0, 0, 0]), 200);
        assert_eq!(x.int64_value(&[1, 1, 0, 0]), 7);
        let e = parse_cifar(&bytes[..RECORD + 10], "b.bin", 2).unwrap_err().to_string();
        assert!(e.contains("b.bin") && e.contains("expected 6146 bytes") && e.contains("found 3083"), "{e}");
        bytes[RECORD] = 10;
        let e = parse_cifar(&bytes, "b.bin", 2).unwrap_err().to_string();
        assert!(e.contains("record 1") && e.contains("found 10"), "{e}");
        // Issue 19.8: one byte too many was "a truncated one of 1 bytes".
        bytes[RECORD] = 9;
        bytes.push(0);
        let e = parse_cifar(&bytes, "b.bin", 2).unwrap_err().to_string();
        assert!(e.contains("found 6147: 1 extra byte after the last record") && !e.contains("truncated"), "{e}");
    }

    /// Issue 19.8: without `data_batch_1.bin` the folder was "no CIFAR-10 binary files".
    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        for name in &TRAIN_FILES[1..] {
            std::fs::write(dir.path().join(name), vec![0u8; RECORD]).unwrap();
        }
        assert!(has_cifar(dir.path()));
        let e = load_cifar(dir.path(), &TRAIN_FILES, 1).unwrap_err().to_string();
        assert!(e.contains("missing CIFAR-10 file data_batch_1.bin (") && !e.contains("data_batch_2.bin ("), "{e}");
        let e = load_cifar(dir.path(), &[TEST_FILE], 1).unwrap_err().to_string();
        assert!(e.contains("missing CIFAR-10 file test_batch.bin"), "{e}");
        // Issue 27.22: a folder named like the file was "missing".
        std::fs::create_dir(dir.path().join(TEST_FILE)).unwrap();
        let e = load_cifar(dir.path(), &[TEST_FILE], 1).unwrap_err().to_string();
        assert!(e.contains("test_batch.bin: a folder where a file is expected"), "{e}");
    }
}
