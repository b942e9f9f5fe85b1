//! The ordering engine: runs diversity orderings over one of three stores of S — the f32
//! matrix (given by the caller), a compact i16 copy (built here when it fits the budget), or
//! none (every step evaluated from the embeddings: O(N·d) a step, the slow path for N too
//! large for memory). All three pick exactly the item of [`crate::rule`].

use crate::budget::Budget;
use crate::error::ComputeError;
use crate::gemm::{Packed, BLOCK as TILE};
use crate::rows::Rows;
use crate::rule::{add_row, entry_bound_f32, rule_slack, score};
use crate::sums::{self, BLOCK};
use crate::threads;
use crate::tiles::{upper_tiles, SharedMatrix};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Where the rows of S come from.
pub(crate) enum Store<'a> {
    /// The caller's f32 matrix, n×n.
    F32(&'a [f32]),
    /// round(S·scale) as i16, n×n, built by [`Engine::compact`].
    I16 { q: Vec<i16>, scale: f64 },
    /// No matrix: scores are computed from the embeddings at every step.
    Direct,
}

/// Normalised embeddings plus a store of S.
pub(crate) struct Engine<'a> {
    e: Rows<'a>,
    store: Store<'a>,
}

/// Sums added to a chosen item's i32 sum so it never looks like a candidate.
const CHOSEN: i32 = 1 << 30;

impl<'a> Engine<'a> {
    /// Uses the caller's f32 similarity matrix.
    pub(crate) fn with_matrix(e: Rows<'a>, s: &'a [f32]) -> Self {
        Engine {
            e,
            store: Store::F32(s),
        }
    }

    /// Builds the i16 store when n²·2 bytes fit `budget`, else runs without a matrix.
    pub(crate) fn compact(
        e: Rows<'a>,
        threads: usize,
        budget: Budget,
    ) -> Result<Self, ComputeError> {
        let n = e.n();
        let store = if budget.fits((n as u64) * (n as u64) * 2) {
            let scale = f64::from(32767.min((((1u32 << 29) - 1) as usize / n) as u32));
            let mut q = vec![0i16; n * n];
            let out = SharedMatrix::new(&mut q, n);
            let packed = Packed::new(e);
            let tiles = upper_tiles(n);
            let next = AtomicUsize::new(0);
            threads::on_each(threads, |_| {
                let mut buf = vec![0.0f32; TILE * TILE];
                while let Some(&tile) = tiles.get(next.fetch_add(1, Ordering::Relaxed)) {
                    packed.tile(tile.0, tile.1, tile.2, tile.3, &mut buf, TILE);
                    // SAFETY: each upper tile goes to one worker; tiles and mirrors are
                    // disjoint; `q` outlives on_each, which returns after every worker.
                    unsafe { out.write_tile(tile, &buf, |x| quantise(x, scale)) };
                }
            })?;
            Store::I16 { q, scale }
        } else {
            Store::Direct
        };
        Ok(Engine { e, store })
    }

