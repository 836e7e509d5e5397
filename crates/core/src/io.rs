//! Files that are never half-written: atomic writes (temp file + rename) and a JSON-lines log.

use anyhow::{Context, Result};
use serde::Serialize;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The temporary sibling a write goes to before it is renamed over `path`.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes through `fill` into a temp file next to `path`, then renames it over `path`.
///
/// If `fill` or any step fails, the temp file is removed and whatever `path` held before is left
/// intact.
pub fn write_atomic_with(path: &Path, fill: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating folder {}", dir.display()))?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut w = BufWriter::new(file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Atomically replaces `path` with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| Ok(w.write_all(bytes)?))
}

/// Atomically replaces `path` with `value` as pretty JSON.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    write_atomic_with(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value)?;
        Ok(w.write_all(b"\n")?)
    })
}

/// Reads and parses a JSON file, naming the file in any error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Appends one JSON record per line (`metrics.jsonl`), flushed after each record so a crash
/// loses at most the record being written.
pub struct JsonLines {
    path: PathBuf,
    out: BufWriter<File>,
}

impl JsonLines {
    /// Opens `path` for appending, creating it and its folder if needed.
    pub fn append(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating folder {}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self { path: path.to_owned(), out: BufWriter::new(file) })
    }

    /// Writes one record as a line.
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let write = |out: &mut BufWriter<File>| -> Result<()> {
            serde_json::to_writer(&mut *out, record)?;
            out.write_all(b"\n")?;
            Ok(out.flush()?)
        };
        write(&mut self.out).with_context(|| format!("appending to {}", self.path.display()))
    }

    /// Reads every record of a JSON-lines file, naming the file and line of a bad record.
    pub fn read_all<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
        let (records, torn) = Self::read_complete(path)?;
        match torn {
            Some(line) => Err(anyhow::anyhow!("{} line {line}: a torn record (no line end)", path.display())),
            None => Ok(records),
        }
    }

    /// Like [`JsonLines::read_all`], but a last line without its line end that does not parse —
    /// what a kill during an append leaves — is set aside and its number returned, instead of
    /// failing: the records before it are intact. A bad line anywhere else is still an error.
    pub fn read_complete<T: serde::de::DeserializeOwned>(path: &Path) -> Result<(Vec<T>, Option<usize>)> {
        let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            match serde_json::from_str(line) {
                Ok(r) => out.push(r),
                Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => return Ok((out, Some(i + 1))),
                Err(e) => return Err(e).with_context(|| format!("{} line {}", path.display(), i + 1)),
            }
        }
        Ok((out, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/out.json");
        write_json_atomic(&p, &serde_json::json!({"a": 1})).unwrap();
        write_json_atomic(&p, &serde_json::json!({"a": 2})).unwrap();
        let v: serde_json::Value = read_json(&p).unwrap();
        assert_eq!(v["a"], 2);
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("probe.json");
        write_atomic(&p, b"old contents").unwrap();
        let err = write_atomic_with(&p, |w| {
            w.write_all(b"half a new fi")?;
            anyhow::bail!("disk on fire")
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("probe.json"), "{err:#}");
        assert_eq!(fs::read(&p).unwrap(), b"old contents");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "temp file left behind");
    }

    #[test]
    fn json_lines_append_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.jsonl");
        for step in 0..3 {
            let mut log = JsonLines::append(&p).unwrap();
            log.write(&serde_json::json!({"step": step})).unwrap();
        }
        let recs: Vec<serde_json::Value> = JsonLines::read_all(&p).unwrap();
        assert_eq!(recs.iter().map(|r| r["step"].as_i64().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
        fs::write(&p, "{\"step\":0}\nnot json\n").unwrap();
        let e = format!("{:#}", JsonLines::read_all::<serde_json::Value>(&p).unwrap_err());
        assert!(e.contains("metrics.jsonl line 2"), "{e}");
    }

    #[test]
    fn a_torn_last_record_is_set_aside_a_corrupt_middle_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.jsonl");
        fs::write(&p, "{\"step\":0}\n{\"step\":1}\n{\"step\":2,\"lo").unwrap();
        let (recs, torn) = JsonLines::read_complete::<serde_json::Value>(&p).unwrap();
        assert_eq!((recs.len(), torn), (2, Some(3)));
        let e = format!("{:#}", JsonLines::read_all::<serde_json::Value>(&p).unwrap_err());
        assert!(e.contains("metrics.jsonl line 3: a torn record"), "{e}");
        fs::write(&p, "{\"step\":0}\n{\"st\n{\"step\":2}\n").unwrap();
        let e = format!("{:#}", JsonLines::read_complete::<serde_json::Value>(&p).unwrap_err());
        assert!(e.contains("metrics.jsonl line 2"), "a corrupt line in the middle stays an error: {e}");
        fs::write(&p, "{\"step\":0}\nnot json\n").unwrap();
        assert!(
            JsonLines::read_complete::<serde_json::Value>(&p).is_err(),
            "a complete bad last line is corrupt, not torn"
        );
    }
}
