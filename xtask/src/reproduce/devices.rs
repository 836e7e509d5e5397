//! Which device every cell will use, decided before the first cell starts and said: each cell's
//! `device` (from the experiment, or `--device`) resolved as its trainer will resolve it, against
//! what `featdrop-doctor` finds here (the GPUs CUDA numbers, each having run a kernel). A cell
//! that cannot get its device is an error now, naming the flag or the field, not a failure per
//! cell later — nor, with `auto`, days of training on the CPU unnoticed. Each GPU's memory is
//! checked against the largest cell it gets, whose whole dataset lives there.

use super::Bins;
use super::experiment::{Cell, Experiment};
use anyhow::{Context, Result, bail};
use featdrop_core::DeviceChoice;
use featdrop_core::device::CudaState;
use featdrop_core::memory;
use serde::Deserialize;
use std::collections::BTreeMap;

/// What `featdrop-doctor --json` says of CUDA here (the fields `reproduce` reads).
#[derive(Clone, Debug, Deserialize)]
pub struct Doctor {
    /// At least one GPU ran its kernel.
    pub cuda_usable: bool,
    /// Why not, when not.
    pub cuda_problem: Option<String>,
    /// What a trainer resolves its device against.
    pub cuda_state: CudaState,
    /// Every visible GPU, index = `cuda:N`.
    #[serde(default)]
    pub gpus: Vec<Gpu>,
}

/// One GPU of the doctor's report.
#[derive(Clone, Debug, Deserialize)]
pub struct Gpu {
    pub index: usize,
    pub name: Option<String>,
    pub compute_capability: Option<String>,
    pub memory_total: Option<u64>,
    pub memory_free: Option<u64>,
    pub kernel_error: Option<String>,
    pub bf16_error: Option<String>,
    pub problem: Option<String>,
    pub usable: bool,
}

impl Doctor {
    /// Runs `featdrop-doctor --json` from `bins`.
    pub fn run(bins: &Bins) -> Result<Self> {
        let path = bins.dir().join("featdrop-doctor");
        let out = bins.cmd("featdrop-doctor").arg("--json").output().with_context(|| {
            format!("running {} (it tells which device the cells can use; or pass --device cpu)", path.display())
        })?;
        serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "{} --json printed no report it can read ({}): {}",
                path.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default()
            )
        })
    }

    /// `cuda:i` as the doctor describes it: name, compute capability, memory.
    fn describe(&self, i: usize) -> String {
        let Some(g) = self.gpus.iter().find(|g| g.index == i) else { return format!("cuda:{i}") };
        let mut s = format!("cuda:{i} ({}", g.name.as_deref().unwrap_or("unknown GPU"));
        if let Some(cc) = &g.compute_capability {
            s += &format!(", compute capability {cc}");
        }
        match (g.memory_free, g.memory_total) {
            (Some(f), Some(t)) => s += &format!(", {} free of {}", memory::human(f), memory::human(t)),
            (None, Some(t)) => s += &format!(", {}", memory::human(t)),
            _ => {}
        }
        s + ")"
    }
}

/// Runs the doctor once, when first needed (not at all when every cell runs on the CPU).
pub struct Lazy<'a> {
    bins: &'a Bins,
    doctor: Option<Doctor>,
}

impl<'a> Lazy<'a> {
    pub fn new(bins: &'a Bins) -> Self {
        Self { bins, doctor: None }
    }

    pub fn get(&mut self) -> Result<&Doctor> {
        if self.doctor.is_none() {
            self.doctor = Some(Doctor::run(self.bins)?);
        }
        Ok(self.doctor.as_ref().expect("just set"))
    }
}

/// Where a cell's device choice comes from, for its error: the flag, or the experiment's field.
fn origin(exp: &Experiment, c: &Cell, flag: Option<&str>) -> String {
    match flag {
        Some(f) => format!("--device {f}"),
        None => format!("{} (cell {}): field `device` = {}", exp.file.display(), c.id, c.config.device),
    }
}

/// What to do when a cell cannot have its device.
const OVERRIDE: &str = "pass --device cpu to run every cell on the CPU (days at paper scale) or \
                        --device auto; `cargo xtask doctor` says what CUDA sees here";

