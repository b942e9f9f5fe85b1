//! `weft bench [--quick] [--emb PATH]`: the compute benchmark table of BENCHMARKS.md,
//! measured on this machine, as Markdown on stdout.
//!
//! Each figure is the median of several runs (with the range), at 1 thread and at all
//! threads: normalize, similarity, top-10, one diversity ordering with S built, and all N
//! orderings projected from a subset of starts (with the bytes of S rows really read, their
//! GB/s, and the machine's own read-only streaming bandwidth beside them). The
//! numpy/faiss anchors need Python and are printed as recorded, not measured.

use crate::error::{Failure, Outcome};
use crate::input;
use crate::progress::Reporter;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;
use weft_compute::{threads, Budget, Orderings};

const EXAMPLE: &str = "\
Examples:
  $ weft bench --quick                                   # a few seconds
  $ weft bench --emb ../shared/data/fortunes/emb.npy     # the data of BENCHMARKS.md

Prints a Markdown table: median and range of several runs, rates, the speed-up of all
threads over one; then the machine (CPU model, cores, memory) and the date.";

/// Time the compute engine on this machine and print the benchmark table.
#[derive(clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// One run of each figure and a small subset of starts: a check, not a measurement.
    #[arg(long)]
    pub quick: bool,
    /// Embeddings to time on (default: examples/data/emb.npy, 2,000 × 384).
    #[arg(long, value_name = "EMB.npy")]
    pub emb: Option<PathBuf>,
    /// The "all threads" count (default: every core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=threads::MAX_THREADS as u64))]
    pub threads: Option<u64>,
    /// Starts actually computed for the all-orderings projection (default 256; quick 16).
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..))]
    pub starts: Option<u64>,
}

/// One timed figure: median and range in seconds.
struct Timing {
    median: f64,
    min: f64,
    max: f64,
}

fn time(runs: usize, mut f: impl FnMut() -> Result<(), Failure>) -> Result<Timing, Failure> {
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64());
    }
    v.sort_by(f64::total_cmp);
    Ok(Timing {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
    })
}

/// A duration for people: µs, ms or s with three significant digits.
fn human(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else if s < 600.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}

/// The default data: examples/data/emb.npy from the working directory, else from the
/// source tree this binary was built in.
fn default_emb() -> PathBuf {
    let here = PathBuf::from("examples/data/emb.npy");
    if here.is_file() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/emb.npy")
}

struct Table {
    rows: Vec<String>,
}

impl Table {
    fn add(&mut self, job: &str, threads: usize, t: &Timing, rate: &str, speedup: Option<f64>) {
        self.rows.push(format!(
            "| {job} | {threads} | {} | {} – {} | {rate} | {} |",
            human(t.median),
            human(t.min),
            human(t.max),
            speedup.map(|x| format!("{x:.2}×")).unwrap_or_default()
        ));
    }
}

