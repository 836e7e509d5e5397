//! `reproduce --executor slurm` against a real single-node Slurm (Debian's slurm-wlm and munge,
//! which `cargo xtask test` installs when missing): a generated slurm.conf in a temp folder, one
//! node with this machine's CPUs and memory, no cgroups and no accounting; munged, slurmctld and
//! slurmd are started here and stopped by a guard's Drop, also when a test fails. The tests share
//! the machine, so they take turns (one Slurm at a time).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_SLURM_AT_A_TIME: Mutex<()> = Mutex::new(());

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_xtask")).parent().unwrap().to_path_buf()
}

fn sbin(program: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} is missing: `cargo xtask test` installs slurm-wlm and munge"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running single-node Slurm; dropping it cancels its jobs and stops its daemons.
struct Slurm {
    dir: tempfile::TempDir,
    daemons: Vec<Child>,
}

impl Slurm {
    fn start() -> Slurm {
        let dir = tempfile::Builder::new().prefix("featdrop-slurm-").tempdir().unwrap();
        let mut slurm = Slurm { dir, daemons: Vec::new() };
        let d = slurm.dir.path().to_path_buf();
        // Our own munge key and socket: nothing of the machine's munge is used or changed.
        let key = d.join("munge.key");
        let ok = Command::new(sbin("mungekey")).arg("--create").arg(format!("--keyfile={}", key.display())).status();
        assert!(ok.unwrap().success(), "mungekey --create failed");
        let munged = Command::new(sbin("munged"))
            .args(["--foreground", "--force"])
            .arg(format!("--socket={}", d.join("munge.sock").display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--pid-file={}", d.join("munged.pid").display()))
            .arg(format!("--log-file={}", d.join("munged.log").display()))
            .arg(format!("--seed-file={}", d.join("munged.seed").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        slurm.daemons.push(munged);
        slurm.wait_for("munged's socket", || d.join("munge.sock").exists());
        std::fs::write(d.join("slurm.conf"), slurm_conf(&d)).unwrap();
        for state in ["state", "spool"] {
            std::fs::create_dir_all(d.join(state)).unwrap();
        }
        for (daemon, args) in [("slurmctld", &["-D", "-i"][..]), ("slurmd", &["-D"][..])] {
            let log = std::fs::File::create(d.join(format!("{daemon}.out"))).unwrap();
            let child = Command::new(sbin(daemon))
                .args(args)
                .env("SLURM_CONF", d.join("slurm.conf"))
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            slurm.daemons.push(child);
        }
        slurm.wait_for("the node to be idle", || {
            let out = slurm.cmd("sinfo").args(["-h", "-o", "%T"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim() == "idle"
        });
        slurm
    }

    /// A Slurm client command talking to this Slurm.
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", self.dir.path().join("slurm.conf"));
        c
    }

    fn wait_for(&self, what: &str, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        while !ready() {
            if start.elapsed() > Duration::from_secs(60) {
                let logs: String = ["slurmctld.out", "slurmd.out", "slurmctld.log", "slurmd.log", "munged.log"]
                    .iter()
                    .map(|f| {
                        format!("--- {f}\n{}\n", std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
                    })
                    .collect();
                panic!("waited 60 s for {what}\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Job ids in the queue.
    fn queue(&self) -> Vec<String> {
        let out = self.cmd("squeue").args(["-h", "-r", "-o", "%i %T"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    }

    /// `cargo xtask reproduce --executor slurm …` against this Slurm, with the built binaries.
    fn reproduce(&self, exp: &Path, root: &Path, extra: &[&str]) -> Output {
        let mut c = self.cmd(env!("CARGO_BIN_EXE_xtask"));
        c.args(["reproduce", "--executor", "slurm", "--poll-seconds", "1"]);
        reproduce_args(&mut c, exp, root, extra);
        c.output().unwrap()
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        // Tasks run under slurmstepd, which outlives slurmd: cancel them first.
        let _ = self.cmd("scancel").args(["--full", "--signal=KILL", "--partition=featdrop"]).status();
        let start = Instant::now();
        while !self.queue().is_empty() && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(200));
        }
        for d in self.daemons.iter_mut().rev() {
            let _ = Command::new("kill").args(["-TERM", &d.id().to_string()]).status();
            let start = Instant::now();
            while d.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

/// One node with this machine's CPUs and memory; no cgroups (linuxproc, task/none), no accounting.
fn slurm_conf(d: &Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let cpus = std::thread::available_parallelism().unwrap().get();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap();
    let mem_mb = kib / 1024 * 9 / 10;
    let p = |f: &str| d.join(f).display().to_string();
    format!(
        "ClusterName=featdroptest\nSlurmctldHost={host}(127.0.0.1)\nSlurmUser=root\nSlurmdUser=root\n\
         AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket={sock}\n\
         SlurmctldPort={cport}\nSlurmdPort={dport}\n\
         StateSaveLocation={state}\nSlurmdSpoolDir={spool}\n\
         SlurmctldPidFile={cpid}\nSlurmdPidFile={dpid}\nSlurmctldLogFile={clog}\nSlurmdLogFile={dlog}\n\
         ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n\
         AccountingStorageType=accounting_storage/none\nMpiDefault=none\nReturnToService=2\n\
         SchedulerType=sched/backfill\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\n\
         NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN\n\
         PartitionName=featdrop Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
        sock = p("munge.sock"),
        cport = free_port(),
        dport = free_port(),
        state = p("state"),
        spool = p("spool"),
        cpid = p("slurmctld.pid"),
        dpid = p("slurmd.pid"),
        clog = p("slurmctld.log"),
        dlog = p("slurmd.log"),
    )
}

fn reproduce_args(c: &mut Command, exp: &Path, root: &Path, extra: &[&str]) {
    // Float results depend on each cell's libtorch thread count: the local executor splits the
    // cores between the cells it runs at once, a Slurm task takes what it finds. One thread for
    // every cell of both (sbatch passes the environment on to the tasks).
    c.env("OMP_NUM_THREADS", "1");
    c.args(["--bin-dir"]).arg(bin_dir()).arg("--experiment").arg(exp);
    c.arg("--out").arg(root.join("runs")).arg("--report").arg(root.join("report")).args(extra);
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: Output) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "reproduce failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// The job id in "submitted Slurm job array <id>: …".
fn submitted_job(stdout: &str) -> u64 {
    let rest =
        stdout.split("submitted Slurm job array ").nth(1).unwrap_or_else(|| panic!("no submission in:\n{stdout}"));
    rest.split(':').next().unwrap().parse().unwrap()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn record(exp_dir: &Path, id: &str) -> Value {
    read_json(&exp_dir.join("status").join(format!("{}.json", id.replace('/', "__"))))
}

/// experiments/smoke.json, with the resources of its Slurm tasks in the file's `slurm` section.
fn smoke() -> Value {
    let mut exp = read_json(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/smoke.json"));
    exp["slurm"] = serde_json::json!({"cpus": 1, "mem": "1G"});
    exp
}

fn write_exp(dir: &Path, exp: &Value) -> PathBuf {
    let f = dir.join(format!("{}.json", exp["name"].as_str().unwrap()));
    std::fs::write(&f, exp.to_string()).unwrap();
    f
}

/// How many times a cell's steps started pretraining (each run appends to its log).
fn trainings(run_dir: &Path) -> usize {
    std::fs::read_to_string(run_dir.join("log.txt")).unwrap_or_default().matches("$ featdrop-train").count()
}

/// The smoke grid on Slurm, two cells at a time, gives the local executor's probe results; each
/// cell ran once as a task of the one array; a second submission submits nothing.
#[test]
fn smoke_grid_on_slurm_matches_local() {
    let _turn = ONE_SLURM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_exp(tmp.path(), &smoke());
    let (local, on_slurm) = (tmp.path().join("local"), tmp.path().join("slurm"));

    let t = Instant::now();
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.arg("reproduce");
    reproduce_args(&mut c, &exp, &local, &[]);
    ok(c.output().unwrap());
    let local_s = t.elapsed().as_secs_f64();

    let slurm = Slurm::start();
    let t = Instant::now();
    let (stdout, stderr) = ok(slurm.reproduce(&exp, &on_slurm, &["--wait", "--max-running", "2"]));
    let slurm_s = t.elapsed().as_secs_f64();
    eprintln!("smoke grid wall time: local {local_s:.1} s, Slurm with two cells at a time {slurm_s:.1} s");
    let job = submitted_job(&stdout);
    assert!(stdout.contains(&format!("submitted Slurm job array {job}: 2 cell(s), grid indices 0,1")), "{stdout}");
    assert!(stderr.contains("slurm: cells 2 done, 0 running, 0 pending, 0 failed of 2"), "{stderr}");

    let script = std::fs::read_to_string(on_slurm.join("runs/smoke/slurm/array.sbatch")).unwrap();
    eprintln!("generated batch script:\n{script}");
    for line in ["--array=0,1%2", "--cpus-per-task=1", "--mem=1G"] {
        assert!(script.contains(&format!("#SBATCH {line}\n")), "{line} missing:\n{script}");
    }
    assert!(!script.contains("--gres"), "no GPU for cpu cells:\n{script}");
    for (index, id) in ["photos+digits/expert/seed-0", "photos+digits/viewmaker/seed-0"].iter().enumerate() {
        let (l, s) = (local.join("runs/smoke").join(id), on_slurm.join("runs/smoke").join(id));
        let (lp, sp) = (read_json(&l.join("probe.json")), read_json(&s.join("probe.json")));
        let tasks = sp["tasks"].as_object().unwrap_or_else(|| panic!("{id}: no probe tasks in {sp}"));
        assert!(tasks.len() >= 2, "{sp}");
        for (task, result) in tasks {
            let top1 = result["top1"].as_f64().unwrap_or_else(|| panic!("{id} {task}: no top-1 in {sp}"));
            assert_eq!(lp["tasks"][task]["top1"].as_f64(), Some(top1), "{id} {task}: local and Slurm probes differ");
        }
        let rec = record(&on_slurm.join("runs/smoke"), id);
        assert_eq!(rec["state"], "done", "{rec}");
        assert_eq!(rec["executor"], "slurm");
        assert_eq!((rec["job_id"].as_u64(), rec["task_id"].as_u64()), (Some(job), Some(index as u64)), "{rec}");
        assert_eq!(rec["exit_code"], 0);
        assert_eq!((rec["device"].as_str(), rec["threads"].as_u64()), (Some("cpu"), Some(1)), "{rec}");
        let err_log = on_slurm.join(format!("runs/smoke/slurm/{job}_{index}.err"));
        assert!(
            std::fs::read_to_string(&err_log).unwrap().contains(&format!("cell {id} done")),
            "{}",
            err_log.display()
        );
        assert_eq!(trainings(&s), 1, "{id} ran more than once");
    }
    let status = read_json(&on_slurm.join("runs/smoke/status.json"));
    assert_eq!(status.as_object().unwrap().len(), 2, "{status}");
    assert!(on_slurm.join("runs/smoke/theory/theory.json").exists(), "--wait runs the theory sweep");
    let report = std::fs::read_to_string(on_slurm.join("report/REPORT.md")).unwrap();
    assert!(report.contains("### Linear-probe accuracy"), "{report}");

    // Everything is finished: nothing is submitted, the queue stays empty.
    let (stdout, _) = ok(slurm.reproduce(&exp, &on_slurm, &[]));
    assert!(stdout.contains("nothing to submit: 2 cell(s) finished, 0 still queued"), "{stdout}");
    assert_eq!(std::fs::read_dir(on_slurm.join("runs/smoke/slurm/submissions")).unwrap().count(), 1);
    assert!(slurm.queue().is_empty(), "{:?}", slurm.queue());
}

/// A grid of two small cells without destruction or theory, the second one broken when `broken`.
fn two_cells(name: &str, broken: Option<&Path>) -> Value {
    let mut exp = smoke();
    exp["name"] = name.into();
    exp["datasets"] = serde_json::json!(["photos+digits", "photos+shapes"]);
    exp["view_modes"] = serde_json::json!(["expert"]);
    exp["destruction"] = false.into();
    exp["theory"] = Value::Null;
    if let Some(missing) = broken {
        // Valid as a config, but its data folder does not exist: it fails when it runs.
        exp["per_dataset"] = serde_json::json!({"photos+shapes": {"data": {"source": "real", "data_dir": missing}}});
    }
    exp
}

/// A cell that fails is recorded as failed with its log, the other finishes, and a rerun
/// resubmits just the failed one.
#[test]
fn a_failed_cell_is_recorded_and_a_rerun_resubmits_only_it() {
    let _turn = ONE_SLURM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_exp(tmp.path(), &two_cells("flaky", Some(&tmp.path().join("no-such-data"))));
    let exp_dir = tmp.path().join("runs/flaky");
    let slurm = Slurm::start();

    // A submission Slurm refuses is an error quoting Slurm, and leaves nothing that looks submitted.
    let out = slurm.reproduce(&exp, tmp.path(), &["--partition", "no-such-partition"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("Slurm refused the job array") && stderr.contains("Invalid partition name specified"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(exp_dir.join("slurm")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "a refused submission left {left:?}");
    assert!(!exp_dir.join("status").exists() && slurm.queue().is_empty());

    let out = slurm.reproduce(&exp, tmp.path(), &["--wait"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "a failed cell makes reproduce fail:\n{stdout}\n{stderr}");
    assert!(stderr.contains("1 cell(s) failed") && stderr.contains("FAILED photos+shapes/expert/seed-0"), "{stderr}");
    let first = submitted_job(&stdout);
    let bad = record(&exp_dir, "photos+shapes/expert/seed-0");
    assert_eq!((bad["state"].as_str(), bad["slurm_state"].as_str()), (Some("failed"), Some("FAILED")), "{bad}");
    assert_eq!(
        (bad["job_id"].as_u64(), bad["task_id"].as_u64(), bad["exit_code"].as_i64()),
        (Some(first), Some(1), Some(1))
    );
    assert!(bad["error"].as_str().unwrap().contains("featdrop-train failed"), "{bad}");
    let err_log = PathBuf::from(bad["logs"][2].as_str().unwrap());
    assert_eq!(err_log, exp_dir.join(format!("slurm/{first}_1.err")));
    assert!(std::fs::read_to_string(&err_log).unwrap().contains("no-such-data"), "the task's log says why");
    assert_eq!(record(&exp_dir, "photos+digits/expert/seed-0")["state"], "done");
    let status = read_json(&exp_dir.join("status.json"));
    assert_eq!(status["photos+shapes/expert/seed-0"]["state"], "failed", "{status}");

    // With the data problem fixed, the rerun submits the failed cell alone.
    write_exp(tmp.path(), &two_cells("flaky", None));
    let (stdout, stderr) = ok(slurm.reproduce(&exp, tmp.path(), &["--wait"]));
    let second = submitted_job(&stdout);
    assert!(stdout.contains(&format!("submitted Slurm job array {second}: 1 cell(s), grid indices 1")), "{stdout}");
    assert!(stderr.contains("skip photos+digits/expert/seed-0: finished"), "{stderr}");
    let fixed = record(&exp_dir, "photos+shapes/expert/seed-0");
    assert_eq!((fixed["state"].as_str(), fixed["job_id"].as_u64()), (Some("done"), Some(second)), "{fixed}");
    assert_eq!(record(&exp_dir, "photos+digits/expert/seed-0")["job_id"].as_u64(), Some(first), "not rerun");
    assert_eq!(trainings(&exp_dir.join("photos+digits/expert/seed-0")), 1);
}

fn epochs(run_dir: &Path) -> Vec<String> {
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap_or_default();
    metrics.lines().filter(|l| l.contains("\"kind\":\"epoch\"")).map(str::to_string).collect()
}

/// A task cancelled with scancel mid-training is recorded as cancelled, and on resubmission its
/// cell resumes from the checkpoint: the epochs done before are kept, none is redone.
#[test]
fn a_cancelled_task_resumes_from_its_checkpoint() {
    let _turn = ONE_SLURM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let mut exp = two_cells("killed", None);
    exp["datasets"] = serde_json::json!(["photos+digits"]);
    exp["run"]["train"]["epochs"] = 3.into();
    exp["run"]["data"]["train_size"] = 512.into();
    let exp = write_exp(tmp.path(), &exp);
    let run_dir = tmp.path().join("runs/killed/photos+digits/expert/seed-0");
    let slurm = Slurm::start();

    let (stdout, _) = ok(slurm.reproduce(&exp, tmp.path(), &[]));
    let first = submitted_job(&stdout);
    assert!(stdout.contains(&format!("follow it: squeue -j {first}")), "{stdout}");
    let latest = run_dir.join("checkpoints/latest.json");
    let start = Instant::now();
    while !latest.exists() {
        assert!(start.elapsed() < Duration::from_secs(300), "no checkpoint written; queue {:?}", slurm.queue());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(slurm.cmd("scancel").arg(first.to_string()).status().unwrap().success());
    let start = Instant::now();
    while !slurm.queue().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "scancel left {:?}", slurm.queue());
        std::thread::sleep(Duration::from_millis(200));
    }
    // What the kill left: the last checkpoint's epochs, which a resume keeps.
    let tag = read_json(&latest)["tag"].as_str().unwrap().to_string();
    let kept = read_json(&run_dir.join(format!("checkpoints/{tag}.json")))["epochs_done"].as_u64().unwrap() as usize;
    let before = epochs(&run_dir);
    assert!(!run_dir.join("pretrain.done.json").exists() && (1..3).contains(&kept), "killed mid-training: {before:?}");

    let (stdout, stderr) = ok(slurm.reproduce(&exp, tmp.path(), &["--wait"]));
    assert!(stderr.contains(&format!("Slurm task {first}_0 ended CANCELLED")), "{stderr}");
    let second = submitted_job(&stdout);
    assert_ne!(first, second);
    let after = epochs(&run_dir);
    assert_eq!(after.len(), 3, "{after:?}");
    assert_eq!(after[..kept], before[..kept], "the checkpointed epochs are kept, not redone");
    for (i, line) in after.iter().enumerate() {
        assert!(line.contains(&format!("\"epoch\":{}", i + 1)), "{after:?}");
    }
    let rec = record(&tmp.path().join("runs/killed"), "photos+digits/expert/seed-0");
    assert_eq!((rec["state"].as_str(), rec["job_id"].as_u64()), (Some("done"), Some(second)), "{rec}");
}

/// Without Slurm's commands on PATH the error says what is missing, and nothing is submitted.
#[test]
fn without_sbatch_the_error_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = write_exp(tmp.path(), &two_cells("nowhere", None));
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(["reproduce", "--executor", "slurm"]).env("PATH", tmp.path().join("empty"));
    reproduce_args(&mut c, &exp, tmp.path(), &[]);
    let out = c.output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("`sbatch` was not found on PATH: --executor slurm needs Slurm's client commands"),
        "{stderr}"
    );
    assert!(!tmp.path().join("runs/nowhere/slurm").exists() && !tmp.path().join("runs/nowhere/status").exists());
}
