//! The ordering engine: runs diversity orderings over one of two stores of S — a compact i16
//! copy (built here when it fits the budget), or none (every step evaluated from the
//! embeddings: O(N·d) a step, the slow path for N too large for memory). Orderings over the
//! caller's f32 S run in [`crate::matrix`]. All pick exactly the item of [`crate::rule`].

use crate::budget::Budget;
use crate::compact::{self, Compact, LINE};
use crate::error::ComputeError;
use crate::rows::Rows;
use crate::rule::{add_row, rule_slack, score};
use crate::tails::{centroid_hash, item_hash, Finished, Follow, Mark, Tails, EVERY, SNAP};
use crate::threads;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Where the rows of S come from.
pub(crate) enum Store {
    /// The compact i16 copy in a learned item order, built by [`Engine::compact`].
    I16(Compact),
    /// No matrix: scores are computed from the embeddings at every step.
    Direct,
}

/// Normalised embeddings plus a store of S.
pub(crate) struct Engine<'a> {
    e: Rows<'a>,
    store: Store,
    /// Bytes of the compact copy's rows read by the orderings run so far (benchmarks).
    read: AtomicU64,
    /// Marks and finished orderings, for orderings that reach another's state.
    tails: Tails,
}

/// Added to a chosen item's i32 sum so it never looks like a candidate (real sums stay
/// below 2^29 in magnitude).
const CHOSEN: i32 = 1 << 30;

/// Orderings run to learn the item order of the compact copy (when n is large enough).
const TRAINING_STARTS: usize = 4;

impl<'a> Engine<'a> {
    /// Builds the compact i16 copy when it fits `budget`, else runs without a matrix. For
    /// n ≥ 128 a few orderings are run first and the copy rebuilt in their mean pick order.
    pub(crate) fn compact(
        e: Rows<'a>,
        threads: usize,
        budget: Budget,
    ) -> Result<Self, ComputeError> {
        let n = e.n();
        if !budget.fits(compact::bytes(n)) {
            return Ok(Engine {
                e,
                store: Store::Direct,
                read: AtomicU64::new(0),
                tails: Tails::new(0),
            });
        }
        // Finished orderings are kept for others to follow, as many as fit beside the copy.
        let keep = Tails::limit(n, e.d(), budget.get() - compact::bytes(n));
        let identity: Vec<u32> = (0..n as u32).collect();
        let first = Engine {
            e,
            store: Store::I16(Compact::build(e, identity, threads, false)?),
            read: AtomicU64::new(0),
            tails: Tails::new(0),
        };
        if n < 128 {
            return Ok(Engine {
                tails: Tails::new(keep),
                ..first
            });
        }
        let starts: Vec<usize> = (0..TRAINING_STARTS)
            .map(|i| i * n / TRAINING_STARTS)
            .collect();
        let mut total = vec![0u64; n];
        for seq in first.many(&starts, n, threads, None)?.into_iter().flatten() {
            for (t, &j) in seq.iter().enumerate() {
                total[j as usize] += t as u64;
            }
        }
        drop(first);
        let mut perm: Vec<u32> = (0..n as u32).collect();
        perm.sort_by_key(|&j| (total[j as usize], j));
        Ok(Engine {
            e,
            store: Store::I16(Compact::build(e, perm, threads, true)?),
            read: AtomicU64::new(0),
            tails: Tails::new(keep),
        })
    }

