//! The allocator's settings. The `foryou` binary and the benches that
//! time the server's code (thunder-report, thunder-profile) apply them
//! first thing, so both run mimalloc the same way.

/// mimalloc's `purge_delay` option: its index in the v2 line's option
/// table (`options.c`; `libmimalloc-sys` 0.1.49 has no constant for it).
/// The test below checks that this index holds the option's default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps freed pages before handing them back to the
/// kernel, ms (its default: 10). At 50 feed requests a second, 20 ms
/// apart, the default gave back each request's working memory (the
/// candidate lists, a few hundred KB each) before the next one came, and
/// the next one faulted and cleared every page again: page faults were
/// 12 % of the request threads' samples. 100 ms keeps it between requests
/// (the shell's p99 at 50 QPS as low as with 1000 ms) and holds less at
/// the peak of an overload (peak/idle RSS 1.36-1.41 against 1.38-1.50
/// with 1000 ms; `benches/results/feed_shell_allocator_cpu_2026-12-04.md`).
/// `MIMALLOC_PURGE_DELAY` set in the environment wins.
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// Applies [`PURGE_DELAY_MS`] unless the environment sets the option.
pub fn delay_mimalloc_purge() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: mi_option_set only stores an option value; mimalloc reads it
    // on its next purge.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    // Nothing in this test binary calls `delay_mimalloc_purge`, so the
    // option still holds mimalloc's default here.

    #[test]
    fn the_purge_delay_index_names_the_option_with_its_default() {
        // purge_delay defaults to 10 ms; its neighbours in the table
        // (eager_commit_delay 1, use_numa_nodes 0) do not.
        #[allow(unsafe_code)]
        // SAFETY: reads an option value.
        let (value, before, after) = unsafe {
            (
                libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
                libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY - 1),
                libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY + 1),
            )
        };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(value, 10);
        }
        assert_eq!((before, after), (1, 0));
    }
}
