//! Files that are never half-written: atomic writes (temp file + rename) and a JSON-lines log.

use anyhow::{Context, Result};
use serde::Serialize;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The temporary sibling a write goes to before it is renamed over `path`:
/// `.<name>.<pid>.tmp`, hidden, and naming the writing process so that [`remove_stale_temps`]
/// can tell an interrupted write's leftover from a write in progress.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Like [`temp_path`], but keeping an extension after `.tmp` (`.<name>.<pid>.tmp.<ext>`), for
/// writers that pick a file format by extension (tch's `save`).
pub fn temp_path_with_ext(path: &Path, ext: &str) -> PathBuf {
    let tmp = temp_path(path);
    let name = tmp.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    tmp.with_file_name(format!("{name}.{ext}"))
}

/// The target name and writer's pid of temp file `name`, if it is one of the project's temp
/// names: `.<target>.<pid>.tmp`, `.<target>.<pid>.tmp.<ext>`, or `.<tag>.<pid>.safetensors.tmp`
/// (the checkpoints' temp name before it was unified; its target is `<tag>.safetensors`).
pub fn parse_temp_name(name: &str) -> Option<(String, u32)> {
    let parts: Vec<&str> = name.strip_prefix('.')?.split('.').collect();
    let n = parts.len();
    // (index of the pid, extension of the target written after it)
    let (at, moved_ext) = match parts.as_slice() {
        [.., "safetensors", "tmp"] if n >= 4 && is_pid(parts[n - 3]) => (n - 3, Some("safetensors")),
        [.., "tmp"] if n >= 3 => (n - 2, None),
        [.., "tmp", ext] if n >= 4 && !ext.is_empty() => (n - 3, None),
        _ => return None,
    };
    if !is_pid(parts[at]) {
        return None;
    }
    let mut target = parts[..at].join(".");
    if target.is_empty() {
        return None;
    }
    if let Some(ext) = moved_ext {
        target = format!("{target}.{ext}");
    }
    Some((target, parts[at].parse().ok()?))
}

fn is_pid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether process `pid` runs on this machine (a pid that cannot be checked counts as running).
pub fn process_runs(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return true };
        // Signal 0 checks for existence only; EPERM means it exists under another user.
        // SAFETY: kill with signal 0 sends nothing.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Removes from `dir` (not its subfolders) the temp files that interrupted writes left: files with