    /// The normalised rows.
    pub(crate) fn rows(&self) -> Rows<'a> {
        self.e
    }

    /// Bytes of rows of the compact copy read by the orderings run so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// The same engine with shared tails off: every ordering computed in full.
    pub(crate) fn unshared(self) -> Self {
        Engine {
            tails: Tails::new(0),
            ..self
        }
    }

    /// Orderings that took another's tail, and the picks they did not compute.
    pub(crate) fn followed(&self) -> (u64, u64) {
        self.tails.followed()
    }

    /// True when no matrix is held (the slow path).
    pub(crate) fn is_direct(&self) -> bool {
        matches!(self.store, Store::Direct)
    }

    /// The first `len` items (1 ≤ len ≤ n) of the ordering from `start` (validated).
    pub(crate) fn ordering(&self, start: usize, len: usize) -> Vec<u32> {
        let walked = self.group(&[start], len, self.tails.enabled());
        // One thread: the checks run here, and nothing can fail.
        let mut seqs = self.resolve(walked, len, 1).expect("one thread");
        seqs.pop().expect("one ordering")
    }

    /// The first `len` items of the orderings from each of `starts`, run in lockstep: step t
    /// of every ordering, then step t + 1 of every ordering. Orderings from different starts
    /// pick much the same items at much the same steps, so the row of S one of them reads at
    /// step t is often one another has just read: it comes from the cache instead of memory.
    /// Each ordering's steps are exactly those it takes alone, so its picks are the same.
    /// With `look`, a walk that reaches the state of another stops there (see
    /// [`crate::tails`]); [`Engine::resolve`] completes it.
    fn group(&self, starts: &[usize], len: usize, look: bool) -> Vec<Finished> {
        match &self.store {
            Store::I16(c) => {
                let mut walks: Vec<Walk<'_, 'a>> = starts
                    .iter()
                    .map(|&s| Walk::new(self.e, c, s, self.tails.id()))
                    .collect();
                for t in 1..len {
                    let mut stepped = false;
                    for w in walks.iter_mut().filter(|w| w.follows.is_none()) {
                        w.step(t);
                        stepped = true;
                        let picks = t + 1;
                        if look && picks % SNAP == 0 {
                            w.snaps.extend_from_slice(&w.st.c);
                        }
                        if look && picks % EVERY == 0 && picks < len {
                            w.look(&self.tails);
                        }
                    }
                    if !stepped {
                        break;
                    }
                }
                let lines: u64 = walks.iter().map(|w| w.lines_read).sum();
                let line_bytes = (LINE * std::mem::size_of::<i16>()) as u64;
                self.read.fetch_add(lines * line_bytes, Ordering::Relaxed);
                walks
                    .into_iter()
                    .zip(starts)
                    .map(|(w, &start)| Finished {
                        id: w.id,
                        start,
                        snaps: w.snaps,
                        follows: w.follows.map(|leader| Follow {
                            leader,
                            chosen: w.st.chosen,
                            centroid: w.st.c,
                        }),
                        seq: w.st.seq,
                    })
                    .collect()
            }
            Store::Direct => starts
                .iter()
                .map(|&start| {
                    let mut st = State::new(self.e, start);
                    for _ in 1..len {
                        st.pick_direct();
                    }
                    Finished {
                        id: self.tails.id(),
                        start,
                        seq: st.seq,
                        snaps: Vec::new(),
                        follows: None,
                    }
                })
                .collect(),
        }
    }

    /// Completes the walks of one run (see [`Tails::resolve`]); a follower whose leader's
    /// state turns out to differ is computed in full here.
    fn resolve(
        &self,
        walked: Vec<Finished>,
        len: usize,
        threads: usize,
    ) -> Result<Vec<Vec<u32>>, ComputeError> {
        let alone = |start| {
            let mut walked = self.group(&[start], len, false);
            walked.pop().expect("one walk").seq
        };
        self.tails.resolve(self.e, walked, len, threads, alone)
    }

    /// The first `len` items of the orderings for `starts`, spread over `threads` workers in
    /// lockstep groups of up to [`GROUP`]; an entry stays `None` when `cancel` was set before
    /// its group began.
    pub(crate) fn many(
        &self,
        starts: &[usize],
        len: usize,
        threads: usize,
        cancel: Option<&AtomicBool>,
    ) -> Result<Vec<Option<Vec<u32>>>, ComputeError> {
        let out: Mutex<Vec<Option<Finished>>> =
            Mutex::new((0..starts.len()).map(|_| None).collect());
        let next = AtomicUsize::new(0);
        // Groups small enough that every worker gets one when there are few starts.
        let size = starts.len().div_ceil(threads.max(1)).clamp(1, GROUP);
        let groups = starts.len().div_ceil(size);
        threads::on_each(threads.min(groups).max(1), |_| loop {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                break;
            }
            let g = next.fetch_add(1, Ordering::Relaxed);
            if g >= groups {
                break;
            }
            let lo = g * size;
            let hi = (lo + size).min(starts.len());
            let walked = self.group(&starts[lo..hi], len, self.tails.enabled());
            let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
            for (slot, f) in out[lo..hi].iter_mut().zip(walked) {
                *slot = Some(f);
            }
        })?;
        let walked = out.into_inner().unwrap_or_else(|e| e.into_inner());
        // Followers may lead to walks of other groups: complete them all at once.
        let (done, slots): (Vec<Finished>, Vec<usize>) = walked
            .into_iter()
            .enumerate()
            .filter_map(|(i, f)| f.map(|f| (f, i)))
            .unzip();
        let mut seqs = vec![None; starts.len()];
        for (seq, i) in self.resolve(done, len, threads)?.into_iter().zip(slots) {
            seqs[i] = Some(seq);
        }
        Ok(seqs)
    }
}