/// Each cell's device (`None`: the CPU), as its trainer will resolve it; an error names the
/// flag or field, what was asked and what is here.
pub fn plan(exp: &Experiment, cells: &[Cell], flag: Option<&str>, doctor: &Doctor) -> Result<Vec<Option<usize>>> {
    let state = doctor.cuda_state;
    let here = match state.devices {
        0 => "no CUDA device is visible here".to_string(),
        n => format!("{n} CUDA device(s) are visible here"),
    };
    let mut out = Vec::with_capacity(cells.len());
    for c in cells {
        let device = c
            .config
            .device
            .resolve_with(state)
            .map_err(|e| anyhow::anyhow!("{}: {here}: {e}; {OVERRIDE}", origin(exp, c, flag)))?;
        if let Some(i) = device {
            check_gpu(exp, c, flag, doctor, i)?;
        }
        out.push(device);
    }
    Ok(out)
}

/// A GPU the cell would use must have run its kernel (and its bf16 convolution, for `train.bf16`).
fn check_gpu(exp: &Experiment, c: &Cell, flag: Option<&str>, doctor: &Doctor, i: usize) -> Result<()> {
    let Some(g) = doctor.gpus.iter().find(|g| g.index == i) else { return Ok(()) };
    if !g.usable {
        let why = g.problem.as_deref().or(g.kernel_error.as_deref()).unwrap_or("unknown");
        bail!("{}: {} cannot run this libtorch's kernels: {why}; {OVERRIDE}", origin(exp, c, flag), doctor.describe(i));
    }
    if let (true, Some(e)) = (c.config.train.bf16, &g.bf16_error) {
        bail!(
            "{} (cell {}): field `train.bf16` = true, but {} fails a bf16 convolution: {e}; set train.bf16 to false",
            exp.file.display(),
            c.id,
            doctor.describe(i)
        );
    }
    Ok(())
}

/// Checks each GPU's memory against the cells it gets; returns one line per GPU (its largest
/// cell's estimate). A cell that cannot fit is an error naming its field.
pub fn check_memory(
    exp: &Experiment,
    cells: &[Cell],
    devices: &[Option<usize>],
    doctor: &Doctor,
) -> Result<Vec<String>> {
    let mut largest: BTreeMap<usize, (u64, String)> = BTreeMap::new();
    for (c, d) in cells.iter().zip(devices) {
        let Some(i) = *d else { continue };
        let Some(total) = doctor.gpus.iter().find(|g| g.index == i).and_then(|g| g.memory_total) else { continue };
        let free = doctor.gpus.iter().find(|g| g.index == i).and_then(|g| g.memory_free);
        let origin = format!("{} (cell {})", exp.file.display(), c.id);
        let line = memory::check_device_fits(&c.config, &origin, &format!("cuda:{i}"), total, free)?.line;
        let need = memory::data_sizes(&c.config).map_or(0, |s| memory::device_estimate(&c.config, s).total());
        if largest.get(&i).is_none_or(|(n, _)| need > *n) {
            largest.insert(i, (need, format!("largest cell {}: {line}", c.id)));
        }
    }
    Ok(largest.into_values().map(|(_, l)| l).collect())
}

/// The lines said before the first cell: how many cells run where, and why the CPU when `auto`
/// found no usable GPU.
pub fn announcement(cells: &[Cell], devices: &[Option<usize>], doctor: Option<&Doctor>) -> Vec<String> {
    let mut groups: BTreeMap<Option<usize>, (usize, bool)> = BTreeMap::new();
    for (c, d) in cells.iter().zip(devices) {
        let g = groups.entry(*d).or_default();
        g.0 += 1;
        g.1 |= c.config.device == DeviceChoice::Auto;
    }
    let all = groups.len() == 1;
    groups
        .into_iter()
        .map(|(d, (n, auto))| {
            let count = if all { format!("every cell ({n})") } else { format!("{n} cell(s)") };
            match (d, doctor) {
                (Some(i), Some(doc)) => format!("device: {count} will run on {}", doc.describe(i)),
                (Some(i), None) => format!("device: {count} will run on cuda:{i}"),
                (None, Some(doc)) if auto && !doc.cuda_usable => format!(
                    "device: {count} will run on the CPU (`auto`, and CUDA is not usable here: {})",
                    doc.cuda_problem.as_deref().unwrap_or("no usable GPU")
                ),
                (None, _) => format!("device: {count} will run on the CPU"),
            }
        })
        .collect()
}

