//! Nearest neighbours: for every item the k others with the largest similarity, computed
//! from tiles of S on the fly (memory O(N·k + threads·tile), never N×N).
//!
//! Each upper-triangle tile serves both its rows and, transposed, its columns, so only half
//! the products are computed. Every worker keeps its own candidate lists for all rows; the
//! lists are merged at the end. Ranking: larger S first, equal S by lower id; the scores are
//! exactly the f32 values [`fn@crate::similarity`] returns.

use crate::error::ComputeError;
use crate::gemm::{Packed, BLOCK};
use crate::rows::Rows;
use crate::threads;
use crate::tiles::{check_finite, upper_tiles};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The k nearest neighbours of each item: `ids` and `scores`, both `n × k` row-major, best
/// first. Ids are 0-based and never the item itself.
#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    /// Neighbour ids, `n × k`.
    pub ids: Vec<u32>,
    /// Their similarities, `n × k`.
    pub scores: Vec<f32>,
    /// Neighbours per item.
    pub k: usize,
}

/// Top-k of every row of normalised embeddings. Fails unless `1 ≤ k ≤ n − 1`.
///
/// ```
/// use weft_compute::{normalize, topk, Rows};
///
/// let raw = [1.0f32, 0.0, 0.9, 0.1, 0.0, 1.0, -1.0, 0.0]; // four items, d = 2
/// let e = normalize(Rows::new(&raw, 4, 2)?)?;
/// let t = topk(Rows::new(&e, 4, 2)?, 2, None)?;
/// assert_eq!(&t.ids[0..2], &[1, 2]); // item 0's nearest, best first, never 0 itself
/// assert!(t.scores[0] > 0.99 && t.scores[1].abs() < 1e-6);
/// assert_eq!(&t.ids[4..6], &[1, 0]); // item 2: 0 and 3 tie at 0, the lower id wins
/// assert!(topk(Rows::new(&e, 4, 2)?, 4, None).is_err()); // k must be at most n − 1
/// # Ok::<(), weft_compute::ComputeError>(())
/// ```
pub fn topk(e: Rows<'_>, k: usize, threads: Option<usize>) -> Result<TopK, ComputeError> {
    let n = e.n();
    e.require(2)?;
    if k == 0 || k >= n {
        return Err(ComputeError::KOutOfRange { k, n });
    }
    check_finite(e)?;
    let t = threads::resolve(threads)?;
    let packed = Packed::new(e);
    let tiles = upper_tiles(n);
    let next = AtomicUsize::new(0);
    let mut parts = threads::on_each(t, |_| {
        let mut lists = Lists::new(n, k);
        let mut buf = vec![0.0f32; BLOCK * BLOCK];
        loop {
            let idx = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(i0, rows, j0, cols)) = tiles.get(idx) else {
                break;
            };
            packed.tile(i0, rows, j0, cols, &mut buf, BLOCK);
            lists.scan_rows(&buf, i0, rows, j0, cols);
            if i0 != j0 {
                lists.scan_cols(&buf, i0, rows, j0, cols);
            }
        }
        lists
    })?;
    let mut all = parts.pop().expect("at least one worker");
    for p in &parts {
        all.absorb(p);
    }
    Ok(all.finish())
}

/// Per-row bounded heaps of (score, id), worst at the root.
struct Lists {
    k: usize,
    scores: Vec<f32>,
    ids: Vec<u32>,
    len: Vec<u32>,
    /// Score of the root when full, −∞ before: a candidate below it cannot enter.
    floor: Vec<f32>,
}

/// `a` ranks ahead of `b`.
#[inline]
fn better(sa: f32, ia: u32, sb: f32, ib: u32) -> bool {
    sa > sb || (sa == sb && ia < ib)
}

const LANES: usize = 16;

impl Lists {
    fn new(n: usize, k: usize) -> Self {
        Lists {
            k,
            scores: vec![0.0; n * k],
            ids: vec![0; n * k],
            len: vec![0; n],
            floor: vec![f32::NEG_INFINITY; n],
        }
    }

