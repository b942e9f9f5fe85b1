//! One ordering over an f32 S with its columns split across threads: each thread adds its
//! share of every row into its own f64 sums (half the bytes per core, sums that stay in L1),
//! lists its candidates, and thread 0 makes the pick with [`crate::rule`]. Two spin
//! hand-offs a step; the result is the same as the one-thread ordering.

use crate::orderings::State;
use crate::rows::Rows;
use crate::rule::{entry_bound_f32, rule_slack};
use crate::sums::{self, BLOCK};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Candidates one thread lists for a step: its minimum sum and (sum, item, item).
type List = (f64, Vec<(f64, u32, usize)>);

/// The ordering from `start` over `s` (n×n), using `threads` ≥ 2 threads.
pub(crate) fn ordering(e: Rows<'_>, s: &[f32], start: usize, threads: usize) -> Vec<u32> {
    let n = e.n();
    let d = e.d();
    let per = n.div_ceil(threads).div_ceil(BLOCK) * BLOCK;
    let ranges: Vec<(usize, usize)> = (0..threads)
        .map(|k| ((k * per).min(n), ((k + 1) * per).min(n)))
        .collect();
    let lists: Vec<Mutex<List>> = (0..threads)
        .map(|_| Mutex::new((0.0, Vec::new())))
        .collect();
    let ready: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
    // (step << 32) | item, published by thread 0 once the step's pick is made.
    let pick = AtomicU64::new(start as u64);
    let beta = entry_bound_f32(d);
    let work = |k: usize, mut st: Option<&mut State<'_>>| {
        let (lo, hi) = ranges[k];
        let mut sums = vec![0.0f64; hi - lo];
        let mut mins = vec![0.0f64; sums::blocks(hi - lo)];
        let mut last = start;
        for t in 1..n {
            if (lo..hi).contains(&last) {
                sums[last - lo] = f64::INFINITY;
            }
            sums::add_f32(&mut sums, &s[last * n + lo..last * n + hi], &mut mins);
            let gmin = mins.iter().fold(f64::INFINITY, |a, &b| a.min(b));
            let bound = t as f64 * beta + rule_slack(t, d);
            let thr = gmin + 2.0 * bound;
            {
                let mut l = lists[k].lock().unwrap_or_else(|e| e.into_inner());
                l.0 = gmin;
                l.1.clear();
                for (b, _) in mins.iter().enumerate().filter(|(_, &m)| m <= thr) {
                    for (j, &x) in sums.iter().enumerate().skip(b * BLOCK).take(BLOCK) {
                        if x <= thr {
                            l.1.push((x, (lo + j) as u32, lo + j));
                        }
                    }
                }
            }
            ready[k].store(t, Ordering::Release);
            if let Some(st) = st.as_deref_mut() {
                let mut all = Vec::new();
                let mut g = f64::INFINITY;
                for (r, l) in ready.iter().zip(&lists) {
                    spin_until(|| r.load(Ordering::Acquire) == t);
                    let l = l.lock().unwrap_or_else(|e| e.into_inner());
                    g = g.min(l.0);
                    all.extend_from_slice(&l.1);
                }
                let thr = g + 2.0 * bound;
                all.retain(|c| c.0 <= thr);
                let (j, _) = st.choose(&mut all, bound);
                pick.store(((t as u64) << 32) | j as u64, Ordering::Release);
                last = j;
            } else {
                let mut v = 0;
                spin_until(|| {
                    v = pick.load(Ordering::Acquire);
                    v >> 32 == t as u64
                });
                last = (v & 0xffff_ffff) as usize;
            }
        }
    };
    let mut st = State::new(e, start);
    std::thread::scope(|sc| {
        for k in 1..threads {
            let work = &work;
            sc.spawn(move || work(k, None));
        }
        work(0, Some(&mut st));
    });
    st.seq
}

/// Spins (then yields, on a busy machine) until `done` returns true.
fn spin_until(mut done: impl FnMut() -> bool) {
    let mut spins = 0u32;
    while !done() {
        spins += 1;
        if spins < 2000 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}
