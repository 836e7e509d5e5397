//! Cells side by side (issue 25 item 1): how many cells the local executor runs at once, where
//! each runs, and the pool of worker threads that runs them.
//!
//! A *slot* is one running cell's share of the machine: libtorch's intra-op threads for its
//! processes and, for a cell on a GPU, one GPU of its own. The slots are fixed before the first
//! cell starts; one worker thread owns each slot and runs its cells one after another, so no two
//! running cells ever share a GPU. A cell is pinned to its slot's GPU through the children's
//! `CUDA_VISIBLE_DEVICES` (see [`child_env`] for why), and the cores are split evenly between the
//! slots through `OMP_NUM_THREADS` / `MKL_NUM_THREADS`, which libtorch reads at start-up.

use anyhow::{Result, bail};
use std::collections::VecDeque;
use std::sync::mpsc;

/// One running cell's share of the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// libtorch intra-op threads of the cell's processes.
    pub threads: usize,
    /// The GPU it owns while it runs, numbered as this process sees them (`cuda:K`); none: the CPU.
    pub gpu: Option<usize>,
}

impl Slot {
    /// The device as the cell's status record says it (`cuda:K` in this process's numbering).
    pub fn device(&self) -> String {
        self.gpu.map_or_else(|| "cpu".into(), |k| format!("cuda:{k}"))
    }
}

/// The cores one cell gets by default on a CPU: without `--jobs` (or the experiment's `jobs`) a
/// CPU runs `cores / CPU_CORES_PER_CELL` cells at once (at least one), each with that many
/// libtorch threads. The one constant to change when a measurement says otherwise (and with it
/// the words of `--jobs`' help and of docs/PROTOCOL.md §8, "one per core").
pub const CPU_CORES_PER_CELL: usize = 1;

/// How many cells a CPU of `cores` cores runs at once by default.
pub fn default_cpu_jobs(cores: usize) -> usize {
    (cores / CPU_CORES_PER_CELL).max(1)
}

/// The cores this process may use (its affinity and cgroup quota included).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What the slots are made from.
#[derive(Clone, Debug, Default)]
pub struct Demand<'a> {
    /// At most this many cells at once (`--jobs`, else the experiment's `jobs`); none: the default
    /// (one per GPU of the pool; `default_cpu_jobs` on a CPU).
    pub jobs: Option<usize>,
    /// The cores to split between the slots.
    pub cores: usize,
    /// The GPUs the cells may use (`--devices`, else every usable visible one).
    pub gpus: &'a [usize],
    /// Cells to run on a GPU, and on the CPU.
    pub gpu_cells: usize,
    pub cpu_cells: usize,
    /// Threads per cell set by the user (`OMP_NUM_THREADS` in `reproduce`'s environment), which
    /// replaces the even split.
    pub threads: Option<usize>,
}

/// The slots: one per GPU of the pool for the GPU cells (never more than `jobs`, nor than there
/// are such cells), then the CPU cells' slots (what `jobs` leaves, or the default); each with an
/// even share of the cores, at least one thread.
pub fn slots(d: &Demand) -> Vec<Slot> {
    let limit = d.jobs.unwrap_or(usize::MAX).max(1);
    let n_gpu = if d.gpu_cells > 0 { d.gpus.len().min(d.gpu_cells).min(limit) } else { 0 };
    let n_cpu = if d.cpu_cells > 0 {
        let want = match d.jobs {
            Some(j) => j.saturating_sub(n_gpu).max(1),
            None => default_cpu_jobs(d.cores),
        };
        want.min(d.cpu_cells)
    } else {
        0
    };
    let threads = d.threads.unwrap_or((d.cores / (n_gpu + n_cpu).max(1)).max(1));
    let gpu = d.gpus[..n_gpu].iter().map(|&k| Slot { threads, gpu: Some(k) });
    gpu.chain(std::iter::repeat_n(Slot { threads, gpu: None }, n_cpu)).collect()
}

/// `--devices 0,2,…`: GPU indices (`cuda:N` as `cargo xtask doctor` numbers them), each once.
pub fn parse_devices(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let i: usize = part.trim().parse().map_err(|_| {
            format!(
                "`{}` is not a GPU index: expected indices as `cargo xtask doctor` lists them, e.g. 0,2",
                part.trim()
            )
        })?;
        if out.contains(&i) {
            return Err(format!("GPU {i} is listed twice; each GPU runs one cell at a time"));
        }
        out.push(i);
    }
    Ok(out)
}

