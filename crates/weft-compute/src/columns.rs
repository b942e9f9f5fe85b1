//! Orderings with S split by columns, for S too large for one process (the MPI cache's
//! column split): each process keeps the block S[·, J] of the columns (items) J it owns,
//! quantised to i16, and a batch of orderings advances in lock-step. At every step each
//! process proposes its best unchosen item of J — the smallest score of the decision rule (`rule.rs`),
//! `score(c, e_j)`, ties to the lowest j, where c is the f64 centroid sum every process
//! keeps (the picks are global) — and the step's pick is the minimum of the proposals by
//! (score, item): exactly the rule's choice over all items, so the orderings are the ones
//! every other path computes. Combining the proposals (one collective a step) is the
//! caller's: [`ColumnWalks::propose`] gives them, [`ColumnWalks::take`] applies the picks.

use crate::error::ComputeError;
use crate::rows::Rows;
use crate::rule::{add_row, entry_bound_f32, rule_slack, score};
use std::ops::Range;

/// The i16 quantisation: |S| ≤ 1 (+ rounding) for unit rows, so |q| ≤ 32,001 < 2¹⁵.
const SCALE: f64 = 32_000.0;

/// A chosen column's running sum: far above any real one (|sum| ≤ 32,001·n < 2⁴⁸), and
/// far from overflow after n more additions.
const CHOSEN: i64 = 1 << 60;

/// The proposal of a process that has no unchosen item left: never the minimum.
pub const NO_PROPOSAL: (f64, u32) = (f64::INFINITY, u32::MAX);

/// The block S[·, J] of one process: row i holds e_i·e_j for the owned items j ∈ J.
pub struct ColumnBlock<'a> {
    e: Rows<'a>,
    cols: Range<usize>,
    q: Vec<i16>,
}

impl<'a> ColumnBlock<'a> {
    /// Bytes of the block of `cols` among `n` items (what a memory budget must allow).
    pub fn bytes(n: usize, cols: usize) -> u64 {
        2 * n as u64 * cols as u64
    }

    /// The owned range of process `rank` of `size`: ⌊rank·n/size⌋..⌊(rank+1)·n/size⌋.
    pub fn owned(n: usize, rank: usize, size: usize) -> Range<usize> {
        let at = |k: usize| (k as u128 * n as u128 / size as u128) as usize;
        at(rank)..at(rank + 1)
    }

    /// Computes the block of the owned items `cols` over the normalised rows `e` (each
    /// entry in f64, then rounded to i16), on `threads` threads.
    pub fn new(e: Rows<'a>, cols: Range<usize>, threads: usize) -> Result<Self, ComputeError> {
        let (n, w) = (e.n(), cols.len());
        if cols.end > n {
            return Err(ComputeError::Threads(format!(
                "internal: columns {cols:?} beyond the {n} items"
            )));
        }
        let mut q = vec![0i16; n * w];
        let chunk = n.div_ceil(threads.max(1)).max(1) * w.max(1);
        std::thread::scope(|scope| {
            for (k, part) in q.chunks_mut(chunk).enumerate() {
                let cols = cols.clone();
                scope.spawn(move || {
                    let first = k * chunk / w.max(1);
                    let mut ei = vec![0f64; e.d()];
                    for (r, row) in part.chunks_mut(w.max(1)).enumerate() {
                        for (x, &y) in ei.iter_mut().zip(e.row(first + r)) {
                            *x = f64::from(y);
                        }
                        for (slot, j) in row.iter_mut().zip(cols.clone()) {
                            *slot = (score(&ei, e.row(j)) * SCALE).round() as i16;
                        }
                    }
                });
            }
        });
        Ok(ColumnBlock { e, cols, q })
    }

    /// The owned items.
    pub fn cols(&self) -> Range<usize> {
        self.cols.clone()
    }

    /// Orderings from `starts`, ready for their first step.
    pub fn walks(&self, starts: &[usize]) -> ColumnWalks<'_, 'a> {
        let walks = starts.iter().map(|&s| Walk::new(self, s)).collect();
        ColumnWalks {
            block: self,
            walks,
            bytes_read: starts.len() as u64 * self.row_bytes(),
        }
    }

    /// Bytes of one row of the block, which every pick reads once.
    fn row_bytes(&self) -> u64 {
        (std::mem::size_of::<i16>() * self.cols.len()) as u64
    }

    /// Bound on |q/SCALE − e_i·e_j| for one entry: the rounding to i16 plus the f64 dot
    /// product's error (far below the f32 bound used for it).
    fn err(&self) -> f64 {
        0.5 / SCALE + entry_bound_f32(self.e.d())
    }
}

/// A batch of orderings in progress over one [`ColumnBlock`].
pub struct ColumnWalks<'b, 'a> {
    block: &'b ColumnBlock<'a>,
    walks: Vec<Walk>,
    /// Bytes of the block read so far: a row of it per pick, the starts included.
    bytes_read: u64,
}

struct Walk {
    seq: Vec<u32>,
    /// Per owned column: the running sum of its quantised entries over the picks; a
    /// chosen column's starts at [`CHOSEN`], so that it is never a candidate.
    sums: Vec<i64>,
    /// The f64 centroid sum of the picks, in pick order.
    c: Vec<f64>,
}

