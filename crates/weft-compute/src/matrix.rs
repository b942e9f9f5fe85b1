//! One diversity ordering over the caller's f32 S, on the calling worker plus, with two
//! threads, a helper that shares each step's row.
//!
//! Every step adds one row of S (n f32, 28 KB for n = 7,090) to the f64 running sums. The
//! row is a new, random one read once from memory, so a step is bound by memory bandwidth,
//! and one core alone draws about half of what two can. The sums are cut into chunks of 512.
//! The main worker adds the lower half of the chunks itself; the upper half belongs to the
//! helper, which takes its chunks upwards through an atomic claim while the main worker, once
//! done with its own, takes the helper's untaken chunks from the far end. Each half's sums
//! stay in their worker's cache from step to step.
//!
//! The helper can be descheduled at any moment (another process wants the cores). The main
//! worker never waits for a chunk nobody has started — it takes it itself — and when the
//! helper sits on a claimed chunk for more than `PATIENCE`, the main worker redoes that one
//! too. For this the helper computes out of place, from the previous step's copy into a
//! buffer of its own, and publishes by compare-and-swap: whichever worker finishes the chunk
//! first wins, the other's copy is discarded. The main worker adds in place; it never
//! overwrites a chunk the helper may still be reading (it uses a spare buffer instead). So a
//! step never waits long for the helper, and with no helper running the ordering proceeds at
//! about one thread's speed.
//!
//! Each sum is the same `previous + row[j]` whoever adds it, so the ordering does not depend on
//! the number of threads or on who took which chunk. The pick itself is the exact rule
//! ([`crate::rule`]): chunk and block minima bound the f32 error band, and the few candidates
//! inside it are re-scored in f64.

use crate::orderings::State;
use crate::rows::Rows;
use crate::rule::{entry_bound_f32, rule_slack};
use crate::sums::{self, BLOCK, CHUNK, CHUNK_BLOCKS};
use crate::threads;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Below this many chunks the helper's hand-offs cost more than they save.
const MIN_CHUNKS_TO_SHARE: usize = 4;

/// f64 slots per chunk in a minima area: 8 block minima, the chunk minimum, padding to two
/// cache lines.
const MSTRIDE: usize = 16;

/// How long the main worker waits for a chunk the helper holds before redoing it itself
/// (a chunk takes well under a microsecond).
const PATIENCE: Duration = Duration::from_micros(20);

/// Lines of the likely next row each worker requests while the pick is confirmed.
const PREFETCH_HEAD: usize = 32;

/// Buffer sets. The main worker writes MAIN and SPARE in place (one buffer each); the helper
/// writes HELPER, one buffer per step parity.
const MAIN: u64 = 0;
const SPARE: u64 = 1;
const HELPER: u64 = 2;

/// The ordering from `start` (validated) over `s` (n×n, validated), on one thread or, when
/// `threads` ≥ 2 and n is large enough, two.
pub(crate) fn ordering(e: Rows<'_>, s: &[f32], start: usize, threads: usize) -> Vec<u32> {
    let n = e.n();
    let nc = sums::chunks(n);
    let shared = threads >= 2 && nc >= MIN_CHUNKS_TO_SHARE;
    let mut bufs: Vec<Vec<Line>> = (0..if shared { 4 } else { 1 })
        .map(|_| vec![Line([f64::INFINITY; 8]); nc * (CHUNK + MSTRIDE) / 8])
        .collect();
    {
        // SAFETY: the lines are contiguous f64; nothing else holds the buffer yet.
        let all = unsafe { std::slice::from_raw_parts_mut(bufs[0].as_mut_ptr().cast::<f64>(), n) };
        all.fill(0.0);
        all[start] = f64::INFINITY;
    }
    let work = Work {
        s,
        n,
        nc,
        shared,
        bufs: bufs.iter_mut().map(|b| b.as_mut_ptr().cast()).collect(),
        claims: (0..nc)
            .map(|_| Padded(AtomicU64::new(done(0, MAIN))))
            .collect(),
        split: Padded(AtomicUsize::new(nc / 2)),
        step: Padded(AtomicU64::new(0)),
        hint: Padded(AtomicU64::new(0)),
        report: Report::default(),
        busy: Padded(AtomicU64::new(0)),
        quit: Padded(AtomicBool::new(false)),
    };
    if !shared {
        return work.lead(e, start);
    }
    let out = threads::on_each(2, |w| {
        if w == 0 {
            Some(work.lead(e, start))
        } else {
            work.help();
            None
        }
    });
    match out {
        Ok(mut v) => v.swap_remove(0).expect("worker 0 leads"),
        // No pool (threads could not start): one thread, same result.
        Err(_) => ordering(e, s, start, 1),
    }
}

