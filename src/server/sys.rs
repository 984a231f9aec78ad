//! Process-level setup: open-file limit and CPU pinning; the allocator's
//! memory return.

/// Raises the soft RLIMIT_NOFILE to the hard limit: a proxy holds two sockets
/// per proxied connection, and 1024 (a common soft default) is soon reached.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass; no other invariants.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the struct; raising soft up to hard is allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

/// CPUs this process may run on (respects taskset / cgroup cpusets).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    if !ok {
        return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    }
    // SAFETY: CPU_ISSET reads the set filled above, for indices below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect()
}

/// The CPU each worker is pinned to. Pinning is thread-per-core: it holds
/// only when there is exactly one worker per CPU the process may run on (the
/// default `workers`, or `workers` equal to a taskset or cgroup cpuset). With
/// fewer workers than allowed CPUs, pinning them to the first ones would put
/// every such process on the same CPUs (each sidecar with `workers: 1` on a
/// Kubernetes node on CPU 0), so the kernel places them instead; with more,
/// they cannot each have one.
pub fn pin_plan(workers: usize, cpus: &[usize]) -> Vec<Option<usize>> {
    if workers == cpus.len() {
        cpus.iter().map(|&cpu| Some(cpu)).collect()
    } else {
        vec![None; workers]
    }
}

/// Pins the calling thread to one CPU. Failure is not fatal (containers may
/// forbid it); the caller logs it.
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    // SAFETY: as above; CPU_SET writes a bit inside the zeroed set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

// mimalloc is the corelink binary's global allocator (src/main.rs). Naming
// the crate here links it into every binary of this library, tests included,
// where `mi_collect` then tidies an unused heap.
use mimalloc as _;

extern "C" {
    /// mimalloc: frees this thread's empty pages and, with `force`, returns
    /// all free memory to the OS at once, ignoring `purge_delay`.
    fn mi_collect(force: bool);
}

/// Has the allocator give the memory this thread freed back to the OS now.
/// mimalloc otherwise purges free pages only after a delay (1 s), and only
/// checks that delay when the thread allocates or frees again: a worker that
/// goes quiet after a burst keeps the burst's peak resident (in
/// `perf/compare`'s scenario 7, 3/4 of the RSS per idle connection). Costly
/// enough (it visits every page) to be called only when the core is quiet.
pub fn return_free_memory() {
    // SAFETY: mi_collect takes no pointers and may be called on any thread.
    unsafe { mi_collect(true) }
}

#[cfg(test)]
mod tests {
    use super::pin_plan;

    /// (workers, allowed CPUs, the CPU each worker is pinned to)
    type Case = (usize, &'static [usize], &'static [Option<usize>]);

    #[test]
    fn pins_only_one_worker_per_allowed_cpu() {
        let cases: &[Case] = &[
            // The default: one worker per allowed CPU, each pinned to its own.
            (2, &[0, 1], &[Some(0), Some(1)]),
            // taskset -c 1 with workers: 1 (perf/engine-cpu.sh).
            (1, &[1], &[Some(1)]),
            // A cpuset of CPUs 4 and 6 (Kubernetes static CPU manager).
            (2, &[4, 6], &[Some(4), Some(6)]),
            // workers: 1 on a shared 8-CPU node: not pinned to CPU 0.
            (1, &[0, 1, 2, 3, 4, 5, 6, 7], &[None]),
            // More workers than CPUs.
            (3, &[0, 1], &[None, None, None]),
        ];
        for &(workers, cpus, want) in cases {
            assert_eq!(pin_plan(workers, cpus), want, "workers {workers}, cpus {cpus:?}");
        }
    }
}