/// The local executor's device checks and announcement: every cell's device resolved (the
/// doctor runs unless every cell asks for the CPU), the GPUs the cells share (see [`gpu_pool`]),
/// each one's memory checked against the largest cell, all said on stderr. Returns, per cell,
/// whether it runs on a GPU, and the GPUs. `devices` is `--devices`, as given and parsed.
pub fn check_local(
    exp: &Experiment,
    cells: &[Cell],
    flag: Option<&str>,
    devices: Option<(String, &[usize])>,
    doctor: &mut Lazy,
) -> Result<(Vec<bool>, Vec<usize>)> {
    if cells.iter().all(|c| c.config.device == DeviceChoice::Cpu) {
        if let Some((given, _)) = devices {
            bail!(
                "--devices {given}: every cell runs on the CPU (device `cpu`), so no GPU would be used; \
                 pass --device cuda (or auto) to run them on GPUs"
            );
        }
        for line in announcement(cells, &vec![None; cells.len()], None) {
            eprintln!("{line}");
        }
        return Ok((vec![false; cells.len()], Vec::new()));
    }
    let dir = doctor.bins.dir().display().to_string();
    let doc = doctor.get().with_context(|| {
        format!("the cells' device is not `cpu`; featdrop-doctor (in {dir}) must say what CUDA can do")
    })?;
    let planned = plan(exp, cells, flag, doc)?;
    let on_gpu: Vec<bool> = planned.iter().map(Option::is_some).collect();
    if !on_gpu.contains(&true) {
        if let Some((given, _)) = devices {
            bail!(
                "--devices {given}: no cell runs on a GPU here ({})",
                doc.cuda_problem.as_deref().unwrap_or("`auto`")
            );
        }
        for line in announcement(cells, &planned, Some(doc)) {
            eprintln!("{line}");
        }
        return Ok((on_gpu, Vec::new()));
    }
    let pool = gpu_pool(devices, flag, doc)?;
    let mut memory = Vec::new();
    for &g in &pool {
        let on_g: Vec<Option<usize>> = planned.iter().map(|d| d.map(|_| g)).collect();
        memory.extend(check_memory(exp, cells, &on_g, doc)?);
    }
    for line in pool_announcement(cells, &planned, &pool, doc).into_iter().chain(memory) {
        eprintln!("{line}");
    }
    Ok((on_gpu, pool))
}

/// The GPUs the local executor spreads the GPU cells over, one cell per GPU at a time:
/// `--devices` (each checked to be visible and to run this libtorch's kernels), else the GPU of
/// `--device cuda:N`, else every usable visible GPU.
pub fn gpu_pool(devices: Option<(String, &[usize])>, flag: Option<&str>, doctor: &Doctor) -> Result<Vec<usize>> {
    if let Some((given, list)) = devices {
        let visible = doctor.cuda_state.devices;
        for &i in list {
            let Some(g) = doctor.gpus.iter().find(|g| g.index == i).filter(|_| i < visible) else {
                let here = match visible {
                    0 => "no CUDA device is visible here".to_string(),
                    n => format!("{n} CUDA device(s) are visible here: cuda:0 … cuda:{}", n - 1),
                };
                bail!("--devices {given}: GPU {i} is not visible ({here}; `cargo xtask doctor` lists them)");
            };
            if !g.usable {
                let why = g.problem.as_deref().or(g.kernel_error.as_deref()).unwrap_or("unknown");
                bail!("--devices {given}: {} cannot run this libtorch's kernels: {why}", doctor.describe(i));
            }
        }
        return Ok(list.to_vec());
    }
    if let Some(DeviceChoice::Cuda(i)) = flag.and_then(|f| f.parse().ok()) {
        return Ok(vec![i]);
    }
    Ok(doctor.gpus.iter().filter(|g| g.usable).map(|g| g.index).collect())
}

