//! The full similarity matrix S = E·Eᵀ, computed on the upper triangle of tiles and mirrored.

use crate::budget::Budget;
use crate::error::ComputeError;
use crate::gemm::{Packed, BLOCK};
use crate::rows::Rows;
use crate::threads;
use crate::tiles::{check_finite, upper_tiles, SharedMatrix};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Returns S = E·Eᵀ, row-major `n × n` f32, for rows that are already normalised (see
/// [`crate::normalize`]); S[i, j] is bit-for-bit S[j, i].
///
/// Tiles on and above the diagonal are computed by the SIMD kernel and mirrored, so half the
/// products are done. `threads`: `None` for the machine's cores. Fails when N < 1, a value is
/// not finite, or the n² f32 do not fit `budget`.
pub fn similarity(
    e: Rows<'_>,
    threads: Option<usize>,
    budget: Budget,
) -> Result<Vec<f32>, ComputeError> {
    e.require(1)?;
    check_finite(e)?;
    let t = threads::resolve(threads)?;
    let n = e.n();
    let needed = (n as u64) * (n as u64) * 4;
    if !budget.fits(needed) {
        return Err(ComputeError::OverBudget {
            what: "the similarity matrix",
            needed,
            budget: budget.get(),
        });
    }
    let packed = Packed::new(e);
    let mut s = vec![0.0f32; n * n];
    let out = SharedMatrix::new(&mut s, n, n);
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
            // upper tiles and their mirrors never overlap, and `s` outlives the workers
            // (on_each returns after all of them).
            unsafe { out.write_tile(tile, &buf, |x| x) };
        }
    })?;
    Ok(s)
}
