//! Similarity and top-k on the GPU (lavapipe in CI) against the CPU engine and the float64
//! reference: the exact 0/±0.5 set with ties, real embeddings, the blocked path forced by
//! a small binding cap, and bad input.

mod common;

#[path = "../../weft-compute/tests/reference/mod.rs"]
mod reference;

use reference::{exact_set, normalize64, sim64, topk64};
use weft_compute::{normalize, Budget, Rows};
use weft_gpu::{similarity, similarity_into, topk, Gpu, GpuError, GpuOptions};

/// The first `n` rows of examples/data/emb.npy (fortunes, d = 384), normalised.
fn fortunes(n: usize) -> (Vec<f32>, usize) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/emb.npy");
    let a = weft_npy::load(&path)
        .unwrap_or_else(|e| panic!("{e}"))
        .array;
    let d = a.row_len();
    // SAFETY: nothing else holds the freshly loaded array, so nothing writes it.
    let all = unsafe { a.as_slice::<f32>() }.expect("an f32 array");
    (
        normalize(Rows::new(&all[..n * d], n, d).unwrap()).unwrap(),
        d,
    )
}

/// GPU similarity and top-k equal the CPU engine's exactly on `e` (`n × d`).
fn same_as_cpu(g: &Gpu, e: &[f32], n: usize, d: usize, ks: &[usize]) {
    let rows = Rows::new(e, n, d).unwrap();
    let cpu = weft_compute::similarity(rows, None, Budget::default()).unwrap();
    let gpu = similarity(g, rows, Budget::default()).unwrap();
    let differ = cpu
        .iter()
        .zip(&gpu)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    // The contract is 2e-6 of float64 (checked by the callers); equal bits show the
    // kernel's FMA chain is the CPU's on this adapter.
    eprintln!(
        "{n}×{d}: {differ} of {} similarity entries differ in bits from the CPU engine",
        n * n
    );
    for &k in ks {
        let want = weft_compute::topk(rows, k, None).unwrap();
        let got = topk(g, rows, k, Some(2)).unwrap();
        assert_eq!(got.ids, want.ids, "top-k ids, n = {n}, k = {k}");
        assert!(
            got.scores
                .iter()
                .zip(&want.scores)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "top-k scores, k = {k}"
        );
    }
}

#[test]
fn exact_set_with_ties_equals_the_reference() {
    let Some(g) = common::gpu() else { return };
    let (n, d) = (203, 20);
    let e = exact_set(n, d, 7);
    let s64 = sim64(&normalize64(&e, n, d), n, d);
    let want: Vec<f32> = s64.iter().map(|&x| x as f32).collect();
    let s = similarity(&g, Rows::new(&e, n, d).unwrap(), Budget::default()).unwrap();
    assert_eq!(s, want);
    let mut out = vec![f32::NAN; n * n];
    similarity_into(
        &g,
        Rows::new(&e, n, d).unwrap(),
        &mut out,
        Budget::default(),
    )
    .unwrap();
    assert_eq!(out, want);
    for k in [1, 7, 64, n - 1] {
        let got = topk(&g, Rows::new(&e, n, d).unwrap(), k, None).unwrap();
        for q in 0..n {
            assert_eq!(
                &got.ids[q * k..(q + 1) * k],
                &topk64(&s64[q * n..(q + 1) * n], q, k)[..],
                "k={k} q={q}"
            );
        }
    }
    same_as_cpu(&g, &e, n, d, &[1, 7, n - 1]);
}

#[test]
fn fortunes_subset_within_bounds_and_topk_identical() {
    let Some(g) = common::gpu() else { return };
    let n = 600;
    let (e, d) = fortunes(n);
    let s64 = sim64(&normalize64(&e, n, d), n, d);
    let s = similarity(&g, Rows::new(&e, n, d).unwrap(), Budget::default()).unwrap();
    let worst = s
        .iter()
        .zip(&s64)
        .map(|(&a, &b)| (a as f64 - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 2e-6, "similarity off float64 by {worst:e}");
    same_as_cpu(&g, &e, n, d, &[1, 10, 100]);
}

/// A 16 KiB binding cap: the embeddings in 3 parts and S in blocks of 4 rows.
#[test]
fn blocked_path_gives_the_same_answers() {
    let Some(g) = common::gpu_with(&GpuOptions {
        max_binding: Some(16 << 10),
    }) else {
        return;
    };
    let (n, d) = (1000, 12);
    let e = exact_set(n, d, 11);
    let want: Vec<f32> = sim64(&normalize64(&e, n, d), n, d)
        .iter()
        .map(|&x| x as f32)
        .collect();
    let s = similarity(&g, Rows::new(&e, n, d).unwrap(), Budget::default()).unwrap();
    assert!(s == want, "blocked similarity differs from float64");
    same_as_cpu(&g, &e, n, d, &[5, 50]);
    let (f, fd) = fortunes(300);
    let g2 = common::gpu_with(&GpuOptions {
        max_binding: Some(64 << 10),
    })
    .unwrap();
    same_as_cpu(&g2, &f, 300, fd, &[3]);
}

#[test]
fn bad_input_is_a_clear_error() {
    let Some(g) = common::gpu() else { return };
    let mut e = exact_set(16, 4, 3);
    let rows = Rows::new(&e, 16, 4).unwrap();
    let msg = |r: Result<weft_compute::TopK, GpuError>| r.unwrap_err().to_string();
    assert_eq!(
        msg(topk(&g, rows, 0, None)),
        "topk: k must be in 1..N-1 (N = 16), got 0"
    );
    assert_eq!(
        msg(topk(&g, rows, 16, None)),
        "topk: k must be in 1..N-1 (N = 16), got 16"
    );
    let mut short = vec![0.0; 99];
    let err = similarity_into(&g, rows, &mut short, Budget::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected 16×16 = 256"), "{err}");
    let err = similarity(&g, rows, Budget::bytes(100))
        .unwrap_err()
        .to_string();
    assert!(err.contains("similarity matrix"), "{err}");
    e[2 * 4 + 1] = f32::NAN;
    let err = msg(topk(&g, Rows::new(&e, 16, 4).unwrap(), 3, None));
    assert!(err.contains("row 2") && err.contains("NaN"), "{err}");
    let err = msg(topk(&g, Rows::new(&e[..4], 1, 4).unwrap(), 1, None));
    assert!(err.contains("at least 2 rows"), "{err}");
    // A binding smaller than one row: the limit named, no crash.
    let tiny = common::gpu_with(&GpuOptions {
        max_binding: Some(8),
    })
    .unwrap();
    let err = similarity(
        &tiny,
        Rows::new(&exact_set(16, 4, 3), 16, 4).unwrap(),
        Budget::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("limits too small") && err.contains("8 bytes"),
        "{err}"
    );
}
