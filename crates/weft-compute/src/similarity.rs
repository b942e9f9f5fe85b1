//! The full similarity matrix S = E·Eᵀ, computed on the upper triangle of tiles and mirrored.

use crate::budget::Budget;
use crate::error::ComputeError;
use crate::gemm::{Packed, BLOCK};
use crate::rows::Rows;
use crate::threads;
use crate::tiles::{check_finite, upper_tiles, SharedMatrix};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Returns S = E·Eᵀ, row-major `n × n` f32, for rows that are already normalised (see
/// [`fn@crate::normalize`]); S[i, j] is bit-for-bit S[j, i].
///
/// Tiles on and above the diagonal are computed by the SIMD kernel and mirrored, so half the
/// products are done. `threads`: `None` for the machine's cores. Fails when N < 1, a value is
/// not finite, or the n² f32 do not fit `budget`. [`similarity_into`] writes into a buffer the
/// caller already has.
///
/// ```
/// use weft_compute::{normalize, similarity, Budget, Rows};
///
/// // three items in two dimensions, normalised first: (0.6, 0.8), (1, 0), (0, 1)
/// let raw = [3.0f32, 4.0, 1.0, 0.0, 0.0, 2.0];
/// let e = normalize(Rows::new(&raw, 3, 2)?)?;
/// let s = similarity(Rows::new(&e, 3, 2)?, None, Budget::default())?;
/// assert_eq!(s.len(), 3 * 3);
/// assert!((s[0] - 1.0).abs() < 1e-6); // an item with itself
/// assert!((s[1] - 0.6).abs() < 1e-6); // item 0 with item 1
/// assert_eq!(s[1].to_bits(), s[3].to_bits()); // symmetric, bit for bit
/// assert_eq!(s[5], 0.0); // items 1 and 2 are orthogonal
/// # Ok::<(), weft_compute::ComputeError>(())
/// ```
pub fn similarity(
    e: Rows<'_>,
    threads: Option<usize>,
    budget: Budget,
) -> Result<Vec<f32>, ComputeError> {
    check(e, budget)?;
    let t = threads::resolve(threads)?;
    let mut s = vec![0.0f32; e.n() * e.n()];
    fill(e, &mut s, t)?;
    Ok(s)
}

/// Writes S = E·Eᵀ into `out`, which must hold exactly n·n f32 (row-major); every value of
/// `out` is overwritten, with the same bits [`similarity`] returns.
///
/// Any alignment works. The output counts against `budget` as in [`similarity`]
/// (`OverBudget` when n²·4 bytes do not fit), so both refuse the same sizes; besides `out`
/// the call holds O(N·d) packed rows and one 384×384 tile per thread. Fails with
/// [`ComputeError::SimilarityShape`] when `out.len() ≠ n·n`, and on the input errors of
/// [`similarity`]; `out` is untouched on every error.
pub fn similarity_into(
    e: Rows<'_>,
    out: &mut [f32],
    threads: Option<usize>,
    budget: Budget,
) -> Result<(), ComputeError> {
    let n = e.n();
    if n.checked_mul(n) != Some(out.len()) {
        return Err(ComputeError::SimilarityShape {
            len: out.len(),
            n,
            expected: n.saturating_mul(n),
        });
    }
    check(e, budget)?;
    fill(e, out, threads::resolve(threads)?)
}

/// The input checks shared by both entry points: rows, finiteness and the n²·4-byte output
/// against the budget.
fn check(e: Rows<'_>, budget: Budget) -> Result<(), ComputeError> {
    e.require(1)?;
    check_finite(e)?;
    let n = e.n() as u64;
    let needed = n * n * 4;
    if !budget.fits(needed) {
        return Err(ComputeError::OverBudget {
            what: "the similarity matrix",
            needed,
            budget: budget.get(),
        });
    }
    Ok(())
}

/// Computes the upper tiles on `t` workers and writes them and their mirrors into `out`
/// (n·n, already checked).
fn fill(e: Rows<'_>, out: &mut [f32], t: usize) -> Result<(), ComputeError> {
    let n = e.n();
    advise_huge_pages(out);
    let packed = Packed::new(e);
    let shared = SharedMatrix::new(out, n, n);
    let tiles = upper_tiles(n);
    let next = AtomicUsize::new(0);
    threads::on_each(t, |_| {
        let mut buf = vec![0.0f32; BLOCK * BLOCK];
        loop {
            let idx = next.fetch_add(1, Ordering::Relaxed);
            let Some(&tile) = tiles.get(idx) else {
                break;
            };
            let (i0, rows, j0, cols) = tile;
            packed.tile(i0, rows, j0, cols, &mut buf, BLOCK);
            // SAFETY: each upper tile is handed to exactly one worker (atomic counter); distinct
            // upper tiles and their mirrors never overlap.
            unsafe { shared.write_tile(tile, &buf, |x| x) };
        }
    })?;
    Ok(())
}

/// Asks the kernel to back `out` with transparent huge pages where it is not yet touched: a
/// fresh 200 MB matrix then takes ~100 page faults instead of ~50,000 (numpy does the same
/// for its large arrays). Advice only — contents and semantics are unchanged, and a refusal
/// (other systems, file mappings, THP disabled) is ignored.
fn advise_huge_pages(out: &mut [f32]) {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    {
        const PAGE: usize = 4096;
        const HUGE: usize = 2 << 20;
        const MADV_HUGEPAGE: std::ffi::c_int = 14;
        extern "C" {
            fn madvise(
                addr: *mut std::ffi::c_void,
                len: usize,
                advice: std::ffi::c_int,
            ) -> std::ffi::c_int;
        }
        let start = out.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(out);
        let (lo, hi) = (start.next_multiple_of(PAGE), end / PAGE * PAGE);
        if hi >= lo + HUGE {
            // SAFETY: [lo, hi) lies inside `out`, which this call borrows mutably; MADV_HUGEPAGE
            // changes no contents (the kernel only picks larger pages for future faults).
            unsafe { madvise(lo as *mut std::ffi::c_void, hi - lo, MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    let _ = out;
}