/// Runs the command.
pub fn run(a: Args) -> Outcome {
    let path = a.emb.clone().unwrap_or_else(default_emb);
    let mut emb = input::load(&path, &Reporter::silent())?;
    let view = emb.view()?;
    let (n, d) = (view.rows.n(), view.rows.d());
    let unit = view.normalised(2)?;
    let rows = unit.rows();
    let fail = |e| Failure::input(view.path, e);
    let all = a
        .threads
        .map_or_else(threads::default_threads, |t| t as usize);
    let counts: Vec<usize> = if all > 1 { vec![1, all] } else { vec![1] };
    let reps = |full: usize| if a.quick { 1 } else { full };
    let subset = a
        .starts
        .map_or(if a.quick { 16 } else { 256 }, |s| s as usize)
        .min(n);
    let budget = Budget::default();
    let (nf, df) = (n as f64, d as f64);
    let mut table = Table { rows: Vec::new() };

    let t = time(reps(7), || {
        black_box(weft_compute::normalize(view.rows).map_err(fail)?);
        Ok(())
    })?;
    let gbs = nf * df * 4.0 / t.median / 1e9;
    table.add("normalize", 1, &t, &format!("{gbs:.1} GB/s read"), None);

    let mut base = 0.0;
    for &th in &counts {
        let t = time(reps(5), || {
            black_box(weft_compute::similarity(rows, Some(th), budget).map_err(fail)?);
            Ok(())
        })?;
        let gflops = nf * nf * df / t.median / 1e9;
        let up = (th > 1).then(|| base / t.median);
        base = if th == 1 { t.median } else { base };
        let rate = format!("{gflops:.1} GFLOP/s (N²·d: the symmetric half)");
        table.add("similarity, N×N f32", th, &t, &rate, up);
    }
    let k = 10.min(n - 1);
    for &th in &counts {
        let t = time(reps(5), || {
            black_box(weft_compute::topk(rows, k, Some(th)).map_err(fail)?);
            Ok(())
        })?;
        let up = (th > 1).then(|| base / t.median);
        base = if th == 1 { t.median } else { base };
        let rate = format!("{:.0} items/s", nf / t.median);
        table.add(&format!("top-{k} of every item"), th, &t, &rate, up);
    }
    // One ordering runs on one thread whatever `threads` says (each step needs the last).
    let s = weft_compute::similarity(rows, None, budget).map_err(fail)?;
    let t = time(reps(9), || {
        let seq = weft_compute::diversity(rows, Some(&s), 0, Some(1), budget);
        black_box(seq.map_err(fail)?);
        Ok(())
    })?;
    let rate = format!(
        "{:.1} GB/s of f32 S rows (one thread by design)",
        nf * nf * 4.0 / t.median / 1e9
    );
    table.add("one diversity ordering, S built", 1, &t, &rate, None);
    drop(s);
    let starts: Vec<usize> = (0..subset).map(|i| i * n / subset).collect();
    // What the machine streams, read-only, from a buffer far larger than its caches: the
    // floor the all-orderings rows are compared with.
    let mut stream = Vec::new();
    for &th in &counts {
        let gbs =
            weft_compute::probe::stream_read_gbs(if a.quick { 64 << 20 } else { 512 << 20 }, th, 3);
        stream.push(gbs.map_err(fail)?);
    }
    for &th in &counts {
        let t0 = Instant::now();
        // Projected from a few starts, each computed in full: a real run of all N shares
        // the tails of orderings that reach the same state (much faster; BENCHMARKS.md).
        let engine = Orderings::new(rows, Some(th), budget)
            .map_err(fail)?
            .unshared();
        let build = t0.elapsed().as_secs_f64();
        let part = time(reps(3), || {
            black_box(engine.run(&starts).map_err(fail)?);
            Ok(())
        })?;
        let scale = nf / starts.len() as f64;
        let t = Timing {
            median: build + part.median * scale,
            min: build + part.min * scale,
            max: build + part.max * scale,
        };
        let up = (th > 1).then(|| base / t.median);
        base = if th == 1 { t.median } else { base };
        let streamed = nf * nf * nf * 2.0 / (t.median - build) / 1e9;
        // Bytes of S the runs really read (chosen items' lines are skipped), per run, projected.
        let read = engine.s_bytes_read() as f64 / reps(3) as f64 * scale;
        let rate = format!(
            "S read {:.1} GB = {:.1} GB/s ({streamed:.1} GB/s as full i16 rows; streaming \
             {:.1} GB/s); build {}{}",
            read / 1e9,
            read / (t.median - build) / 1e9,
            stream[if th == 1 { 0 } else { stream.len() - 1 }],
            human(build),
            if engine.in_memory() {
                ""
            } else {
                "; S over budget: computed on the fly"
            }
        );
        let job = format!(
            "all {n} orderings, projected from {} starts computed in full",
            starts.len()
        );
        table.add(&job, th, &t, &rate, up);
    }

    print_report(&a, &path, n, d, all, &table);
    Ok(())
}

fn print_report(a: &Args, path: &Path, n: usize, d: usize, all: usize, table: &Table) {
    let runs = if a.quick {
        "one run each (--quick: a check, not a measurement)".to_string()
    } else {
        "medians of 5 runs (normalize 7, one ordering 9, all orderings 3)".to_string()
    };
    println!("## weft bench — measured {} on this machine\n", today());
    println!("- machine: {}", machine(all));
    println!("- data: {} ({n} × {d}); {runs}\n", path.display());
    println!("| job | threads | median | range | rate | speed-up vs 1 thread |");
    println!("| --- | ---: | ---: | ---: | --- | ---: |");
    for r in &table.rows {
        println!("{r}");
    }
    println!(
        "\nAnchors (not measured by weft bench: they need Python; `bench/compute_anchor.py` \
         times them on the same data). Recorded in issue 4 for N = 7,797, d = 384 on a 2-core \
         AVX-512 VM, so compare them with a run on data of that size:\n"
    );
    println!("| job | anchor |");
    println!("| --- | --- |");
    println!("| similarity matrix | numpy/OpenBLAS `E @ E.T` 0.28 s |");
    println!("| top-10 of every item | faiss-cpu `IndexFlatIP` 0.27 s; numpy 0.49 s |");
    println!("| one diversity ordering, S built | numpy running sum (f32) 0.032 s |");
    println!("| all N orderings | numpy ≈ 4.1 min; the old GPU code 58 s |");
}

/// CPU model (from /proc/cpuinfo), cores, memory and SIMD level.
fn machine(all: usize) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = threads::default_threads();
    let mem = weft_compute::budget::physical_memory() as f64 / (1u64 << 30) as f64;
    format!(
        "{model}, {cpus} CPUs available (all-thread rows use {all}), {mem:.1} GiB memory, {}; \
         caches (per core / shared): {}",
        simd(),
        weft_compute::probe::cache_sizes()
    )
}

fn simd() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "AVX2";
        }
    }
    "no AVX2/AVX-512 (portable kernels)"
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(super::civil_from_days(20_413), (2025, 11, 21));
    }
}