impl Walk {
    fn new(b: &ColumnBlock<'_>, start: usize) -> Walk {
        let mut w = Walk {
            seq: Vec::with_capacity(b.e.n()),
            sums: vec![0; b.cols.len()],
            c: vec![0.0; b.e.d()],
        };
        w.take(b, start);
        w
    }

    fn take(&mut self, b: &ColumnBlock<'_>, j: usize) {
        self.seq.push(j as u32);
        add_row(&mut self.c, b.e.row(j));
        if b.cols.contains(&j) {
            self.sums[j - b.cols.start] = CHOSEN;
        }
        let w = b.cols.len();
        for (s, &q) in self.sums.iter_mut().zip(&b.q[j * w..(j + 1) * w]) {
            *s += i64::from(q);
        }
    }

    /// The rule's best unchosen owned item and its score, or [`NO_PROPOSAL`].
    fn propose(&self, b: &ColumnBlock<'_>) -> (f64, u32) {
        let min = self.sums.iter().copied().min().unwrap_or(CHOSEN);
        if min >= CHOSEN / 2 {
            return NO_PROPOSAL;
        }
        // Every approximate sum lies within t·err of its exact sum, and each score within
        // the rule's slack of it: the best item's sum is within twice both of the minimum.
        let t = self.seq.len();
        let bound = t as f64 * b.err() + rule_slack(t, b.e.d());
        let thr = min as f64 + (2.0 * bound * SCALE).ceil() + 1.0;
        let mut cands: Vec<(f64, u32)> = self
            .sums
            .iter()
            .enumerate()
            .filter_map(|(k, &s)| {
                let s = s as f64;
                (s <= thr).then_some((s / SCALE, (b.cols.start + k) as u32))
            })
            .collect();
        // Scored in order of their approximate sums, stopping once a sum minus the bound
        // exceeds the best score (no later candidate can beat it), as the engine does.
        cands.sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let mut best = NO_PROPOSAL;
        for (approx, j) in cands {
            if approx - bound > best.0 {
                break;
            }
            let r = score(&self.c, b.e.row(j as usize));
            if r < best.0 || (r == best.0 && j < best.1) {
                best = (r, j);
            }
        }
        best
    }
}

impl ColumnWalks<'_, '_> {
    /// Whether every ordering has all n items.
    pub fn finished(&self) -> bool {
        self.walks.iter().all(|w| w.seq.len() == self.block.e.n())
    }

    /// Each ordering's proposal for its next pick: its best unchosen owned item by the
    /// rule, (score, item), or [`NO_PROPOSAL`] when it owns none.
    pub fn propose(&self) -> Vec<(f64, u32)> {
        self.walks.iter().map(|w| w.propose(self.block)).collect()
    }

    /// Applies the step's picks, one per ordering (the minimum of every process's
    /// proposals by score, then item).
    pub fn take(&mut self, picks: &[u32]) {
        for (w, &j) in self.walks.iter_mut().zip(picks) {
            w.take(self.block, j as usize);
            self.bytes_read += self.block.row_bytes();
        }
    }

    /// Bytes of this process's block of S read so far (the figure `weft diversity-cache`
    /// reports as the bytes of S read).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The orderings computed.
    pub fn into_orderings(self) -> Vec<Vec<u32>> {
        self.walks.into_iter().map(|w| w.seq).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{normalize, Budget, Orderings};

    /// Blocks of 1, 2, 3 and 5 processes, combined here as the MPI reduction would, give
    /// exactly the orderings of the engine.
    #[test]
    fn split_orderings_are_the_engines() {
        let (n, d) = (97, 24);
        // Clustered data, so that near-ties occur.
        let raw: Vec<f32> = (0..n * d)
            .map(|k| {
                let (i, x) = (k / d, k % d);
                ((i % 7) as f32 * 0.9 + x as f32 * 0.31).sin() + 0.01 * ((k * 37 % 11) as f32)
            })
            .collect();
        let e = normalize(Rows::new(&raw, n, d).unwrap()).unwrap();
        let e = Rows::new(&e, n, d).unwrap();
        let starts: Vec<usize> = vec![0, 5, 50, 96];
        let want = Orderings::new(e, Some(1), Budget::default())
            .unwrap()
            .run(&starts)
            .unwrap();
        for size in [1, 2, 3, 5] {
            let blocks: Vec<ColumnBlock> = (0..size)
                .map(|r| ColumnBlock::new(e, ColumnBlock::owned(n, r, size), 2).unwrap())
                .collect();
            let mut walks: Vec<ColumnWalks> = blocks.iter().map(|b| b.walks(&starts)).collect();
            while !walks[0].finished() {
                let proposals: Vec<Vec<(f64, u32)>> = walks.iter().map(|w| w.propose()).collect();
                let picks: Vec<u32> = (0..starts.len())
                    .map(|o| {
                        proposals
                            .iter()
                            .map(|p| p[o])
                            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
                            .unwrap()
                            .1
                    })
                    .collect();
                for w in &mut walks {
                    w.take(&picks);
                }
            }
            // Every pick of every ordering read one row of each block: n picks of
            // 2 bytes per owned column, n columns over all the blocks.
            let read: u64 = walks.iter().map(|w| w.bytes_read()).sum();
            assert_eq!(read, (starts.len() * n * 2 * n) as u64, "{size} blocks");
            for w in walks {
                assert_eq!(w.into_orderings(), want, "{size} blocks");
            }
        }
    }
}
