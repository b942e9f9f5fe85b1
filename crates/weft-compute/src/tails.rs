//! Orderings that reach the same state share the rest of their picks.
//!
//! A diversity ordering's next pick depends only on its state: the set of items chosen so
//! far and the f64 centroid sum the rule scores with. Orderings from different starts
//! often reach the same state: two items that pick each other first, and later runs that
//! have chosen the same items in another order. From there on their picks are the same, so
//! only one of them needs computing. On the fortunes, with every start run, a third of the
//! work (steps weighted by the candidates they read) repeats a state that another ordering
//! has already passed through.
//!
//! Every [`EVERY`] picks a walk records its state under a [`Mark`] (the pick count, a hash
//! of the set, a hash of the centroid's bits). A walk that finds its mark recorded by
//! another walk (its *leader*) stops and later takes the leader's tail. Hashes only find
//! candidates: before a tail is used, [`same_state`] checks the set item by item and
//! recomputes the leader's centroid in the leader's order, comparing it bit for bit with
//! the follower's. Where either differs, the caller computes the ordering in full, so the
//! picks are always the rule's. The recomputation starts from the leader's own centroid
//! every [`SNAP`] picks (the walk keeps those sums), so it adds fewer than SNAP rows.

use crate::error::ComputeError;
use crate::rows::Rows;
use crate::rule::add_row;
use crate::threads;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Picks between two looks for a leader: a follower computes at most this many picks that
/// a look on every pick would have saved.
pub(crate) const EVERY: usize = 64;

/// Picks between the centroid sums a walk keeps for checking its followers: a check adds at
/// most SNAP − 1 rows instead of one per pick (the followers of the fortunes stop after
/// ~3,600 picks on average), for n/SNAP·d·8 bytes per ordering (21 KB at n = 7,797).
pub(crate) const SNAP: usize = 1024;

/// A walk's state at a look, as hashes: equal states give equal marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Mark {
    /// Items chosen (the start counts).
    pub(crate) picks: u32,
    /// Wrapping sum of [`item_hash`] over the chosen items.
    pub(crate) set: u64,
    /// [`centroid_hash`] of the centroid sum.
    pub(crate) centroid: u64,
}

