//! The per-step inner loop of a diversity ordering over an f32 S: add one chunk of a row of S
//! to the running sums of the candidates and record the minimum of each block of 64 sums, so
//! the global minimum and the few candidates near it are found without a second pass.
//!
//! f32 rows are added into f64 sums in place. The row is a new, random one every step, so
//! the lines `AHEAD` entries further on are requested while a block is added (the hardware
//! prefetcher restarts at every 4 KB page). Explicit AVX-512 where available, else a plain
//! loop the compiler vectorises; sums and minima are exact operations, so every path gives
//! the same values.

/// Sums per block whose minimum is recorded.
pub(crate) const BLOCK: usize = 64;

/// Blocks per chunk (512 sums, 2 KB of f32 row, 4 KB of sums).
pub(crate) const CHUNK_BLOCKS: usize = 8;

const _: () = assert!(CHUNK_BLOCKS == 8, "fold takes 8 block minima");

/// Sums per chunk.
pub(crate) const CHUNK: usize = BLOCK * CHUNK_BLOCKS;

/// Row entries requested ahead of the block being added (2 KB of f32).
const AHEAD: usize = 512;

/// For the chunk of sums starting at row entry `lo`: sums[j] += row[lo + j] for every j the
/// row reaches (sums past its end, kept +∞ by the caller, are left alone), then mins[b] = the
/// minimum of block b. `sums` holds CHUNK values, `mins` CHUNK_BLOCKS. Returns the minimum of
/// the chunk.
pub(crate) fn add_chunk(sums: &mut [f64], row: &[f32], lo: usize, mins: &mut [f64]) -> f64 {
    assert!(sums.len() == CHUNK && mins.len() == CHUNK_BLOCKS && lo <= row.len());
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: avx512f is available (checked just above); lengths asserted above.
            return unsafe { add_chunk_avx512(sums, row, lo, mins) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: avx2 is available (checked just above).
            return unsafe { add_chunk_avx2(sums, row, lo, mins) };
        }
    }
    add_chunk_body(sums, row, lo, mins)
}

