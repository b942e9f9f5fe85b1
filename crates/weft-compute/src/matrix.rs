//! One diversity ordering over the caller's f32 S, on one thread.
//!
//! Every step adds one row of S (n f32, 28 KB for n = 7,090) to the f64 running sums: the row
//! is a new, random one read once from memory, so a step is bound by memory bandwidth. The
//! sums are kept in chunks of 512 with the minimum of every block of 64 and of every chunk,
//! so the few candidates near the global minimum are found without a second pass; the pick
//! itself is the exact rule ([`crate::rule`]): the minima bound the f32 error band, and the
//! candidates inside it are re-scored in f64.
//!
//! Sharing a step's row with a second thread was tried twice (whole-step hand-offs, then
//! chunks claimed by compare-and-swap with take-over of a stalled helper's chunk, see the
//! history of this file); on the 2-core machine the helper's chunks took about twice as long
//! as the main thread's and neither beat one thread, so one ordering runs on one thread and
//! the other core is left to other work (all orderings use every core, one ordering each).

use crate::orderings::State;
use crate::rows::Rows;
use crate::rule::{entry_bound_f32, rule_slack};
use crate::sums::{self, BLOCK, CHUNK, CHUNK_BLOCKS};

/// f64 slots per chunk in the minima buffer: 8 block minima, then the chunk minimum.
const MSTRIDE: usize = CHUNK_BLOCKS + 1;

/// The first `len` items (1 ≤ len ≤ n) of the ordering from `start` (validated) over `s`
/// (n×n, validated).
pub(crate) fn ordering(e: Rows<'_>, s: &[f32], start: usize, len: usize) -> Vec<u32> {
    let n = e.n();
    let d = e.d();
    let nc = sums::chunks(n);
    let beta = entry_bound_f32(d);
    // Past n the sums stay +∞ and never count as candidates.
    let mut all = vec![f64::INFINITY; nc * CHUNK];
    all[..n].fill(0.0);
    all[start] = f64::INFINITY;
    let mut mins = vec![f64::INFINITY; nc * MSTRIDE];
    let mut st = State::new(e, start);
    let mut cands = Vec::new();
    for t in 1..len {
        let last = st.last();
        let row = &s[last * n..(last + 1) * n];
        let mut gmin = f64::INFINITY;
        let chunks = all
            .chunks_exact_mut(CHUNK)
            .zip(mins.chunks_exact_mut(MSTRIDE));
        for (k, (sums, m)) in chunks.enumerate() {
            let cm = sums::add_chunk(sums, row, k * CHUNK, &mut m[..CHUNK_BLOCKS]);
            m[CHUNK_BLOCKS] = cm;
            gmin = gmin.min(cm);
        }
        let bound = t as f64 * beta + rule_slack(t, d);
        let thr = gmin + 2.0 * bound;
        cands.clear();
        for (k, m) in mins.chunks_exact(MSTRIDE).enumerate() {
            if m[CHUNK_BLOCKS] > thr {
                continue;
            }
            for (b, &bm) in m[..CHUNK_BLOCKS].iter().enumerate() {
                if bm > thr {
                    continue;
                }
                let lo = k * CHUNK + b * BLOCK;
                let block = &all[lo..lo + BLOCK];
                let mut hits = 0u64;
                for (j, &x) in block.iter().enumerate() {
                    hits |= u64::from(x <= thr) << j;
                }
                while hits != 0 {
                    let j = hits.trailing_zeros() as usize;
                    hits &= hits - 1;
                    cands.push((block[j], (lo + j) as u32, lo + j));
                }
            }
        }
        let (_, j) = st.choose(&mut cands, bound);
        // Chosen: +∞ from now on (the next step recomputes every minimum).
        all[j] = f64::INFINITY;
    }
    st.seq
}
