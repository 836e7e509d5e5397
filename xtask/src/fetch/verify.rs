//! Checking a file against its manifest entry: archive bytes, or the decompressed content.

use super::manifest::{FileEntry, Member};
use anyhow::{Context, Result};
use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// Which check accepted a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verified {
    Archive,
    Decompressed,
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verified::Archive => write!(f, "archive sha256"),
            Verified::Decompressed => {
                write!(f, "decompressed sha256; the archive bytes differ from the official ones (a re-compressed copy)")
            }
        }
    }
}

/// Size and sha256 (lowercase hex) of everything `r` yields.
pub fn hash_reader(mut r: impl Read) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let hex = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((size, hex))
}

fn open(path: &Path) -> Result<BufReader<File>> {
    Ok(BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?))
}

/// `Ok(Ok(how))` when `path` matches `entry`; `Ok(Err(what differs))` when it does not.
pub fn verify(path: &Path, entry: &FileEntry) -> Result<Result<Verified, String>> {
    let mut found = Vec::new();
    if let Some(want) = &entry.sha256 {
        let (size, sha) = hash_reader(open(path)?).with_context(|| format!("reading {}", path.display()))?;
        if &sha == want && entry.size.is_none_or(|s| s == size) {
            return Ok(Ok(Verified::Archive));
        }
        found.push(format!(
            "expected {} bytes with sha256 {want}, found {size} bytes with sha256 {sha}",
            show(entry.size)
        ));
    }
    if let (Some(want), Some(want_size)) = (&entry.decompressed_sha256, entry.decompressed_size) {
        match hash_reader(MultiGzDecoder::new(open(path)?)) {
            Ok((size, sha)) if &sha == want && size == want_size => return Ok(Ok(Verified::Decompressed)),
            Ok((size, sha)) => found.push(format!(
                "decompressed: expected {want_size} bytes with sha256 {want}, found {size} bytes with sha256 {sha}"
            )),
            Err(e) => found.push(format!("decompressed: expected sha256 {want}, found no valid gzip stream ({e})")),
        }
    }
    Ok(Err(found.join("; ")))
}

/// Like [`verify`] for an extracted member; a member with neither size nor sha256 only has to exist.
pub fn verify_member(path: &Path, m: &Member) -> Result<Result<(), String>> {
    if !path.is_file() {
        return Ok(Err("missing".into()));
    }
    if m.sha256.is_none() {
        let size = path.metadata()?.len();
        return Ok(if m.size.is_none_or(|s| s == size) {
            Ok(())
        } else {
            Err(format!("expected {} bytes, found {size}", show(m.size)))
        });
    }
    let (size, sha) = hash_reader(open(path)?)?;
    let want = m.sha256.as_deref().unwrap_or_default();
    Ok(if sha == want && m.size.is_none_or(|s| s == size) {
        Ok(())
    } else {
        Err(format!("expected {} bytes with sha256 {want}, found {size} bytes with sha256 {sha}", show(m.size)))
    })
}

fn show(size: Option<u64>) -> String {
    size.map_or_else(|| "any number of".into(), |s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn entry(archive: &[u8], content: &[u8]) -> FileEntry {
        let sha = |d: &[u8]| hash_reader(d).unwrap();
        FileEntry {
            name: "x.gz".into(),
            url: "http://x/x.gz".into(),
            size: Some(archive.len() as u64),
            sha256: Some(sha(archive).1),
            decompressed_size: Some(content.len() as u64),
            decompressed_sha256: Some(sha(content).1),
            extract: None,
        }
    }

    #[test]
    fn known_sha256() {
        let (size, sha) = hash_reader(&b"abc"[..]).unwrap();
        assert_eq!((size, sha.as_str()), (3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    }

    #[test]
    fn archive_then_decompressed_then_neither() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (official, recompressed) = (gz(&content, 6), gz(&content, 1));
        assert_ne!(official, recompressed);
        let e = entry(&official, &content);
        let p = dir.path().join("x.gz");
        std::fs::write(&p, &official).unwrap();
        assert_eq!(verify(&p, &e).unwrap(), Ok(Verified::Archive));
        std::fs::write(&p, &recompressed).unwrap();
        assert_eq!(verify(&p, &e).unwrap(), Ok(Verified::Decompressed));
        std::fs::write(&p, gz(b"other", 6)).unwrap();
        let why = verify(&p, &e).unwrap().unwrap_err();
        assert!(
            why.contains(e.sha256.as_deref().unwrap()) && why.contains("decompressed: expected 5000 bytes"),
            "{why}"
        );
        std::fs::write(&p, b"not gzip").unwrap();
        assert!(verify(&p, &e).unwrap().unwrap_err().contains("no valid gzip stream"));
    }
}
