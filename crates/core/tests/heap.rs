//! `featdrop_core::heap::keep_freed_memory` on the main thread, where featdrop allocates its
//! tensors (no test harness: libtest would run this on a thread of its own, whose glibc arena
//! maps large blocks afresh whatever the setting).

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    use featdrop_core::heap::{HeapSetting, decide_from_env, keep_freed_memory};
    // 64 MiB: above glibc's largest mmap threshold, so without the setting every allocation is a
    // fresh mapping whose 16 384 pages fault in again when written.
    const SIZE: usize = 64 << 20;
    let faults_of_one_block = || {
        let before = minor_faults();
        let mut v = vec![1u8; SIZE];
        v.iter_mut().step_by(4096).for_each(|b| *b = 2);
        std::hint::black_box(&v);
        minor_faults() - before
    };
    // The environment's own allocator settings, or FEATDROP_KEEP_FREED_MEMORY=0, leave nothing to test.
    if let HeapSetting::Untouched(why) = decide_from_env() {
        println!("heap: {why}; nothing to test");
        return;
    }
    let fresh = faults_of_one_block();
    assert!(fresh > 10_000, "a fresh 64 MiB block faulted only {fresh} pages in: nothing to compare");
    assert_eq!(keep_freed_memory(), HeapSetting::Kept);
    let first = faults_of_one_block();
    let reused = faults_of_one_block();
    // The first block grows the heap (faults in); the second reuses it.
    assert!(reused < 1_000, "{reused} page faults on reusing a freed 64 MiB block (first: {first})");
    println!("heap: a fresh 64 MiB block faulted {fresh} pages in, a reused one {reused}");
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn minor_faults() -> i64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    usage.ru_minflt
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {}
