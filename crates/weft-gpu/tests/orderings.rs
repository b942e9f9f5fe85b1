//! Diversity orderings and the cache on the GPU (lavapipe in CI) against the CPU engine: equal
//! orderings on exact data with ties and on real embeddings, on every path (S in one binding,
//! S split across bindings, no S), caches resumed across devices byte for byte, bad input.
//! Without an adapter these tests print why and pass, unless WEFT_REQUIRE_GPU=1 (make test).

mod common;

#[path = "../../weft-compute/tests/reference/mod.rs"]
mod reference;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use weft_compute::{normalize, Budget, CacheWriter, Rows};
use weft_gpu::{Gpu, GpuError, GpuOptions, GpuOrderings, OrderOptions};

/// The GPU with each storage binding capped at `max_binding` bytes, or `None` (skip, with the
/// reason printed) when there is no adapter and WEFT_REQUIRE_GPU is not 1.
fn gpu(max_binding: Option<u64>) -> Option<Gpu> {
    common::gpu_with(&GpuOptions { max_binding })
}

fn cpu_orderings(e: &[f32], n: usize, d: usize, starts: &[usize]) -> Vec<Vec<u32>> {
    let rows = Rows::new(e, n, d).unwrap();
    weft_compute::diversity_many(rows, starts, Some(2), Budget::default()).unwrap()
}

/// The exact 0/±0.5 set (antipodal pairs, many tied scores): every ordering equals the f64
/// reference and the CPU engine's with S in one binding, in four blocks, and without S.
#[test]
fn exact_set_orderings_equal_the_reference_on_every_path() {
    let (n, d) = (203, 20);
    let e = reference::exact_set(n, d, 7);
    let s64 = reference::sim64(&reference::normalize64(&e, n, d), n, d);
    let starts: Vec<usize> = (0..n).collect();
    let want: Vec<Vec<u32>> = starts
        .iter()
        .map(|&s| reference::ordering64(&s64, n, s))
        .collect();
    assert_eq!(want, cpu_orderings(&e, n, d, &starts));
    let rows = Rows::new(&e, n, d).unwrap();
    let Some(g) = gpu(None) else { return };
    let one = GpuOrderings::new(&g, rows, &OrderOptions::default()).unwrap();
    assert!(one.s_on_device() && one.s_in_f64() == g.has_f64());
    assert_eq!(one.run(&starts).unwrap(), want, "S in one binding");
    // 60 rows of S per binding: four blocks; batches of 50 orderings; S from f32 products.
    let Some(small) = gpu(Some(60 * n as u64 * 4)) else {
        return;
    };
    let split = GpuOrderings::new(
        &small,
        rows,
        &OrderOptions {
            batch: Some(50),
            s_limit: None,
            f32_only: true,
        },
    )
    .unwrap();
    assert!(split.s_on_device() && split.batch_size() == 50 && !split.s_in_f64());
    assert_eq!(split.run(&starts).unwrap(), want, "S in four blocks");
    // 50 rows a binding would need five blocks: more than the shader has, so no S.
    let Some(tiny) = gpu(Some(50 * n as u64 * 4)) else {
        return;
    };
    let from_e = GpuOrderings::new(&tiny, rows, &OrderOptions::default()).unwrap();
    assert!(!from_e.s_on_device());
    let some: Vec<usize> = (0..n).step_by(9).collect();
    let got = from_e.run(&some).unwrap();
    for (s, seq) in some.iter().zip(&got) {
        assert_eq!(seq, &want[*s], "no S, start {s}");
    }
}