/// Orderings one worker runs in lockstep: a cache batch of 32 gives each of 2 workers one
/// group. Each ordering keeps stride·4 bytes of running sums (31 KB at n = 7,797, of which
/// the live half is touched on average). On the 7,090 fortunes, one thread under load, the
/// CPU time of a projected full run was 135 s alone, 99 s with groups of 4, 101 s with 8,
/// 95 s with 16 and 95 s with 32.
pub(crate) const GROUP: usize = 16;

/// One ordering over the compact copy in progress: the rule's state plus the i32 running
/// sums of S rows by position, the lines that still hold a candidate and each one's minimum
/// (in `live`'s order).
struct Walk<'c, 'a> {
    st: State<'a>,
    c: &'c Compact,
    sums: Vec<i32>,
    mins: Vec<i32>,
    left: Vec<u8>,
    live: Vec<u32>,
    cands: Vec<(f64, u32, usize)>,
    /// Lines of S rows added so far.
    lines_read: u64,
    /// This walk's id among the engine's walks, and the hash of its chosen set.
    id: u32,
    set: u64,
    /// The walk whose state this one reached (it stopped there).
    follows: Option<u32>,
    /// Its centroid sums every [`SNAP`] picks, for checking its followers.
    snaps: Vec<f64>,
}

impl<'c, 'a> Walk<'c, 'a> {
    fn new(e: Rows<'a>, c: &'c Compact, start: usize, id: u32) -> Self {
        let n = e.n();
        let lines = c.stride / LINE;
        let mut left = vec![0u8; lines];
        for p in 0..n {
            left[p / LINE] += 1;
        }
        let mut sums = vec![0i32; c.stride];
        sums[n..].fill(CHOSEN);
        let mut w = Walk {
            st: State::new(e, start),
            c,
            sums,
            mins: vec![0i32; lines],
            left,
            live: (0..lines as u32).collect(),
            cands: Vec::new(),
            lines_read: 0,
            id,
            set: item_hash(start),
            follows: None,
            snaps: Vec::new(),
        };
        w.take(c.pos[start] as usize);
        w
    }

    /// Marks position p chosen; its line leaves `live` once all its items are chosen.
    fn take(&mut self, p: usize) {
        self.sums[p] = CHOSEN;
        self.left[p / LINE] -= 1;
        if self.left[p / LINE] == 0 {
            self.live.retain(|&l| l as usize != p / LINE);
        }
    }

