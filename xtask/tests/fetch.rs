//! `cargo xtask fetch` end to end, against a loopback HTTP server written here (Range support, and
//! failure modes: a dropped connection, a server that ignores Range), with tiny files in the real
//! formats (MNIST IDX gzip, a CIFAR-10 style .tar.gz) and their own manifest.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

// ---- the loopback server ----

#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    /// Path → bytes to send before closing the connection, once (the Content-Length promises all).
    drop_after: HashMap<String, usize>,
    ignore_range: bool,
    /// (path, Range header) of every request.
    log: Vec<(String, Option<String>)>,
}

struct Server {
    base: String,
    state: Arc<Mutex<State>>,
}

impl Server {
    fn start(files: &[(&str, &[u8])]) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut st = State::default();
        for (name, data) in files {
            st.files.insert(format!("/{name}"), data.to_vec());
        }
        let state = Arc::new(Mutex::new(st));
        let shared = state.clone();
        // Detached: it lives until the test process exits.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, &shared);
            }
        });
        Server { base, state }
    }

    fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    fn requests(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().unwrap().log.clone()
    }
}

/// One request per connection (`Connection: close`), which is all HTTP/1.1 asks of a server.
fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_string());
        }
    }
    let (data, drop_at, ignore) = {
        let mut st = state.lock().unwrap();
        st.log.push((path.clone(), range.clone()));
        let drop_at = st.drop_after.remove(&path);
        (st.files.get(&path).cloned(), drop_at, st.ignore_range)
    };
    let mut out = stream;
    let Some(data) = data else {
        return out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    };
    let start: Option<usize> = if ignore {
        None
    } else {
        range.as_deref().and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
    };
    let len = data.len();
    let (head, body) = match start {
        Some(s) if s >= len => (
            format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n"),
            &[][..],
        ),
        Some(s) => (
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\nContent-Length: {}\r\n",
                len - 1,
                len - s
            ),
            &data[s..],
        ),
        None => (format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n"), &data[..]),
    };
    out.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())?;
    match drop_at {
        Some(n) => out.write_all(&body[..n.min(body.len())])?,
        None => out.write_all(body)?,
    }
    out.flush()?;
    out.shutdown(std::net::Shutdown::Both)
}

// ---- test data in the real formats ----

fn sha(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An IDX3 image file: `n` images of 28×28 pseudo-random bytes (so gzip barely shrinks it).
fn idx_images(n: u32) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for d in [n, 28, 28] {
        v.extend(d.to_be_bytes());
    }
    let mut x = 12345u32;
    for _ in 0..n * 28 * 28 {
        x = x.wrapping_mul(1664525).wrapping_add(1013904223);
        v.push((x >> 24) as u8);
    }
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 1];
    v.extend((labels.len() as u32).to_be_bytes());
    v.extend(labels);
    v
}

/// CIFAR-10 binary records: label byte + 3072 pixel bytes each.
fn cifar_batch(n: usize, seed: u8) -> Vec<u8> {
    (0..n * 3073).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

const CIFAR_MEMBERS: [&str; 3] = ["data_batch_1.bin", "test_batch.bin", "batches.meta.txt"];

fn cifar_members() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (CIFAR_MEMBERS[0], cifar_batch(3, 1)),
        (CIFAR_MEMBERS[1], cifar_batch(2, 2)),
        (CIFAR_MEMBERS[2], b"airplane\nautomobile\n".to_vec()),
    ]
}

fn cifar_tar_gz() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in cifar_members() {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, format!("cifar-10-batches-bin/{name}"), &data[..]).unwrap();
    }
    gzip(&b.into_inner().unwrap(), 6)
}

// ---- manifest and runner ----

/// A gzip file's manifest entry: `archive` is the "official" archive, `content` what it decompresses to.
fn gz_entry(name: &str, url: &str, archive: &[u8], content: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "name": name, "url": url, "size": archive.len(), "sha256": sha(archive),
        "decompressed_size": content.len(), "decompressed_sha256": sha(content),
    })
}

