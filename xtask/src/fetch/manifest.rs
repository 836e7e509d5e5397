//! `data/manifest.json`: what `cargo xtask fetch` downloads and how each file is verified.
//!
//! Schema (version 1); `null` and an absent key mean the same for every optional field:
//!
//! ```text
//! {
//!   "version": 1,
//!   "datasets": {
//!     "<dataset>": {                      // e.g. "mnist", "cifar10"; the CLI's dataset argument
//!       "description": "…",
//!       "homepage": "https://…",          // optional
//!       "licence": "…",                   // required, non-empty
//!       "citation": "…",                  // required, non-empty
//!       "dir": "mnist",                   // folder under --out for the downloaded files ("" = --out itself)
//!       "files": [{
//!         "name": "train-images-idx3-ubyte.gz",   // file name: in --out/<dir>/, and under a --mirror
//!         "url": "https://…",                     // canonical location
//!         "size": 9912422,                        // archive bytes (optional)
//!         "sha256": "<64 hex>",                   // archive sha256 (optional)
//!         "decompressed_size": 47040016,          // gzip files: decompressed bytes (with decompressed_sha256)
//!         "decompressed_sha256": "<64 hex>",      // gzip files: sha256 of the decompressed content
//!         "extract": {                            // optional: a .tar.gz unpacked after verification
//!           "dir": "cifar-10-batches-bin",        // the folder that lands in --out/<dir>/<this>
//!           "from": "AudioMNIST-master/data",     // its path in the archive (optional; default: `dir`)
//!           "members": [{ "name": "data_batch_1.bin", "size": 30730000, "sha256": "<64 hex>" }],
//!           "audiomnist": {                       // optional: check the folder as AudioMNIST's data/
//!             "speakers": 60, "wavs": 30000, "sample_rate": 48000   // (these defaults when absent)
//!           }
//!         }
//!       }]
//!     }
//!   }
//! }
//! ```
//!
//! A file is accepted when its size and `sha256` match, or when its decompressed size and
//! `decompressed_sha256` match: mirrors that re-compress the gzip files then still verify. So each file
//! needs `sha256` or `decompressed_sha256`, except an archive that no checksum can be pinned for
//! (AudioMNIST: GitHub regenerates a branch's archive) and whose extracted folder is checked by its
//! structure instead (`extract.audiomnist`, [`super::layout`]). Each `extract` needs `members` or
//! such a structure check. Unknown keys are errors (a typo must not disable a check).

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub datasets: BTreeMap<String, Dataset>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub description: String,
    pub homepage: Option<String>,
    pub licence: String,
    pub citation: String,
    #[serde(default)]
    pub dir: String,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    pub url: String,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub decompressed_size: Option<u64>,
    pub decompressed_sha256: Option<String>,
    pub extract: Option<Extract>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extract {
    pub dir: String,
    /// The folder's path inside the archive (default: `dir`).
    pub from: Option<String>,
    #[serde(default)]
    pub members: Vec<Member>,
    /// Check the extracted folder as AudioMNIST's `data/` (speaker folders of WAVs).
    pub audiomnist: Option<super::layout::AudioMnistLayout>,
}

impl Extract {
    /// The folder's path inside the archive.
    pub fn from(&self) -> &str {
        self.from.as_deref().unwrap_or(&self.dir)
    }
}

impl FileEntry {
    /// Whether a checksum pins the file's bytes (else only its extracted structure is checked).
    pub fn pinned(&self) -> bool {
        self.sha256.is_some() || self.decompressed_sha256.is_some()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub name: String,
    pub size: Option<u64>,
    pub sha256: Option<String>,
}

/// Reads and checks a manifest; errors name the file and the field.
pub fn load(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the manifest {}", path.display()))?;
    parse(&text).with_context(|| format!("manifest {}", path.display()))
}

pub fn parse(text: &str) -> Result<Manifest> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let m: Manifest = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        anyhow::anyhow!("field `{field}`: {}", e.into_inner())
    })?;
    check(&m)?;
    Ok(m)
}

fn check(m: &Manifest) -> Result<()> {
    if m.version != 1 {
        bail!("field `version` = {}; this xtask reads version 1", m.version);
    }
    if m.datasets.is_empty() {
        bail!("field `datasets` is empty");
    }
    for (id, ds) in &m.datasets {
        let at = format!("datasets.{id}");
        ensure_field(
            !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            &at,
            id,
            "a dataset name is letters, digits, - or _",
        )?;
        ensure_field(!ds.licence.trim().is_empty(), &format!("{at}.licence"), "", "must not be empty")?;
        ensure_field(!ds.citation.trim().is_empty(), &format!("{at}.citation"), "", "must not be empty")?;
        ensure_field(
            ds.dir.is_empty() || relative_path(&ds.dir),
            &format!("{at}.dir"),
            &ds.dir,
            "a relative folder without `..`",
        )?;
        ensure_field(!ds.files.is_empty(), &format!("{at}.files"), "[]", "a dataset needs at least one file")?;
        for (i, f) in ds.files.iter().enumerate() {
            check_file(f, &format!("{at}.files[{i}]"))?;
        }
    }
    Ok(())
}