/// one of the project's temp names ([`parse_temp_name`]) whose writer is neither this process nor a
/// process still running here, not modified for at least `min_age`, and whose target name
/// (`<name>`) `wanted` accepts. Returns the removed paths; a missing `dir` has none.
///
/// `min_age` guards folders that processes on other machines may write at the same time (a
/// shared classifier cache on a cluster's file system), where a pid says nothing: a write in
/// progress keeps its temp file fresh. A folder this process holds the lock of needs none.
pub fn remove_stale_temps(dir: &Path, min_age: Duration, wanted: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((target, pid)) = parse_temp_name(&name) else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        let age = meta.modified().ok().and_then(|m| m.elapsed().ok()).unwrap_or_default();
        if !meta.is_file() || pid == std::process::id() || process_runs(pid) || age < min_age || !wanted(&target) {
            continue;
        }
        let path = entry.path();
        fs::remove_file(&path).with_context(|| format!("removing stale temp file {}", path.display()))?;
        tracing::info!(file = %path.display(), "removed the temp file of an interrupted write");
        removed.push(path);
    }
    Ok(removed)
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
    ///
    /// A last line without its line end (a kill or a full disk between a record and its `\n`)
    /// would have the next record glued onto it: a complete record there gets its line end first;
    /// a torn one is an error naming the file and line (the trainer drops it before appending).
    pub fn append(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating folder {}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut out = BufWriter::new(file);
        if !ends_with_line_end(path)? {
            let (_, torn) = Self::read_complete::<serde_json::Value>(path)?;
            if let Some(line) = torn {
                anyhow::bail!(
                    "{} line {line}: a torn record (no line end); appending after it would corrupt the log",
                    path.display()
                );
            }
            out.write_all(b"\n")
                .and_then(|()| out.flush())
                .with_context(|| format!("appending to {}", path.display()))?;
        }
        Ok(Self { path: path.to_owned(), out })
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

/// Whether `path` is empty or ends with a line end.
fn ends_with_line_end(path: &Path) -> Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = f.metadata().with_context(|| format!("reading {}", path.display()))?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8];
    f.seek(SeekFrom::Start(len - 1))
        .and_then(|_| f.read_exact(&mut last))
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(last[0] == b'\n')
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

    /// Issue 27 item 9: a last record that lost its line end had the next one glued onto it, and
    /// every later read of the log failed.
    #[test]
    fn a_record_appended_after_a_last_line_without_its_line_end_starts_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.jsonl");
        fs::write(&p, "{\"step\":0}\n{\"step\":1}").unwrap();
        JsonLines::append(&p).unwrap().write(&serde_json::json!({"step": 2})).unwrap();
        let recs: Vec<serde_json::Value> = JsonLines::read_all(&p).unwrap();
        assert_eq!(recs.iter().map(|r| r["step"].as_i64().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
        // A torn last record is not completed into a corrupt middle line: appending is refused.
        fs::write(&p, "{\"step\":0}\n{\"st").unwrap();
        let e = format!("{:#}", JsonLines::append(&p).err().unwrap());
        assert!(e.contains("metrics.jsonl line 2: a torn record"), "{e}");
        assert_eq!(fs::read_to_string(&p).unwrap(), "{\"step\":0}\n{\"st", "nothing appended");
    }

    #[test]
    fn temp_names_name_their_target_and_writer() {
        let me = std::process::id();
        let tmp = temp_path(Path::new("run/probe.json"));
        assert_eq!(parse_temp_name(&tmp.file_name().unwrap().to_string_lossy()), Some(("probe.json".into(), me)));
        let tmp = temp_path_with_ext(Path::new("c/photos.seed-0.digit.00ff"), "safetensors");
        assert_eq!(
            tmp.file_name().unwrap().to_string_lossy(),
            format!(".photos.seed-0.digit.00ff.{me}.tmp.safetensors")
        );
        assert_eq!(parse_temp_name(&tmp.file_name().unwrap().to_string_lossy()).unwrap().0, "photos.seed-0.digit.00ff");
        assert_eq!(parse_temp_name(".epoch-0003.41.safetensors.tmp"), Some(("epoch-0003.safetensors".into(), 41)));
        for not_temp in [".lock", "probe.json", ".probe.json.tmp", ".figures.tmp", "a.12.tmp", ".x.12a.tmp", "..12.tmp"]
        {
            assert_eq!(parse_temp_name(not_temp), None, "{not_temp}");
        }
    }

    /// Issue 27 item 12: temp files of interrupted writes were never removed.
    #[cfg(unix)]
    #[test]
    fn stale_temps_go_live_and_young_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let dead = {
            let mut child = std::process::Command::new("true").spawn().unwrap();
            let pid = child.id();
            child.wait().unwrap();
            pid
        };
        let live = std::os::unix::process::parent_id();
        let me = std::process::id();
        let names = [
            format!(".probe.json.{dead}.tmp"),
            format!(".epoch-0002.{dead}.safetensors.tmp"),
            format!(".cls.{dead}.tmp.safetensors"),
            format!(".probe.json.{live}.tmp"),
            format!(".probe.json.{me}.tmp"),
            "probe.json".into(),
            ".lock".into(),
        ];
        for n in &names {
            fs::write(dir.path().join(n), "x").unwrap();
        }
        let left = |d: &Path| {
            let mut v: Vec<String> =
                fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            v.sort();
            v
        };
        let young = remove_stale_temps(dir.path(), Duration::from_secs(600), |_| true).unwrap();
        assert!(young.is_empty(), "a fresh temp file may be another machine's write in progress: {young:?}");
        let only_probe = remove_stale_temps(dir.path(), Duration::ZERO, |t| t == "probe.json").unwrap();
        assert_eq!(only_probe, [dir.path().join(&names[0])]);
        assert_eq!(remove_stale_temps(dir.path(), Duration::ZERO, |_| true).unwrap().len(), 2);
        let mut kept: Vec<String> = names[3..].to_vec();
        kept.sort();
        assert_eq!(left(dir.path()), kept, "a running writer's temps and other files stay");
        assert!(remove_stale_temps(&dir.path().join("missing"), Duration::ZERO, |_| true).unwrap().is_empty());
    }
}
