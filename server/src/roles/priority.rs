//! Thread priorities of a serving process (Linux nice values; elsewhere
//! nothing). The async runtime's threads (accepting calls, admission
//! control's rejections, health, the pipeline's orchestration) run at the
//! default priority; the engine's compute pool (rayon, where every forward
//! pass and search runs) at [`COMPUTE_NICE`]; the retrieval index's
//! encoder at a lower one still (`phoenix::index_writer`). On a saturated
//! host the scheduler then answers a call it must shed, or a health check,
//! at once, instead of after the compute threads' time slices (measured on
//! 2 cores: `benches/results/overload_cpu_*`).
//!
//! The runtime's threads also ask for a short scheduler slice
//! ([`favour_latency`], Linux 6.12+ EEVDF): a nice value only sets a
//! thread's share of the CPU, and a woken runtime thread could still wait
//! out the rest of a compute thread's protected slice (up to ~3 ms) before
//! it ran. With a shorter slice than the running thread's, the scheduler
//! preempts at once on wakeup. Older kernels accept and ignore the value.

/// Nice value of the engine's compute pool.
pub const COMPUTE_NICE: i32 = 5;

/// Sets the calling thread's nice value; a failure is logged and ignored.
pub fn set_thread_nice(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions; setpriority on this
        // thread's id changes only this thread's nice value.
        #[allow(unsafe_code)]
        let rc = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
        };
        if rc != 0 {
            tracing::warn!(nice, error = %std::io::Error::last_os_error(), "cannot set a thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// The scheduler slice the async runtime's threads ask for: the kernel's
/// floor (0.1 ms), well under the default 0.75-3 ms of the compute threads.
pub const RUNTIME_SLICE: std::time::Duration = std::time::Duration::from_micros(100);

/// Gives the calling thread a [`RUNTIME_SLICE`] scheduler slice, keeping
/// its policy and nice value (so no privilege is needed); threads it
/// starts do not inherit the slice. A thread under
/// another policy than the default (`chrt`) is left alone. Meant for
/// `tokio::runtime::Builder::on_thread_start`. A failure is logged at
/// debug and ignored: only the latency tail depends on it.
pub fn favour_latency() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the calling thread with a fully
        // initialised `sched_attr` of the size it declares; errno is
        // thread-local.
        #[allow(unsafe_code)]
        let rc = unsafe {
            if libc::sched_getscheduler(0) != libc::SCHED_OTHER {
                return;
            }
            *libc::__errno_location() = 0;
            let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
            if nice == -1 && *libc::__errno_location() != 0 {
                return;
            }
            let attr = libc::sched_attr {
                size: std::mem::size_of::<libc::sched_attr>() as u32,
                sched_policy: libc::SCHED_OTHER as u32,
                // Threads this one starts get the default slice back.
                sched_flags: libc::SCHED_FLAG_RESET_ON_FORK as u64,
                sched_nice: nice,
                sched_priority: 0,
                sched_runtime: RUNTIME_SLICE.as_nanos() as u64,
                sched_deadline: 0,
                sched_period: 0,
            };
            libc::syscall(
                libc::SYS_sched_setattr,
                0,
                &attr as *const libc::sched_attr,
                0,
            )
        };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot shorten a runtime thread's scheduler slice");
        }
    }
}

/// Builds rayon's global pool with its threads at [`COMPUTE_NICE`]. Call
/// once, before anything uses rayon; a pool built already is kept (and
/// reported).
pub fn lower_compute_pool_priority() {
    let built = rayon::ThreadPoolBuilder::new()
        .start_handler(|_| set_thread_nice(COMPUTE_NICE))
        .build_global();
    if let Err(e) = built {
        tracing::warn!(error = %e, "rayon's pool exists already; compute keeps its priority");
    }
}