/// Eight f64 on one cache line, so chunks of sums and minima start on lines and the two
/// workers never write the same line.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([f64; 8]);

#[repr(align(64))]
struct Padded<T>(T);

/// The helper's progress in the current step, on its own cache line: `done` = (step << 32) |
/// chunks it has published, stored (Release) after `min` = the least sum among them.
#[repr(align(64))]
#[derive(Default)]
struct Report {
    done: AtomicU64,
    min: AtomicU64,
}

// The claim word of a helper chunk: step << 32 | phase << 16 | a << 8 | b. DONE: the chunk's
// sums of that step are in set a (the main worker marks its own takes DONE at once: nobody
// reads them before the step is over). TAKEN: the helper is computing them from set a.
const DONE: u64 = 1;
const TAKEN: u64 = 2;

fn done(t: u32, set: u64) -> u64 {
    (u64::from(t) << 32) | (DONE << 16) | (set << 8)
}

fn taken(t: u32, src: u64) -> u64 {
    (u64::from(t) << 32) | (TAKEN << 16) | (src << 8)
}

/// The set named in a claim word.
fn set_of(v: u64) -> u64 {
    (v >> 8) & 0xff
}

/// The helper's `busy` word while it may read chunk k of step t; 0 when it reads nothing.
fn busy_tag(t: u32, k: usize) -> u64 {
    (u64::from(t) << 32) | (k as u64 + 1)
}

/// A chunk of the MAIN or SPARE buffer that the helper may still be reading after the main
/// worker redid its chunk: (set, chunk, the helper's busy tag meanwhile).
type Pin = Option<(u64, usize, u64)>;

/// Everything the workers share for one ordering.
struct Work<'s> {
    s: &'s [f32],
    n: usize,
    nc: usize,
    shared: bool,
    /// MAIN, SPARE, HELPER (even steps), HELPER (odd steps): nc·CHUNK sums, then nc·MSTRIDE
    /// minima. HELPER buffers are written only by the helper, the others only by the main
    /// worker.
    bufs: Vec<*mut f64>,
    /// One claim word per chunk (see `done`, `taken`).
    claims: Vec<Padded<AtomicU64>>,
    /// The first chunk of the helper's share in the published step.
    split: Padded<AtomicUsize>,
    /// (step << 32) | the row to add, published by the main worker.
    step: Padded<AtomicU64>,
    /// (step << 32) | the row the next step will most likely add (the candidate with the
    /// least approximate sum), announced before the pick is confirmed so both workers can
    /// request its first lines early. A hint only: a wrong guess costs bandwidth, not results.
    hint: Padded<AtomicU64>,
    report: Report,
    /// What the helper may be reading (`busy_tag`), or 0.
    busy: Padded<AtomicU64>,
    /// Set when the ordering is over (or the main worker unwinds).
    quit: Padded<AtomicBool>,
}

// SAFETY: a buffer is written only by the worker owning its set, one chunk at a time: the
// main worker its own half, and helper chunks it claimed; the helper only chunks it claimed.
// A worker reads another's chunk only after acquiring the claim word (or report) that
// publishes it, and the main worker never writes a chunk the helper may still be reading
// (`busy` and the SPARE set). Everything else is atomic.
unsafe impl Sync for Work<'_> {}

/// Sets `quit` when dropped, so the helper stops even if the main worker unwinds.
struct QuitOnDrop<'a>(&'a AtomicBool);

