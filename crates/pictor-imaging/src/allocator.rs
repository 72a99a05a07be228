//! Process-wide allocator settings for image work, which the binaries that
//! render images (`pictor serve`/`worker`, `pictor-imaging-bench`) apply
//! once at start-up.
//!
//! Every image allocates a few buffers of several megabytes (decoded pixels,
//! libjpeg's coefficient arrays, the resized preview). By default glibc serves
//! them with fresh `mmap`s, or trims them off the heap when freed, so each
//! image page-faults its buffers in again: 15 % of the photo set's CPU went to
//! the kernel that way. Keeping them in the heap between images costs no
//! more peak memory (the next image reuses the same pages) and saved 6–9 %
//! of the CPU (BENCHMARKS.md, 2026-11-30).

/// Largest allocation that still comes from the heap rather than its own
/// `mmap`: above every per-image buffer within the default pixel limits.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 << 20;
/// Free memory at the top of the heap that is kept rather than returned.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 256 << 20;

/// Keeps image-sized buffers in the heap between images (glibc only; a no-op
/// elsewhere, or when `GLIBC_TUNABLES` or `MALLOC_MMAP_THRESHOLD_` /
/// `MALLOC_TRIM_THRESHOLD_` already say otherwise). Call it from `main`
/// before any thread starts.
pub fn keep_image_buffers_allocated() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let overridden = ["GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
        if overridden {
            return;
        }
        // SAFETY: mallopt only sets allocator parameters; the caller runs it
        // from main before other threads exist.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}