fn check_file(f: &FileEntry, at: &str) -> Result<()> {
    ensure_field(file_name(&f.name), &format!("{at}.name"), &f.name, "a plain file name")?;
    let http = f.url.starts_with("http://") || f.url.starts_with("https://");
    ensure_field(http, &format!("{at}.url"), &f.url, "an http:// or https:// URL")?;
    ensure_field(f.size != Some(0), &format!("{at}.size"), "0", "a size > 0 or null")?;
    check_sha(f.sha256.as_deref(), &format!("{at}.sha256"))?;
    check_sha(f.decompressed_sha256.as_deref(), &format!("{at}.decompressed_sha256"))?;
    let both = f.decompressed_sha256.is_some() == f.decompressed_size.is_some();
    ensure_field(
        both,
        &format!("{at}.decompressed_size"),
        "",
        "give decompressed_size and decompressed_sha256 together",
    )?;
    if f.decompressed_sha256.is_some() {
        ensure_field(f.name.ends_with(".gz"), &format!("{at}.decompressed_sha256"), &f.name, "only for .gz files")?;
    }
    let structure = f.extract.as_ref().is_some_and(|ex| ex.audiomnist.is_some());
    ensure_field(
        f.pinned() || structure,
        &format!("{at}.sha256"),
        "null",
        "each file needs sha256 or decompressed_sha256 (or, for an archive no checksum can be pinned for, an \
         extract.audiomnist structure check)",
    )?;
    if let Some(ex) = &f.extract {
        ensure_field(file_name(&ex.dir), &format!("{at}.extract.dir"), &ex.dir, "one folder name")?;
        let from = ex.from();
        ensure_field(relative_path(from), &format!("{at}.extract.from"), from, "a relative path without `..`")?;
        ensure_field(
            !ex.members.is_empty() || structure,
            &format!("{at}.extract.members"),
            "[]",
            "at least one member, or a structure check (extract.audiomnist)",
        )?;
        for (j, mem) in ex.members.iter().enumerate() {
            let mat = format!("{at}.extract.members[{j}]");
            ensure_field(file_name(&mem.name), &format!("{mat}.name"), &mem.name, "a plain file name")?;
            check_sha(mem.sha256.as_deref(), &format!("{mat}.sha256"))?;
        }
    }
    Ok(())
}

fn ensure_field(ok: bool, field: &str, value: &str, expected: &str) -> Result<()> {
    if !ok {
        bail!("field `{field}` = {value:?} is invalid; expected {expected}");
    }
    Ok(())
}

fn check_sha(sha: Option<&str>, field: &str) -> Result<()> {
    let ok = sha.is_none_or(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    ensure_field(ok, field, sha.unwrap_or_default(), "64 lowercase hex digits or null")
}

/// A name that stays inside its folder: no separators, not `.` or `..`.
fn file_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\'])
}