/// The announcement when the GPU cells share `pool`: the CPU cells as [`announcement`] says
/// them, then the GPU cells and every GPU of the pool.
fn pool_announcement(cells: &[Cell], planned: &[Option<usize>], pool: &[usize], doctor: &Doctor) -> Vec<String> {
    if let [g] = pool {
        let shown: Vec<Option<usize>> = planned.iter().map(|d| d.map(|_| *g)).collect();
        return announcement(cells, &shown, Some(doctor));
    }
    let (cpu_cells, cpu): (Vec<Cell>, Vec<Option<usize>>) =
        cells.iter().zip(planned).filter(|(_, d)| d.is_none()).map(|(c, d)| (c.clone(), *d)).unzip();
    let mut lines = if cpu_cells.is_empty() { Vec::new() } else { announcement(&cpu_cells, &cpu, Some(doctor)) };
    let n = planned.iter().filter(|d| d.is_some()).count();
    let gpus: Vec<String> = pool.iter().map(|&i| doctor.describe(i)).collect();
    lines.push(format!(
        "device: {n} cell(s) will run on {} GPUs, one cell per GPU at a time: {}",
        pool.len(),
        gpus.join(", ")
    ));
    lines
}

/// `--executor slurm`: each task has `gpus` GPUs, which it sees as `cuda:0 …`; a cell asking
/// for a higher index would fail in every task.
pub fn check_slurm(exp: &Experiment, cells: &[Cell], flag: Option<&str>, gpus: u32) -> Result<()> {
    for c in cells {
        if let DeviceChoice::Cuda(i) = c.config.device
            && i >= gpus as usize
        {
            let seen = if gpus == 0 { "no GPU".to_string() } else { format!("cuda:0 … cuda:{}", gpus - 1) };
            bail!(
                "{}: each Slurm task gets {gpus} GPU(s) (--gpus, or the experiment's `slurm.gpus`) and sees them \
                 as {seen}, so `cuda:{i}` fails in every task; ask for `cuda` (cuda:0), or more GPUs per task",
                origin(exp, c, flag)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use featdrop_core::gpu::CudaVersion;
    use std::path::Path;

    const CU130: Option<CudaVersion> = Some(CudaVersion { major: 13, minor: 0 });

    fn experiment(dir: &Path, run: serde_json::Value) -> (Experiment, Vec<Cell>) {
        let exp = serde_json::json!({"name": "t", "datasets": ["photos"], "view_modes": ["expert"], "seeds": [0, 1],
            "run": run, "destruction": false, "theory": null});
        let file = dir.join("t.json");
        std::fs::write(&file, exp.to_string()).unwrap();
        let exp = Experiment::load(&file).unwrap();
        let cells = exp.cells(Path::new("runs"), None).unwrap();
        (exp, cells)
    }

    fn with_device(cells: &[Cell], d: &str) -> Vec<Cell> {
        let mut cells = cells.to_vec();
        for c in &mut cells {
            c.config.device = d.parse().unwrap();
        }
        cells
    }

    fn doctor(gpus: usize) -> Doctor {
        let state = CudaState { compiled: true, driver: true, driver_cuda: CU130, libtorch_cuda: CU130, devices: gpus };
        let gpu = |i| Gpu {
            index: i,
            name: Some("NVIDIA H100".into()),
            compute_capability: Some("9.0".into()),
            memory_total: Some(80_000_000_000),
            memory_free: Some(79_000_000_000),
            kernel_error: None,
            bf16_error: None,
            problem: None,
            usable: true,
        };
        Doctor { cuda_usable: gpus > 0, cuda_problem: None, cuda_state: state, gpus: (0..gpus).map(gpu).collect() }
    }

    fn no_cuda() -> Doctor {
        let state = CudaState { compiled: true, driver: false, driver_cuda: None, libtorch_cuda: CU130, devices: 0 };
        Doctor { cuda_usable: false, cuda_problem: Some(state.why_unusable()), cuda_state: state, gpus: Vec::new() }
    }

    /// Issue 30 item 5: `--device cuda:N` is checked against the GPUs here, naming the flag.
    #[test]
    fn an_impossible_index_is_an_error_naming_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let (exp, cells) = experiment(dir.path(), serde_json::json!({}));
        let e = plan(&exp, &with_device(&cells, "cuda:2"), Some("cuda:2"), &doctor(2)).unwrap_err().to_string();
        assert!(e.starts_with("--device cuda:2: 2 CUDA device(s) are visible here: "), "{e}");
        assert!(e.contains("only 2 CUDA device(s)"), "{e}");
        assert_eq!(plan(&exp, &with_device(&cells, "cuda:1"), Some("cuda:1"), &doctor(2)).unwrap(), [Some(1); 2]);
        let e = plan(&exp, &with_device(&cells, "cuda:0"), Some("cuda:0"), &no_cuda()).unwrap_err().to_string();
        assert!(e.starts_with("--device cuda:0: no CUDA device is visible here: "), "{e}");
        assert!(e.contains("--device cpu"), "{e}");
    }

    /// Issue 30 item 1: an experiment asking for `cuda` on a machine without it fails up front,
    /// naming the file and field, what is here, and the override.
    #[test]
    fn cuda_asked_by_the_experiment_without_cuda_is_an_error_not_a_cpu_run() {
        let dir = tempfile::tempdir().unwrap();
        let (exp, cells) = experiment(dir.path(), serde_json::json!({"device": "cuda"}));
        let e = plan(&exp, &cells, None, &no_cuda()).unwrap_err().to_string();
        assert!(e.contains("t.json (cell photos/expert/seed-0): field `device` = cuda:0: no CUDA device"), "{e}");
        assert!(e.contains("no NVIDIA driver was found") && e.contains("pass --device cpu"), "{e}");
        assert_eq!(plan(&exp, &cells, None, &doctor(1)).unwrap(), [Some(0); 2]);
    }

    /// Issue 30 item 1: the announcement says where every cell runs, and why the CPU for `auto`.
    #[test]
    fn the_announcement_says_where_every_cell_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (exp, cells) = experiment(dir.path(), serde_json::json!({}));
        let devices = plan(&exp, &cells, None, &no_cuda()).unwrap();
        let lines = announcement(&cells, &devices, Some(&no_cuda()));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("device: every cell (2) will run on the CPU (`auto`, and CUDA is not usable"));
        assert!(lines[0].contains("no NVIDIA driver"), "{lines:?}");
        let gpu = doctor(1);
        let lines = announcement(&cells, &plan(&exp, &cells, None, &gpu).unwrap(), Some(&gpu));
        assert_eq!(
            lines,
            [
                "device: every cell (2) will run on cuda:0 (NVIDIA H100, compute capability 9.0, 79.0 GB free of 80.0 GB)"
            ]
        );
        let mixed = [with_device(&cells[..1], "cpu"), cells[1..].to_vec()].concat();
        let lines = announcement(&mixed, &plan(&exp, &mixed, None, &gpu).unwrap(), Some(&gpu));
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("device: 1 cell(s) will run on the CPU"), "{lines:?}");
        assert!(lines[1].starts_with("device: 1 cell(s) will run on cuda:0 (NVIDIA H100"), "{lines:?}");
    }

    /// Issue 30 item 2: a GPU that failed its kernel (or is too old) is refused up front, as is
    /// bf16 on a GPU without it.
    #[test]
    fn a_gpu_that_failed_its_probe_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (exp, cells) = experiment(dir.path(), serde_json::json!({"device": "cuda", "train": {"bf16": true}}));
        let mut old = doctor(1);
        old.gpus[0].usable = false;
        old.gpus[0].problem = Some("the GPU is too old: compute capability 6.0".into());
        let e = plan(&exp, &cells, None, &old).unwrap_err().to_string();
        assert!(
            e.contains("cuda:0 (NVIDIA H100") && e.contains("cannot run this libtorch's kernels: the GPU is too old")
        );
        let mut no_bf16 = doctor(1);
        no_bf16.gpus[0].bf16_error = Some("a bf16 convolution on Cuda(0) failed: no kernel".into());
        let e = plan(&exp, &cells, None, &no_bf16).unwrap_err().to_string();
        assert!(e.contains("field `train.bf16` = true") && e.contains("no kernel"), "{e}");
    }

    /// Issue 30 item 6: each GPU's largest cell is checked and said; one too big is an error.
    #[test]
    fn gpu_memory_is_checked_per_device() {
        let dir = tempfile::tempdir().unwrap();
        let (exp, cells) = experiment(dir.path(), serde_json::json!({"device": "cuda"}));
        let gpu = doctor(1);
        let devices = plan(&exp, &cells, None, &gpu).unwrap();
        let lines = check_memory(&exp, &cells, &devices, &gpu).unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("largest cell photos/expert/seed-0: cuda:0: this run needs about "), "{lines:?}");
        let mut small = doctor(1);
        small.gpus[0].memory_total = Some(100_000_000);
        let e = check_memory(&exp, &cells, &devices, &small).unwrap_err().to_string();
        assert!(e.contains("(cell photos/expert/seed-0): this run does not fit on cuda:0"), "{e}");
        // The CPU cells have nothing to check here.
        assert!(check_memory(&exp, &cells, &[None, None], &small).unwrap().is_empty());
    }

    /// Issue 25 item 1: the GPUs the cells share: `--devices` checked (an index not visible, or a
    /// GPU that failed its kernel, is an error naming the flag), else `--device cuda:N`'s GPU,
    /// else every usable one.
    #[test]
    fn the_gpu_pool_is_the_devices_flag_checked_or_every_usable_gpu() {
        let mut doc = doctor(4);
        doc.gpus[1].usable = false;
        doc.gpus[1].problem = Some("the GPU is too old".into());
        assert_eq!(gpu_pool(None, None, &doc).unwrap(), [0, 2, 3]);
        assert_eq!(gpu_pool(None, Some("cuda:2"), &doc).unwrap(), [2]);
        assert_eq!(gpu_pool(Some(("3,0".into(), &[3, 0])), Some("cuda:2"), &doc).unwrap(), [3, 0], "--devices wins");
        let e = gpu_pool(Some(("0,4".into(), &[0, 4])), None, &doc).unwrap_err().to_string();
        assert!(
            e.starts_with("--devices 0,4: GPU 4 is not visible (4 CUDA device(s) are visible here: cuda:0 … cuda:3")
        );
        let e = gpu_pool(Some(("1".into(), &[1])), None, &doc).unwrap_err().to_string();
        assert!(e.starts_with("--devices 1: cuda:1 (NVIDIA H100") && e.contains("the GPU is too old"), "{e}");
        let e = gpu_pool(Some(("0".into(), &[0])), None, &no_cuda()).unwrap_err().to_string();
        assert!(e.contains("GPU 0 is not visible (no CUDA device is visible here"), "{e}");
    }

    /// Several GPUs: one line names them all; one GPU reads as before.
    #[test]
    fn the_announcement_names_every_gpu_the_cells_share() {
        let dir = tempfile::tempdir().unwrap();
        let (exp, cells) = experiment(dir.path(), serde_json::json!({"device": "cuda"}));
        let gpu = doctor(2);
        let planned = plan(&exp, &cells, None, &gpu).unwrap();
        let lines = pool_announcement(&cells, &planned, &[0, 1], &gpu);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("device: 2 cell(s) will run on 2 GPUs, one cell per GPU at a time: cuda:0 (NVIDIA")
        );
        assert!(lines[0].contains(", cuda:1 (NVIDIA H100"), "{lines:?}");
        let lines = pool_announcement(&cells, &planned, &[1], &gpu);
        assert!(lines[0].starts_with("device: every cell (2) will run on cuda:1 (NVIDIA H100"), "{lines:?}");
    }

    #[test]
    fn a_slurm_task_sees_its_own_gpus_from_zero() {
        let dir = tempfile::tempdir().unwrap();
        let (exp, cells) = experiment(dir.path(), serde_json::json!({}));
        check_slurm(&exp, &with_device(&cells, "cuda:0"), Some("cuda:0"), 1).unwrap();
        let e = check_slurm(&exp, &with_device(&cells, "cuda:1"), Some("cuda:1"), 1).unwrap_err().to_string();
        assert!(
            e.starts_with("--device cuda:1: each Slurm task gets 1 GPU(s)") && e.contains("cuda:0 … cuda:0"),
            "{e}"
        );
        check_slurm(&exp, &with_device(&cells, "cuda:1"), Some("cuda:1"), 2).unwrap();
    }
}