    /// Pick t (t ≥ 1): adds the last pick's row, shortlists the positions whose approximate
    /// sums lie within the proven band of the minimum, and lets the rule choose among them.
    fn step(&mut self, t: usize) {
        let c = self.c;
        let d = self.st.e.d();
        let last = c.pos[self.st.last()] as usize;
        // An unchosen item remains (t < n), so `live` is not empty and gmin is a real sum.
        let gmin = compact::add_lines(&mut self.sums, c.row(last), &self.live, &mut self.mins);
        self.lines_read += self.live.len() as u64;
        // |Σq/scale − Σ exact| ≤ t·err (rounding plus the entries' own error), plus the
        // rule's own slack.
        let bound = t as f64 * c.err + rule_slack(t, d);
        let band = (2.0 * bound * c.scale).ceil() as i64 + 1;
        let thr = (i64::from(gmin) + band).min(i64::from(CHOSEN) / 2) as i32;
        self.cands.clear();
        // Few lines reach the band: test 16 minima at a time without a branch each.
        let mins = &self.mins[..self.live.len()];
        for (base, chunk) in mins.chunks(16).enumerate() {
            let mut hits = chunk
                .iter()
                .enumerate()
                .fold(0u32, |m, (i, &x)| m | (u32::from(x <= thr) << i));
            while hits != 0 {
                let l = self.live[base * 16 + hits.trailing_zeros() as usize] as usize;
                hits &= hits - 1;
                for (p, &x) in self.sums.iter().enumerate().skip(l * LINE).take(LINE) {
                    if x <= thr {
                        self.cands.push((f64::from(x) / c.scale, c.perm[p], p));
                    }
                }
            }
        }
        let (j, p) = self.st.choose(&mut self.cands, bound);
        self.set = self.set.wrapping_add(item_hash(j));
        self.take(p);
    }

    /// Records this walk's state for others, or stops it when another walk recorded it.
    fn look(&mut self, tails: &Tails) {
        let mark = Mark {
            picks: self.st.seq.len() as u32,
            set: self.set,
            centroid: centroid_hash(&self.st.c),
        };
        self.follows = tails.meet(mark, self.id);
    }
}

/// Candidates whose embedding rows are requested together before scoring, so their memory
/// latencies overlap.
const PREFETCH_ROWS: usize = 6;

