//! The compact copy of S used for many orderings: round(S·scale) as i16, rows and columns
//! permuted into a learned item order, each row padded to whole lines of 32 entries.
//!
//! Orderings from different starts pick items in much the same order (outliers first,
//! central items last). Laid out in that order, the items an ordering has already chosen
//! fill whole lines, and a line whose items are all chosen is never read again: on the
//! fortunes data this halves the bytes streamed per ordering. The order only affects speed;
//! picks are still made by [`crate::rule`].

use crate::error::ComputeError;
use crate::gemm::{Packed, BLOCK as TILE};
use crate::rows::Rows;
use crate::rule::entry_bound_f32;
use crate::threads;
use crate::tile64;
use crate::tiles::{upper_tiles, SharedMatrix};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Entries per line (one 64-byte cache line of i16).
pub(crate) const LINE: usize = 32;

/// round(S·scale) in the item order `perm`.
pub(crate) struct Compact {
    q: Vec<i16>,
    /// Row length: n rounded up to whole lines; padding entries are 0.
    pub(crate) stride: usize,
    /// Integer units per unit of similarity.
    pub(crate) scale: f64,
    /// Bound on |q/scale − e_i·e_j| for every entry: rounding plus the error of the
    /// similarity it was rounded from (f32 or f64 products).
    pub(crate) err: f64,
    /// perm[p] = the item at position p.
    pub(crate) perm: Vec<u32>,
    /// pos[item] = its position.
    pub(crate) pos: Vec<u32>,
}

/// Bytes the compact copy of n items needs.
pub(crate) fn bytes(n: usize) -> u64 {
    let stride = n.div_ceil(LINE) * LINE;
    (n as u64) * (stride as u64) * 2
}

impl Compact {
    /// Computes the copy for `perm` (a permutation of 0..n), from f32 S (fast) or, with
    /// `f64`, from f64 dot products (slower to build, but the orderings' band of candidates
    /// is 2.5 times narrower: see [`crate::tile64`]).
    pub(crate) fn build(
        e: Rows<'_>,
        perm: Vec<u32>,
        threads: usize,
        f64: bool,
    ) -> Result<Self, ComputeError> {
        let (n, d) = (e.n(), e.d());
        let stride = n.div_ceil(LINE) * LINE;
        // |Σ of up to n entries| stays below 2^29, leaving room for the chosen marker.
        let scale = f64::from(32767.min((((1u32 << 29) - 1) as usize / n) as u32));
        let mut pos = vec![0u32; n];
        let mut ep = Vec::with_capacity(n * d);
        for (p, &item) in perm.iter().enumerate() {
            pos[item as usize] = p as u32;
            ep.extend_from_slice(e.row(item as usize));
        }
        let mut q = vec![0i16; n * stride];
        let out = SharedMatrix::new(&mut q, n, stride);
        let tiles = upper_tiles(n);
        let next = AtomicUsize::new(0);
        let err = if f64 {
            let ep: Vec<f64> = ep.iter().map(|&x| f64::from(x)).collect();
            threads::on_each(threads, |_| {
                let (mut buf, mut pack) = (vec![0.0f32; TILE * TILE], Vec::new());
                while let Some(&tile) = tiles.get(next.fetch_add(1, Ordering::Relaxed)) {
                    tile64::quantised_tile(&ep, d, tile, scale, &mut buf, &mut pack);
                    // SAFETY: each upper tile goes to one worker; tiles and mirrors are
                    // disjoint. `buf` holds integers in ±scale ≤ 32767: exact as i16.
                    unsafe { out.write_tile(tile, &buf, |x| x as i16) };
                }
            })?;
            tile64::entry_bound_f64(d)
        } else {
            let packed = Packed::new(Rows::new(&ep, n, d)?);
            threads::on_each(threads, |_| {
                let mut buf = vec![0.0f32; TILE * TILE];
                while let Some(&tile) = tiles.get(next.fetch_add(1, Ordering::Relaxed)) {
                    packed.tile(tile.0, tile.1, tile.2, tile.3, &mut buf, TILE);
                    // SAFETY: each upper tile goes to one worker; tiles and mirrors are disjoint.
                    unsafe { out.write_tile(tile, &buf, |x| quantise(x, scale)) };
                }
            })?;
            entry_bound_f32(d)
        };
        Ok(Compact {
            q,
            stride,
            scale,
            err: 0.5 / scale + err,
            perm,
            pos,
        })
    }

