//! Bad input is an error value naming the input and the problem, never a panic; a tiny
//! memory budget switches to the on-the-fly paths with identical results.

mod common;

use common::*;
use weft_compute::*;

#[test]
fn normalize_names_the_bad_row() {
    let mut data = vec![1.0f32; 6 * 4];
    data[3 * 4 + 2] = f32::NAN;
    let err = normalize(Rows::new(&data, 6, 4).unwrap()).unwrap_err();
    assert_eq!(err.to_string(), "embeddings: row 3 contains NaN");
    data[3 * 4 + 2] = 1.0;
    data[4 * 4] = f32::NEG_INFINITY;
    let err = normalize(Rows::new(&data, 6, 4).unwrap()).unwrap_err();
    assert_eq!(err.to_string(), "embeddings: row 4 contains Inf");
    data[4 * 4] = 1.0;
    data[5 * 4..].fill(0.0);
    let err = normalize(Rows::new(&data, 6, 4).unwrap()).unwrap_err();
    assert!(matches!(
        err,
        ComputeError::BadRow {
            row: 5,
            problem: RowProblem::Zero
        }
    ));
    assert_eq!(err.to_string(), "embeddings: row 5 is all zeros");
}

#[test]
fn shapes_sizes_and_ranges_are_checked() {
    assert!(Rows::new(&[1.0; 7], 2, 4).is_err());
    assert!(Rows::new(&[], 0, 0).is_err());
    let empty = Rows::new(&[], 0, 4).unwrap();
    assert!(matches!(
        similarity(empty, None, Budget::default()),
        Err(ComputeError::TooFewRows { n: 0, .. })
    ));
    assert!(diversity(empty, None, 0, None, Budget::default()).is_err());
    let one = Rows::new(&[1.0, 0.0], 1, 2).unwrap();
    let err = topk(one, 1, None).unwrap_err();
    assert_eq!(err.to_string(), "embeddings: need at least 2 rows, got 1");
    assert_eq!(
        diversity(one, None, 0, None, Budget::default()).unwrap(),
        vec![0]
    );

    let data = exact_set(20, 8, 3);
    let rows = Rows::new(&data, 20, 8).unwrap();
    for k in [0, 20, 21] {
        let err = topk(rows, k, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("topk: k must be in 1..N-1 (N = 20), got {k}")
        );
    }
    let err = diversity(rows, None, 20, None, Budget::default()).unwrap_err();
    assert_eq!(err.to_string(), "diversity: start 20 is out of range 0..20");
    assert!(diversity_many(rows, &[1, 2, 99], None, Budget::default()).is_err());
    let err = diversity(rows, Some(&[0.0; 10]), 0, None, Budget::default()).unwrap_err();
    assert!(matches!(
        err,
        ComputeError::SimilarityShape {
            len: 10,
            n: 20,
            expected: 400
        }
    ));
    assert!(matches!(
        topk(rows, 3, Some(0)),
        Err(ComputeError::Threads(_))
    ));
    let err = similarity(rows, None, Budget::bytes(100)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the similarity matrix needs 1600 bytes, more than the memory budget of 100 bytes"
    );
    let mut out = vec![7.0f32; 399];
    let err = similarity_into(rows, &mut out, None, Budget::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "similarity matrix: 399 values, expected 20×20 = 400"
    );
    let mut out = vec![7.0f32; 400];
    let err = similarity_into(rows, &mut out, None, Budget::bytes(100)).unwrap_err();
    assert!(matches!(err, ComputeError::OverBudget { needed: 1600, .. }));
    assert!(out.iter().all(|&x| x == 7.0), "untouched on error");
    let mut nan = data.clone();
    nan[9 * 8 + 1] = f32::NAN;
    let bad = Rows::new(&nan, 20, 8).unwrap();
    assert_eq!(
        topk(bad, 3, None).unwrap_err().to_string(),
        "embeddings: row 9 contains NaN"
    );
    assert!(diversity(bad, None, 0, None, Budget::default()).is_err());
}

#[test]
fn a_tiny_budget_gives_the_same_results() {
    let (n, d) = (150, 24);
    let mut rng = Rng(99);
    let raw: Vec<f32> = (0..n * d)
        .map(|_| (rng.below(2001) as f32 - 1000.0) / 997.0)
        .collect();
    let e = normalize(Rows::new(&raw, n, d).unwrap()).unwrap();
    let rows = Rows::new(&e, n, d).unwrap();
    let tiny = Budget::bytes(64);
    let starts: Vec<usize> = (0..n).step_by(7).collect();
    let big = diversity_many(rows, &starts, Some(2), Budget::default()).unwrap();
    let small = diversity_many(rows, &starts, Some(2), tiny).unwrap();
    assert_eq!(big, small);
    assert!(!Orderings::new(rows, Some(1), tiny).unwrap().in_memory());
    for (i, &s) in starts.iter().enumerate() {
        assert_eq!(diversity(rows, None, s, Some(1), tiny).unwrap(), big[i]);
        assert_eq!(
            diversity(rows, None, s, Some(2), Budget::default()).unwrap(),
            big[i]
        );
    }
    let s64 = sim64(&normalize64(&raw, n, d), n, d);
    for seq in &big {
        assert!(replay_excess(&s64, n, seq) <= 1e-7);
    }
}

#[test]
fn no_starts_give_no_orderings_but_bad_input_is_still_refused() {
    let data: Vec<f32> = (0..40).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
    let rows = Rows::new(&data, 10, 4).unwrap();
    assert!(diversity_many(rows, &[], Some(1), Budget::default())
        .unwrap()
        .is_empty());
    let prefixes = diversity_prefixes(rows, None, &[], 3, Some(1), Budget::default());
    assert!(prefixes.unwrap().is_empty());
    let mut bad = data.clone();
    bad[5] = f32::NAN;
    let bad = Rows::new(&bad, 10, 4).unwrap();
    let err = diversity_prefixes(bad, None, &[], 3, Some(1), Budget::default()).unwrap_err();
    assert_eq!(err.to_string(), "embeddings: row 1 contains NaN");
    let short_s = [0.0f32; 99];
    assert!(matches!(
        diversity_prefixes(rows, Some(&short_s), &[], 3, Some(1), Budget::default()),
        Err(ComputeError::SimilarityShape { len: 99, n: 10, .. })
    ));
    assert!(matches!(
        diversity_many(rows, &[10], Some(1), Budget::default()),
        Err(ComputeError::StartOutOfRange { start: 10, n: 10 })
    ));
}
