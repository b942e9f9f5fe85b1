//! How many bytes weft holds outside the Lua heaps, for `weft.memory()`.
//!
//! Counted where storage is created and dropped, so the figure covers every thread.

use std::sync::atomic::{AtomicUsize, Ordering};

static OWNED: AtomicUsize = AtomicUsize::new(0);
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// Bytes of array memory weft allocated and has not freed.
pub fn owned() -> usize {
    OWNED.load(Ordering::Relaxed)
}

/// Bytes of files mapped read-only (`load_npy(path, {mmap = true})`); the kernel pages
/// them in on demand and may drop them again, so they are reported apart.
pub fn mapped() -> usize {
    MAPPED.load(Ordering::Relaxed)
}

/// Bytes of freed arrays' memory kept, still resident, for the next array of the same size
/// (at most 64 MiB; weft-core's recycle.rs): no longer in [`owned`], not yet returned to
/// the system.
pub fn kept() -> usize {
    crate::recycle::kept().1
}

/// Bytes of array memory allocated since the process started, freed or not (wrapping).
/// The Lua binding paces each state's garbage collector by it: array memory lives
/// outside the Lua heaps, so the collectors cannot see it otherwise.
pub fn allocated() -> usize {
    ALLOCATED.load(Ordering::Relaxed)
}

pub(crate) fn owned_add(bytes: usize) {
    OWNED.fetch_add(bytes, Ordering::Relaxed);
    ALLOCATED.fetch_add(bytes, Ordering::Relaxed);
    #[cfg(test)]
    THREAD_OWNED.with(|c| c.set(c.get().wrapping_add(bytes)));
}

pub(crate) fn owned_sub(bytes: usize) {
    OWNED.fetch_sub(bytes, Ordering::Relaxed);
    #[cfg(test)]
    THREAD_OWNED.with(|c| c.set(c.get().wrapping_sub(bytes)));
}

// The global figure moves with every test running in parallel; a unit test checks the
// bytes its own thread allocated and freed.
#[cfg(test)]
thread_local! {
    static THREAD_OWNED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Bytes this thread's allocations added to [`owned`] less those it freed (tests only).
#[cfg(test)]
pub(crate) fn owned_by_this_thread() -> usize {
    THREAD_OWNED.with(|c| c.get())
}

pub(crate) fn mapped_add(bytes: usize) {
    MAPPED.fetch_add(bytes, Ordering::Relaxed);
}

pub(crate) fn mapped_sub(bytes: usize) {
    MAPPED.fetch_sub(bytes, Ordering::Relaxed);
}