    /// Row at position p (`stride` entries).
    pub(crate) fn row(&self, p: usize) -> &[i16] {
        &self.q[p * self.stride..(p + 1) * self.stride]
    }
}

/// x·scale rounded to the nearest integer (ties to even), clamped to ±scale.
///
/// Adding and subtracting 1.5·2⁵² rounds an f64 of magnitude below 2⁵¹ to an integer in the
/// current (nearest-even) rounding mode with plain SSE2 arithmetic: `f64::round` is a libm
/// call on the baseline x86-64 target and took a quarter of the build's time.
fn quantise(x: f32, scale: f64) -> i16 {
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let y = f64::from(x) * scale;
    ((y + MAGIC) - MAGIC).clamp(-scale, scale) as i16
}

/// For each k-th line L in `live`: sums[L] += row[L] and mins[k] = the new minimum of the
/// line (kept in `live`'s order, so the caller scans them contiguously). Returns the
/// smallest of those minima (i32::MAX when `live` is empty).
pub(crate) fn add_lines(sums: &mut [i32], row: &[i16], live: &[u32], mins: &mut [i32]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512bw") {
            // SAFETY: avx512bw (and so avx512f) is available (checked just above).
            return unsafe { add_lines_avx512(sums, row, live, mins) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: avx2 is available (checked just above).
            return unsafe { add_lines_avx2(sums, row, live, mins) };
        }
    }
    add_lines_body(sums, row, live, mins)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn add_lines_avx512(sums: &mut [i32], row: &[i16], live: &[u32], mins: &mut [i32]) -> i32 {
    add_lines_body(sums, row, live, mins)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_lines_avx2(sums: &mut [i32], row: &[i16], live: &[u32], mins: &mut [i32]) -> i32 {
    add_lines_body(sums, row, live, mins)
}

/// Lines requested ahead of the one being added (the row is a new, random one every step).
const AHEAD: usize = 32;

#[inline(always)]
fn prefetch(row: &[i16], line: u32) {
    #[cfg(target_arch = "x86_64")]
    {
        let i = (line as usize * LINE).min(row.len().saturating_sub(1));
        // SAFETY: prefetching is a hint that never faults; the address is inside `row`.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(row.as_ptr().add(i).cast());
        }
    }
}