impl Drop for QuitOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Work<'_> {
    /// Pointers to chunk k's sums and minima in `set` as of step t.
    fn chunk(&self, set: u64, t: u32, k: usize) -> (*mut f64, *mut f64) {
        let b = if set == HELPER {
            2 + (t & 1) as usize
        } else {
            set as usize
        };
        let base = self.bufs[b];
        // k < nc: both offsets stay inside the buffer (wrapping_add keeps this safe code).
        (
            base.wrapping_add(k * CHUNK),
            base.wrapping_add(self.nc * CHUNK + k * MSTRIDE),
        )
    }

    /// Step t's sums of chunk k from the step-(t−1) copy in set `src` into set `dst`, with
    /// the item `last` (chosen at step t−1) marked +∞; returns the chunk's minimum.
    ///
    /// # Safety
    /// The caller holds chunk k for step t (its own, or claimed), the step-(t−1) copy in `src`
    /// is published to it and not being written, and it is the only one accessing chunk k of
    /// (dst, t).
    unsafe fn add(&self, t: u32, last: usize, k: usize, src: u64, dst: u64, down: bool) -> f64 {
        let row = &self.s[last * self.n..(last + 1) * self.n];
        let (from, _) = self.chunk(src, t.wrapping_sub(1), k);
        let (to, mins) = self.chunk(dst, t, k);
        // SAFETY: per the caller's contract; `from` and `to` are the same chunk (in place) or
        // chunks of different buffers.
        let mins = unsafe { std::slice::from_raw_parts_mut(mins, MSTRIDE) };
        let mut m =
            unsafe { sums::add_chunk(from, to, row, k * CHUNK, &mut mins[..CHUNK_BLOCKS], down) };
        if (k * CHUNK..(k + 1) * CHUNK).contains(&last) {
            // SAFETY: as above; the chunk was just written by this worker.
            let to = unsafe { std::slice::from_raw_parts_mut(to, CHUNK) };
            let i = last - k * CHUNK;
            to[i] = f64::INFINITY;
            let b = i / BLOCK;
            mins[b] = to[b * BLOCK..(b + 1) * BLOCK]
                .iter()
                .fold(f64::INFINITY, |a, &x| a.min(x));
            m = sums::fold((&mins[..CHUNK_BLOCKS]).try_into().expect("8 minima"));
        }
        mins[CHUNK_BLOCKS] = m;
        m
    }

    /// The main worker's buffer for chunk k from `src`: in place when `src` is its
    /// own and the helper cannot be reading it, else MAIN or SPARE, whichever is not pinned.
    fn target(&self, k: usize, src: u64, pin: &mut Pin) -> u64 {
        let pinned = match *pin {
            Some((set, pk, tag)) if pk == k => {
                if self.busy.0.load(Ordering::Acquire) == tag {
                    Some(set)
                } else {
                    *pin = None;
                    None
                }
            }
            _ => None,
        };
        match (src, pinned) {
            (MAIN | SPARE, None) => src,
            (_, Some(MAIN)) => SPARE,
            _ => MAIN,
        }
    }

    /// The main worker: runs the ordering.
    fn lead(&self, e: Rows<'_>, start: usize) -> Vec<u32> {
        let _quit = QuitOnDrop(&self.quit.0);
        let (n, nc) = (self.n, self.nc);
        let d = e.d();
        let beta = entry_bound_f32(d);
        let mut st = State::new(e, start);
        let mut cands = Vec::new();
        // For chunks this worker added in step `mine[k]`: the set holding them.
        let mut loc = vec![MAIN; nc];
        let mut mine = vec![0u32; nc];
        let mut pin: Pin = None;
        let mut split = self.split.0.load(Ordering::Relaxed);
        // Balance: + when the helper finished after this worker, − when before.
        let mut lag = 0i32;
        for t in 1..n {
            let tt = t as u32;
            let last = st.last();
            let mut acc = Acc {
                min: f64::INFINITY,
                count: 0,
                loc: &mut loc,
                mine: &mut mine,
            };
            // Adds chunk k, held for step t, from `src` into `dst`.
            let add = |k: usize, src: u64, dst: u64, acc: &mut Acc| {
                // SAFETY: chunk k of step t is this worker's (its own share, or a helper chunk
                // claimed); (src, t−1) is published; MAIN and SPARE are written only here,
                // and `target` avoids a chunk the helper may still read.
                let m = unsafe { self.add(tt, last, k, src, dst, false) };
                (acc.loc[k], acc.mine[k]) = (dst, tt);
                (acc.min, acc.count) = (acc.min.min(m), acc.count + 1);
            };
            if !self.shared {
                for k in 0..nc {
                    add(k, MAIN, MAIN, &mut acc);
                }
                split = nc;
            } else {
                self.split.0.store(split, Ordering::Relaxed);
                self.step
                    .0
                    .store((u64::from(tt) << 32) | last as u64, Ordering::Release);
                for k in 0..split {
                    let src = if acc.mine[k] == tt - 1 {
                        acc.loc[k]
                    } else {
                        HELPER
                    };
                    let dst = self.target(k, src, &mut pin);
                    add(k, src, dst, &mut acc);
                    // Published for the helper, should its share grow next step.
                    self.claims[k].0.store(done(tt, dst), Ordering::Release);
                }
                // Then on into the helper's share, until a chunk it has taken.
                #[cfg(test)]
                let split = if tests::no_steal() { nc } else { split };
                for k in split..nc {
                    let c = &self.claims[k].0;
                    let v = c.load(Ordering::Acquire);
                    if v >> 32 != u64::from(tt - 1) {
                        break; // taken: the helper has come down this far
                    }
                    let src = set_of(v);
                    let dst = self.target(k, src, &mut pin);
                    // Marked done at once: nobody reads it before this step is over.
                    if c.compare_exchange(v, done(tt, dst), Ordering::AcqRel, Ordering::Relaxed)
                        .is_err()
                    {
                        break;
                    }
                    add(k, src, dst, &mut acc);
                }
            }
            // Every chunk is taken: wait for those the helper holds, or redo them.
            let mut others = f64::INFINITY;
            if acc.count < nc {
                let stole = acc.count > split;
                let since = Instant::now();
                let mut spins = 0u32;
                loop {
                    let v = self.report.done.load(Ordering::Acquire);
                    if v >> 32 == u64::from(tt) && (v & 0xffff_ffff) as usize == nc - acc.count {
                        others = f64::from_bits(self.report.min.load(Ordering::Relaxed));
                        lag += if stole || spins > 0 { 1 } else { -1 };
                        break;
                    }
                    spins = spins.wrapping_add(1);
                    if spins & 63 != 0 || since.elapsed() < PATIENCE {
                        std::hint::spin_loop();
                        continue;
                    }
                    // The helper is descheduled: redo the chunk it holds, count those it
                    // published.
                    let mut helped = 0;
                    for k in split..nc {
                        let c = &self.claims[k].0;
                        let mut v = c.load(Ordering::Acquire);
                        loop {
                            let src = set_of(v);
                            let held = v == taken(tt, src);
                            if !held && v != done(tt - 1, src) {
                                break; // published this step, by one worker or the other
                            }
                            if held && src != HELPER {
                                // The helper may go on reading this chunk of MAIN or SPARE.
                                pin = Some((src, k, busy_tag(tt, k)));
                            }
                            let dst = self.target(k, src, &mut pin);
                            match c.compare_exchange(
                                v,
                                done(tt, dst),
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            ) {
                                Ok(_) => {
                                    #[cfg(test)]
                                    tests::note_redo(held && src != HELPER);
                                    add(k, src, dst, &mut acc);
                                    break;
                                }
                                Err(now) => v = now, // claimed or published meanwhile
                            }
                        }
                        if v == done(tt, HELPER) {
                            helped += 1;
                            // SAFETY: published by the helper (acquired above).
                            let m = unsafe { *self.chunk(HELPER, tt, k).1.add(CHUNK_BLOCKS) };
                            others = others.min(m);
                        }
                    }
                    assert_eq!(acc.count + helped, nc, "every chunk is published");
                    lag += 1;
                    break;
                }
            }
            if lag.abs() >= 32 {
                // Move one chunk towards the worker that finished first.
                split = if lag > 0 {
                    (split + 1).min(nc - 1)
                } else {
                    split.max(2) - 1
                };
                lag = 0;
            }
            let gmin = acc.min.min(others);
            let bound = t as f64 * beta + rule_slack(t, d);
            let thr = gmin + 2.0 * bound;
            cands.clear();
            for k in 0..nc {
                let set = if mine[k] == tt {
                    loc[k]
                } else if others <= thr {
                    HELPER
                } else {
                    continue;
                };
                let (s, m) = self.chunk(set, tt, k);
                // SAFETY: chunk k of step t is published (by this worker, or by the helper
                // and acquired through the report or its claim word) and nobody writes it
                // during this step.
                let (sums, mins) = unsafe {
                    (
                        std::slice::from_raw_parts(s, CHUNK),
                        std::slice::from_raw_parts(m, MSTRIDE),
                    )
                };
                if mins[CHUNK_BLOCKS] > thr {
                    continue;
                }
                for (b, &bm) in mins[..CHUNK_BLOCKS].iter().enumerate() {
                    if bm > thr {
                        continue;
                    }
                    let block = &sums[b * BLOCK..(b + 1) * BLOCK];
                    let mut hits = 0u64;
                    for (j, &x) in block.iter().enumerate() {
                        hits |= u64::from(x <= thr) << j;
                    }
                    while hits != 0 {
                        let j = hits.trailing_zeros() as usize;
                        hits &= hits - 1;
                        let item = k * CHUNK + b * BLOCK + j;
                        cands.push((block[j], item as u32, item));
                    }
                }
            }
            st.choose(&mut cands, bound);
        }
        st.seq
    }

    /// Requests `lines` cache lines of row `row` from entry `from` on.
    fn prefetch(&self, row: usize, from: usize, lines: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            let r = &self.s[row * self.n..(row + 1) * self.n];
            for i in (from..r.len().min(from + 16 * lines)).step_by(16) {
                // SAFETY: prefetching is a hint that never faults; the address is in `r`.
                unsafe {
                    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                    _mm_prefetch::<_MM_HINT_T0>(r.as_ptr().add(i).cast());
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (row, from, lines);
    }

    /// The helper: in every published step until `quit`, takes chunks of its share upwards
    /// until it finds one taken, then reports how many it published and their least sum.
    fn help(&self) {
        let mut seen = 0u32;
        let mut hinted = 0u64;
        let mut spins = 0u32;
        loop {
            if self.quit.0.load(Ordering::Acquire) {
                return;
            }
            let v = self.step.0.load(Ordering::Acquire);
            let t = (v >> 32) as u32;
            if t == seen {
                let h = self.hint.0.load(Ordering::Relaxed);
                if (h >> 32) as u32 == t.wrapping_add(1) && h != hinted {
                    hinted = h;
                    let from = (self.nc - 1) * CHUNK;
                    self.prefetch((h & 0xffff_ffff) as usize, from, PREFETCH_HEAD);
                }
                backoff(&mut spins);
                continue;
            }
            (seen, spins) = (t, 0);
            let last = (v & 0xffff_ffff) as usize;
            let (mut count, mut m) = (0u64, f64::INFINITY);
            for k in (self.split.0.load(Ordering::Relaxed)..self.nc).rev() {
                // Announce the chunk before claiming it, so a redo sees the announcement.
                self.busy.0.store(busy_tag(t, k), Ordering::Release);
                let c = &self.claims[k].0;
                let v = c.load(Ordering::Acquire);
                let src = set_of(v);
                if v != done(t - 1, src)
                    || c.compare_exchange(v, taken(t, src), Ordering::AcqRel, Ordering::Relaxed)
                        .is_err()
                {
                    break; // the main worker has taken the rest
                }
                #[cfg(test)]
                tests::maybe_stall();
                // SAFETY: chunk k of step t is claimed by the helper; (src, t−1) is published
                // and not overwritten while `busy` names this chunk; only the helper writes
                // the HELPER buffers.
                let cm = unsafe { self.add(t, last, k, src, HELPER, true) };
                let published = c
                    .compare_exchange(
                        taken(t, src),
                        done(t, HELPER),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok();
                if published {
                    m = m.min(cm);
                    count += 1;
                }
            }
            self.busy.0.store(0, Ordering::Release);
            if count > 0 {
                self.report.min.store(m.to_bits(), Ordering::Relaxed);
                self.report
                    .done
                    .store((u64::from(t) << 32) | count, Ordering::Release);
            }
        }
    }
}

/// The main worker's tally of one step: the least sum and number of the chunks it added,
/// and for each chunk the set holding it and the last step it added it.
struct Acc<'a> {
    min: f64,
    count: usize,
    loc: &'a mut [u64],
    mine: &'a mut [u32],
}

/// Spins briefly, then yields the core: a waiting worker must not starve a descheduled one
/// on a busy machine.
fn backoff(spins: &mut u32) {
    if *spins < 1 << 12 {
        *spins += 1;
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{similarity, Budget};
    use std::sync::atomic::AtomicUsize;

    /// Every `STALL_EVERY`-th chunk the helper claims, it sleeps well past `PATIENCE` first
    /// (0: never), as if the operating system had descheduled it.
    static STALL_EVERY: AtomicUsize = AtomicUsize::new(0);
    static CLAIMED: AtomicUsize = AtomicUsize::new(0);

    static REDOS: AtomicUsize = AtomicUsize::new(0);
    static PINNED: AtomicUsize = AtomicUsize::new(0);

    pub(super) fn note_redo(pinned: bool) {
        REDOS.fetch_add(1, Ordering::Relaxed);
        PINNED.fetch_add(usize::from(pinned), Ordering::Relaxed);
    }

    /// Set: the main worker leaves the helper's share to it (until it stalls).
    static NO_STEAL: AtomicBool = AtomicBool::new(false);

    pub(super) fn no_steal() -> bool {
        NO_STEAL.load(Ordering::Relaxed)
    }

    pub(super) fn maybe_stall() {
        let every = STALL_EVERY.load(Ordering::Relaxed);
        if every > 0 && CLAIMED.fetch_add(1, Ordering::Relaxed) % every == every - 1 {
            std::thread::sleep(Duration::from_micros(300));
        }
    }

    fn data(n: usize, d: usize) -> Vec<f32> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let raw: Vec<f32> = (0..n * d)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        crate::normalize(Rows::new(&raw, n, d).unwrap()).unwrap()
    }

    /// Two threads give the one-thread ordering, also when the helper keeps stalling in the
    /// middle of chunks so that the main worker redoes them (and must avoid the chunks the
    /// stalled helper still reads).
    #[test]
    fn two_threads_and_stalls_give_the_same_ordering() {
        let (n, d) = (2100, 16);
        let e = data(n, d);
        let rows = Rows::new(&e, n, d).unwrap();
        let s = similarity(rows, Some(2), Budget::default()).unwrap();
        for start in [0, 777, n - 1] {
            let one = ordering(rows, &s, start, 1);
            let mut seen = vec![false; n];
            one.iter().for_each(|&j| seen[j as usize] = true);
            assert!(seen.iter().all(|&b| b), "a permutation");
            STALL_EVERY.store(0, Ordering::Relaxed);
            assert_eq!(ordering(rows, &s, start, 2), one, "start {start}");
            STALL_EVERY.store(7, Ordering::Relaxed);
            assert_eq!(ordering(rows, &s, start, 2), one, "start {start}, stalls");
            NO_STEAL.store(true, Ordering::Relaxed);
            assert_eq!(
                ordering(rows, &s, start, 2),
                one,
                "start {start}, no steals"
            );
            NO_STEAL.store(false, Ordering::Relaxed);
            STALL_EVERY.store(0, Ordering::Relaxed);
        }
        let (redos, pinned) = (
            REDOS.load(Ordering::Relaxed),
            PINNED.load(Ordering::Relaxed),
        );
        println!("{redos} chunks redone, {pinned} of them from the main worker's buffers");
        assert!(redos > 0, "the stalls made the main worker redo chunks");
    }
}
