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
    // Blocks of 1024 are screened with a reduction the compiler vectorises (the largest
    // magnitude bit pattern: NaN and ±Inf are those at or above +Inf's); only a block that
    // fails is searched value by value.
    let data = e.data();
    let bad = |x: &f32| x.to_bits() & 0x7fff_ffff >= 0x7f80_0000;
    for (b, block) in data.chunks(1024).enumerate() {
        let worst = block
            .iter()
            .map(|x| x.to_bits() & 0x7fff_ffff)
            .fold(0u32, u32::max);
        if worst < 0x7f80_0000 {
            continue;
        }
        let pos = b * 1024 + block.iter().position(bad).expect("the block holds one");
        let problem = if data[pos].is_nan() {
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
/// own tiles. It holds the exclusive borrow of the buffer it was made from (`'a`), so the
/// buffer can be neither freed nor touched otherwise while the matrix exists.
pub(crate) struct SharedMatrix<'a, T> {
    ptr: *mut T,
    n: usize,
    stride: usize,
    /// The `&'a mut [T]` that `ptr` was taken from.
    _buffer: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: workers write disjoint regions only (each caller of `write_tile` promises that),
// and the buffer is borrowed mutably for 'a, so nothing else reads or writes it meanwhile.
unsafe impl<T: Send> Sync for SharedMatrix<'_, T> {}

impl<'a, T: Copy> SharedMatrix<'a, T> {
    /// Wraps `out`, which must hold n·stride values; the result borrows it.
    pub(crate) fn new(out: &'a mut [T], n: usize, stride: usize) -> Self {
        assert!(stride >= n && out.len() == n * stride);
        SharedMatrix {
            ptr: out.as_mut_ptr(),
            n,
            stride,
            _buffer: std::marker::PhantomData,
        }
    }

    /// Writes the tile `buf` (row stride BLOCK, `rows × cols`, origin (i0, j0)) through `map`
    /// at S[i0.., j0..] and, when i0 ≠ j0, transposed at S[j0.., i0..]. `buf` must hold
    /// BLOCK·BLOCK values (the mirror is transposed in 16×16 blocks read whole).
    ///
    /// # Safety
    /// No other thread may write either region (the tile and its mirror) at the same time.
    /// (The tile is checked to lie inside the matrix; the buffer is kept alive by the
    /// borrow.)
    pub(crate) unsafe fn write_tile(
        &self,
        (i0, rows, j0, cols): (usize, usize, usize, usize),
        buf: &[f32],
        map: impl Fn(f32) -> T,
    ) {
        assert!(i0 + rows <= self.n && j0 + cols <= self.n);
        assert!(rows <= BLOCK && cols <= BLOCK && buf.len() >= BLOCK * BLOCK);
        let n = self.stride;
        for r in 0..rows {
            // SAFETY: row i0 + r, columns j0 .. j0 + cols lie inside the n×n matrix (asserted
            // above) and in the caller's exclusive region.
            let dst =
                unsafe { std::slice::from_raw_parts_mut(self.ptr.add((i0 + r) * n + j0), cols) };
            for (d, &x) in dst.iter_mut().zip(&buf[r * BLOCK..r * BLOCK + cols]) {
                *d = map(x);
            }
        }
        if i0 == j0 {
            return;
        }
        let mut t = [0.0f32; EDGE * EDGE];
        for cb in (0..cols).step_by(EDGE) {
            for rb in (0..rows).step_by(EDGE) {
                // rb + EDGE ≤ BLOCK and cb + EDGE ≤ BLOCK: the whole 16×16 block is inside `buf`.
                transpose16(&buf[rb * BLOCK + cb..], &mut t);
                let nr = EDGE.min(rows - rb);
                for c in 0..EDGE.min(cols - cb) {
                    // SAFETY: (j0 + cb + c, i0 + rb ..+ nr) mirrors in-bounds cells, inside the
                    // matrix and the caller's exclusive region.
                    let dst = unsafe {
                        std::slice::from_raw_parts_mut(
                            self.ptr.add((j0 + cb + c) * n + i0 + rb),
                            nr,
                        )
                    };
                    for (d, &x) in dst.iter_mut().zip(&t[c * EDGE..c * EDGE + nr]) {
                        *d = map(x);
                    }
                }
            }
        }
    }
}

/// Edge of the blocks the mirror is transposed in.
const EDGE: usize = 16;

/// t[c·16 + r] = src[r·BLOCK + c] for r, c < 16 (a copy: the bits are unchanged).
fn transpose16(src: &[f32], t: &mut [f32; EDGE * EDGE]) {
    assert!(src.len() >= (EDGE - 1) * BLOCK + EDGE);
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f is available (checked just above); `src` holds the 16 rows read.
        return unsafe { x86::transpose16(src.as_ptr(), BLOCK, t) };
    }
    for c in 0..EDGE {
        for r in 0..EDGE {
            t[c * EDGE + r] = src[r * BLOCK + c];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::EDGE;
    use std::arch::x86_64::*;

    /// The 16×16 transpose in zmm registers: 2-lane, 4-lane, then 128-bit-lane shuffles.
    ///
    /// # Safety
    /// avx512f must be available; `src` must point to 16 rows of 16 readable f32, `ld` apart.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose16(src: *const f32, ld: usize, t: &mut [f32; EDGE * EDGE]) {
        // SAFETY: (whole body) rows r < 16 at src + r·ld hold 16 f32 each (caller); `t` holds
        // 256 f32, written 16 at a time at c·16.
        unsafe {
            let mut r = [_mm512_setzero_ps(); EDGE];
            for (i, v) in r.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(src.add(i * ld));
            }
            // Interleave pairs of rows: 32-bit elements, then 64-bit pairs.
            let mut a = [_mm512_setzero_ps(); EDGE];
            for i in 0..8 {
                a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            let pd = _mm512_castps_pd;
            let ps = _mm512_castpd_ps;
            for q in 0..4 {
                let (x0, x1, x2, x3) = (a[4 * q], a[4 * q + 1], a[4 * q + 2], a[4 * q + 3]);
                r[4 * q] = ps(_mm512_unpacklo_pd(pd(x0), pd(x2)));
                r[4 * q + 1] = ps(_mm512_unpackhi_pd(pd(x0), pd(x2)));
                r[4 * q + 2] = ps(_mm512_unpacklo_pd(pd(x1), pd(x3)));
                r[4 * q + 3] = ps(_mm512_unpackhi_pd(pd(x1), pd(x3)));
            }
            // Now r[4q + m] holds, in each 128-bit lane L, column 4L + m of rows 4q .. 4q + 4.
            for h in 0..2 {
                for m in 0..4 {
                    let (x, y) = (r[8 * h + m], r[8 * h + 4 + m]);
                    a[8 * h + m] = _mm512_shuffle_f32x4::<0x88>(x, y);
                    a[8 * h + 4 + m] = _mm512_shuffle_f32x4::<0xdd>(x, y);
                }
            }
            for m in 0..8 {
                let (x, y) = (a[m], a[8 + m]);
                r[m] = _mm512_shuffle_f32x4::<0x88>(x, y);
                r[8 + m] = _mm512_shuffle_f32x4::<0xdd>(x, y);
            }
            for (c, v) in r.iter().enumerate() {
                _mm512_storeu_ps(t.as_mut_ptr().add(c * EDGE), *v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose16_is_a_transpose() {
        let src: Vec<f32> = (0..16 * BLOCK).map(|i| i as f32).collect();
        let mut t = [0.0f32; EDGE * EDGE];
        transpose16(&src[5..], &mut t);
        for c in 0..EDGE {
            for r in 0..EDGE {
                assert_eq!(t[c * EDGE + r], src[5 + r * BLOCK + c], "r {r} c {c}");
            }
        }
    }

    /// `x86::transpose16` called directly (whatever `transpose16` dispatches to), from an
    /// unaligned start, against the plain definition.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn isa_avx512_transpose16_is_a_transpose() {
        let have = is_x86_feature_detected!("avx512f");
        if !crate::isa_check::runs("avx512", "avx512f", have, "tiles::x86::transpose16") {
            return;
        }
        let src: Vec<f32> = (0..16 * BLOCK + 7).map(|i| i as f32 * 0.5 - 3.0).collect();
        for at in [0, 3, 7] {
            let mut t = [f32::NAN; EDGE * EDGE];
            // SAFETY: avx512f is available; 16 rows of 16 values, BLOCK apart, from `at`.
            unsafe { x86::transpose16(src[at..].as_ptr(), BLOCK, &mut t) };
            for c in 0..EDGE {
                for r in 0..EDGE {
                    assert_eq!(
                        t[c * EDGE + r],
                        src[at + r * BLOCK + c],
                        "at {at} r {r} c {c}"
                    );
                }
            }
        }
    }
}
