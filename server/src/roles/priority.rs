//! Thread priorities of a serving process (Linux nice values; elsewhere
//! nothing). The async runtime's threads (accepting calls, admission
//! control's rejections, health, the pipeline's orchestration) run at the
//! default priority; the engine's compute pool (rayon, where every forward
//! pass and search runs) at [`COMPUTE_NICE`]; the retrieval index's
//! encoder at a lower one still (`phoenix::index_writer`). On a saturated
//! host the scheduler then answers a call it must shed, or a health check,
//! at once, instead of after the compute threads' time slices (measured on
//! 2 cores: `benches/results/overload_cpu_*`).

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