fn write_manifest(dir: &Path, mnist: Vec<serde_json::Value>, cifar: Option<serde_json::Value>) -> PathBuf {
    let mut datasets = serde_json::Map::new();
    let ds = |dir: &str, files: Vec<serde_json::Value>| serde_json::json!({"description": "test", "licence": "test licence", "citation": "test", "dir": dir, "files": files});
    if !mnist.is_empty() {
        datasets.insert("mnist".into(), ds("mnist", mnist));
    }
    if let Some(c) = cifar {
        datasets.insert("cifar10".into(), ds("", vec![c]));
    }
    let path = dir.join("manifest.json");
    std::fs::write(&path, serde_json::json!({"version": 1, "datasets": datasets}).to_string()).unwrap();
    path
}

fn fetch(manifest: &Path, out: &Path, extra: &[&str]) -> (bool, String) {
    let o: Output = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("fetch")
        .args(extra)
        .arg("--manifest")
        .arg(manifest)
        .arg("--out")
        .arg(out)
        // The loopback server must be reached directly, whatever the environment says.
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    (o.status.success(), text)
}

struct Mnist {
    images: Vec<u8>,
    labels: Vec<u8>,
    images_gz: Vec<u8>,
    labels_gz: Vec<u8>,
}

fn mnist() -> Mnist {
    let (images, labels) = (idx_images(200), idx_labels(&[3, 1, 4, 1, 5]));
    Mnist { images_gz: gzip(&images, 6), labels_gz: gzip(&labels, 6), images, labels }
}

const IMG: &str = "train-images-idx3-ubyte.gz";
const LBL: &str = "train-labels-idx1-ubyte.gz";

fn mnist_manifest(dir: &Path, m: &Mnist, srv_url: impl Fn(&str) -> String) -> PathBuf {
    let files = vec![
        gz_entry(IMG, &srv_url(IMG), &m.images_gz, &m.images),
        gz_entry(LBL, &srv_url(LBL), &m.labels_gz, &m.labels),
    ];
    write_manifest(dir, files, None)
}

// ---- the tests ----

#[test]
fn good_download_verifies_lands_in_place_and_a_second_run_skips() {
    let m = mnist();
    let srv = Server::start(&[(IMG, &m.images_gz), (LBL, &m.labels_gz)]);
    let tmp = tempfile::tempdir().unwrap();
    let manifest = mnist_manifest(tmp.path(), &m, |n| srv.url(n));
    let out = tmp.path().join("raw");
    let (ok, text) = fetch(&manifest, &out, &["mnist"]);
    assert!(ok, "{text}");
    assert_eq!(std::fs::read(out.join("mnist").join(IMG)).unwrap(), m.images_gz);
    assert_eq!(std::fs::read(out.join("mnist").join(LBL)).unwrap(), m.labels_gz);
    assert!(!out.join("mnist").join(format!("{IMG}.part")).exists());
    assert_eq!(text.matches("verified by archive sha256").count(), 2, "{text}");
    assert_eq!(srv.requests().len(), 2);

    let (ok, text) = fetch(&manifest, &out, &["mnist"]);
    assert!(ok, "{text}");
    assert_eq!(text.matches("already present, verified by archive sha256").count(), 2, "{text}");
    assert_eq!(srv.requests().len(), 2, "a second run must not download again");
}

#[test]
fn a_corrupted_file_is_rejected_deleted_and_named() {
    let m = mnist();
    let mut bad = m.labels_gz.clone();
    let last = bad.len() - 5;
    bad[last] ^= 0xff;
    let srv = Server::start(&[(IMG, &m.images_gz), (LBL, &bad)]);
    let tmp = tempfile::tempdir().unwrap();
    let manifest = mnist_manifest(tmp.path(), &m, |n| srv.url(n));
    let out = tmp.path().join("raw");
    let (ok, text) = fetch(&manifest, &out, &[]);
    assert!(!ok, "{text}");
    assert!(text.contains(&format!("{LBL} from {}", srv.url(LBL))), "{text}");
    assert!(
        text.contains(&format!("expected {} bytes with sha256 {}", m.labels_gz.len(), sha(&m.labels_gz))),
        "{text}"
    );
    assert!(text.contains(&format!("found {} bytes with sha256 {}", bad.len(), sha(&bad))), "{text}");
    assert!(text.contains("--mirror") && text.contains("1 file(s) failed: mnist/train-labels"), "{text}");
    assert!(!out.join("mnist").join(LBL).exists() && !out.join("mnist").join(format!("{LBL}.part")).exists());
    assert!(out.join("mnist").join(IMG).exists(), "the good file is kept");
}

