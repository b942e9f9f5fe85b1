//! What a run of [`CacheWriter::run`](super::CacheWriter::run) (or of a producer that holds
//! S, the GPU's) measured: the figures `weft diversity-cache` prints after every run, so
//! that each real run shows the bytes of S it read and the rate it read them at, beside
//! what the machine can stream (`weft bench`).

use std::time::Duration;

/// Figures of the last run that computed orderings: the CPU engine's, the MPI ranks'
/// together, or a producer's that holds S.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunStats {
    /// Orderings computed and committed by the run.
    pub orderings: usize,
    /// Building the engine: the compact copy of S, when it is held.
    pub build: Duration,
    /// Computing the orderings (their writes to the file not included).
    pub compute: Duration,
    /// Bytes of rows of the compact copy of S the orderings read (0 on the direct path).
    pub s_bytes_read: u64,
    /// Whether S was held in memory (false: every step computed from the embeddings).
    pub in_memory: bool,
    /// Orderings that reached an earlier one's state and took the rest of its picks.
    pub followed: u64,
    /// Picks those orderings took instead of computing them.
    pub picks_saved: u64,
}

impl RunStats {
    /// GB/s (10⁹ bytes) of S rows read while computing, when any were read.
    pub fn s_gb_per_s(&self) -> Option<f64> {
        let secs = self.compute.as_secs_f64();
        (self.s_bytes_read > 0 && secs > 0.0).then(|| self.s_bytes_read as f64 / secs / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_bytes_over_compute_time_and_absent_without_reads() {
        let s = RunStats {
            compute: Duration::from_millis(500),
            s_bytes_read: 3_000_000_000,
            ..RunStats::default()
        };
        assert_eq!(s.s_gb_per_s(), Some(6.0));
        let direct = RunStats {
            s_bytes_read: 0,
            ..s
        };
        assert_eq!(direct.s_gb_per_s(), None);
        let instant = RunStats {
            compute: Duration::ZERO,
            ..s
        };
        assert_eq!(instant.s_gb_per_s(), None);
    }
}
