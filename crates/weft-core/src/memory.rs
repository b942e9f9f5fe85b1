//! How many bytes weft holds outside the Lua heaps, for `weft.memory()`.
//!
//! Counted where storage is created and dropped, so the figure covers every thread.

use std::sync::atomic::{AtomicUsize, Ordering};

static OWNED: AtomicUsize = AtomicUsize::new(0);
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

pub(crate) fn owned_add(bytes: usize) {
    OWNED.fetch_add(bytes, Ordering::Relaxed);
}

pub(crate) fn owned_sub(bytes: usize) {
    OWNED.fetch_sub(bytes, Ordering::Relaxed);
}

pub(crate) fn mapped_add(bytes: usize) {
    MAPPED.fetch_add(bytes, Ordering::Relaxed);
}

pub(crate) fn mapped_sub(bytes: usize) {
    MAPPED.fetch_sub(bytes, Ordering::Relaxed);
}