/// Requests every cache line of `row`.
fn prefetch_row(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for i in (0..row.len()).step_by(16) {
        // SAFETY: prefetching is a hint that never faults; the address is inside `row`.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(row.as_ptr().add(i).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// One ordering in progress: the picks, the chosen flags and the f64 centroid sum.
pub(crate) struct State<'a> {
    e: Rows<'a>,
    pub(crate) seq: Vec<u32>,
    chosen: Vec<bool>,
    c: Vec<f64>,
}

impl<'a> State<'a> {
    pub(crate) fn new(e: Rows<'a>, start: usize) -> Self {
        let mut st = State {
            e,
            seq: Vec::with_capacity(e.n()),
            chosen: vec![false; e.n()],
            c: vec![0.0; e.d()],
        };
        st.take(start);
        st
    }

    pub(crate) fn last(&self) -> usize {
        *self.seq.last().expect("start is taken first") as usize
    }

    fn take(&mut self, j: usize) {
        self.seq.push(j as u32);
        self.chosen[j] = true;
        add_row(&mut self.c, self.e.row(j));
    }

    /// Takes the best of `cands` — (approximate sum, item, slot), every approximate sum
    /// within `bound` of the item's rule score — by (score, item). Candidates are scored in
    /// order of their approximate sums, stopping once a sum minus `bound` exceeds the best
    /// score found; a lone candidate is taken unscored. Returns the item and its slot.
    pub(crate) fn choose(&mut self, cands: &mut [(f64, u32, usize)], bound: f64) -> (usize, usize) {
        // The rule's pick is always among `cands`; when it is the only one, no score is needed.
        if let [(_, j, slot)] = *cands {
            self.take(j as usize);
            return (j as usize, slot);
        }
        cands.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for &(_, j, _) in cands.iter().take(PREFETCH_ROWS) {
            prefetch_row(self.e.row(j as usize));
        }
        let mut best: Option<(f64, u32, usize)> = None;
        for &(approx, j, slot) in cands.iter() {
            if let Some((br, _, _)) = best {
                if approx - bound > br {
                    break;
                }
            }
            let r = score(&self.c, self.e.row(j as usize));
            if best.is_none_or(|(br, bj, _)| r < br || (r == br && j < bj)) {
                best = Some((r, j, slot));
            }
        }
        let (_, j, slot) = best.expect("the minimum lies inside the band");
        self.take(j as usize);
        (j as usize, slot)
    }

    /// Items in all (n).
    pub(crate) fn e_n(&self) -> usize {
        self.e.n()
    }

    /// Whether item `j` has been picked already.
    pub(crate) fn is_chosen(&self, j: usize) -> bool {
        self.chosen[j]
    }

    /// Scores every unchosen item and takes the best.
    pub(crate) fn pick_direct(&mut self) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa_check::Rng;

    /// A walk from `start` stopped after `picks` picks, claiming to follow `leader`.
    fn stopped(engine: &Engine<'_>, start: usize, picks: usize, leader: u32) -> Finished {
        let Store::I16(c) = &engine.store else {
            panic!("the compact copy fits")
        };
        let mut w = Walk::new(engine.e, c, start, engine.tails.id());
        for t in 1..picks {
            w.step(t);
        }
        Finished {
            id: w.id,
            start,
            seq: w.st.seq,
            snaps: w.snaps,
            follows: Some(Follow {
                leader,
                chosen: w.st.chosen,
                centroid: w.st.c,
            }),
        }
    }

    /// The tail is taken only when the states really are equal: a follower whose mark led
    /// to an ordering in another state is computed in full, one in the same state takes the
    /// leader's picks; both end as the ordering computed alone.
    #[test]
    fn a_tail_is_taken_only_from_a_leader_in_the_same_state() {
        let (n, d) = (60, 8);
        let mut rng = Rng::new(41);
        let raw: Vec<f32> = (0..n * d).map(|_| rng.unit()).collect();
        let e = crate::normalize::normalize(Rows::new(&raw, n, d).unwrap()).unwrap();
        let rows = Rows::new(&e, n, d).unwrap();
        let engine = Engine::compact(rows, 1, Budget::default()).unwrap();
        assert!(engine.tails.enabled());
        let alone = |start| engine.group(&[start], n, false).pop().unwrap().seq;
        let want = alone(5);
        assert_ne!(alone(3)[..10], want[..10]);

        let other = engine.group(&[3], n, false).pop().unwrap();
        let follower = stopped(&engine, 5, 10, other.id);
        let got = engine.resolve(vec![other, follower], n, 1).unwrap();
        assert_eq!(got[1], want, "computed in full");
        assert_eq!(engine.followed(), (0, 0));

        let same = engine.group(&[5], n, false).pop().unwrap();
        let follower = stopped(&engine, 5, 10, same.id);
        let got = engine.resolve(vec![follower, same], n, 2).unwrap();
        assert_eq!(got[0], want, "the leader's tail");
        assert_eq!(engine.followed(), (1, (n - 10) as u64));

        // A leader from an earlier run, kept by the engine: found by its id.
        let kept = engine.group(&[5], n, false).pop().unwrap();
        let kept_id = kept.id;
        engine.resolve(vec![kept], n, 1).unwrap();
        let got = engine
            .resolve(vec![stopped(&engine, 5, 20, kept_id)], n, 1)
            .unwrap();
        assert_eq!(got[0], want, "a kept leader's tail");
        assert_eq!(engine.followed().0, 2);
    }
}
