//! `cargo xtask fetch [cifar10|mnist|noise|audiomnist|all]`: downloads the real datasets
//! (docs/PROTOCOL.md §2 "Real sources") into `data/raw/`, verified against `data/manifest.json`
//! (schema: [`manifest`]).
//!
//! Each file goes to a `.part` file first (continued with an HTTP Range request after an interrupted
//! run), is verified, and only then renamed into place, so a file under its final name is always a
//! verified one. A `.tar.gz` with an `extract` entry is unpacked after verification into a staging
//! folder, its members (or its structure, [`layout`]) checked, and the folder renamed into place.
//! An archive no checksum can be pinned for (AudioMNIST's branch archive) is verified only through
//! the structure of what it unpacks to, and the command says so.

mod layout;
mod manifest;
mod transfer;
mod verify;

pub use layout::missing_real_data;

use anyhow::{Context, Result, bail};
use manifest::{Dataset, Extract, FileEntry};
use std::path::{Path, PathBuf};
use transfer::Source;

#[derive(clap::Args)]
pub struct FetchArgs {
    /// Which dataset: cifar10, mnist, noise, audiomnist (any dataset of the manifest) or all.
    #[arg(default_value = "all")]
    dataset: String,
    /// Fetch from here instead of the canonical URLs: a base URL (files at `URL/<name>`) or a local
    /// folder holding the same file names (copied, and verified the same way).
    #[arg(long, value_name = "URL-or-DIR")]
    mirror: Option<String>,
    /// Where the files land.
    #[arg(long, value_name = "DIR", default_value_os_t = crate::paths::repo_root().join("data/raw"))]
    out: PathBuf,
    /// The manifest listing URLs, sizes and hashes.
    #[arg(long, value_name = "FILE", default_value_os_t = crate::paths::repo_root().join("data/manifest.json"))]
    manifest: PathBuf,
}

pub fn run(args: &FetchArgs) -> Result<()> {
    let m = manifest::load(&args.manifest)?;
    let chosen: Vec<(&String, &Dataset)> = if args.dataset == "all" {
        m.datasets.iter().collect()
    } else {
        let ds = m.datasets.get_key_value(&args.dataset).with_context(|| {
            let known: Vec<&str> = m.datasets.keys().map(String::as_str).collect();
            format!("unknown dataset {:?}; choose one of {}, or all", args.dataset, known.join(", "))
        })?;
        vec![ds]
    };
    let agent = transfer::agent();
    let mut failed = Vec::new();
    for (id, ds) in chosen {
        let home = ds.homepage.as_deref().map(|h| format!(", {h}")).unwrap_or_default();
        eprintln!("{id}: {}{home}\n  licence: {}\n  cite: {}", ds.description, ds.licence, ds.citation);
        let dir = args.out.join(&ds.dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for f in &ds.files {
            let fetched = source(args.mirror.as_deref(), ds, f).and_then(|src| fetch_file(&agent, &dir, f, &src));
            if let Err(e) = fetched {
                eprintln!("error: {e:#}");
                failed.push(format!("{id}/{}", f.name));
            }
        }
    }
    if !failed.is_empty() {
        bail!("{} file(s) failed: {} (see the messages above)", failed.len(), failed.join(", "));
    }
    eprintln!("all files are present and verified in {}", args.out.display());
    Ok(())
}

/// The canonical URL, `MIRROR/<name>` for a URL mirror, or the file in a mirror folder (directly in
/// it, or in its `<dataset dir>/` subfolder so one folder can mirror every dataset).
fn source(mirror: Option<&str>, ds: &Dataset, f: &FileEntry) -> Result<Source> {
    let Some(mirror) = mirror else { return Ok(Source::Url(f.url.clone())) };
    if mirror.starts_with("http://") || mirror.starts_with("https://") {
        return Ok(Source::Url(format!("{}/{}", mirror.trim_end_matches('/'), f.name)));
    }
    let base = Path::new(mirror);
    let mut candidates = vec![base.join(&f.name)];
    if !ds.dir.is_empty() {
        candidates.push(base.join(&ds.dir).join(&f.name));
    }
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => Ok(Source::Dir(p.clone())),
        None => {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            bail!("the mirror folder {} holds no {} (looked for {})", base.display(), f.name, tried.join(" and "))
        }
    }
}

