//! Tiles of the compact copy of S computed in f64: round(e_i·e_j·scale) from f64 dot
//! products of the f32 rows. The products are exact in f64 (24 + 24 bits) and a sum of d of
//! them is off by at most d·2⁻⁵³ relative, so an entry is within 0.5/scale + (d + 2)·2⁻⁵³
//! of the exact similarity, against 0.5/scale + (d + 2)·2⁻²⁴ when quantised from f32 S: the
//! band of candidates the orderings re-score is 2.5 times narrower (docs/design.md).

use crate::gemm::BLOCK as TILE;

/// Columns per packed panel (two AVX2 vectors of f64, one AVX-512 vector).
const NR: usize = 8;
/// Rows per micro-tile.
const MR: usize = 4;

/// Bound on |S64[i,j] − e_i·e_j| for unit rows (padded by 2 % like the f32 bound).
pub(crate) fn entry_bound_f64(d: usize) -> f64 {
    (d as f64 + 2.0) * f64::powi(2.0, -53) * 1.02
}

/// x·scale rounded to the nearest integer (ties to even), clamped to ±scale; see
/// `compact::quantise` for the rounding trick.
fn quantise64(x: f64, scale: f64) -> f32 {
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    ((x * scale + MAGIC) - MAGIC).clamp(-scale, scale) as f32
}

/// Writes round(S·scale) for the tile (i0, rows, j0, cols) of the rows `ep` (n × d, f64)
/// into `buf` (row stride TILE) as f32 integers; `pack` is scratch space.
pub(crate) fn quantised_tile(
    ep: &[f64],
    d: usize,
    tile: (usize, usize, usize, usize),
    scale: f64,
    buf: &mut [f32],
    pack: &mut Vec<f64>,
) {
    // One kernel for AVX2 and AVX-512 machines (every AVX-512 CPU has AVX2): the f64 build
    // runs once per cache, so a second explicit kernel was not worth keeping in step.
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: avx2 is available (checked just above).
        return unsafe { tile_avx2(ep, d, tile, scale, buf, pack) };
    }
    tile_body(ep, d, tile, scale, buf, pack)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2(
    ep: &[f64],
    d: usize,
    tile: (usize, usize, usize, usize),
    scale: f64,
    buf: &mut [f32],
    pack: &mut Vec<f64>,
) {
    tiles_with(ep, d, tile, scale, buf, pack, |apack, b| {
        use std::arch::x86_64::*;
        let mut acc = [[_mm256_setzero_pd(); 2]; MR];
        for (ak, bk) in apack.chunks_exact(MR).zip(b.chunks_exact(NR)) {
            // SAFETY: bk holds NR = 8 values: two unaligned 4-lane loads.
            let (b0, b1) = unsafe {
                (
                    _mm256_loadu_pd(bk.as_ptr()),
                    _mm256_loadu_pd(bk.as_ptr().add(4)),
                )
            };
            for (row, &x) in acc.iter_mut().zip(ak) {
                let x = _mm256_set1_pd(x);
                // Multiply, then add: the bits of the portable loop.
                row[0] = _mm256_add_pd(row[0], _mm256_mul_pd(x, b0));
                row[1] = _mm256_add_pd(row[1], _mm256_mul_pd(x, b1));
            }
        }
        let mut out = [[0.0f64; NR]; MR];
        for (o, row) in out.iter_mut().zip(&acc) {
            // SAFETY: o holds NR = 8 values: two 4-lane stores.
            unsafe {
                _mm256_storeu_pd(o.as_mut_ptr(), row[0]);
                _mm256_storeu_pd(o.as_mut_ptr().add(4), row[1]);
            }
        }
        out
    })
}