/// The threads per cell the user set: `OMP_NUM_THREADS` in `reproduce`'s environment (a whole
/// number ≥ 1), which every cell then gets instead of its share of the cores.
pub fn threads_from_env(value: Option<&str>) -> Result<Option<usize>> {
    let Some(v) = value else { return Ok(None) };
    match v.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(Some(n)),
        _ => bail!(
            "OMP_NUM_THREADS={v}: expected a whole number ≥ 1 (the libtorch threads of every cell), or leave it \
             unset to split the cores between the cells that run at once"
        ),
    }
}

/// The environment of a cell's processes in `slot`. The threads: `OMP_NUM_THREADS` and
/// `MKL_NUM_THREADS`, which libtorch reads when it starts. The GPU: `CUDA_VISIBLE_DEVICES` set to
/// that one GPU, so the cell sees it as `cuda:0` — rather than its config's device set to
/// `cuda:K` — because the cell's config and everything keyed on it then stay the same whichever
/// GPU it lands on: its `config.json`, and the destruction classifiers' cache key (which holds
/// the device), so the cells of one dataset share their classifiers across GPUs instead of
/// training one per GPU. `own` is this process's `CUDA_VISIBLE_DEVICES`: when set, GPU K is its
/// K-th entry (CUDA numbers the visible GPUs from 0).
pub fn child_env(slot: &Slot, own: Option<&str>) -> Result<Vec<(String, String)>> {
    let t = slot.threads.to_string();
    let mut env = vec![("OMP_NUM_THREADS".to_string(), t.clone()), ("MKL_NUM_THREADS".to_string(), t)];
    if let Some(k) = slot.gpu {
        let visible = match own {
            None => k.to_string(),
            Some(list) => match list.split(',').map(str::trim).nth(k) {
                Some(id) if !id.is_empty() => id.to_string(),
                _ => bail!("CUDA_VISIBLE_DEVICES={list} has no entry for cuda:{k}"),
            },
        };
        env.push(("CUDA_VISIBLE_DEVICES".to_string(), visible));
    }
    Ok(env)
}

/// What the pool tells its caller, in the order it happens.
#[derive(Debug)]
pub enum Event<R> {
    /// Cell `cell` (its index in the list given) started in slot `slot`.
    Started { cell: usize, slot: usize },
    /// It ended with `result`.
    Finished { cell: usize, slot: usize, result: R },
}

