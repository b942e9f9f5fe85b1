//! The memory of freed large arrays, kept for the next array of the same size.
//!
//! A large array is an anonymous mapping whose pages fault in one by one as they are
//! first written, and on a VM a fault costs several microseconds: a new 4 MB array took
//! 2.5–5 ms to fill here, ten times the copy that fills it. Programs that make arrays in a
//! loop (a `weft.mpi.recv` per message, a result per batch) free and allocate the same
//! sizes again and again, so a freed array's mapping, its pages still resident, is kept
//! here and handed to the next array of exactly that size (zeroed again by the caller).
//!
//! Bounded, so that an idle process does not sit on freed memory: at most [`MAX_KEPT`]
//! mappings of at most [`MAX_ONE`] bytes each, [`MAX_KEPT_BYTES`] in all; the oldest go
//! first. Mappings larger than [`MAX_ONE`] are never kept: a huge zeroed array costs
//! nothing until written, which clearing a kept one would lose.

use memmap2::MmapMut;
use parking_lot::Mutex;

/// At most this many mappings are kept.
const MAX_KEPT: usize = 8;
/// Mappings larger than this are unmapped when freed.
const MAX_ONE: usize = 32 << 20;
/// The kept mappings' total size stays within this.
const MAX_KEPT_BYTES: usize = 64 << 20;

/// Kept mappings, oldest first.
static KEPT: Mutex<Vec<MmapMut>> = Mutex::new(Vec::new());

/// A kept mapping of exactly `bytes` bytes (the most recently kept), if there is one. Its
/// contents are whatever the freed array held.
pub(crate) fn take(bytes: usize) -> Option<MmapMut> {
    if bytes > MAX_ONE {
        return None;
    }
    let mut kept = KEPT.lock();
    let i = kept.iter().rposition(|m| m.len() == bytes)?;
    Some(kept.remove(i))
}

/// Keep `map` for a later [`take`], or unmap it when it is too large; the oldest kept
/// mappings are unmapped to make room.
pub(crate) fn give(map: MmapMut) {
    if map.len() > MAX_ONE {
        return;
    }
    let mut evicted = Vec::new();
    {
        let mut kept = KEPT.lock();
        let mut total: usize = kept.iter().map(|m| m.len()).sum::<usize>() + map.len();
        while !kept.is_empty() && (kept.len() >= MAX_KEPT || total > MAX_KEPT_BYTES) {
            let old = kept.remove(0);
            total -= old.len();
            evicted.push(old);
        }
        kept.push(map);
    }
    // Unmapped outside the lock: munmap can take a while (TLB shootdowns).
    drop(evicted);
}

/// How many mappings and bytes are kept.
pub(crate) fn kept() -> (usize, usize) {
    let kept = KEPT.lock();
    (kept.len(), kept.iter().map(|m| m.len()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test owns the shared store (tests in this crate run in parallel threads, and
    // other tests' arrays pass through it too, so only bounds and identity are checked).
    #[test]
    #[cfg_attr(miri, ignore)] // anonymous mappings: Miri has no mmap
    fn a_kept_mapping_is_handed_back_once_and_the_store_stays_bounded() {
        let size = MAX_ONE - 4096 * 3; // a size no other test allocates
        let mut m = MmapMut::map_anon(size).unwrap();
        m[0] = 7;
        let addr = m.as_ptr();
        give(m);
        let back = take(size).expect("the mapping just given");
        assert_eq!(back.as_ptr(), addr);
        assert_eq!(
            back[0], 7,
            "contents are the freed array's: the caller clears them"
        );
        assert!(take(size).is_none(), "handed out once");
        give(back);
        // Filling past the bounds evicts the oldest, never exceeds them.
        for _ in 0..3 * MAX_KEPT {
            give(MmapMut::map_anon(MAX_ONE).unwrap());
            let (n, bytes) = kept();
            assert!(
                n <= MAX_KEPT && bytes <= MAX_KEPT_BYTES,
                "{n} maps, {bytes} bytes"
            );
        }
        assert!(take(size).is_none(), "the oldest was evicted");
        // Too large to keep.
        give(MmapMut::map_anon(MAX_ONE + 4096).unwrap());
        assert!(take(MAX_ONE + 4096).is_none());
    }
}
