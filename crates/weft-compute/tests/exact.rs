//! Exact-arithmetic data (entries 0 and ±0.5): every result must equal the f64 reference.

mod common;

use common::*;
use weft_compute::*;

const N: usize = 203;
const D: usize = 20;

fn setup() -> (Vec<f32>, Vec<f64>) {
    let raw = exact_set(N, D, 7);
    let e = normalize(Rows::new(&raw, N, D).unwrap()).unwrap();
    assert_eq!(e, raw, "unit rows of ±0.5 normalise to themselves");
    let s64 = sim64(&normalize64(&raw, N, D), N, D);
    (e, s64)
}

#[test]
fn similarity_is_exact_and_symmetric() {
    let (e, s64) = setup();
    for threads in [1, 2, 3] {
        let s = similarity(
            Rows::new(&e, N, D).unwrap(),
            Some(threads),
            Budget::default(),
        )
        .unwrap();
        let want: Vec<f32> = s64.iter().map(|&x| x as f32).collect();
        assert_eq!(s, want, "threads = {threads}");
        // Into a caller's buffer: every value is overwritten with the same bits.
        let mut out = vec![f32::NAN; N * N];
        similarity_into(
            Rows::new(&e, N, D).unwrap(),
            &mut out,
            Some(threads),
            Budget::default(),
        )
        .unwrap();
        assert_eq!(out, want, "similarity_into, threads = {threads}");
    }
}

/// Several 384-wide tiles with ragged edges: the mirrored (transposed) writes are exact too.
#[test]
fn similarity_is_exact_across_tiles() {
    let (n, d) = (1000, 12);
    let e = exact_set(n, d, 11);
    let want: Vec<f32> = sim64(&normalize64(&e, n, d), n, d)
        .iter()
        .map(|&x| x as f32)
        .collect();
    let rows = Rows::new(&e, n, d).unwrap();
    for threads in [1, 2] {
        let s = similarity(rows, Some(threads), Budget::default()).unwrap();
        assert!(s == want, "similarity, threads = {threads}");
        let mut out = vec![f32::NAN; n * n];
        similarity_into(rows, &mut out, Some(threads), Budget::default()).unwrap();
        assert!(out == want, "similarity_into, threads = {threads}");
    }
}

#[test]
fn topk_equals_reference_exactly() {
    let (e, s64) = setup();
    let rows = Rows::new(&e, N, D).unwrap();
    for k in [1, 7, 64, N - 1] {
        for threads in [1, 2] {
            let got = topk(rows, k, Some(threads)).unwrap();
            for q in 0..N {
                let want = topk64(&s64[q * N..(q + 1) * N], q, k);
                assert_eq!(&got.ids[q * k..(q + 1) * k], &want[..], "k={k} q={q}");
                for (p, &j) in want.iter().enumerate() {
                    assert_eq!(got.scores[q * k + p] as f64, s64[q * N + j as usize]);
                }
            }
        }
    }
}

#[test]
fn every_ordering_equals_reference_on_every_path() {
    let (e, s64) = setup();
    let rows = Rows::new(&e, N, D).unwrap();
    let starts: Vec<usize> = (0..N).collect();
    let want: Vec<Vec<u32>> = starts.iter().map(|&s| ordering64(&s64, N, s)).collect();
    // The antipodal pair: from row 3, row 4 comes second and the centroid is then zero.
    assert_eq!(want[3][1], 4);
    let compact = diversity_many(rows, &starts, Some(2), Budget::default()).unwrap();
    let direct = diversity_many(rows, &starts, Some(2), Budget::bytes(0)).unwrap();
    let s = similarity(rows, Some(1), Budget::default()).unwrap();
    for &st in &starts {
        assert_eq!(compact[st], want[st], "compact S, start {st}");
        assert_eq!(direct[st], want[st], "no S, start {st}");
        let one = diversity(rows, Some(&s), st, Some(1), Budget::default()).unwrap();
        assert_eq!(one, want[st], "f32 S, start {st}");
    }
}