#[test]
fn a_dropped_connection_leaves_a_part_that_the_next_run_resumes() {
    let m = mnist();
    let srv = Server::start(&[(IMG, &m.images_gz)]);
    let cut = m.images_gz.len() / 3;
    srv.state.lock().unwrap().drop_after.insert(format!("/{IMG}"), cut);
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_manifest(tmp.path(), vec![gz_entry(IMG, &srv.url(IMG), &m.images_gz, &m.images)], None);
    let out = tmp.path().join("raw");
    let part = out.join("mnist").join(format!("{IMG}.part"));

    let (ok, text) = fetch(&manifest, &out, &["mnist"]);
    assert!(!ok, "{text}");
    assert!(text.contains("interrupted") && text.contains("run the same command again to resume"), "{text}");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), cut as u64);

    let (ok, text) = fetch(&manifest, &out, &["mnist"]);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("resuming at byte {cut}")), "{text}");
    assert_eq!(srv.requests().last().unwrap().1.as_deref(), Some(format!("bytes={cut}-").as_str()));
    assert_eq!(std::fs::read(out.join("mnist").join(IMG)).unwrap(), m.images_gz);
    assert!(!part.exists());
}

#[test]
fn a_server_that_ignores_range_restarts_cleanly() {
    let m = mnist();
    let srv = Server::start(&[(IMG, &m.images_gz)]);
    srv.state.lock().unwrap().ignore_range = true;
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_manifest(tmp.path(), vec![gz_entry(IMG, &srv.url(IMG), &m.images_gz, &m.images)], None);
    let out = tmp.path().join("raw");
    std::fs::create_dir_all(out.join("mnist")).unwrap();
    std::fs::write(out.join("mnist").join(format!("{IMG}.part")), b"stale bytes from another run").unwrap();
    let (ok, text) = fetch(&manifest, &out, &["mnist"]);
    assert!(ok, "{text}");
    assert!(text.contains("ignored the Range request"), "{text}");
    assert!(srv.requests()[0].1.is_some(), "a Range request was sent");
    assert_eq!(std::fs::read(out.join("mnist").join(IMG)).unwrap(), m.images_gz);
}

#[test]
fn a_recompressed_gzip_is_accepted_through_the_decompressed_hash() {
    let m = mnist();
    let recompressed = gzip(&m.labels, 1);
    let mut other_header = flate2::GzBuilder::new().filename("x").write(Vec::new(), flate2::Compression::new(9));
    other_header.write_all(&m.images).unwrap();
    let images_re = other_header.finish().unwrap();
    assert!(recompressed != m.labels_gz && images_re != m.images_gz);
    let srv = Server::start(&[(IMG, &images_re), (LBL, &recompressed)]);
    let tmp = tempfile::tempdir().unwrap();
    let manifest = mnist_manifest(tmp.path(), &m, |n| srv.url(n));
    let out = tmp.path().join("raw");
    let (ok, text) = fetch(&manifest, &out, &["mnist"]);
    assert!(ok, "{text}");
    assert_eq!(text.matches("verified by decompressed sha256").count(), 2, "{text}");
    assert_eq!(std::fs::read(out.join("mnist").join(LBL)).unwrap(), recompressed);
}

