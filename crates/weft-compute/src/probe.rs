//! What the benchmarks report about the machine next to their timings: the read bandwidth
//! the cores can stream from memory, and the cache sizes (the cache's speed depends on both:
//! its rows of S are streamed, and whether they fit the last-level cache decides how fast).

use crate::error::ComputeError;
use crate::threads;
use std::hint::black_box;
use std::time::Instant;

/// Read-only streaming bandwidth in GB/s: `threads` workers each sum their share of a
/// `bytes` buffer (touched first, so no page faults are timed), best of `reps` passes.
/// A buffer several times the last-level cache measures memory, not cache.
pub fn stream_read_gbs(bytes: usize, threads: usize, reps: usize) -> Result<f64, ComputeError> {
    let words = (bytes / 8).max(threads.max(1) * 8);
    let buf: Vec<u64> = (0..words as u64).collect();
    let share = words.div_ceil(threads.max(1));
    let mut best = 0.0f64;
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        threads::on_each(threads.max(1), |w| {
            let part = buf.chunks(share).nth(w).unwrap_or(&[]);
            // Four independent sums so the loop is limited by loads, not by one add chain.
            let mut acc = [0u64; 4];
            for q in part.chunks_exact(4) {
                for (a, &x) in acc.iter_mut().zip(q) {
                    *a = a.wrapping_add(x);
                }
            }
            black_box(acc);
        })?;
        let secs = t0.elapsed().as_secs_f64();
        best = best.max((words * 8) as f64 / secs / 1e9);
    }
    Ok(best)
}

/// The data and unified caches of CPU 0 as "L1d 32K, L2 1024K, L3 32768K" (Linux sysfs;
/// empty elsewhere).
pub fn cache_sizes() -> String {
    let mut out = Vec::new();
    for i in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
        let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).ok();
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            continue;
        };
        let kind = kind.trim();
        if kind == "Instruction" {
            continue;
        }
        let d = if kind == "Data" { "d" } else { "" };
        out.push(format!("L{}{d} {}", level.trim(), size.trim()));
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn streaming_reads_something_at_a_plausible_rate() {
        let gbs = super::stream_read_gbs(1 << 20, 2, 2).unwrap();
        assert!(gbs.is_finite() && gbs > 0.0, "{gbs}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn cache_sizes_name_levels() {
        let s = super::cache_sizes();
        if std::path::Path::new("/sys/devices/system/cpu/cpu0/cache/index0/size").exists() {
            assert!(s.contains("L1d") || s.contains("L2"), "{s}");
        }
    }
}
