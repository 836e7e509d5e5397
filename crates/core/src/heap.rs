//! Keeping freed memory in the process: the C heap setting featdrop's binaries start with.
//!
//! libtorch takes each CPU tensor from the C allocator. glibc serves every block over 32 MiB with
//! a fresh `mmap` and gives it back to the kernel on free, so a training step at paper size (a
//! 256-image batch's activations are tens of MiB each) faults in every page of its working set
//! again, step after step: 9.6 M page faults and 19 s of kernel time in a bench process of the
//! paper viewmaker configuration on a 2-core CPU (one warm-up and two timed steps), a third of its
//! wall time. Serving large blocks from the heap and never trimming it lets freed blocks be reused
//! as they are, as caching allocators (tcmalloc, or jemalloc without decay) do; on that bench the
//! same steps ran 1.12–1.21× faster, with about a fifth more peak memory (README, "Speed").
//! Results are bit-identical: only where the bytes live changes.

use std::sync::OnceLock;

/// The environment variable that turns this off (`FEATDROP_KEEP_FREED_MEMORY=0`).
pub const ENV: &str = "FEATDROP_KEEP_FREED_MEMORY";

/// What [`keep_freed_memory`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapSetting {
    /// Large blocks come from the heap, which is never trimmed.
    Kept,
    /// Left as the C library has it: turned off with [`ENV`]`=0`, or the user already chose
    /// (`MALLOC_MMAP_MAX_`, `MALLOC_TRIM_THRESHOLD_`, `GLIBC_TUNABLES` or an `LD_PRELOAD`ed
    /// allocator), or the C library is not glibc.
    Untouched(&'static str),
}

impl std::fmt::Display for HeapSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kept => f.write_str("freed memory kept (glibc: no mmap, no trimming)"),
            Self::Untouched(why) => write!(f, "left as the process starts ({why})"),
        }
    }
}

/// Sets the C heap to keep freed memory (glibc's `M_MMAP_MAX = 0`, `M_TRIM_THRESHOLD = -1`, see
/// `mallopt(3)`), once per process; later calls return the first call's result. Call it at the
/// start of `main`, as featdrop's binaries and benchmarks do: it governs the main thread's heap,
/// where featdrop allocates its tensors (glibc still maps large blocks afresh for other threads).
pub fn keep_freed_memory() -> HeapSetting {
    static DONE: OnceLock<HeapSetting> = OnceLock::new();
    *DONE.get_or_init(|| {
        let setting = decide_from_env();
        if setting == HeapSetting::Kept && !apply() {
            return HeapSetting::Untouched("mallopt refused the setting");
        }
        tracing::debug!(?setting, "C heap");
        setting
    })
}

/// What [`keep_freed_memory`] will do in this process's environment, without doing it.
pub fn decide_from_env() -> HeapSetting {
    choose(|k| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned()))
}

/// The decision, from the environment (`var` reads one variable).
fn choose(var: impl Fn(&str) -> Option<String>) -> HeapSetting {
    if var(ENV).is_some_and(|v| v == "0") {
        return HeapSetting::Untouched("turned off by FEATDROP_KEEP_FREED_MEMORY=0");
    }
    let user_chose = ["MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD"];
    if user_chose.iter().any(|k| var(k).is_some_and(|v| !v.is_empty())) {
        return HeapSetting::Untouched("the environment already sets the allocator");
    }
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        HeapSetting::Kept
    } else {
        HeapSetting::Untouched("not glibc")
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> bool {
    // SAFETY: mallopt only changes the allocator's parameters; it takes the arena lock itself.
    unsafe { libc::mallopt(libc::M_MMAP_MAX, 0) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, -1) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_user_s_own_allocator_settings_win() {
        assert!(matches!(choose(env(&[(ENV, "0")])), HeapSetting::Untouched(_)));
        assert!(matches!(choose(env(&[("LD_PRELOAD", "libtcmalloc.so")])), HeapSetting::Untouched(_)));
        assert!(matches!(choose(env(&[("MALLOC_MMAP_MAX_", "4")])), HeapSetting::Untouched(_)));
        let expected = if cfg!(target_env = "gnu") { HeapSetting::Kept } else { HeapSetting::Untouched("not glibc") };
        assert_eq!(choose(env(&[(ENV, "1"), ("LD_PRELOAD", "")])), expected);
    }
}
