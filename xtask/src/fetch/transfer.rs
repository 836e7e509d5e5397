//! Getting one file's bytes into a `.part` file: over HTTP (resuming with a Range request) or by
//! copying from a local mirror folder. Verification is the caller's job.

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a file comes from.
#[derive(Debug)]
pub enum Source {
    Url(String),
    Dir(PathBuf),
}

/// An HTTP agent that hands every status to us (416 and 200-instead-of-206 matter for resuming) and
/// gives up on dead hosts instead of hanging. Proxies come from the usual environment variables.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// Fills `part` with the file from `src`; `label` names it in messages.
pub fn fetch(agent: &ureq::Agent, src: &Source, part: &Path, label: &str) -> Result<()> {
    match src {
        Source::Url(url) => http(agent, url, part, label, true),
        Source::Dir(path) => copy(path, part, label),
    }
}

fn copy(src: &Path, part: &Path, label: &str) -> Result<()> {
    let total = src.metadata().with_context(|| format!("reading {}", src.display()))?.len();
    let pb = bar(Some(total), 0, &format!("copying {label}"));
    let mut from = pb.wrap_read(File::open(src).with_context(|| format!("opening {}", src.display()))?);
    let mut to = File::create(part).with_context(|| format!("creating {}", part.display()))?;
    std::io::copy(&mut from, &mut to).with_context(|| format!("copying {} to {}", src.display(), part.display()))?;
    pb.finish_and_clear();
    Ok(())
}

/// Downloads `url` into `part`, continuing an existing `part` with a Range request. `may_retry` allows
/// one clean restart when the server answers a Range request with the wrong bytes.
fn http(agent: &ureq::Agent, url: &str, part: &Path, label: &str, may_retry: bool) -> Result<()> {
    let have = part.metadata().map(|m| m.len()).unwrap_or(0);
    let mut req = agent.get(url);
    if have > 0 {
        req = req.header("Range", format!("bytes={have}-"));
    }
    let resp =
        req.call().with_context(|| format!("requesting {url}; check the network, or use --mirror URL-or-DIR"))?;
    let status = resp.status().as_u16();
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let length: Option<u64> = header("content-length").and_then(|v| v.trim().parse().ok());
    let (start, file) = match status {
        206 if have > 0 && range_start(header("content-range").as_deref()) == Some(have) => {
            eprintln!("{label}: resuming at byte {have}");
            (have, OpenOptions::new().append(true).open(part)?)
        }
        206 if may_retry => {
            eprintln!("{label}: the server sent an unexpected range; restarting from the beginning");
            std::fs::remove_file(part)?;
            return http(agent, url, part, label, false);
        }
        200 => {
            if have > 0 {
                eprintln!("{label}: the server ignored the Range request; restarting from the beginning");
            }
            (0, File::create(part).with_context(|| format!("creating {}", part.display()))?)
        }
        // Nothing is left to send: the part is complete (or wrong, which verification will say).
        416 if have > 0 => return Ok(()),
        _ => bail!("{url} answered HTTP {status}; check the URL, or use --mirror URL-or-DIR"),
    };
    let total = length.map(|l| start + l);
    receive(resp.into_body().into_reader(), file, part, label, start, total)
}

/// `Content-Range: bytes START-END/TOTAL` → START.
fn range_start(v: Option<&str>) -> Option<u64> {
    v?.trim().strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

/// Streams the body into `file`; a short or broken body keeps the `.part` for the next run.
fn receive(
    mut body: impl Read,
    mut file: File,
    part: &Path,
    label: &str,
    start: u64,
    total: Option<u64>,
) -> Result<()> {
    let pb = bar(total, start, &format!("downloading {label}"));
    let mut buf = vec![0u8; 1 << 16];
    let mut at = start;
    let broke = loop {
        match body.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => {
                file.write_all(&buf[..n]).with_context(|| format!("writing {}", part.display()))?;
                at += n as u64;
                pb.inc(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Some(e.to_string()),
        }
    };
    file.sync_all().with_context(|| format!("writing {}", part.display()))?;
    pb.finish_and_clear();
    let short = total.is_some_and(|t| at < t);
    if broke.is_some() || short {
        let of = total.map_or_else(String::new, |t| format!(" of {t}"));
        let why = broke.unwrap_or_else(|| "the connection closed early".into());
        bail!(
            "the download of {label} was interrupted after {at}{of} bytes ({why}); {} is kept: run the same \
             command again to resume, or use --mirror URL-or-DIR",
            part.display()
        );
    }
    Ok(())
}

fn bar(total: Option<u64>, pos: u64, msg: &str) -> ProgressBar {
    let pb = match total {
        Some(t) => ProgressBar::new(t).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner()
            .with_style(ProgressStyle::with_template("{msg} {bytes} {bytes_per_sec}").expect("valid template")),
    };
    pb.set_position(pos);
    pb.with_message(msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_start() {
        assert_eq!(range_start(Some("bytes 100-199/200")), Some(100));
        assert_eq!(range_start(Some("bytes */200")), None);
        assert_eq!(range_start(None), None);
    }
}