/// Orderings over the compact copy run in lockstep groups (`diversity_many`) and alone
/// (`diversity` with a budget that holds the i16 copy but not f32 S): both equal the f64
/// reference on exact data with ties and duplicates, at sizes on either side of a 32-item
/// line and of the 128 items above which the copy is rebuilt in a learned order, with one
/// and two workers (groups of different sizes and boundaries).
#[test]
fn lockstep_groups_equal_lone_orderings_at_line_edges() {
    let d = 12;
    for n in [17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 161] {
        let mut raw = exact_set(n, d, 11 + n as u64);
        // Many equal scores: the last third of the rows repeat the first few.
        for i in 2 * n / 3..n {
            let src = i % 5;
            raw.copy_within(src * d..(src + 1) * d, i * d);
        }
        let s64 = sim64(&normalize64(&raw, n, d), n, d);
        let rows = Rows::new(&raw, n, d).unwrap();
        let starts: Vec<usize> = (0..n).collect();
        // Room for the i16 copy (n rounded up to whole lines of 32), none for f32 S.
        let compact_only = Budget::bytes((n * n.div_ceil(32) * 32 * 2) as u64);
        let one_worker = diversity_many(rows, &starts, Some(1), compact_only).unwrap();
        let two_workers = diversity_many(rows, &starts, Some(2), compact_only).unwrap();
        for &st in &starts {
            let want = ordering64(&s64, n, st);
            assert_eq!(one_worker[st], want, "n = {n}, start {st}, 1 worker");
            assert_eq!(two_workers[st], want, "n = {n}, start {st}, 2 workers");
            let alone = diversity(rows, None, st, Some(2), compact_only).unwrap();
            assert_eq!(alone, want, "n = {n}, start {st}, alone");
        }
    }
}

/// Over the caller's f32 S the sums run in chunks of 512 with block and chunk minima: a set
/// spanning several chunks (the last one partial) gives the reference orderings exactly.
#[test]
fn orderings_over_f32_s_span_chunks() {
    let (n, d) = (1300, 12);
    let e = exact_set(n, d, 5);
    let s64 = sim64(&normalize64(&e, n, d), n, d);
    let rows = Rows::new(&e, n, d).unwrap();
    let s = similarity(rows, None, Budget::default()).unwrap();
    for start in [0, 3, 700, n - 1] {
        let want = ordering64(&s64, n, start);
        for threads in [1, 2] {
            let got = diversity(rows, Some(&s), start, Some(threads), Budget::default()).unwrap();
            assert_eq!(got, want, "start {start}, threads {threads}");
        }
    }
}

/// Prefixes are exactly the beginnings of the full orderings, on every path: S given, S
/// computed, and S too big for the budget (compact copy, or none at all).
#[test]
fn prefixes_are_the_beginnings_of_the_orderings() {
    let (e, _) = setup();
    let rows = Rows::new(&e, N, D).unwrap();
    let starts: Vec<usize> = (0..N).step_by(7).collect();
    let full = diversity_many(rows, &starts, Some(2), Budget::default()).unwrap();
    let s = similarity(rows, Some(2), Budget::default()).unwrap();
    for len in [1, 2, 20, N, N + 5] {
        let cut = |seqs: &[Vec<u32>]| -> Vec<Vec<u32>> {
            seqs.iter().map(|q| q[..len.min(N)].to_vec()).collect()
        };
        let want = cut(&full);
        let given = diversity_prefixes(rows, Some(&s), &starts, len, Some(2), Budget::default());
        assert_eq!(given.unwrap(), want, "S given, len {len}");
        let computed = diversity_prefixes(rows, None, &starts, len, Some(1), Budget::default());
        assert_eq!(computed.unwrap(), want, "S computed, len {len}");
        let compact = diversity_prefixes(rows, None, &starts, len, Some(2), Budget::bytes(100_000));
        assert_eq!(compact.unwrap(), want, "compact copy of S, len {len}");
        let direct = diversity_prefixes(rows, None, &starts, len, Some(2), Budget::bytes(64));
        assert_eq!(direct.unwrap(), want, "no S at all, len {len}");
    }
    let bad = diversity_prefixes(rows, Some(&s[1..]), &starts, 3, None, Budget::default());
    assert!(matches!(bad, Err(ComputeError::SimilarityShape { .. })));
    let out_of_range = diversity_prefixes(rows, None, &[N], 3, None, Budget::default());
    assert!(matches!(
        out_of_range,
        Err(ComputeError::StartOutOfRange { .. })
    ));
}
