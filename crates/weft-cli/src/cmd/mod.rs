//! The batch commands, one module each.

pub mod bench;
pub mod cache;
pub mod devices;
pub mod diversity;
pub mod diversity_cache;
#[cfg(feature = "mpi")]
pub mod diversity_cache_mpi;
pub mod similarity;
pub mod topk;

use std::time::Instant;

/// Seconds since `t0`, for summaries.
pub fn secs(t0: Instant) -> String {
    format!("{:.2} s", t0.elapsed().as_secs_f64())
}