/// Whole blocks in zmm registers, 16 row entries at a time converted to f64 and added; the
/// row's last, partial block with masked loads.
///
/// # Safety
/// avx512f must be available; `sums` holds CHUNK values, `mins` CHUNK_BLOCKS, lo ≤ row.len().
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_chunk_avx512(sums: &mut [f64], row: &[f32], lo: usize, mins: &mut [f64]) -> f64 {
    use std::arch::x86_64::*;
    let len = CHUNK.min(row.len() - lo);
    let full = len / BLOCK;
    for (b, m) in mins.iter_mut().enumerate() {
        let at = lo + b * BLOCK;
        if b < full {
            for p in (0..BLOCK).step_by(16) {
                prefetch(row, at + p + AHEAD);
            }
        }
        let o = sums[b * BLOCK..(b + 1) * BLOCK].as_mut_ptr();
        let mut lane = _mm512_set1_pd(f64::INFINITY);
        for q in 0..BLOCK / 16 {
            // Row entries at + 16q .. at + 16q + valid exist; masked-off lanes are not read,
            // so the pointer may run past the row (it is never dereferenced there).
            let valid = len.saturating_sub(b * BLOCK + 16 * q).min(16) as u32;
            if valid == 0 {
                // Past the row: the sums stay, only their minimum counts.
                // SAFETY: 16q + 16 ≤ BLOCK values of this block.
                let (s0, s1) = unsafe {
                    (
                        _mm512_loadu_pd(o.add(16 * q)),
                        _mm512_loadu_pd(o.add(16 * q + 8)),
                    )
                };
                lane = _mm512_min_pd(lane, _mm512_min_pd(s0, s1));
                continue;
            }
            let k16: __mmask16 = ((1u32 << valid) - 1) as u16;
            // SAFETY: the enabled lanes are row entries inside `row`; the sums lie inside this
            // block (16q + 16 ≤ BLOCK).
            unsafe {
                let x = _mm512_maskz_loadu_ps(k16, row.as_ptr().wrapping_add(at + 16 * q));
                let lo8 = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
                let hi8 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                    _mm512_castps_pd(x),
                )));
                let s0 = _mm512_loadu_pd(o.add(16 * q));
                let s1 = _mm512_loadu_pd(o.add(16 * q + 8));
                let a = _mm512_mask_add_pd(s0, k16 as __mmask8, s0, lo8);
                let c = _mm512_mask_add_pd(s1, (k16 >> 8) as __mmask8, s1, hi8);
                _mm512_storeu_pd(o.add(16 * q), a);
                _mm512_storeu_pd(o.add(16 * q + 8), c);
                lane = _mm512_min_pd(lane, _mm512_min_pd(a, c));
            }
        }
        *m = _mm512_reduce_min_pd(lane);
    }
    fold((&*mins).try_into().expect("8 block minima"))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_chunk_avx2(sums: &mut [f64], row: &[f32], lo: usize, mins: &mut [f64]) -> f64 {
    add_chunk_body(sums, row, lo, mins)
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

/// The portable loop.
#[inline(always)]
fn add_chunk_body(sums: &mut [f64], row: &[f32], lo: usize, mins: &mut [f64]) -> f64 {
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
            prefetch(row, at + p + AHEAD);
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

    /// The dispatched kernel and the portable loop, whole and partial chunks: the sums, block
    /// minima and chunk minima of a plain loop.
    #[test]
    fn chunks_match_a_plain_loop() {
        let n = 1300;
        let row: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.25)
            .collect();
        for portable in [false, true] {
            let mut sums = vec![1.0f64; chunks(n) * CHUNK];
            sums[n..].fill(f64::INFINITY);
            let mut mins = vec![0.0; chunks(n) * CHUNK_BLOCKS];
            for c in 0..chunks(n) {
                let (s, m) = (c * CHUNK, c * CHUNK_BLOCKS);
                let (sc, mc) = (&mut sums[s..s + CHUNK], &mut mins[m..m + CHUNK_BLOCKS]);
                let cm = if portable {
                    add_chunk_body(sc, &row, s, mc)
                } else {
                    add_chunk(sc, &row, s, mc)
                };
                let want = sums[s..s + CHUNK]
                    .iter()
                    .fold(f64::INFINITY, |a, &b| a.min(b));
                assert_eq!(cm, want, "chunk {c}");
            }
            for j in 0..n {
                assert_eq!(sums[j], 1.0 + f64::from(row[j]));
            }
            assert!(sums[n..].iter().all(|x| x.is_infinite()));
            for (b, m) in mins.iter().enumerate() {
                let w = sums[b * BLOCK..(b + 1) * BLOCK]
                    .iter()
                    .fold(f64::INFINITY, |a, &b| a.min(b));
                assert_eq!(*m, w, "block {b}");
            }
        }
    }

    use crate::isa_check::{runs, Rng};

    /// One chunk kernel against `add_chunk_body`, bit for bit: every chunk of rows whose
    /// length ends inside a block, on a block edge, inside the last chunk or nowhere near
    /// one, with random starting sums (+∞ past the row, as the callers keep them).
    #[cfg(target_arch = "x86_64")]
    fn chunk_matches_portable(kernel: unsafe fn(&mut [f64], &[f32], usize, &mut [f64]) -> f64) {
        let mut rng = Rng::new(21);
        for n in [1, 2, 15, 16, 17, 63, 64, 65, 100, 511, 512, 513, 1029, 1300] {
            let row: Vec<f32> = (0..n).map(|_| rng.unit() * 4.0).collect();
            let mut start: Vec<f64> = (0..chunks(n) * CHUNK)
                .map(|_| f64::from(rng.unit()) * 100.0)
                .collect();
            start[n..].fill(f64::INFINITY);
            for c in 0..chunks(n) {
                let at = c * CHUNK;
                let mut want = start[at..at + CHUNK].to_vec();
                let mut want_mins = [f64::NAN; CHUNK_BLOCKS];
                let wm = add_chunk_body(&mut want, &row, at, &mut want_mins);
                let mut got = start[at..at + CHUNK].to_vec();
                let mut got_mins = [f64::NAN; CHUNK_BLOCKS];
                // SAFETY: the caller checked the CPU features; CHUNK sums, CHUNK_BLOCKS
                // minima, at ≤ row.len().
                let gm = unsafe { kernel(&mut got, &row, at, &mut got_mins) };
                assert_eq!(gm.to_bits(), wm.to_bits(), "n = {n}, chunk {c}: minimum");
                for (b, (g, w)) in got_mins.iter().zip(&want_mins).enumerate() {
                    assert_eq!(g.to_bits(), w.to_bits(), "n = {n}, chunk {c}, block {b}");
                }
                for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(g.to_bits(), w.to_bits(), "n = {n}, chunk {c}, sum {j}");
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn isa_avx2_add_chunk_matches_portable() {
        if runs(
            "avx2",
            "avx2",
            is_x86_feature_detected!("avx2"),
            "sums::add_chunk_avx2",
        ) {
            chunk_matches_portable(add_chunk_avx2);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn isa_avx512_add_chunk_matches_portable() {
        let have = is_x86_feature_detected!("avx512f");
        if runs("avx512", "avx512f", have, "sums::add_chunk_avx512") {
            chunk_matches_portable(add_chunk_avx512);
        }
    }
}