#[test]
fn a_local_folder_mirror_and_a_url_mirror_work() {
    let m = mnist();
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    std::fs::write(mirror.join(IMG), &m.images_gz).unwrap();
    std::fs::write(mirror.join(LBL), gzip(&m.labels, 9)).unwrap();
    // The canonical URLs point at a closed port: only the mirror can succeed.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let manifest = mnist_manifest(tmp.path(), &m, |n| format!("http://{dead}/{n}"));
    let out = tmp.path().join("raw");
    let (ok, text) = fetch(&manifest, &out, &["mnist", "--mirror", mirror.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("verified by archive sha256") && text.contains("verified by decompressed sha256"), "{text}");
    assert_eq!(std::fs::read(out.join("mnist").join(IMG)).unwrap(), m.images_gz);

    let srv = Server::start(&[
        ("base/train-images-idx3-ubyte.gz", &m.images_gz),
        ("base/train-labels-idx1-ubyte.gz", &m.labels_gz),
    ]);
    let out2 = tmp.path().join("raw2");
    let (ok, text) = fetch(&manifest, &out2, &["mnist", "--mirror", &format!("{}/base/", srv.base)]);
    assert!(ok, "{text}");
    assert_eq!(srv.requests()[0].0, format!("/base/{IMG}"));

    let (ok, text) =
        fetch(&manifest, &tmp.path().join("raw3"), &["--mirror", tmp.path().join("nope").to_str().unwrap()]);
    assert!(!ok && text.contains("holds no train-images-idx3-ubyte.gz"), "{text}");
}

#[test]
fn all_goes_on_after_a_failing_dataset_and_then_fails() {
    let m = mnist();
    let tmp = tempfile::tempdir().unwrap();
    // The mirror mirrors the layout of data/raw: mnist/<files>, no CIFAR archive.
    let mirror = tmp.path().join("mirror");
    std::fs::create_dir_all(mirror.join("mnist")).unwrap();
    std::fs::write(mirror.join("mnist").join(IMG), &m.images_gz).unwrap();
    let cifar =
        serde_json::json!({"name": "cifar-10-binary.tar.gz", "url": "http://127.0.0.1:9/c.tgz", "sha256": sha(b"x")});
    let manifest = write_manifest(
        tmp.path(),
        vec![gz_entry(IMG, "http://127.0.0.1:9/i.gz", &m.images_gz, &m.images)],
        Some(cifar),
    );
    let out = tmp.path().join("raw");
    let (ok, text) = fetch(&manifest, &out, &["all", "--mirror", mirror.to_str().unwrap()]);
    assert!(!ok, "{text}");
    assert!(text.contains("holds no cifar-10-binary.tar.gz") && text.contains("1 file(s) failed: cifar10/"), "{text}");
    assert_eq!(std::fs::read(out.join("mnist").join(IMG)).unwrap(), m.images_gz);
}

#[test]
fn cifar_archive_is_verified_extracted_and_then_skipped() {
    let tgz = cifar_tar_gz();
    let srv = Server::start(&[("cifar-10-binary.tar.gz", &tgz)]);
    let tmp = tempfile::tempdir().unwrap();
    let members: Vec<serde_json::Value> = cifar_members()
        .iter()
        .map(|(n, d)| serde_json::json!({"name": n, "size": d.len(), "sha256": sha(d)}))
        .collect();
    let entry = serde_json::json!({
        "name": "cifar-10-binary.tar.gz", "url": srv.url("cifar-10-binary.tar.gz"), "size": tgz.len(), "sha256": sha(&tgz),
        "extract": {"dir": "cifar-10-batches-bin", "members": members},
    });
    let manifest = write_manifest(tmp.path(), vec![], Some(entry));
    let out = tmp.path().join("raw");
    let (ok, text) = fetch(&manifest, &out, &["cifar10"]);
    assert!(ok, "{text}");
    for (name, data) in cifar_members() {
        assert_eq!(std::fs::read(out.join("cifar-10-batches-bin").join(name)).unwrap(), data, "{name}");
    }
    assert!(text.contains("extracted 3 verified files"), "{text}");
    assert!(!out.join(".cifar-10-batches-bin.extracting").exists());

    let (ok, text) = fetch(&manifest, &out, &["cifar10"]);
    assert!(ok && text.contains("already extracted and verified"), "{text}");
    assert_eq!(srv.requests().len(), 1);

    // A damaged member is noticed and re-extracted from the kept archive, without downloading again.
    std::fs::write(out.join("cifar-10-batches-bin").join("test_batch.bin"), b"junk").unwrap();
    let (ok, text) = fetch(&manifest, &out, &["cifar10"]);
    assert!(ok && text.contains("already present, verified by archive sha256"), "{text}");
    assert_eq!(std::fs::read(out.join("cifar-10-batches-bin/test_batch.bin")).unwrap(), cifar_batch(2, 2));
    assert_eq!(srv.requests().len(), 1);
}

#[test]
fn unknown_dataset_and_bad_manifest_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mnist();
    let manifest = mnist_manifest(tmp.path(), &m, |n| format!("http://127.0.0.1:9/{n}"));
    let (ok, text) = fetch(&manifest, tmp.path(), &["svhn"]);
    assert!(!ok && text.contains("unknown dataset \"svhn\"") && text.contains("mnist"), "{text}");
    std::fs::write(&manifest, r#"{"version": 1, "datasets": {"mnist": {"description": "d"}}}"#).unwrap();
    let (ok, text) = fetch(&manifest, tmp.path(), &[]);
    assert!(!ok && text.contains("manifest.json") && text.contains("datasets.mnist"), "{text}");
}

// ---- audio (issue 15.10) ----

/// A manifest of one dataset `id` with `files`, landing in `--out/<dir>`.
fn manifest_of(dir: &Path, id: &str, ds_dir: &str, files: Vec<serde_json::Value>) -> PathBuf {
    let ds = serde_json::json!({"description": "test", "licence": "test licence", "citation": "test", "dir": ds_dir, "files": files});
    let path = dir.join("manifest.json");
    std::fs::write(&path, serde_json::json!({"version": 1, "datasets": {id: ds}}).to_string()).unwrap();
    path
}

/// A mono 16-bit WAV of `n` samples at `rate` Hz, in memory.
fn wav_bytes(rate: u32, n: usize, seed: i16) -> Vec<u8> {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
    for i in 0..n {
        w.write_sample(seed.wrapping_mul(31).wrapping_add(i as i16)).unwrap();
    }
    w.finalize().unwrap();
    buf.into_inner()
}

const NOISE: [(&str, &str); 3] = [
    ("babble.wav", "noisedata/BabbleNoise/Babble1.wav"),
    ("traffic.wav", "noisedata/DrivingcarNoise/Traffic10.wav"),
    ("machinery.wav", "noisedata/MachineryNoise/Machinery1.wav"),
];

/// The published recordings' layout: raw files of a repository at a commit, fetched under the names
/// the audio loader reads (`audio/noise/babble.wav`, …), each checked against its sha256; from the
/// URLs, then from a local folder mirror such as a copy of the three files.
#[test]
fn noise_recordings_land_where_the_audio_loader_reads_them() {
    let recordings: Vec<Vec<u8>> = (0..3).map(|i| wav_bytes(44_100, 300 + i * 10, i as i16)).collect();
    let commit = "repo/c30b72a";
    let served: Vec<(String, &[u8])> =
        NOISE.iter().zip(&recordings).map(|((_, path), data)| (format!("{commit}/{path}"), &data[..])).collect();
    let srv = Server::start(&served.iter().map(|(p, d)| (p.as_str(), *d)).collect::<Vec<_>>());
    let tmp = tempfile::tempdir().unwrap();
    let entries = |url: &dyn Fn(&str) -> String| -> Vec<serde_json::Value> {
        NOISE
            .iter()
            .zip(&recordings)
            .map(|((name, path), d)| serde_json::json!({"name": name, "url": url(path), "size": d.len(), "sha256": sha(d)}))
            .collect()
    };
    let manifest =
        manifest_of(tmp.path(), "noise", "audio/noise", entries(&|p: &str| srv.url(&format!("{commit}/{p}"))));
    let out = tmp.path().join("raw");
    let (ok, text) = fetch(&manifest, &out, &["noise"]);
    assert!(ok, "{text}");
    for ((name, _), data) in NOISE.iter().zip(&recordings) {
        assert_eq!(&std::fs::read(out.join("audio/noise").join(name)).unwrap(), data, "{name}");
    }
    assert_eq!(text.matches("verified by archive sha256").count(), 3, "{text}");

    // A folder holding the three files under the loader's names (as ../shared/data/noise does).
    let mirror = tmp.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    for ((name, _), data) in NOISE.iter().zip(&recordings) {
        std::fs::write(mirror.join(name), data).unwrap();
    }
    let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let manifest = manifest_of(tmp.path(), "noise", "audio/noise", entries(&|p: &str| format!("http://{dead}/{p}")));
    let out2 = tmp.path().join("raw2");
    let (ok, text) = fetch(&manifest, &out2, &["noise", "--mirror", mirror.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert_eq!(std::fs::read(out2.join("audio/noise/traffic.wav")).unwrap(), recordings[1]);
    // A recording that is not the published one is refused, whatever its name.
    std::fs::write(mirror.join("machinery.wav"), &recordings[0]).unwrap();
    let (ok, text) = fetch(&manifest, &tmp.path().join("raw3"), &["noise", "--mirror", mirror.to_str().unwrap()]);
    assert!(!ok && text.contains("machinery.wav from") && text.contains("failed verification"), "{text}");
}

/// A GitHub branch archive of an AudioMNIST-like repository: `top/data/<speaker>/<d>_<speaker>_<i>.wav`
/// plus files outside data/. `wrong` moves one file into another speaker's folder.
fn audiomnist_tar_gz(speakers: usize, per_speaker: usize, rate: u32, wrong: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: String, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, data).unwrap();
    };
    add("AudioMNIST-master/README.md".into(), b"# AudioMNIST");
    add("AudioMNIST-master/data/audioMNIST_meta.txt".into(), b"{}");
    for s in 1..=speakers {
        for i in 0..per_speaker {
            let folder = if wrong && s == 1 && i == 0 { 2 } else { s };
            let data = wav_bytes(rate, 20, (s * 10 + i) as i16);
            add(format!("AudioMNIST-master/data/{folder:02}/{}_{s:02}_{i}.wav", i % 10), &data);
        }
    }
    gzip(&b.into_inner().unwrap(), 6)
}

fn audiomnist_manifest(dir: &Path, url: &str) -> PathBuf {
    let entry = serde_json::json!({"name": "AudioMNIST-master.tar.gz", "url": url,
        "extract": {"dir": "data", "from": "AudioMNIST-master/data", "audiomnist": {"speakers": 2, "wavs": 6}}});
    manifest_of(dir, "audiomnist", "audio", vec![entry])
}

/// No checksum can be pinned for a branch archive: its data/ folder alone is unpacked and checked by
/// structure (speaker folders, file count, names, 48 kHz), the command says so, and a second run
/// finds it in place. Counts come from the test's manifest; the real ones are the defaults.
#[test]
fn audiomnist_is_unpacked_and_verified_by_structure() {
    let tgz = audiomnist_tar_gz(2, 3, 48_000, false);
    let srv = Server::start(&[("AudioMNIST-master.tar.gz", &tgz)]);
    let tmp = tempfile::tempdir().unwrap();
    let manifest = audiomnist_manifest(tmp.path(), &srv.url("AudioMNIST-master.tar.gz"));
    let out = tmp.path().join("raw");
    let (ok, text) = fetch(&manifest, &out, &["audiomnist"]);
    assert!(ok, "{text}");
    assert!(text.contains("no checksum can be pinned for it"), "{text}");
    assert!(
        text.contains("verified by structure (2 speaker folders (01 … 02) holding 6 WAV files at 48000 Hz"),
        "{text}"
    );
    let data = out.join("audio/data");
    assert_eq!(std::fs::read(data.join("02/2_02_2.wav")).unwrap(), wav_bytes(48_000, 20, 22));
    assert!(data.join("audioMNIST_meta.txt").is_file());
    assert!(!out.join("audio/README.md").exists() && !out.join("audio/AudioMNIST-master").exists(), "only data/");
    assert!(!out.join("audio/.data.extracting").exists());

    let (ok, text) = fetch(&manifest, &out, &["audiomnist"]);
    assert!(ok && text.contains("already extracted and verified"), "{text}");
    assert_eq!(srv.requests().len(), 1, "a second run downloads nothing");
}

#[test]
fn an_audiomnist_archive_of_the_wrong_structure_is_refused_and_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    for (tgz, why) in [
        (audiomnist_tar_gz(2, 3, 48_000, true), "0_01_0.wav: speaker 1 in the name, but the file is in folder 02"),
        (audiomnist_tar_gz(2, 3, 16_000, false), "sample rate 16000 Hz, expected 48000 Hz"),
        (audiomnist_tar_gz(1, 3, 48_000, false), "speaker folders missing: 02"),
    ] {
        let srv = Server::start(&[("AudioMNIST-master.tar.gz", &tgz)]);
        let manifest = audiomnist_manifest(tmp.path(), &srv.url("AudioMNIST-master.tar.gz"));
        let out = tmp.path().join("raw");
        let (ok, text) = fetch(&manifest, &out, &["audiomnist"]);
        assert!(!ok, "{text}");
        assert!(text.contains(why) && text.contains("is not 2 speaker folders"), "{text}");
        assert!(text.contains("The archive was deleted"), "{text}");
        assert!(!out.join("audio/AudioMNIST-master.tar.gz").exists() && !out.join("audio/data").exists());
    }
}