/// A subset of the real embeddings (examples/data/emb.npy): equal to the CPU engine's.
#[test]
fn real_embeddings_orderings_equal_the_cpu_engine() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/emb.npy");
    let a = weft_npy::load(&path).unwrap().array;
    let d = a.row_len();
    // SAFETY: nothing else holds the freshly loaded array, so nothing writes it.
    let all = unsafe { a.as_slice::<f32>() }.unwrap();
    let n = 600;
    let e = normalize(Rows::new(&all[..n * d], n, d).unwrap()).unwrap();
    let starts: Vec<usize> = (0..n).step_by(7).collect();
    let want = cpu_orderings(&e, n, d, &starts);
    let Some(g) = gpu(None) else { return };
    let rows = Rows::new(&e, n, d).unwrap();
    // S from f64 products where the adapter has f64 (lavapipe has), and from f32 products.
    let o = GpuOrderings::new(&g, rows, &OrderOptions::default()).unwrap();
    assert_eq!(o.run(&starts).unwrap(), want);
    // Every full ordering's adds read the unchosen entries of n − 1 rows of S (i32).
    let per_ordering = 4 * (n as u64 - 1) * n as u64 / 2;
    assert_eq!(o.s_bytes_read(), starts.len() as u64 * per_ordering);
    if o.s_in_f64() {
        // The narrow f64 band: nearly every step's shortlist is one item, taken on the
        // device, so far fewer submissions (host round trips) than the n − 1 steps.
        assert!(
            o.submissions() < (n as u64 - 1) / 4,
            "{} submissions",
            o.submissions()
        );
    }
    assert_eq!(weft_gpu::diversity_many(&g, rows, &starts).unwrap(), want);
    let f32_only = OrderOptions {
        f32_only: true,
        ..OrderOptions::default()
    };
    let o32 = GpuOrderings::new(&g, rows, &f32_only).unwrap();
    assert!(o32.s_on_device() && !o32.s_in_f64());
    assert_eq!(o32.run(&starts).unwrap(), want, "S from f32 products");
    assert_eq!(
        weft_gpu::diversity(&g, rows, 5).unwrap(),
        cpu_orderings(&e, n, d, &[5])[0]
    );
    let cpu = weft_compute::diversity_prefixes(rows, None, &starts, 40, Some(2), Budget::default());
    let prefixes = weft_gpu::diversity_prefixes(&g, rows, &starts, 40).unwrap();
    assert_eq!(prefixes, cpu.unwrap());
    assert!(prefixes.iter().zip(&want).all(|(p, w)| p[..] == w[..40]));
    // Forced without S (a zero S limit): the same orderings, a few of them (O(n·d) a step).
    let from_e = GpuOrderings::new(
        &g,
        rows,
        &OrderOptions {
            batch: None,
            s_limit: Some(0),
            f32_only: false,
        },
    )
    .unwrap();
    assert!(!from_e.s_on_device());
    assert_eq!(from_e.run(&starts[..3]).unwrap(), want[..3]);
    assert_eq!(from_e.s_bytes_read(), 0, "no S on the device, none read");
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("weft-gpu-{}-{name}.cache", std::process::id()))
}

/// Fills a cache on `first` until `stop_after` orderings are committed, then resumes it on
/// `second` to the end; returns the file's bytes.
fn split_run(raw: &[f32], n: usize, d: usize, path: &Path, g: &Gpu, gpu_first: bool) -> Vec<u8> {
    let emb = Rows::new(raw, n, d).unwrap();
    let options = OrderOptions {
        batch: Some(40),
        s_limit: None,
        f32_only: false,
    };
    let cancel = AtomicBool::new(false);
    let mut w = CacheWriter::create(path, emb, true).unwrap();
    // Stop after the first committed batch (40 on the GPU, 32 on the CPU).
    let mut stop = |p: weft_compute::Progress| {
        assert!(p.done > 0 && p.done < n);
        cancel.store(true, Ordering::Relaxed);
    };
    let info = if gpu_first {
        weft_gpu::fill_cache(g, &mut w, &options, &mut stop, &cancel).unwrap()
    } else {
        w.run(Some(2), &mut stop, &cancel).unwrap()
    };
    assert_eq!(info.done, if gpu_first { 40 } else { 32 });
    drop(w);
    let mut w = CacheWriter::resume(path, emb).unwrap();
    let never = AtomicBool::new(false);
    let mut seen = Vec::new();
    let info = if gpu_first {
        w.run(Some(2), &mut |p| seen.push(p.done), &never).unwrap()
    } else {
        weft_gpu::fill_cache(g, &mut w, &options, &mut |p| seen.push(p.done), &never).unwrap()
    };
    assert!(info.complete && info.done == n);
    assert_eq!(seen.last(), Some(&n), "progress reaches n");
    drop(w);
    std::fs::read(path).unwrap()
}