#[inline(always)]
fn add_lines_body(sums: &mut [i32], row: &[i16], live: &[u32], mins: &mut [i32]) -> i32 {
    const H: usize = LINE / 2;
    let mut least = i32::MAX;
    for &l in live.iter().take(AHEAD) {
        prefetch(row, l);
    }
    for (i, &l) in live.iter().enumerate() {
        if let Some(&ahead) = live.get(i + AHEAD) {
            prefetch(row, ahead);
        }
        let l = l as usize;
        let s: &mut [i32; LINE] = (&mut sums[l * LINE..(l + 1) * LINE])
            .try_into()
            .expect("line");
        let r: &[i16; LINE] = (&row[l * LINE..(l + 1) * LINE]).try_into().expect("line");
        let mut lane = [0i32; H];
        for k in 0..H {
            let a = s[k] + i32::from(r[k]);
            let b = s[H + k] + i32::from(r[H + k]);
            s[k] = a;
            s[H + k] = b;
            lane[k] = a.min(b);
        }
        let m = lane.iter().copied().min().unwrap_or(i32::MAX);
        mins[i] = m;
        least = least.min(m);
    }
    least
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa_check::{runs, Rng};

    /// The signature every line kernel has.
    #[cfg(target_arch = "x86_64")]
    type LineKernel = unsafe fn(&mut [i32], &[i16], &[u32], &mut [i32]) -> i32;

    /// One line kernel against `add_lines_body`: random sums and rows, live-line lists
    /// empty, shorter and longer than the prefetch distance, unsorted, of odd lengths.
    #[cfg(target_arch = "x86_64")]
    fn lines_match_portable(kernel: LineKernel) {
        let mut rng = Rng::new(31);
        for lines in [1, 3, 33, 70] {
            let len = lines * LINE;
            let row: Vec<i16> = (0..len).map(|_| rng.next() as i16).collect();
            let start: Vec<i32> = (0..len).map(|_| (rng.next() as i32) >> 4).collect();
            for count in [0, 1, 5, AHEAD - 1, AHEAD + 3, lines] {
                let count = count.min(lines);
                let mut live: Vec<u32> = (0..lines as u32).collect();
                for i in (1..live.len()).rev() {
                    live.swap(i, rng.below(i + 1));
                }
                live.truncate(count);
                let mut want = start.clone();
                let mut want_mins = vec![7; lines];
                let want_least = add_lines_body(&mut want, &row, &live, &mut want_mins);
                let mut got = start.clone();
                let mut got_mins = vec![7; lines];
                // SAFETY: the caller checked the CPU features.
                let got_least = unsafe { kernel(&mut got, &row, &live, &mut got_mins) };
                assert_eq!(got_least, want_least, "{lines} lines, {count} live: least");
                assert_eq!(got, want, "{lines} lines, {count} live: sums");
                assert_eq!(got_mins, want_mins, "{lines} lines, {count} live: minima");
            }
        }
    }

    /// The rounding trick equals round-half-even, so |q − x·scale| ≤ 0.5 (the bound the
    /// orderings' band relies on), and clamps at ±scale.
    #[test]
    fn quantise_rounds_to_nearest() {
        let scale = 32767.0;
        let mut rng = Rng::new(33);
        let mut xs: Vec<f32> = (0..10_000).map(|_| rng.unit()).collect();
        xs.extend([
            0.0,
            -0.0,
            1.0,
            -1.0,
            1.5,
            -1.5,
            0.5 / 32767.0,
            1.5 / 32767.0,
            2.5 / 32767.0,
        ]);
        for x in xs {
            let y = f64::from(x) * scale;
            let q = quantise(x, scale);
            assert_eq!(
                f64::from(q),
                y.round_ties_even().clamp(-scale, scale),
                "x = {x}"
            );
            assert!(
                (f64::from(q) - y.clamp(-scale, scale)).abs() <= 0.5,
                "x = {x}"
            );
        }
    }

    /// The portable loop itself against a plain sum and minimum per line: only live lines
    /// change, and their minima land in `live`'s order.
    #[test]
    fn portable_lines_are_sums_and_minima() {
        let mut rng = Rng::new(32);
        let lines = 5;
        let row: Vec<i16> = (0..lines * LINE).map(|_| rng.next() as i16).collect();
        let mut sums: Vec<i32> = (0..lines * LINE).map(|i| i as i32 * 3 - 100).collect();
        let before = sums.clone();
        let live = [3u32, 0];
        let mut mins = vec![7; lines];
        let least = add_lines_body(&mut sums, &row, &live, &mut mins);
        assert_eq!(least, mins[0].min(mins[1]));
        assert_eq!(mins[2..], [7, 7, 7], "only live.len() minima are written");
        assert_eq!(
            add_lines_body(&mut sums.clone(), &row, &[], &mut mins.clone()),
            i32::MAX
        );
        for l in 0..lines {
            let span = l * LINE..(l + 1) * LINE;
            match live.iter().position(|&x| x as usize == l) {
                Some(k) => {
                    for j in span.clone() {
                        assert_eq!(sums[j], before[j] + i32::from(row[j]));
                    }
                    assert_eq!(mins[k], *sums[span].iter().min().unwrap());
                }
                None => assert_eq!(sums[span.clone()], before[span]),
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn isa_avx2_add_lines_matches_portable() {
        let have = is_x86_feature_detected!("avx2");
        if runs("avx2", "avx2", have, "compact::add_lines_avx2") {
            lines_match_portable(add_lines_avx2);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn isa_avx512_add_lines_matches_portable() {
        let have = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw");
        if runs(
            "avx512",
            "avx512f+avx512bw",
            have,
            "compact::add_lines_avx512",
        ) {
            lines_match_portable(add_lines_avx512);
        }
    }
}