/// A fixed pseudo-random 64-bit value per item (splitmix64), summed into a set's hash.
pub(crate) fn item_hash(item: usize) -> u64 {
    let mut z = (item as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of the bits of a centroid sum.
pub(crate) fn centroid_hash(c: &[f64]) -> u64 {
    c.iter().fold(0x243F_6A88_85A3_08D3u64, |h, x| {
        (h ^ x.to_bits())
            .wrapping_mul(0x0000_0100_0000_01B3)
            .rotate_left(29)
    })
}

/// Whether the follower's state (its chosen flags and centroid after `picks` picks) is the
/// leader's after the same number of picks: the same set, and the same centroid bits when
/// summed in the leader's order. `snaps` holds the leader's own running sums after SNAP,
/// 2·SNAP, … picks (d values each; as many as its walk reached), the sums of its first
/// picks in its order, from which the rest are added.
pub(crate) fn same_state(
    e: Rows<'_>,
    chosen: &[bool],
    centroid: &[f64],
    picks: usize,
    leader: &[u32],
    snaps: &[f64],
) -> bool {
    if leader.len() < picks || !leader[..picks].iter().all(|&j| chosen[j as usize]) {
        return false;
    }
    // `picks` distinct items of the leader are chosen by the follower, who chose `picks`:
    // the sets are equal. Now the sum, in the leader's order, as its walk computed it.
    let d = e.d();
    let k = (picks / SNAP).min(snaps.len() / d);
    let mut c = match k {
        0 => vec![0.0; d],
        k => snaps[(k - 1) * d..k * d].to_vec(),
    };
    for &j in &leader[k * SNAP..picks] {
        add_row(&mut c, e.row(j as usize));
    }
    c.iter()
        .zip(centroid)
        .all(|(a, b)| a.to_bits() == b.to_bits())
}

/// A walk's end: its picks, and, when it stopped to take a leader's tail, the state that
/// tail must be checked against.
pub(crate) struct Finished {
    pub(crate) id: u32,
    pub(crate) start: usize,
    pub(crate) seq: Vec<u32>,
    /// The walk's centroid sums after SNAP, 2·SNAP, … of its own picks (see [`same_state`]).
    pub(crate) snaps: Vec<f64>,
    pub(crate) follows: Option<Follow>,
}

/// Where a follower stopped: its leader and its own state there.
pub(crate) struct Follow {
    pub(crate) leader: u32,
    pub(crate) chosen: Vec<bool>,
    pub(crate) centroid: Vec<f64>,
}

/// The marks of the walks run so far and the finished orderings of earlier runs, shared by
/// an engine's workers.
pub(crate) struct Tails {
    inner: Mutex<Inner>,
    next_id: AtomicU32,
    /// Ids of finished orderings kept at most (0: looks disabled).
    limit: usize,
    /// Orderings that took a leader's tail, and the picks they did not compute.
    followed: AtomicU64,
    picks_saved: AtomicU64,
}

#[derive(Default)]
struct Inner {
    marks: HashMap<Mark, u32>,
    done: HashMap<u32, Kept>,
    kept: usize,
}

/// A finished ordering of an earlier run: its picks and its walk's centroid snapshots.
#[derive(Clone)]
pub(crate) struct Kept {
    pub(crate) seq: Arc<Vec<u32>>,
    pub(crate) snaps: Arc<Vec<f64>>,
}

impl Tails {
    /// Keeps up to `limit` ids of finished orderings for later runs to follow; 0 disables
    /// looking for leaders.
    pub(crate) fn new(limit: usize) -> Self {
        Tails {
            inner: Mutex::new(Inner::default()),
            next_id: AtomicU32::new(0),
            limit,
            followed: AtomicU64::new(0),
            picks_saved: AtomicU64::new(0),
        }
    }

    /// Memory for the finished orderings, marks and snapshots of n full orderings of
    /// d-dimensional rows.
    pub(crate) fn bytes(n: usize, d: usize) -> u64 {
        let (looks, snaps) = (n.div_ceil(EVERY) as u64, (n / SNAP) as u64);
        let (n, d) = (n as u64, d as u64);
        n * n * 4 + n * looks * 64 + n * snaps * d * 8
    }

    /// Picks of finished orderings (the [`Tails::new`] limit) that `bytes` can hold: all
    /// n·n when [`Tails::bytes`] fits, else the share of them `bytes` pays for, each pick
    /// costing its part of the marks and snapshots too. So a budget too small for every
    /// ordering still keeps the first ones for later walks to follow, instead of none.
    pub(crate) fn limit(n: usize, d: usize, bytes: u64) -> usize {
        let (all, picks) = (Tails::bytes(n, d), (n as u64) * (n as u64));
        if all <= bytes {
            return n * n;
        }
        (u128::from(picks) * u128::from(bytes) / u128::from(all)) as usize
    }

    /// Whether walks look for leaders.
    pub(crate) fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// A fresh walk id.
    pub(crate) fn id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `mark` for walk `id`, or returns the walk that recorded it first. Once the
    /// limit is reached no mark is recorded, and a walk is led only to a kept ordering: a
    /// walk of an earlier run that was not kept is gone, and following it would cost the
    /// follower a walk from its start.
    pub(crate) fn meet(&self, mark: Mark, id: u32) -> Option<u32> {
        let mut inner = self.lock();
        if inner.kept >= self.limit {
            let first = inner.marks.get(&mark).copied();
            return first.filter(|f| *f != id && inner.done.contains_key(f));
        }
        let first = *inner.marks.entry(mark).or_insert(id);
        (first != id).then_some(first)
    }

    /// The ordering of a walk finished in an earlier run, if kept.
    pub(crate) fn finished(&self, id: u32) -> Option<Kept> {
        self.lock().done.get(&id).cloned()
    }

    /// Keeps a finished ordering for later runs to follow (while the limit allows).
    pub(crate) fn keep(&self, id: u32, kept: Kept) {
        let mut inner = self.lock();
        if inner.kept + kept.seq.len() <= self.limit {
            inner.kept += kept.seq.len();
            inner.done.insert(id, kept);
        } else {
            inner.kept = self.limit;
        }
    }

    /// Counts an ordering that took a leader's tail after `picks` of its `len` picks.
    fn count_followed(&self, picks: usize, len: usize) {
        self.followed.fetch_add(1, Ordering::Relaxed);
        self.picks_saved
            .fetch_add((len - picks) as u64, Ordering::Relaxed);
    }

    /// Orderings that took a leader's tail, and the picks they did not compute.
    pub(crate) fn followed(&self) -> (u64, u64) {
        (
            self.followed.load(Ordering::Relaxed),
            self.picks_saved.load(Ordering::Relaxed),
        )
    }

    /// Completes the walks of one run over rows `e`: a follower takes its leader's picks
    /// after its own when [`same_state`] confirms the states are equal, else `alone`
    /// computes its ordering from its start in full. The checks run on `threads` workers;
    /// the finished orderings are kept for later runs. Each walk's picks are completed in
    /// place (a walk reserves room for all n), so only the returned copies allocate.
    pub(crate) fn resolve(
        &self,
        e: Rows<'_>,
        mut walked: Vec<Finished>,
        len: usize,
        threads: usize,
        alone: impl Fn(usize) -> Vec<u32>,
    ) -> Result<Vec<Vec<u32>>, ComputeError> {
        let index: HashMap<u32, usize> =
            walked.iter().enumerate().map(|(i, f)| (f.id, i)).collect();
        let same = self.check_followers(e, &walked, &index, len, threads)?;
        // A leader recorded the mark its follower found, then went on: it stopped later or
        // not at all. So leaders come first in this order.
        let mut order: Vec<usize> = (0..walked.len()).collect();
        order.sort_by_key(|&i| {
            let f = &walked[i];
            std::cmp::Reverse(f.follows.as_ref().map_or(usize::MAX, |_| f.seq.len()))
        });
        let mut out: Vec<Option<Arc<Vec<u32>>>> = vec![None; walked.len()];
        for i in order {
            let f = &mut walked[i];
            let mut seq = std::mem::take(&mut f.seq);
            let picks = seq.len();
            match &f.follows {
                None => {}
                Some(follow) if same[i] => {
                    let leader = match index.get(&follow.leader) {
                        Some(&k) => out[k].clone().expect("leaders resolve first"),
                        None => self.finished(follow.leader).expect("checked").seq,
                    };
                    self.count_followed(picks, len);
                    seq.extend_from_slice(&leader[picks..len]);
                }
                Some(_) => seq = alone(f.start),
            }
            out[i] = Some(Arc::new(seq));
        }
        let out: Vec<Arc<Vec<u32>>> = out.into_iter().map(|s| s.expect("resolved")).collect();
        if self.enabled() {
            for (f, seq) in walked.iter_mut().zip(&out) {
                let snaps = Arc::new(std::mem::take(&mut f.snaps));
                self.keep(
                    f.id,
                    Kept {
                        seq: seq.clone(),
                        snaps,
                    },
                );
            }
        }
        // Kept orderings are shared with later runs: those are copied out.
        Ok(out
            .into_iter()
            .map(|s| Arc::try_unwrap(s).unwrap_or_else(|s| s.to_vec()))
            .collect())
    }

    /// For each walk, whether it may take its leader's tail: true for a follower whose
    /// leader's first picks (its own walked prefix, which goes past the mark, or a kept
    /// ordering of `len` picks) give the follower's state; false for every other walk.
    fn check_followers(
        &self,
        e: Rows<'_>,
        walked: &[Finished],
        index: &HashMap<u32, usize>,
        len: usize,
        threads: usize,
    ) -> Result<Vec<bool>, ComputeError> {
        let check = |f: &Finished| {
            let Some(follow) = &f.follows else {
                return false;
            };
            let same = |leader: &[u32], snaps: &[f64]| {
                same_state(
                    e,
                    &follow.chosen,
                    &follow.centroid,
                    f.seq.len(),
                    leader,
                    snaps,
                )
            };
            match index.get(&follow.leader) {
                Some(&k) => same(&walked[k].seq, &walked[k].snaps),
                None => self
                    .finished(follow.leader)
                    .is_some_and(|l| l.seq.len() >= len && same(&l.seq, &l.snaps)),
            }
        };
        let followers: Vec<usize> = (0..walked.len())
            .filter(|&i| walked[i].follows.is_some())
            .collect();
        let mut same = vec![false; walked.len()];
        let next = AtomicUsize::new(0);
        let workers = threads.min(followers.len()).max(1);
        for part in threads::on_each(workers, |_| {
            let mut part = Vec::new();
            while let Some(&i) = followers.get(next.fetch_add(1, Ordering::Relaxed)) {
                part.push((i, check(&walked[i])));
            }
            part
        })? {
            for (i, ok) in part {
                same[i] = ok;
            }
        }
        Ok(same)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_hashes_differ_and_set_hashes_ignore_order() {
        let hs: std::collections::HashSet<u64> = (0..10_000).map(item_hash).collect();
        assert_eq!(hs.len(), 10_000);
        let a = [3usize, 17, 5]
            .iter()
            .fold(0u64, |h, &j| h.wrapping_add(item_hash(j)));
        let b = [5usize, 3, 17]
            .iter()
            .fold(0u64, |h, &j| h.wrapping_add(item_hash(j)));
        assert_eq!(a, b);
    }

    #[test]
    fn centroid_hash_sees_the_last_bit() {
        let c: Vec<f64> = vec![0.25, -1.5, 3.0];
        let mut d = c.clone();
        d[1] = f64::from_bits(d[1].to_bits() ^ 1);
        assert_ne!(centroid_hash(&c), centroid_hash(&d));
        assert_eq!(centroid_hash(&c), centroid_hash(&c.clone()));
    }

    /// The check that guards every shared tail: the same set summed in another order may
    /// give other bits, a different set never passes, and a leader too short never passes.
    #[test]
    fn same_state_compares_the_set_and_the_centroid_bits() {
        // Rows whose f64 sum depends on the order: 1 + 2^-60 rounds to 1.
        let e = [1.0f32, 2f32.powi(-60), -1.0, 0.5];
        let rows = Rows::new(&e, 4, 1).unwrap();
        let mut chosen = vec![false; 4];
        let mut c = vec![0.0];
        for j in [0usize, 1, 2] {
            chosen[j] = true;
            add_row(&mut c, rows.row(j));
        }
        assert_eq!(c[0], 0.0);
        assert!(same_state(rows, &chosen, &c, 3, &[0, 1, 2, 3], &[]));
        // (2^-60 + 1) − 1 = 0 as well: another order, the same bits.
        assert!(same_state(rows, &chosen, &c, 3, &[1, 0, 2], &[]));
        // (−1 + 1) + 2^-60 = 2^-60: the same set, other bits.
        assert!(!same_state(rows, &chosen, &c, 3, &[2, 0, 1], &[]));
        // A set that differs in one item, and a leader shorter than the picks.
        assert!(!same_state(rows, &chosen, &c, 3, &[0, 1, 3], &[]));
        assert!(!same_state(rows, &chosen, &c, 3, &[0, 1], &[]));
    }

    /// A check starts from the leader's latest snapshot at or before the picks: right
    /// snapshots give the answer of a sum from scratch, and one bit off in the snapshot it
    /// starts from makes the states differ.
    #[test]
    fn same_state_starts_from_the_leaders_latest_snapshot() {
        let (n, d) = (2 * SNAP + 100, 2);
        let mut rng = crate::isa_check::Rng::new(43);
        let e: Vec<f32> = (0..n * d).map(|_| rng.unit()).collect();
        let rows = Rows::new(&e, n, d).unwrap();
        let leader: Vec<u32> = (0..n as u32).rev().collect();
        let picks = 2 * SNAP + EVERY;
        // The state after the leader's first `k` picks, and its running sum every SNAP.
        let prefix = |k: usize| {
            let (mut chosen, mut c, mut snaps) = (vec![false; n], vec![0.0; d], Vec::new());
            for (t, &j) in leader[..k].iter().enumerate() {
                chosen[j as usize] = true;
                add_row(&mut c, rows.row(j as usize));
                if (t + 1) % SNAP == 0 {
                    snaps.extend_from_slice(&c);
                }
            }
            (chosen, c, snaps)
        };
        let (chosen, c, snaps) = prefix(picks);
        assert_eq!(snaps.len(), 2 * d);
        let same = |snaps: &[f64]| same_state(rows, &chosen, &c, picks, &leader, snaps);
        assert!(same(&[]));
        assert!(same(&snaps[..d]), "a walk that kept one snapshot");
        assert!(same(&snaps));
        let mut off = snaps.clone();
        off[d] = f64::from_bits(off[d].to_bits() ^ 1);
        assert!(!same(&off), "the latest snapshot is the start");
        let mut early = snaps.clone();
        early[0] = f64::from_bits(early[0].to_bits() ^ 1);
        assert!(same(&early), "an earlier one is not read");
        // Fewer picks than a snapshot covers: only the first is used.
        let (chosen1, c1, _) = prefix(SNAP + EVERY);
        assert!(same_state(rows, &chosen1, &c1, SNAP + EVERY, &leader, &off));
        assert!(!same_state(
            rows,
            &chosen1,
            &c1,
            SNAP + EVERY,
            &leader,
            &early
        ));
    }

    #[test]
    fn the_first_walk_to_record_a_mark_leads() {
        let tails = Tails::new(100);
        let m = Mark {
            picks: 64,
            set: 7,
            centroid: 9,
        };
        let (a, b) = (tails.id(), tails.id());
        assert_eq!(tails.meet(m, a), None);
        assert_eq!(tails.meet(m, a), None, "a walk never follows itself");
        assert_eq!(tails.meet(m, b), Some(a));
        let disabled = Tails::new(0);
        assert!(!disabled.enabled());
        assert_eq!(disabled.meet(m, 0), None);
        assert_eq!(disabled.meet(m, 1), None);
    }

    #[test]
    fn finished_orderings_are_kept_up_to_the_limit() {
        let tails = Tails::new(5);
        let kept = |seq: Vec<u32>| Kept {
            seq: Arc::new(seq),
            snaps: Arc::new(Vec::new()),
        };
        tails.keep(1, kept(vec![0, 1, 2]));
        tails.keep(2, kept(vec![1, 0, 2]));
        assert_eq!(
            tails.finished(1).map(|k| k.seq.to_vec()),
            Some(vec![0, 1, 2])
        );
        assert!(tails.finished(2).is_none(), "over the limit: not kept");
        // Full: no more marks are recorded, so nobody follows a walk that is not kept.
        let m = Mark {
            picks: 1,
            set: 1,
            centroid: 1,
        };
        assert_eq!(tails.meet(m, 3), None);
        assert_eq!(tails.meet(m, 4), None);
    }

    #[test]
    fn a_full_tails_still_leads_walks_to_kept_orderings_only() {
        let tails = Tails::new(4);
        let mark = |set| Mark {
            picks: 64,
            set,
            centroid: 9,
        };
        let (kept_id, lost_id, follower) = (tails.id(), tails.id(), tails.id());
        assert_eq!(tails.meet(mark(1), kept_id), None);
        assert_eq!(tails.meet(mark(2), lost_id), None);
        let kept = |seq: Vec<u32>| Kept {
            seq: Arc::new(seq),
            snaps: Arc::new(Vec::new()),
        };
        tails.keep(kept_id, kept(vec![0, 1, 2]));
        tails.keep(lost_id, kept(vec![2, 1, 0]));
        assert!(tails.finished(lost_id).is_none(), "over the limit");
        assert_eq!(tails.meet(mark(1), follower), Some(kept_id));
        assert_eq!(
            tails.meet(mark(2), follower),
            None,
            "its leader was not kept"
        );
        assert_eq!(tails.meet(mark(1), kept_id), None, "never itself");
        assert_eq!(tails.meet(mark(3), follower), None, "full: not recorded");
        assert_eq!(tails.meet(mark(3), lost_id), None);
    }

    #[test]
    fn the_limit_is_every_pick_when_all_fit_else_the_share_that_does() {
        let (n, d) = (7_797, 384);
        let all = Tails::bytes(n, d);
        assert_eq!(Tails::limit(n, d, all), n * n);
        assert_eq!(Tails::limit(n, d, u64::MAX), n * n);
        assert_eq!(Tails::limit(n, d, 0), 0);
        let half = Tails::limit(n, d, all / 2);
        assert!(half.abs_diff(n * n / 2) <= 1, "{half}");
        // n = 50,000 needs 19.9 GB for every ordering; 6.6 GB keeps a third.
        let big = Tails::limit(50_000, d, 6_600_000_000);
        assert!((800_000_000..850_000_000).contains(&big), "{big}");
    }
}
