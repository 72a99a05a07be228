//! The largest single allocation, and the peak of memory held, by the
//! current thread while a closure runs, through a counting global allocator
//! (this test binary's only), so a test can show that parsing a hostile
//! header never asks for much.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    /// The largest request seen while tracking on this thread; `None` when not tracking.
    static LARGEST: Cell<Option<usize>> = const { Cell::new(None) };
    /// Bytes allocated minus bytes freed on this thread since tracking began.
    static HELD: Cell<isize> = const { Cell::new(0) };
    /// The most [`HELD`] reached while tracking.
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// Records `grown` more bytes held (negative: freed) and a request of `size`.
fn note(size: usize, grown: isize) {
    // `try_with`: allocations during thread teardown are not tracked.
    let _ = LARGEST.try_with(|largest| {
        if let Some(seen) = largest.get() {
            largest.set(Some(seen.max(size)));
            let held = HELD.get() + grown;
            HELD.set(held);
            PEAK.set(PEAK.get().max(held));
        }
    });
}

fn signed(size: usize) -> isize {
    isize::try_from(size).unwrap_or(isize::MAX)
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// bookkeeping only reads and writes a thread-local `Cell` (no allocation).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), signed(layout.size()));
        // SAFETY: same layout, as the caller promised for `alloc`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), signed(layout.size()));
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size, signed(new_size) - signed(layout.size()));
        // SAFETY: `ptr` was allocated by this allocator (that is, `System`) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(0, -signed(layout.size()));
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `work` and returns its result with the largest allocation it asked for, in bytes.
pub fn largest_allocation<T>(work: impl FnOnce() -> T) -> (T, usize) {
    let (result, largest, _) = allocations(work);
    (result, largest)
}

/// Runs `work` and returns its result with the largest allocation it asked
/// for and the most memory it held at once (what it allocated on this
/// thread and had not yet freed), in bytes.
pub fn allocations<T>(work: impl FnOnce() -> T) -> (T, usize, usize) {
    HELD.with(|held| held.set(0));
    PEAK.with(|peak| peak.set(0));
    LARGEST.with(|largest| largest.set(Some(0)));
    let result = work();
    let largest = LARGEST.with(|largest| largest.replace(None)).unwrap_or(0);
    let peak = usize::try_from(PEAK.get()).unwrap_or(0);
    (result, largest, peak)
}
