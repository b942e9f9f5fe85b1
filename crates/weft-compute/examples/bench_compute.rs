//! Times the kernels on fortunes embeddings (by default the repository's
//! examples/data/emb.npy, 2,000 × 384; BENCHMARKS.md passes the full 7,090-row set):
//! normalize, similarity (a fresh matrix, and into a reused buffer), top-10, one diversity
//! ordering (S built), and all N orderings — projected from a measured subset of starts, or
//! with `--full` run from every start. Medians of several runs, threads 1 and 2.
//!
//!     cargo run --release -p weft-compute --example bench_compute -- [EMB.npy] [--starts 256] [--threads T]
//!         [--full] [--only normalize|similarity|topk|diversity|all]

use std::time::Instant;
use weft_compute::*;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/emb.npy").to_string();
    let mut subset = 256usize;
    let mut only = None;
    let mut full = false;
    let mut counts = vec![1, 2];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--starts" => subset = it.next().and_then(|s| s.parse().ok()).expect("--starts N"),
            "--only" => only = it.next().cloned(),
            "--full" => full = true,
            "--threads" => {
                counts = vec![it.next().and_then(|s| s.parse().ok()).expect("--threads N")]
            }
            "-h" | "--help" => {
                println!("bench_compute [EMB.npy] [--starts N] [--threads T] [--full] [--only normalize|similarity|topk|diversity|all]");
                return;
            }
            p => path = p.to_string(),
        }
    }
    let (raw, n, d) = read_npy_f32(&path);
    println!(
        "data: {path} ({n} × {d}); threads available: {}",
        threads::default_threads()
    );
    let want = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let rows = Rows::new(&raw, n, d).unwrap();
    let e = normalize(rows).unwrap();
    let er = Rows::new(&e, n, d).unwrap();
    if want("normalize") {
        report(
            "normalize",
            1,
            median(7, || drop(normalize(rows).unwrap())),
            None,
        );
    }
    for t in [1, 2] {
        if want("similarity") {
            let s = median(5, || {
                drop(similarity(er, Some(t), Budget::default()).unwrap())
            });
            let gflops = (n * n * d) as f64 / s / 1e9; // n²·d flops: half of the full 2·n²·d
            report(
                "similarity",
                t,
                s,
                Some(format!("{gflops:.0} GFLOP/s done (symmetric half)")),
            );
            let mut buf = vec![0.0f32; n * n];
            let s = median(5, || {
                similarity_into(er, &mut buf, Some(t), Budget::default()).unwrap()
            });
            let gflops = (n * n * d) as f64 / s / 1e9;
            report(
                "similarity_into (buffer reused)",
                t,
                s,
                Some(format!("{gflops:.0} GFLOP/s done (symmetric half)")),
            );
        }
        if want("topk") {
            report(
                "topk k=10",
                t,
                median(5, || drop(topk(er, 10, Some(t)).unwrap())),
                None,
            );
        }
    }
    if want("diversity") {
        let s = similarity(er, None, Budget::default()).unwrap();
        // One ordering runs on one thread whatever `threads` says: both are shown.
        for t in [1, 2] {
            let secs = median(15, || {
                drop(diversity(er, Some(&s), 0, Some(t), Budget::default()).unwrap())
            });
            let gbs = (n * n * 4) as f64 / secs / 1e9;
            report(
                "one ordering (S built, one thread)",
                t,
                secs,
                Some(format!("{gbs:.1} GB/s of f32 S rows")),
            );
        }
    }
    if want("all") {
        println!("caches: {}", probe::cache_sizes());
        for &t in &counts {
            let gbs = probe::stream_read_gbs(512 << 20, t, 3).unwrap();
            println!("streaming read, 512 MiB, {t} thread(s): {gbs:.1} GB/s");
        }
        for &t in &counts {
            let t0 = Instant::now();
            let ord = Orderings::new(er, Some(t), Budget::default()).unwrap();
            // A projection from a few starts computes each in full (see Orderings::unshared).
            let ord = if full { ord } else { ord.unshared() };
            let build = t0.elapsed().as_secs_f64();
            let bytes = (n as f64).powi(3) * 2.0; // one full i16 row per step per ordering
            if full {
                let starts: Vec<usize> = (0..n).collect();
                let t1 = Instant::now();
                let cpu0 = cpu_secs();
                let seqs = ord.run(&starts).unwrap();
                let secs = t1.elapsed().as_secs_f64();
                let cpu = cpu_secs() - cpu0;
                assert_eq!(seqs.len(), n);
                let read = ord.s_bytes_read() as f64;
                let (followed, saved) = ord.followed();
                println!(
                    "shared tails: {followed} of {n} orderings took another's picks, {saved} of {} picks not computed",
                    n * n
                );
                report(
                    &format!("all orderings ({n} starts, full run)"),
                    t,
                    build + secs,
                    Some(format!(
                        "build {build:.2} s + orderings {secs:.2} s (CPU {cpu:.1} s); S read {:.1} GB = {:.1} GB/s ({:.1} GB/s as full i16 rows)",
                        read / 1e9,
                        read / secs / 1e9,
                        bytes / secs / 1e9
                    )),
                );
                continue;
            }
            let starts: Vec<usize> = (0..subset.min(n)).map(|i| i * n / subset.min(n)).collect();
            let cpu0 = cpu_secs();
            let secs = median(3, || drop(ord.run(&starts).unwrap()));
            let scale = n as f64 / starts.len() as f64;
            let cpu = (cpu_secs() - cpu0) / 3.0 * scale;
            // Bytes per run (three runs), projected to all starts like the time.
            let read = ord.s_bytes_read() as f64 / 3.0 * scale;
            let total = build + secs * scale;
            report(
                &format!("all orderings ({} starts measured, unshared)", starts.len()),
                t,
                total,
                Some(format!(
                    "build {build:.2} s; projected: CPU {cpu:.1} s, S read {:.1} GB = {:.1} GB/s ({:.1} GB/s as full i16 rows)",
                    read / 1e9,
                    read / (total - build) / 1e9,
                    bytes / (total - build) / 1e9
                )),
            );
        }
    }
}

/// CPU seconds this process has used (user + system), all threads.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage writes one rusage struct, which lives on this stack.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn report(what: &str, threads: usize, secs: f64, extra: Option<String>) {
    println!(
        "{what:<42} threads={threads}  {secs:>9.4} s  {}",
        extra.unwrap_or_default()
    );
}

fn median(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[runs / 2]
}

/// Reads a 2-D f32 .npy file with weft-npy's reader: (data, rows, cols).
fn read_npy_f32(path: &str) -> (Vec<f32>, usize, usize) {
    let a = weft_npy::load(std::path::Path::new(path))
        .unwrap_or_else(|e| panic!("{e}"))
        .array;
    let (n, d) = (a.rows(), a.row_len());
    // SAFETY: nothing else holds the freshly loaded array, so nothing writes it.
    let data = unsafe { a.as_slice::<f32>() }
        .expect("an f32 array")
        .to_vec();
    (data, n, d)
}