    /// The normalised rows.
    pub(crate) fn rows(&self) -> Rows<'a> {
        self.e
    }

    /// True when no matrix is held (the slow path).
    pub(crate) fn is_direct(&self) -> bool {
        matches!(self.store, Store::Direct)
    }

    /// The ordering from `start` (already validated).
    pub(crate) fn ordering(&self, start: usize) -> Vec<u32> {
        let n = self.e.n();
        let d = self.e.d();
        let mut st = State::new(self.e, start);
        match &self.store {
            Store::F32(s) => {
                let beta = entry_bound_f32(d);
                let mut sums = vec![0.0f64; n];
                let mut mins = vec![0.0f64; sums::blocks(n)];
                sums[start] = f64::INFINITY;
                for t in 1..n {
                    let last = st.last();
                    sums::add_f32(&mut sums, &s[last * n..(last + 1) * n], &mut mins);
                    let gmin = mins.iter().fold(f64::INFINITY, |a, &b| a.min(b));
                    let thr = gmin + 2.0 * (t as f64 * beta + rule_slack(t, d));
                    let j = st.pick(&mins, |m| m <= thr, |j| sums[j] <= thr);
                    sums[j] = f64::INFINITY;
                }
            }
            Store::I16 { q, scale } => {
                let beta = entry_bound_f32(d);
                let mut sums = vec![0i32; n];
                let mut mins = vec![0i32; sums::blocks(n)];
                sums[start] = CHOSEN;
                for t in 1..n {
                    let last = st.last();
                    sums::add_i16(&mut sums, &q[last * n..(last + 1) * n], &mut mins);
                    let gmin = i64::from(*mins.iter().min().expect("n ≥ 2"));
                    let band = 2.0 * (t as f64 * (0.5 + beta * scale) + rule_slack(t, d) * scale);
                    let thr = gmin + band.ceil() as i64 + 1;
                    let j = st.pick(
                        &mins,
                        |m| i64::from(m) <= thr,
                        |j| i64::from(sums[j]) <= thr,
                    );
                    sums[j] = CHOSEN;
                }
            }
            Store::Direct => {
                for _ in 1..n {
                    st.pick_direct();
                }
            }
        }
        st.seq
    }

    /// Orderings for `starts`, spread over `threads` workers; an entry stays `None` when
    /// `cancel` was set before its ordering began.
    pub(crate) fn many(
        &self,
        starts: &[usize],
        threads: usize,
        cancel: Option<&AtomicBool>,
    ) -> Result<Vec<Option<Vec<u32>>>, ComputeError> {
        let out = Mutex::new(vec![None; starts.len()]);
        let next = AtomicUsize::new(0);
        threads::on_each(threads.min(starts.len()).max(1), |_| loop {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                break;
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&s) = starts.get(i) else { break };
            let seq = self.ordering(s);
            out.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(seq);
        })?;
        Ok(out.into_inner().unwrap_or_else(|e| e.into_inner()))
    }
}

/// round(x·scale) clamped to ±scale.
fn quantise(x: f32, scale: f64) -> i16 {
    (f64::from(x) * scale).round().clamp(-scale, scale) as i16
}

/// One ordering in progress: the picks, the chosen flags and the f64 centroid sum.
struct State<'a> {
    e: Rows<'a>,
    seq: Vec<u32>,
    chosen: Vec<bool>,
    c: Vec<f64>,
}

impl<'a> State<'a> {
    fn new(e: Rows<'a>, start: usize) -> Self {
        let mut st = State {
            e,
            seq: Vec::with_capacity(e.n()),
            chosen: vec![false; e.n()],
            c: vec![0.0; e.d()],
        };
        st.take(start);
        st
    }

    fn last(&self) -> usize {
        *self.seq.last().expect("start is taken first") as usize
    }

    fn take(&mut self, j: usize) {
        self.seq.push(j as u32);
        self.chosen[j] = true;
        add_row(&mut self.c, self.e.row(j));
    }

    /// Re-scores the unchosen candidates in blocks whose minimum passes `block_ok` and that
    /// pass `cand_ok`, takes the best by (score, index) and returns it.
    fn pick<M: Copy>(
        &mut self,
        mins: &[M],
        block_ok: impl Fn(M) -> bool,
        cand_ok: impl Fn(usize) -> bool,
    ) -> usize {
        let n = self.e.n();
        let mut best: Option<(f64, usize)> = None;
        for (b, &m) in mins.iter().enumerate() {
            if !block_ok(m) {
                continue;
            }
            for j in b * BLOCK..((b + 1) * BLOCK).min(n) {
                if self.chosen[j] || !cand_ok(j) {
                    continue;
                }
                let r = score(&self.c, self.e.row(j));
                if best.is_none_or(|(br, _)| r < br) {
                    best = Some((r, j));
                }
            }
        }
        let (_, j) = best.expect("the minimum lies inside the band");
        self.take(j);
        j
    }

    /// Scores every unchosen item and takes the best.
    fn pick_direct(&mut self) {
        let mut best: Option<(f64, usize)> = None;
        for j in 0..self.e.n() {
            if self.chosen[j] {
                continue;
            }
            let r = score(&self.c, self.e.row(j));
            if best.is_none_or(|(br, _)| r < br) {
                best = Some((r, j));
            }
        }
        let (_, j) = best.expect("an unchosen item remains");
        self.take(j);
    }
}