/// Every entry is one chain acc += a_k·b_k over k in order (multiply, then add: never
/// fused), so every kernel gives the bits of a plain sequential f64 loop.
#[inline(always)]
fn tile_body(
    ep: &[f64],
    d: usize,
    tile: (usize, usize, usize, usize),
    scale: f64,
    buf: &mut [f32],
    pack: &mut Vec<f64>,
) {
    tiles_with(ep, d, tile, scale, buf, pack, |apack, b| {
        let mut acc = [[0.0f64; NR]; MR];
        for (ak, bk) in apack.chunks_exact(MR).zip(b.chunks_exact(NR)) {
            for (row, &x) in acc.iter_mut().zip(ak) {
                for (s, &y) in row.iter_mut().zip(bk) {
                    *s += x * y;
                }
            }
        }
        acc
    })
}

/// Packs the tile's rows (MR interleaved by k) and columns (panels of NR interleaved by k),
/// runs `micro` on each MR × NR block and writes the quantised results.
#[inline(always)]
fn tiles_with(
    ep: &[f64],
    d: usize,
    (i0, rows, j0, cols): (usize, usize, usize, usize),
    scale: f64,
    buf: &mut [f32],
    pack: &mut Vec<f64>,
    micro: impl Fn(&[f64], &[f64]) -> [[f64; NR]; MR],
) {
    let panels = cols.div_ceil(NR);
    pack.clear();
    pack.resize(panels * d * NR, 0.0);
    for j in 0..cols {
        let (p, jj) = (j / NR, j % NR);
        for (k, &x) in ep[(j0 + j) * d..(j0 + j + 1) * d].iter().enumerate() {
            pack[(p * d + k) * NR + jj] = x;
        }
    }
    let mut apack = vec![0.0f64; d * MR];
    for i in (0..rows).step_by(MR) {
        // Rows past the tile repeat its last row (their results are not written).
        for ii in 0..MR {
            let r = i0 + (i + ii).min(rows - 1);
            for (k, &x) in ep[r * d..(r + 1) * d].iter().enumerate() {
                apack[k * MR + ii] = x;
            }
        }
        for p in 0..panels {
            let acc = micro(&apack, &pack[p * d * NR..(p + 1) * d * NR]);
            for (ii, row) in acc.iter().enumerate().take(rows - i) {
                for (jj, &s) in row.iter().enumerate().take(cols - p * NR) {
                    buf[(i + ii) * TILE + p * NR + jj] = quantise64(s, scale);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa_check::{runs, Rng};

    /// The signature every tile kernel has.
    type Kernel =
        unsafe fn(&[f64], usize, (usize, usize, usize, usize), f64, &mut [f32], &mut Vec<f64>);

    /// Random rows; tiles with partial micro-tiles and panels on both edges.
    fn check(kernel: Kernel) {
        let mut rng = Rng::new(51);
        for (n, d) in [(1, 3), (5, 7), (13, 20), (45, 33)] {
            let ep: Vec<f64> = (0..n * d).map(|_| f64::from(rng.unit())).collect();
            let scale = 32767.0;
            for tile in [(0, n, 0, n), (n / 2, n - n / 2, n / 3, n - n / 3)] {
                let mut got = vec![f32::NAN; TILE * TILE];
                // SAFETY: the caller checked the CPU features.
                unsafe { kernel(&ep, d, tile, scale, &mut got, &mut Vec::new()) };
                let (i0, rows, j0, cols) = tile;
                for i in 0..rows {
                    for j in 0..cols {
                        let (a, b) = (&ep[(i0 + i) * d..][..d], &ep[(j0 + j) * d..][..d]);
                        let mut s = 0.0f64;
                        for k in 0..d {
                            s += a[k] * b[k];
                        }
                        let want = (s * scale).round_ties_even().clamp(-scale, scale);
                        let g = got[i * TILE + j];
                        assert_eq!(f64::from(g), want, "n {n} d {d} tile {tile:?} ({i}, {j})");
                    }
                }
            }
        }
    }

    #[test]
    fn portable_tiles_are_rounded_f64_dot_products() {
        check(tile_body);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn isa_avx2_tile64_matches_portable() {
        if runs(
            "avx2",
            "avx2",
            is_x86_feature_detected!("avx2"),
            "tile64::tile_avx2",
        ) {
            check(tile_avx2);
        }
    }
}