    /// Rows i0.. of the tile are items; columns j0.. their candidates.
    fn scan_rows(&mut self, buf: &[f32], i0: usize, rows: usize, j0: usize, cols: usize) {
        for r in 0..rows {
            let i = i0 + r;
            let line = &buf[r * BLOCK..r * BLOCK + cols];
            for (c0, chunk) in line.chunks(LANES).enumerate() {
                let f = self.floor[i];
                if chunk.iter().filter(|&&v| v >= f).count() == 0 {
                    continue;
                }
                for (c, &v) in chunk.iter().enumerate() {
                    let j = j0 + c0 * LANES + c;
                    if j != i {
                        self.offer(i, v, j as u32);
                    }
                }
            }
        }
    }

    /// Columns j0.. of the tile are items; rows i0.. their candidates (tile off the diagonal).
    fn scan_cols(&mut self, buf: &[f32], i0: usize, rows: usize, j0: usize, cols: usize) {
        for r in 0..rows {
            let line = &buf[r * BLOCK..r * BLOCK + cols];
            for (c0, chunk) in line.chunks(LANES).enumerate() {
                let first = j0 + c0 * LANES;
                let floors = &self.floor[first..first + chunk.len()];
                let hits = chunk.iter().zip(floors).filter(|(v, f)| v >= f).count();
                if hits == 0 {
                    continue;
                }
                for (c, &v) in chunk.iter().enumerate() {
                    self.offer(first + c, v, (i0 + r) as u32);
                }
            }
        }
    }

    fn offer(&mut self, i: usize, s: f32, id: u32) {
        let k = self.k;
        let len = self.len[i] as usize;
        let sc = &mut self.scores[i * k..(i + 1) * k];
        let ids = &mut self.ids[i * k..(i + 1) * k];
        if len < k {
            // Sift up: the parent must be worse than (ahead of nothing) the child.
            let mut pos = len;
            while pos > 0 {
                let parent = (pos - 1) / 2;
                if better(sc[parent], ids[parent], s, id) {
                    sc[pos] = sc[parent];
                    ids[pos] = ids[parent];
                    pos = parent;
                } else {
                    break;
                }
            }
            sc[pos] = s;
            ids[pos] = id;
            self.len[i] += 1;
            if len + 1 == k {
                self.floor[i] = sc[0];
            }
            return;
        }
        if !better(s, id, sc[0], ids[0]) {
            return;
        }
        // Replace the root (the worst) and sift down.
        let mut pos = 0;
        loop {
            let l = 2 * pos + 1;
            if l >= k {
                break;
            }
            let r = l + 1;
            let worse = if r < k && better(sc[l], ids[l], sc[r], ids[r]) {
                r
            } else {
                l
            };
            if better(s, id, sc[worse], ids[worse]) {
                sc[pos] = sc[worse];
                ids[pos] = ids[worse];
                pos = worse;
            } else {
                break;
            }
        }
        sc[pos] = s;
        ids[pos] = id;
        self.floor[i] = sc[0];
    }

    fn absorb(&mut self, other: &Lists) {
        let k = self.k;
        for i in 0..self.len.len() {
            for p in 0..other.len[i] as usize {
                self.offer(i, other.scores[i * k + p], other.ids[i * k + p]);
            }
        }
    }

    fn finish(mut self) -> TopK {
        let k = self.k;
        let mut pairs: Vec<(f32, u32)> = Vec::with_capacity(k);
        for i in 0..self.len.len() {
            pairs.clear();
            pairs.extend((i * k..(i + 1) * k).map(|p| (self.scores[p], self.ids[p])));
            pairs.sort_by(|a, b| {
                b.0.partial_cmp(&a.0)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(a.1.cmp(&b.1))
            });
            for (p, &(s, id)) in pairs.iter().enumerate() {
                self.scores[i * k + p] = s;
                self.ids[i * k + p] = id;
            }
        }
        TopK {
            ids: self.ids,
            scores: self.scores,
            k,
        }
    }
}