/// Runs `run(cell, slot)` (`slot` an index of `slots`) for every cell, one worker thread per slot, each slot one cell at a
/// time, the cells handed out in their order by this thread: a cell on a GPU (`on_gpu[cell]`) to a
/// GPU slot, the others to a CPU slot. A worker thread lives until its slot has no cell left, so
/// a child it starts keeps the thread its parent-death signal watches alive as long as the child
/// runs (see [`super::die_with_parent`]). `on_event` sees every event on the calling thread, one
/// at a time (the status files need no further lock); its first error hands out no further cell,
/// waits for the running ones, and is returned.
pub fn run_pool<R: Send>(
    on_gpu: &[bool],
    slots: &[Slot],
    run: impl Fn(usize, usize) -> R + Sync,
    mut on_event: impl FnMut(Event<R>) -> Result<()>,
) -> Result<()> {
    for (kind, gpu) in [("a GPU", true), ("the CPU", false)] {
        if on_gpu.contains(&gpu) && !slots.iter().any(|s| s.gpu.is_some() == gpu) {
            bail!("cells to run on {kind}, but no slot for them (internal error)");
        }
    }
    let mut queue: VecDeque<usize> = (0..on_gpu.len()).collect();
    let (done_tx, done_rx) = mpsc::channel::<(usize, usize, R)>();
    std::thread::scope(|s| {
        let mut inboxes = Vec::with_capacity(slots.len());
        for k in 0..slots.len() {
            let (tx, rx) = mpsc::channel::<usize>();
            let (done_tx, run) = (done_tx.clone(), &run);
            s.spawn(move || {
                for cell in rx {
                    let result = run(cell, k);
                    if done_tx.send((cell, k, result)).is_err() {
                        break;
                    }
                }
            });
            inboxes.push(Some(tx));
        }
        drop(done_tx);
        let mut give = |k: usize,
                        inboxes: &mut Vec<Option<mpsc::Sender<usize>>>,
                        on_event: &mut dyn FnMut(Event<R>) -> Result<()>|
         -> Result<bool> {
            let at = queue.iter().position(|&c| on_gpu[c] == slots[k].gpu.is_some());
            let Some(cell) = at.and_then(|at| queue.remove(at)) else {
                inboxes[k] = None;
                return Ok(false);
            };
            on_event(Event::Started { cell, slot: k })?;
            let sent = inboxes[k].as_ref().is_some_and(|tx| tx.send(cell).is_ok());
            if !sent {
                bail!("the worker of slot {k} ended before its cell {cell} (internal error)");
            }
            Ok(true)
        };
        let (mut outcome, mut running) = (Ok(()), 0usize);
        for k in 0..slots.len() {
            match give(k, &mut inboxes, &mut on_event) {
                Ok(gave) => running += usize::from(gave),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        while running > 0 {
            if outcome.is_err() {
                inboxes.iter_mut().for_each(|i| *i = None);
            }
            // Every worker with a cell holds a sender: none left means one panicked (the scope
            // then raises its panic).
            let Ok((cell, k, result)) = done_rx.recv() else { break };
            running -= 1;
            if outcome.is_ok() {
                outcome = on_event(Event::Finished { cell, slot: k, result });
            }
            if outcome.is_ok() {
                match give(k, &mut inboxes, &mut on_event) {
                    Ok(gave) => running += usize::from(gave),
                    Err(e) => outcome = Err(e),
                }
            }
        }
        drop(inboxes);
        outcome
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    use std::time::Duration;

    fn demand(jobs: Option<usize>, cores: usize, gpus: &[usize], gpu_cells: usize, cpu_cells: usize) -> Demand<'_> {
        Demand { jobs, cores, gpus, gpu_cells, cpu_cells, threads: None }
    }

    /// On a CPU: the default is `default_cpu_jobs`, `--jobs` wins, never more slots than cells,
    /// and the cores are split evenly (at least one thread each).
    #[test]
    fn a_cpu_splits_its_cores_between_the_cells() {
        let cpu = |threads| Slot { threads, gpu: None };
        assert_eq!(slots(&demand(None, 8, &[], 0, 20)), vec![cpu(8 / default_cpu_jobs(8)); default_cpu_jobs(8)]);
        assert_eq!(slots(&demand(Some(2), 8, &[], 0, 20)), vec![cpu(4); 2]);
        assert_eq!(slots(&demand(Some(3), 2, &[], 0, 20)), vec![cpu(1); 3], "at least one thread each");
        assert_eq!(slots(&demand(Some(4), 8, &[], 0, 1)), vec![cpu(8)], "one cell left gets every core");
        assert_eq!(slots(&demand(Some(1), 2, &[], 0, 5)), vec![cpu(2)]);
        let mut d = demand(Some(2), 8, &[], 0, 5);
        d.threads = Some(1);
        assert_eq!(slots(&d), vec![cpu(1); 2], "OMP_NUM_THREADS set by the user wins");
        assert!(slots(&demand(Some(2), 8, &[], 0, 0)).is_empty());
    }

    /// On GPUs: one slot per GPU of the pool by default, `--jobs` caps it, and no GPU has two.
    #[test]
    fn each_gpu_of_the_pool_gets_one_slot() {
        let gpu = |k| Slot { threads: 4, gpu: Some(k) };
        assert!(slots(&demand(None, 16, &[0, 1, 2, 3], 0, 0)).is_empty(), "no cells, no slots");
        assert_eq!(slots(&demand(None, 16, &[0, 1, 2, 3], 60, 0)), [0, 1, 2, 3].map(gpu));
        let wide = |k| Slot { threads: 8, gpu: Some(k) };
        assert_eq!(slots(&demand(Some(2), 16, &[0, 2, 3], 60, 0)), [wide(0), wide(2)]);
        assert_eq!(
            slots(&demand(Some(8), 8, &[1, 3], 60, 0)),
            vec![Slot { threads: 4, gpu: Some(1) }, Slot { threads: 4, gpu: Some(3) }]
        );
        let mixed = slots(&demand(Some(3), 6, &[0], 4, 4));
        assert_eq!(
            mixed,
            vec![Slot { threads: 2, gpu: Some(0) }, Slot { threads: 2, gpu: None }, Slot { threads: 2, gpu: None }]
        );
    }

    #[test]
    fn devices_are_parsed_with_what_is_wrong_said() {
        assert_eq!(parse_devices("0,2, 3").unwrap(), [0, 2, 3]);
        assert!(parse_devices("0,x").unwrap_err().contains("`x` is not a GPU index"));
        assert!(parse_devices("").unwrap_err().contains("`` is not a GPU index"));
        assert!(parse_devices("1,1").unwrap_err().contains("GPU 1 is listed twice"));
        assert!(parse_devices("-1").unwrap_err().contains("`-1` is not a GPU index"));
    }

    #[test]
    fn the_users_thread_count_is_a_whole_number() {
        assert_eq!(threads_from_env(None).unwrap(), None);
        assert_eq!(threads_from_env(Some("3")).unwrap(), Some(3));
        for bad in ["0", "two", "4,2"] {
            let e = threads_from_env(Some(bad)).unwrap_err().to_string();
            assert!(e.starts_with(&format!("OMP_NUM_THREADS={bad}: expected a whole number")), "{e}");
        }
    }

    /// A cell on GPU K sees only it, numbered as CUDA numbers this process's visible GPUs.
    #[test]
    fn a_gpu_cell_sees_its_gpu_alone() {
        let env = |slot, own| child_env(&slot, own).unwrap();
        let on = |k| Slot { threads: 2, gpu: Some(k) };
        assert_eq!(
            env(on(2), None),
            [("OMP_NUM_THREADS", "2"), ("MKL_NUM_THREADS", "2"), ("CUDA_VISIBLE_DEVICES", "2")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(env(on(1), Some("4,6,7"))[2].1, "6", "cuda:1 is the second visible GPU");
        assert_eq!(env(on(0), Some("GPU-abc"))[2].1, "GPU-abc");
        assert!(child_env(&on(3), Some("4,6")).unwrap_err().to_string().contains("no entry for cuda:3"));
        assert_eq!(env(Slot { threads: 1, gpu: None }, Some("0")).len(), 2, "a CPU cell's GPUs are left alone");
    }

    /// Every cell runs once, GPU cells on GPU slots and CPU cells on CPU slots, never two at once
    /// on one GPU (or one slot); slots do run side by side; events arrive in order per cell.
    #[test]
    fn the_pool_runs_each_cell_once_and_never_two_on_one_gpu() {
        let gpu = |k| Slot { threads: 1, gpu: Some(k) };
        let pool = [gpu(0), gpu(3), Slot { threads: 1, gpu: None }];
        let on_gpu: Vec<bool> = (0..12).map(|i| i % 4 != 0).collect();
        let busy = Mutex::new(BTreeSet::new());
        // The first two GPU cells wait for each other: they must run at the same time.
        let met = (Mutex::new(0), std::sync::Condvar::new());
        let ran = Mutex::new(Vec::new());
        let run = |cell: usize, k: usize| {
            let slot = &pool[k];
            let key = slot.gpu.map_or(format!("cpu-{cell}"), |k| format!("gpu-{k}"));
            assert!(busy.lock().unwrap().insert(key.clone()), "{key} runs two cells at once");
            if cell == 1 || cell == 2 {
                let mut n = met.0.lock().unwrap();
                *n += 1;
                met.1.notify_all();
                let (n, wait) = met.1.wait_timeout_while(n, Duration::from_secs(30), |n| *n < 2).unwrap();
                assert!(!wait.timed_out(), "cells 1 and 2 did not run side by side ({} arrived)", *n);
            }
            std::thread::sleep(Duration::from_millis(5));
            ran.lock().unwrap().push((cell, slot.gpu));
            busy.lock().unwrap().remove(&key);
            cell * 10
        };
        let mut started = BTreeSet::new();
        let mut finished = Vec::new();
        run_pool(&on_gpu, &pool, run, |e| {
            match e {
                Event::Started { cell, slot } => {
                    assert_eq!(pool[slot].gpu.is_some(), on_gpu[cell], "cell {cell} in the wrong kind of slot");
                    assert!(started.insert(cell), "cell {cell} started twice");
                }
                Event::Finished { cell, result, .. } => {
                    assert!(started.contains(&cell));
                    assert_eq!(result, cell * 10);
                    finished.push(cell);
                }
            }
            Ok(())
        })
        .unwrap();
        finished.sort();
        assert_eq!(finished, (0..12).collect::<Vec<_>>());
        for (cell, gpu) in ran.into_inner().unwrap() {
            assert_eq!(gpu.is_some(), on_gpu[cell], "cell {cell}");
        }
    }

    /// The caller's first error (a status record that cannot be written) starts no further cell,
    /// lets the running ones end, and is the pool's error.
    #[test]
    fn an_error_of_the_caller_starts_no_further_cell() {
        let pool = [Slot { threads: 1, gpu: None }];
        let count = Mutex::new(0);
        let e = run_pool(
            &[false; 5],
            &pool,
            |_, _| *count.lock().unwrap() += 1,
            |e| match e {
                Event::Finished { cell: 1, .. } => bail!("disk full"),
                _ => Ok(()),
            },
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "disk full");
        assert_eq!(*count.lock().unwrap(), 2, "cells after the error were run");
        let e = run_pool(&[true], &pool, |_, _| (), |_| Ok(())).unwrap_err().to_string();
        assert!(e.contains("cells to run on a GPU, but no slot"), "{e}");
    }
}