fn relative_path(s: &str) -> bool {
    !s.starts_with('/') && s.split('/').all(file_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"version": 1, "datasets": {"mnist": {"description": "d", "licence": "l", "citation": "c",
        "dir": "mnist", "files": [{"name": "a.gz", "url": "http://x/a.gz", "size": 3, "sha256": null,
        "decompressed_size": 5, "decompressed_sha256": "SHA"}]}}}"#;
    const SHA: &str = "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db";

    fn err(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    #[test]
    fn the_committed_manifest_is_valid_and_complete() {
        let m = load(&crate::paths::repo_root().join("data/manifest.json")).unwrap();
        let mnist = &m.datasets["mnist"];
        assert_eq!(mnist.files.len(), 4);
        assert!(mnist.files.iter().all(|f| f.sha256.is_some() && f.decompressed_sha256.is_some()));
        let cifar = &m.datasets["cifar10"].files[0];
        assert_eq!(cifar.size, Some(170052171));
        assert_eq!(cifar.extract.as_ref().unwrap().members.len(), 7);
        // Issue 15.10: the three published noise recordings, raw files of the published code's
        // repository at a pinned commit, each pinned by its sha256.
        let noise = &m.datasets["noise"];
        assert_eq!(noise.dir, "audio/noise");
        let names: Vec<&str> = noise.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["babble.wav", "traffic.wav", "machinery.wav"]);
        let commit =
            "https://raw.githubusercontent.com/xiluohe/feature-dropout/c30b72aaa85385f0d170eb3ad589a662eb328cd1/";
        for (f, path) in noise.files.iter().zip([
            "noisedata/BabbleNoise/Babble1.wav",
            "noisedata/DrivingcarNoise/Traffic10.wav",
            "noisedata/MachineryNoise/Machinery1.wav",
        ]) {
            assert_eq!(f.url, format!("{commit}{path}"));
        }
        let shas: Vec<&str> = noise.files.iter().map(|f| f.sha256.as_deref().unwrap()).collect();
        assert_eq!(shas[0], "ca5a1dcb3e0dad77b939c0cc83e77c1a1124d2ab77fed8ed599423da3e6320af");
        assert_eq!(shas[1], "cde43bfc7ab0735ad4d1e52faed788e3b19dade5e5f779bc68dcba54c6ae4adb");
        assert_eq!(shas[2], "2adce0769213667591f11cbba4b00459d5daa095ff7d2d22c9768f2b2bcd49c4");
        // AudioMNIST: no checksum can be pinned, its data/ folder is checked by structure.
        let audio = &m.datasets["audiomnist"].files[0];
        let ex = audio.extract.as_ref().unwrap();
        assert!(!audio.pinned() && ex.from() == "AudioMNIST-master/data" && ex.dir == "data");
        assert_eq!(ex.audiomnist, Some(crate::fetch::layout::AudioMnistLayout::default()));
    }

    #[test]
    fn a_good_manifest_parses() {
        let m = parse(&GOOD.replace("SHA", SHA)).unwrap();
        assert_eq!(m.datasets["mnist"].files[0].decompressed_size, Some(5));
    }

    #[test]
    fn errors_name_the_field() {
        let e = err(&GOOD.replace("SHA", "abc"));
        assert!(e.contains("datasets.mnist.files[0].decompressed_sha256") && e.contains("\"abc\""), "{e}");
        let e = err(&GOOD.replace("SHA", SHA).replace("\"size\": 3", "\"sise\": 3"));
        assert!(e.contains("datasets.mnist.files[0]") && e.contains("sise"), "{e}");
        let e = err(&GOOD.replace("SHA", SHA).replace("\"licence\": \"l\", ", ""));
        assert!(e.contains("licence"), "{e}");
        let e = err(&GOOD.replace("SHA", SHA).replace("http://x/a.gz", "ftp://x"));
        assert!(e.contains("datasets.mnist.files[0].url"), "{e}");
        let e = err(&GOOD.replace("SHA", SHA).replace("\"a.gz\"", "\"../a.gz\""));
        assert!(e.contains("datasets.mnist.files[0].name"), "{e}");
        let e = err(
            &GOOD.replace("\"decompressed_size\": 5, \"decompressed_sha256\": \"SHA\"", "\"decompressed_size\": 5")
        );
        assert!(e.contains("decompressed_size"), "{e}");
    }

    #[test]
    fn a_file_without_any_hash_is_refused() {
        let text =
            GOOD.replace("\"decompressed_size\": 5, \"decompressed_sha256\": \"SHA\"", "\"decompressed_size\": null");
        assert!(err(&text).contains("needs sha256 or decompressed_sha256"), "{}", err(&text));
    }

    #[test]
    fn an_unpinned_archive_needs_a_structure_check() {
        let unpinned = |extract: &str| {
            GOOD.replace(
                "\"decompressed_size\": 5, \"decompressed_sha256\": \"SHA\"",
                &format!("\"extract\": {extract}"),
            )
            .replace("a.gz", "a.tar.gz")
        };
        let m = parse(&unpinned(r#"{"dir": "data", "from": "A-master/data", "audiomnist": {}}"#)).unwrap();
        let f = &m.datasets["mnist"].files[0];
        let ex = f.extract.as_ref().unwrap();
        assert!(!f.pinned() && ex.from() == "A-master/data");
        assert_eq!(ex.audiomnist, Some(crate::fetch::layout::AudioMnistLayout::default()));
        let e = err(&unpinned(r#"{"dir": "data", "members": [{"name": "x"}]}"#));
        assert!(e.contains("needs sha256") && e.contains("extract.audiomnist"), "{e}");
        let e = err(&unpinned(r#"{"dir": "data", "from": "../up", "audiomnist": {}}"#));
        assert!(e.contains("extract.from"), "{e}");
    }
}
