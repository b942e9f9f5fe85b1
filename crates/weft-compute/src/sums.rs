//! The per-step inner loop of a diversity ordering over an f32 S: add one chunk of a row of S
//! to the running sums of the candidates and record the minimum of each block of 64 sums, so
//! the global minimum and the few candidates near it are found without a second pass.
//!
//! f32 rows are added into f64 sums, in place or from one buffer into another. The row is a
//! new, random one every step, so the lines `AHEAD` entries further on — or back, for a
//! worker going down the row chunk by chunk — are requested while a block is added (the
//! hardware prefetcher restarts at every 4 KB page). Whole chunks use
//! explicit AVX-512 where available, the rest a plain loop the compiler vectorises; sums and
//! minima are exact operations, so every path gives the same values.

/// Sums per block whose minimum is recorded.
pub(crate) const BLOCK: usize = 64;

/// Blocks per chunk: the unit of work threads claim within one step (512 sums, 2 KB of f32
/// row, 4 KB of sums; 8 block minima = one cache line).
pub(crate) const CHUNK_BLOCKS: usize = 8;

const _: () = assert!(CHUNK_BLOCKS == 8, "fold takes 8 block minima");

/// Sums per chunk.
pub(crate) const CHUNK: usize = BLOCK * CHUNK_BLOCKS;

/// Row entries requested ahead of the block being added (2 KB of f32).
const AHEAD: usize = 512;

/// For the chunk of sums starting at row entry `lo`: dst[j] = src[j] + row[lo + j] for every
/// j the row reaches (dst[j] = src[j] past its end, where the caller keeps +∞), then mins[b]
/// = the minimum of block b of dst. Returns the minimum of the chunk. `down`: the caller
/// takes chunks downwards, so the lines one chunk back are requested instead of ahead.
///
/// # Safety
/// `src` must point to CHUNK readable f64 and `dst` to CHUNK writable f64, either at the same
/// address (in place) or not overlapping; no other thread may write them during the call, nor
/// read `dst`. `mins` holds CHUNK_BLOCKS values.
pub(crate) unsafe fn add_chunk(
    src: *const f64,
    dst: *mut f64,
    row: &[f32],
    lo: usize,
    mins: &mut [f64],
    down: bool,
) -> f64 {
    assert!(mins.len() == CHUNK_BLOCKS && lo <= row.len());
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f is available; the caller's contract covers the pointers.
        return unsafe { add_chunk_avx512(src, dst, row, lo, mins, down) };
    }
    // SAFETY: per the caller's contract, copying first when the buffers differ leaves one
    // exclusive chunk to update in place.
    let sums = unsafe {
        if src != dst.cast_const() {
            std::ptr::copy_nonoverlapping(src, dst, CHUNK);
        }
        std::slice::from_raw_parts_mut(dst, CHUNK)
    };
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: avx2 is available (checked just above).
        return unsafe { add_in_place_avx2(sums, row, lo, mins, down) };
    }
    add_in_place(sums, row, lo, mins, down)
}

/// Whole blocks in zmm registers, 16 row entries at a time converted to f64 and added; the
/// last, partial block of a row as a plain loop.
///
/// # Safety
/// avx512f must be available; as [`add_chunk`] for the pointers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_chunk_avx512(
    src: *const f64,
    dst: *mut f64,
    row: &[f32],
    lo: usize,
    mins: &mut [f64],
    down: bool,
) -> f64 {
    use std::arch::x86_64::*;
    let len = CHUNK.min(row.len() - lo);
    let full = len / BLOCK;
    for (b, m) in mins.iter_mut().enumerate() {
        let at = lo + b * BLOCK;
        if b < full {
            for p in (0..BLOCK).step_by(16) {
                prefetch(row, ahead(at + p, down));
            }
        }
        // SAFETY: b·64 + 64 ≤ CHUNK for src and dst; row entries are read only below
        // lo + len ≤ row.len(); each value is read before it is written (in place is fine).
        unsafe {
            let s = src.add(b * BLOCK);
            let o = dst.add(b * BLOCK);
            if b >= full {
                // The row's tail (masked: entries past it keep their sums, +∞ past n).
                let mut lane = _mm512_set1_pd(f64::INFINITY);
                for q in 0..BLOCK / 16 {
                    let i0 = b * BLOCK + 16 * q;
                    let valid = len.saturating_sub(i0).min(16) as u32;
                    let k16: __mmask16 = ((1u32 << valid) - 1) as u16;
                    // Masked-off lanes are not read, so the pointer may run past the row.
                    let x = _mm512_maskz_loadu_ps(k16, row.as_ptr().wrapping_add(at + 16 * q));
                    let lo8 = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
                    let hi8 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                        _mm512_castps_pd(x),
                    )));
                    let s0 = _mm512_loadu_pd(s.add(16 * q));
                    let s1 = _mm512_loadu_pd(s.add(16 * q + 8));
                    let a = _mm512_mask_add_pd(s0, k16 as __mmask8, s0, lo8);
                    let c = _mm512_mask_add_pd(s1, (k16 >> 8) as __mmask8, s1, hi8);
                    _mm512_storeu_pd(o.add(16 * q), a);
                    _mm512_storeu_pd(o.add(16 * q + 8), c);
                    lane = _mm512_min_pd(lane, _mm512_min_pd(a, c));
                }
                *m = _mm512_reduce_min_pd(lane);
                continue;
            }
            let r = row.as_ptr().add(at);
            let mut lane = _mm512_set1_pd(f64::INFINITY);
            for q in 0..BLOCK / 16 {
                let x = _mm512_loadu_ps(r.add(16 * q));
                let lo8 = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
                let hi8 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                    _mm512_castps_pd(x),
                )));
                let a = _mm512_add_pd(_mm512_loadu_pd(s.add(16 * q)), lo8);
                let c = _mm512_add_pd(_mm512_loadu_pd(s.add(16 * q + 8)), hi8);
                _mm512_storeu_pd(o.add(16 * q), a);
                _mm512_storeu_pd(o.add(16 * q + 8), c);
                lane = _mm512_min_pd(lane, _mm512_min_pd(a, c));
            }
            *m = _mm512_reduce_min_pd(lane);
        }
    }
    fold((&*mins).try_into().expect("8 block minima"))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_in_place_avx2(
    sums: &mut [f64],
    row: &[f32],
    lo: usize,
    mins: &mut [f64],
    down: bool,
) -> f64 {
    add_in_place(sums, row, lo, mins, down)
}