/// A cache started on the GPU and finished on the CPU, and the reverse, are byte-identical
/// to one filled on the CPU alone and to one filled on the GPU alone.
#[test]
fn caches_resume_across_devices_byte_identical() {
    let (n, d) = (150, 24);
    let raw = reference::random_set(n, d, 5);
    let emb = Rows::new(&raw, n, d).unwrap();
    let cpu_path = temp("cpu");
    let mut w = CacheWriter::create(&cpu_path, emb, true).unwrap();
    w.run(Some(2), &mut |_| {}, &AtomicBool::new(false))
        .unwrap();
    drop(w);
    let cpu = std::fs::read(&cpu_path).unwrap();
    std::fs::remove_file(&cpu_path).unwrap();
    let Some(g) = gpu(None) else { return };
    let gpu_path = temp("gpu");
    let mut w = CacheWriter::create(&gpu_path, emb, true).unwrap();
    let opts = OrderOptions::default();
    let info =
        weft_gpu::fill_cache(&g, &mut w, &opts, &mut |_| {}, &AtomicBool::new(false)).unwrap();
    assert!(info.complete);
    drop(w);
    assert!(std::fs::read(&gpu_path).unwrap() == cpu, "GPU alone");
    std::fs::remove_file(&gpu_path).unwrap();
    for gpu_first in [true, false] {
        let path = temp(if gpu_first { "g2c" } else { "c2g" });
        let bytes = split_run(&raw, n, d, &path, &g, gpu_first);
        assert!(bytes == cpu, "gpu first: {gpu_first}");
        std::fs::remove_file(&path).unwrap();
    }
}

/// Bad input is one clear error, never a panic: a NaN row, a start out of range, a binding
/// too small for one ordering's sums.
#[test]
fn bad_input_is_a_clear_error() {
    let Some(g) = gpu(None) else { return };
    let (n, d) = (16, 4);
    let mut e = reference::exact_set(n, d, 3);
    let rows = Rows::new(&e, n, d).unwrap();
    let o = GpuOrderings::new(&g, rows, &OrderOptions::default()).unwrap();
    let err = o.run(&[0, 16]).unwrap_err().to_string();
    assert!(err.contains("start 16 is out of range 0..16"), "{err}");
    e[5] = f32::NAN;
    let err = weft_gpu::diversity_many(&g, Rows::new(&e, n, d).unwrap(), &[0]).unwrap_err();
    assert!(err.to_string().contains("row 1 contains NaN"), "{err}");
    let Some(tiny) = gpu(Some(16)) else { return };
    let e = reference::exact_set(n, d, 3);
    let err = GpuOrderings::new(
        &tiny,
        Rows::new(&e, n, d).unwrap(),
        &OrderOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, GpuError::LimitsTooSmall { .. }), "{err}");
    assert!(err.to_string().contains("storage binding"), "{err}");
}

/// Cancelling: set before the run, nothing is computed; set by another thread while a batch
/// runs, the batch stops at its next step and each entry is either `None` or the full,
/// correct ordering (never a partial one).
#[test]
fn cancel_stops_between_steps() {
    let Some(g) = gpu(None) else { return };
    let (n, d) = (120, 16);
    let e = reference::exact_set(n, d, 9);
    let starts: Vec<usize> = (0..n).collect();
    let want = cpu_orderings(&e, n, d, &starts);
    let options = OrderOptions {
        batch: Some(30),
        s_limit: None,
        f32_only: false,
    };
    let o = GpuOrderings::new(&g, Rows::new(&e, n, d).unwrap(), &options).unwrap();
    let got = o.run_cancellable(&starts, &AtomicBool::new(true)).unwrap();
    assert!(got.iter().all(Option::is_none));
    let cancel = AtomicBool::new(false);
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(300));
            cancel.store(true, Ordering::Relaxed);
        });
        o.run_cancellable(&starts, &cancel).unwrap()
    });
    assert_eq!(got.len(), n);
    for (s, seq) in got.iter().enumerate() {
        if let Some(seq) = seq {
            assert_eq!(seq, &want[s], "start {s}");
        }
    }
}
