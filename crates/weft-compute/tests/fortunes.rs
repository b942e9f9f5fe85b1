//! Real data (examples/data/emb.npy, 2,000 × 384 fortunes embeddings; `WEFT_TEST_EMB=PATH`
//! for another file) against the f64 reference. Heavy: these run with
//! `cargo test --release -p weft-compute` and are skipped in debug builds.

mod common;

use common::*;
use std::sync::OnceLock;
use weft_compute::*;

struct Data {
    e: Vec<f32>,
    s64: Vec<f64>,
    n: usize,
    d: usize,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let (raw, n, d) = fortunes();
        let e = normalize(Rows::new(&raw, n, d).unwrap()).unwrap();
        let s64 = sim64(&normalize64(&raw, n, d), n, d);
        Data { e, s64, n, d }
    })
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run with --release")]
fn topk_matches_reference_up_to_near_tie_swaps() {
    let Data { e, s64, n, d } = data();
    let (n, d) = (*n, *d);
    let k = 10;
    let got = topk(Rows::new(e, n, d).unwrap(), k, None).unwrap();
    let mut swaps = 0;
    for q in 0..n {
        let want = topk64(&s64[q * n..(q + 1) * n], q, k);
        for (p, &w) in want.iter().enumerate() {
            let (g, w) = (got.ids[q * k + p] as usize, w as usize);
            if g != w {
                let gap = (s64[q * n + g] - s64[q * n + w]).abs();
                assert!(
                    gap < 1e-6,
                    "item {q} rank {p}: got {g}, want {w}, f64 gap {gap:e}"
                );
                swaps += 1;
            }
        }
    }
    println!("top-{k} of {n} items: {swaps} positions differ by a near-tie swap (< 1e-6)");
    assert!(swaps <= n * k / 1000, "{swaps} near-tie swaps is too many");
}

#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run with --release")]
fn orderings_pick_the_f64_minimum_within_1e7() {
    let Data { e, s64, n, d } = data();
    let (n, d) = (*n, *d);
    let rows = Rows::new(e, n, d).unwrap();
    // spread over the set whatever its size
    let starts = [0, 1, 17, n / 7, n / 3, n / 2, 5 * n / 7, n - 1];
    let seqs = diversity_many(rows, &starts, None, Budget::default()).unwrap();
    let s = similarity(rows, None, Budget::default()).unwrap();
    for (i, &st) in starts.iter().enumerate() {
        let worst = replay_excess(s64, n, &seqs[i]);
        println!("start {st}: worst excess over the f64 minimum {worst:e}");
        assert!(
            worst <= 1e-7,
            "start {st}: a pick is {worst:e} above the f64 minimum"
        );
        let one = diversity(rows, Some(&s), st, None, Budget::default()).unwrap();
        assert_eq!(
            one, seqs[i],
            "f32-S and compact-S paths agree from start {st}"
        );
    }
}

/// The cache's engine on real data: 34 orderings run as lockstep groups (16, 16 and 2 over
/// two workers, as a cache batch runs them) equal the same orderings computed one at a time
/// over f32 S, a path that shares neither the i16 copy nor the grouping.
#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run with --release")]
fn grouped_orderings_equal_lone_ones_over_f32_s() {
    let Data { e, n, d, .. } = data();
    let (n, d) = (*n, *d);
    let rows = Rows::new(e, n, d).unwrap();
    let starts: Vec<usize> = (0..34).map(|i| i * n / 34).collect();
    let engine = Orderings::new(rows, Some(2), Budget::default()).unwrap();
    assert!(engine.in_memory());
    let grouped = engine.run(&starts).unwrap();
    assert!(engine.s_bytes_read() > 0);
    let s = similarity(rows, None, Budget::default()).unwrap();
    for (i, &st) in starts.iter().enumerate() {
        let one = diversity(rows, Some(&s), st, Some(1), Budget::default()).unwrap();
        assert_eq!(grouped[i], one, "start {st}");
    }
}

/// Shared tails on real data: run in the cache's batches, most of the 2,000 orderings reach
/// a state an earlier one passed through and take the rest of its picks; every ordering
/// equals the one an engine without shared tails (its budget holds the compact copy only)
/// computes in full. So does every ordering of an engine whose budget keeps only the first
/// ~150 finished orderings (2 MB of the 26 MB all of them take): once full it records no
/// more states, but later walks still take the tails of the kept ones.
#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run with --release")]
fn shared_tails_change_no_ordering() {
    let Data { e, n, d, .. } = data();
    let (n, d) = (*n, *d);
    let rows = Rows::new(e, n, d).unwrap();
    let s_bytes = Orderings::s_bytes(n);
    let plain = Orderings::new(rows, Some(2), Budget::bytes(s_bytes)).unwrap();
    let shared = Orderings::new(rows, Some(2), Budget::default()).unwrap();
    let bounded = Orderings::new(rows, Some(2), Budget::bytes(s_bytes + (2 << 20))).unwrap();
    assert!(plain.in_memory() && shared.in_memory() && bounded.in_memory());
    let starts: Vec<usize> = (0..n).collect();
    for batch in starts.chunks(weft_compute::cache::BATCH) {
        let want = plain.run(batch).unwrap();
        assert_eq!(shared.run(batch).unwrap(), want, "starts {}..", batch[0]);
        assert_eq!(
            bounded.run(batch).unwrap(),
            want,
            "bounded, starts {}..",
            batch[0]
        );
    }
    assert_eq!(plain.followed(), (0, 0));
    for (name, engine) in [("all kept", &shared), ("2 MB kept", &bounded)] {
        let (followed, saved) = engine.followed();
        println!(
            "{name}: {followed} of {n} orderings took another's picks; {saved} picks not computed"
        );
        assert!(
            followed as usize > n / 2,
            "{name}: only {followed} orderings followed another"
        );
        assert!(
            saved as usize > n * n / 4,
            "{name}: only {saved} picks saved"
        );
    }
    let (all, bounded) = (shared.followed().1, bounded.followed().1);
    assert!(
        bounded < all,
        "the bound kept fewer leaders: {bounded} vs {all} picks saved"
    );
}
