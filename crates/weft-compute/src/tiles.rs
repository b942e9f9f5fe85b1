//! The tiling of S shared by the drivers: the upper-triangle tile list, and a writer that
//! scatters computed tiles (and their mirror images) into a shared N×N output.

use crate::error::{ComputeError, RowProblem};
use crate::gemm::BLOCK;
use crate::rows::Rows;

/// The (first row, rows, first column, columns) of every BLOCK tile whose row block is at or
/// before its column block.
pub(crate) fn upper_tiles(n: usize) -> Vec<(usize, usize, usize, usize)> {
    let mut v = Vec::new();
    for i0 in (0..n).step_by(BLOCK) {
        for j0 in (i0..n).step_by(BLOCK) {
            v.push((i0, BLOCK.min(n - i0), j0, BLOCK.min(n - j0)));
        }
    }
    v
}

/// Fails with the first row holding NaN or ±Inf.
pub(crate) fn check_finite(e: Rows<'_>) -> Result<(), ComputeError> {
    if let Some(pos) = e.data().iter().position(|x| !x.is_finite()) {
        let problem = if e.data()[pos].is_nan() {
            RowProblem::Nan
        } else {
            RowProblem::Inf
        };
        return Err(ComputeError::BadRow {
            row: pos / e.d(),
            problem,
        });
    }
    Ok(())
}

/// An n×n row-major output (row stride `stride` ≥ n) that several workers fill, each its
/// own tiles.
pub(crate) struct SharedMatrix<T> {
    ptr: *mut T,
    n: usize,
    stride: usize,
}

// SAFETY: workers write disjoint regions only (each caller of `write` promises that).
unsafe impl<T: Send> Sync for SharedMatrix<T> {}

impl<T: Copy> SharedMatrix<T> {
    /// Wraps `out`, which must hold n·stride values and outlive every use of the result.
    pub(crate) fn new(out: &mut [T], n: usize, stride: usize) -> Self {
        assert!(stride >= n && out.len() == n * stride);
        SharedMatrix {
            ptr: out.as_mut_ptr(),
            n,
            stride,
        }
    }

    /// Writes the tile `buf` (row stride BLOCK, `rows × cols`, origin (i0, j0)) through `map`
    /// at S[i0.., j0..] and, when i0 ≠ j0, transposed at S[j0.., i0..].
    ///
    /// # Safety
    /// The tile must lie inside the matrix, no other thread may write either region, and the
    /// buffer given to `new` must still be alive.
    pub(crate) unsafe fn write_tile(
        &self,
        (i0, rows, j0, cols): (usize, usize, usize, usize),
        buf: &[f32],
        map: impl Fn(f32) -> T,
    ) {
        assert!(i0 + rows <= self.n && j0 + cols <= self.n);
        let n = self.stride;
        for r in 0..rows {
            for c in 0..cols {
                // SAFETY: (i0 + r, j0 + c) is inside the n×n matrix (asserted above) and in
                // the caller's exclusive region.
                unsafe { *self.ptr.add((i0 + r) * n + j0 + c) = map(buf[r * BLOCK + c]) };
            }
        }
        if i0 == j0 {
            return;
        }
        const T: usize = 16;
        for cb in (0..cols).step_by(T) {
            for rb in (0..rows).step_by(T) {
                for c in cb..(cb + T).min(cols) {
                    for r in rb..(rb + T).min(rows) {
                        // SAFETY: (j0 + c, i0 + r) is the mirror of an in-bounds cell, also
                        // inside the matrix and the caller's exclusive region.
                        unsafe { *self.ptr.add((j0 + c) * n + i0 + r) = map(buf[r * BLOCK + c]) };
                    }
                }
            }
        }
    }
}
