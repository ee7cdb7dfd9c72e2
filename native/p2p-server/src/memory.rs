//! Keeping the server's memory flat under many logins.
//!
//! Every password or device-secret check allocates Argon2's 19 MiB work area on a blocking-pool thread.
//! glibc raises its mmap threshold after the first such block is freed, so later ones come from
//! per-thread arenas and are kept after use: with 1000 targets registering, the server grew to 4.3 GiB
//! (p2p-bench). Pinning the threshold makes large blocks mmap'd again and returned to the OS on free.

/// Call once at start, before any thread is spawned.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // the crate's only unsafe code (lib.rs denies it everywhere else)
pub fn return_large_buffers_to_the_os() {
    // 128 KiB, glibc's initial threshold; setting it explicitly turns off the dynamic adjustment.
    // SAFETY: mallopt only changes allocator tuning; it is called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Other allocators (Windows, macOS, musl) return large blocks to the OS already.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_large_buffers_to_the_os() {}
