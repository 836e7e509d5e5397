//! `cargo xtask fetch [cifar10|mnist|all]`: downloads the real datasets (docs/PROTOCOL.md §2.1 "Real sources")
//! into `data/raw/`, verified against `data/manifest.json` (schema: [`manifest`]).
//!
//! Each file goes to a `.part` file first (continued with an HTTP Range request after an interrupted
//! run), is verified, and only then renamed into place, so a file under its final name is always a
//! verified one. A `.tar.gz` with an `extract` entry is unpacked after verification into a staging
//! folder, its members checked, and the folder renamed into place.

mod manifest;
mod transfer;
mod verify;

use anyhow::{Context, Result, bail};
use manifest::{Dataset, Extract, FileEntry};
use std::path::{Path, PathBuf};
use transfer::Source;

#[derive(clap::Args)]
pub struct FetchArgs {
    /// Which dataset: cifar10, mnist (any dataset of the manifest) or all.
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

/// Whether every member of `ex` is in place and verifies.
fn extracted_ok(dir: &Path, ex: &Extract) -> Result<bool> {
    for m in &ex.members {
        if verify::verify_member(&dir.join(&ex.dir).join(&m.name), m)?.is_err() {
            return Ok(false);
        }
    }
    Ok(true)
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
    let file = std::fs::File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file)));
    let mut unpack = || -> std::io::Result<()> {
        for entry in tar.entries()? {
            let mut entry = entry?;
            // unpack_in refuses paths that would leave `staging`.
            if entry.path()?.starts_with(&ex.dir) {
                entry.unpack_in(&staging)?;
            }
        }
        Ok(())
    };
    unpack().with_context(|| format!("extracting {}", archive.display()))?;
    let unpacked = staging.join(&ex.dir);
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
    eprintln!("extracted {} verified files to {}", ex.members.len(), target.display());
    Ok(())
}