/// One file: skip it when already verified, otherwise fetch, verify, move into place, extract.
fn fetch_file(agent: &ureq::Agent, dir: &Path, f: &FileEntry, src: &Source) -> Result<()> {
    if let Some(ex) = &f.extract
        && extracted_ok(dir, ex)?
    {
        eprintln!("skip {}: {}/ is already extracted and verified", f.name, dir.join(&ex.dir).display());
        return Ok(());
    }
    let dest = dir.join(&f.name);
    if dest.is_file() && !f.pinned() {
        // Only complete downloads are renamed into place; what it holds is checked on extraction.
        eprintln!(
            "skip downloading {}: already present (no checksum to check; its content is checked on extraction)",
            f.name
        );
        return extract_if_needed(dir, &dest, f);
    }
    if dest.is_file() {
        match verify::verify(&dest, f)? {
            Ok(how) => {
                eprintln!("skip {}: already present, verified by {how}", f.name);
                return extract_if_needed(dir, &dest, f);
            }
            Err(why) => {
                eprintln!("{} is present but does not verify ({why}); fetching it again", dest.display());
                std::fs::remove_file(&dest).with_context(|| format!("removing {}", dest.display()))?;
            }
        }
    }
    let part = dir.join(format!("{}.part", f.name));
    transfer::fetch(agent, src, &part, &f.name)?;
    if !f.pinned() {
        std::fs::rename(&part, &dest).with_context(|| format!("moving {} into place", part.display()))?;
        eprintln!(
            "{}: downloaded from {}; no checksum can be pinned for it, so what it unpacks to is verified by its structure",
            dest.display(),
            describe(src)
        );
        return extract_if_needed(dir, &dest, f);
    }
    match verify::verify(&part, f)? {
        Ok(how) => {
            std::fs::rename(&part, &dest).with_context(|| format!("moving {} into place", part.display()))?;
            eprintln!("{}: verified by {how}", dest.display());
        }
        Err(why) => {
            std::fs::remove_file(&part).with_context(|| format!("removing {}", part.display()))?;
            bail!(
                "{} from {} failed verification: {why}. The bad file was deleted; run the command again to retry, \
                 or fetch from another copy with --mirror URL-or-DIR",
                f.name,
                describe(src)
            );
        }
    }
    extract_if_needed(dir, &dest, f)
}

fn describe(src: &Source) -> String {
    match src {
        Source::Url(u) => u.clone(),
        Source::Dir(p) => p.display().to_string(),
    }
}

/// Whether every member of `ex` is in place and verifies, and the folder has its structure.
fn extracted_ok(dir: &Path, ex: &Extract) -> Result<bool> {
    if !dir.join(&ex.dir).is_dir() {
        return Ok(false);
    }
    for m in &ex.members {
        if verify::verify_member(&dir.join(&ex.dir).join(&m.name), m)?.is_err() {
            return Ok(false);
        }
    }
    Ok(check_structure(&dir.join(&ex.dir), ex)?.is_ok())
}

/// The structure check of `ex` on `folder` (passes when `ex` has none).
fn check_structure(folder: &Path, ex: &Extract) -> Result<Result<(), String>> {
    match &ex.audiomnist {
        Some(want) => layout::check_audiomnist(folder, want),
        None => Ok(Ok(())),
    }
}

fn extract_if_needed(dir: &Path, archive: &Path, f: &FileEntry) -> Result<()> {
    match &f.extract {
        Some(ex) if !extracted_ok(dir, ex)? => extract(dir, archive, ex),
        _ => Ok(()),
    }
}

/// Unpacks `ex.dir/` of the verified `archive` into a staging folder, checks its members, then renames
/// it into place, so an interrupted extraction never leaves a half-written folder under the real name.
fn extract(dir: &Path, archive: &Path, ex: &Extract) -> Result<()> {
    let staging = dir.join(format!(".{}.extracting", ex.dir));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    }
    std::fs::create_dir_all(&staging)?;
    let unpacked = staging.join(&ex.dir);
    unpack(archive, Path::new(ex.from()), &unpacked).with_context(|| format!("extracting {}", archive.display()))?;
    if let Err(why) = check_structure(&unpacked, ex)? {
        std::fs::remove_dir_all(&staging)?;
        std::fs::remove_file(archive).with_context(|| format!("removing {}", archive.display()))?;
        bail!(
            "{}: its folder {} is not {}: {why}. The archive was deleted; run the command again to download it anew",
            archive.display(),
            ex.from(),
            ex.audiomnist.as_ref().map(ToString::to_string).unwrap_or_default()
        );
    }
    for m in &ex.members {
        if let Err(why) = verify::verify_member(&unpacked.join(&m.name), m)? {
            bail!(
                "{}: member {}/{} {why}; delete {} and run the command again",
                archive.display(),
                ex.dir,
                m.name,
                archive.display()
            );
        }
    }
    let target = dir.join(&ex.dir);
    if target.exists() {
        std::fs::remove_dir_all(&target).with_context(|| format!("removing the old {}", target.display()))?;
    }
    std::fs::rename(&unpacked, &target).with_context(|| format!("moving {} into place", target.display()))?;
    std::fs::remove_dir_all(&staging)?;
    match &ex.audiomnist {
        Some(want) => eprintln!(
            "extracted {} to {}; verified by structure ({want}): no checksum is published for it, so this is \
             the check",
            ex.from(),
            target.display()
        ),
        None => eprintln!("extracted {} verified files to {}", ex.members.len(), target.display()),
    }
    Ok(())
}

/// Unpacks the files and folders under `from` in `archive` (a .tar.gz) into `to`. Other entry kinds
/// (links) are skipped, and a path that would leave `to` is an error.
fn unpack(archive: &Path, from: &Path, to: &Path) -> Result<()> {
    let file = std::fs::File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file)));
    std::fs::create_dir_all(to)?;
    for entry in tar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Ok(rel) = path.strip_prefix(from) else { continue };
        if rel.as_os_str().is_empty() {
            continue;
        }
        if !rel.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
            bail!("entry {} would leave the extraction folder", path.display());
        }
        let dest = to.join(rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir_all(&dest)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                entry.unpack(&dest).with_context(|| format!("writing {}", dest.display()))?;
            }
            _ => {}
        }
    }
    Ok(())
}
