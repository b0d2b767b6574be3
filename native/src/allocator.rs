//! The allocator settings of strata's native binaries (the `strata` CLI and the bench), which use
//! mimalloc as their global allocator.
//!
//! mimalloc 3 returns freed memory to the system a second after it was freed (its
//! `purge_delay` option). A backup or restore frees and allocates large buffers all the time
//! (scan pages, 16 MiB data files, 4 MiB reads and ingest batches, argon2id's 64 MiB), so a
//! second's worth of them stayed resident: the fjall store's encrypted backup peaked at 304 MiB
//! at 10M keys in the bench, and at 250-272 MiB at 1M. With a 250 ms delay it peaks at 241 MiB
//! and 230-234 MiB, at the same speed (on a second, faster 2-core machine, at 1M keys: 235-258 MiB
//! instead of 272-280 MiB; at 10M keys 256 MiB). A shorter delay costs speed, as memory is returned and
//! faulted in again (10 ms: restores at 1M keys ~12% slower, backups 3-10%); mimalloc 2 (whose
//! delay is 10 ms) held 337-554 MiB at 10M keys.

/// How long mimalloc keeps freed memory before returning it to the system, in milliseconds.
pub const PURGE_DELAY_MS: std::ffi::c_long = 250;

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h`; the Rust bindings do not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets mimalloc's purge delay to [`PURGE_DELAY_MS`] unless `MIMALLOC_PURGE_DELAY` is set (a
/// user's own setting wins). Call it first thing in `main` of a binary whose global allocator is
/// mimalloc; it changes nothing otherwise.
pub fn return_freed_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` stores a value in mimalloc's table of options, which mimalloc reads
    // whenever it decides to purge; any option of the enum may be set at any time.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS)
    }
}

/// mimalloc's current purge delay, in milliseconds.
pub fn purge_delay_ms() -> std::ffi::c_long {
    // SAFETY: reads mimalloc's table of options.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option number is mimalloc 3's purge delay: its default is the documented second, and
    /// setting it takes.
    #[test]
    fn the_purge_delay_is_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        assert_eq!(purge_delay_ms(), 1000, "mimalloc 3's default purge delay");
        return_freed_memory_promptly();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }
}