/// The row entry to request while entry `i` is added.
#[inline(always)]
fn ahead(i: usize, down: bool) -> usize {
    if down {
        i.wrapping_sub(AHEAD) // past the row when i < AHEAD: nothing is requested
    } else {
        i + AHEAD
    }
}

#[inline(always)]
fn prefetch(row: &[f32], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if i < row.len() {
        // SAFETY: prefetching is a hint that never faults; the address is inside `row`.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(row.as_ptr().add(i).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (row, i);
}

/// The portable loop: sums[j] += row[lo + j] where the row reaches, block minima, chunk
/// minimum.
#[inline(always)]
fn add_in_place(sums: &mut [f64], row: &[f32], lo: usize, mins: &mut [f64], down: bool) -> f64 {
    const L: usize = 8;
    let len = CHUNK.min(row.len() - lo);
    let full = len / BLOCK * BLOCK;
    for (b, (s, m)) in sums[..full]
        .chunks_exact_mut(BLOCK)
        .zip(mins.iter_mut())
        .enumerate()
    {
        let at = lo + b * BLOCK;
        for p in (0..BLOCK).step_by(16) {
            prefetch(row, ahead(at + p, down));
        }
        let s: &mut [f64; BLOCK] = s.try_into().expect("block");
        let r: &[f32; BLOCK] = row[at..at + BLOCK].try_into().expect("block");
        let mut lane = [f64::INFINITY; L];
        for v in 0..BLOCK / L {
            for l in 0..L {
                let x = s[v * L + l] + f64::from(r[v * L + l]);
                s[v * L + l] = x;
                lane[l] = if x < lane[l] { x } else { lane[l] };
            }
        }
        *m = fold(&lane);
    }
    if full < CHUNK {
        for (x, &y) in sums[full..len].iter_mut().zip(&row[lo + full..lo + len]) {
            *x += f64::from(y);
        }
        for (b, m) in mins.iter_mut().enumerate().skip(full / BLOCK) {
            *m = sums[b * BLOCK..(b + 1) * BLOCK]
                .iter()
                .fold(f64::INFINITY, |a, &x| a.min(x));
        }
    }
    fold((&*mins).try_into().expect("8 block minima"))
}

/// The minimum of 8 values as a fixed tree.
#[inline(always)]
pub(crate) fn fold(v: &[f64; 8]) -> f64 {
    let m = |a: f64, b: f64| if b < a { b } else { a };
    m(
        m(m(v[0], v[1]), m(v[2], v[3])),
        m(m(v[4], v[5]), m(v[6], v[7])),
    )
}

/// Number of chunks for `n` sums.
pub(crate) fn chunks(n: usize) -> usize {
    n.div_ceil(CHUNK)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In place and out of place, whole and partial chunks: the sums, block minima and chunk
    /// minima of a plain loop.
    #[test]
    fn chunks_match_a_plain_loop() {
        let n = 1300;
        let row: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.25)
            .collect();
        for in_place in [true, false] {
            let mut src = vec![1.0f64; chunks(n) * CHUNK];
            src[n..].fill(f64::INFINITY);
            let mut dst = if in_place {
                src.clone()
            } else {
                vec![0.0; src.len()]
            };
            let mut mins = vec![0.0; chunks(n) * CHUNK_BLOCKS];
            let d = dst.as_mut_ptr();
            let from = if in_place {
                d.cast_const()
            } else {
                src.as_ptr()
            };
            for c in 0..chunks(n) {
                let (s, m) = (c * CHUNK, c * CHUNK_BLOCKS);
                // SAFETY: both buffers hold whole chunks; in place reads and writes dst only.
                let cm = unsafe {
                    add_chunk(
                        from.add(s),
                        d.add(s),
                        &row,
                        s,
                        &mut mins[m..m + CHUNK_BLOCKS],
                        c % 2 == 1,
                    )
                };
                let want = dst[s..s + CHUNK]
                    .iter()
                    .fold(f64::INFINITY, |a, &b| a.min(b));
                assert_eq!(cm, want, "chunk {c}");
            }
            for j in 0..n {
                assert_eq!(dst[j], 1.0 + f64::from(row[j]));
            }
            assert!(dst[n..].iter().all(|x| x.is_infinite()));
            for (b, m) in mins.iter().enumerate() {
                let w = dst[b * BLOCK..(b + 1) * BLOCK]
                    .iter()
                    .fold(f64::INFINITY, |a, &b| a.min(b));
                assert_eq!(*m, w, "block {b}");
            }
        }
    }
}
