//! Thread counts and the rayon pool the kernels run on.
//!
//! `threads = n` asks for n workers. The workers of one call run as n jobs on a single
//! process-wide pool that holds as many threads as the largest n asked for so far, up to
//! the machine's cores; a call that asks for more replaces the pool with a larger one, and
//! the old pool's threads exit once the calls still running on it finish. A call asking
//! for more threads than there are cores (at most [`MAX_THREADS`]) gets a pool of its own,
//! released when it returns. So calls with many distinct thread counts never leave more
//! compute threads behind than the machine has cores.

use crate::error::ComputeError;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// The most threads a compute call may ask for. More is refused: beyond the cores of any
/// machine weft runs on, extra threads only cost memory and start-up time.
pub const MAX_THREADS: usize = 1024;

/// The machine's parallelism (`std::thread::available_parallelism`), at least 1.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(MAX_THREADS)
}

/// `None` → the machine's cores; `Some(0)` and `Some(n)` above [`MAX_THREADS`] are errors;
/// `Some(n)` → n.
pub fn resolve(threads: Option<usize>) -> Result<usize, ComputeError> {
    match threads {
        None => Ok(default_threads()),
        Some(0) => Err(ComputeError::Threads("threads must be at least 1".into())),
        Some(n) if n > MAX_THREADS => Err(ComputeError::Threads(format!(
            "threads = {n} is more than the limit of {MAX_THREADS}"
        ))),
        Some(n) => Ok(n),
    }
}

/// The shared pool, grown to at least `n` threads.
fn pool(n: usize) -> Result<Arc<rayon::ThreadPool>, ComputeError> {
    static POOL: Mutex<Option<Arc<rayon::ThreadPool>>> = Mutex::new(None);
    let build = || {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("weft-compute-{i}"))
            .build()
            .map(Arc::new)
            .map_err(|e| ComputeError::Threads(e.to_string()))
    };
    if n > default_threads() {
        // More than the cores: this call's own pool, whose threads end when it returns.
        return build();
    }
    let mut slot = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = slot.as_ref().filter(|p| p.current_num_threads() >= n) {
        return Ok(Arc::clone(p));
    }
    let p = build()?;
    // Dropping the old pool (once no call holds it) ends its threads.
    *slot = Some(Arc::clone(&p));
    Ok(p)
}

/// Runs `f(worker)` for each of `n` workers (at most `n` at a time, in parallel) and
/// collects the results in worker order. Work inside is shared out by the caller (e.g. an
/// atomic counter), so no worker may wait for another.
pub(crate) fn on_each<T: Send>(
    n: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Result<Vec<T>, ComputeError> {
    let n = resolve(Some(n))?;
    if n == 1 {
        return Ok(vec![f(0)]);
    }
    let p = pool(n)?;
    Ok(p.install(|| (0..n).into_par_iter().with_max_len(1).map(&f).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_threads_are_refused() {
        let e = resolve(Some(MAX_THREADS + 1)).unwrap_err().to_string();
        assert_eq!(e, "threads: threads = 1025 is more than the limit of 1024");
        assert_eq!(resolve(Some(MAX_THREADS)).unwrap(), MAX_THREADS);
        assert!(on_each(1_000_000, |w| w).is_err());
        assert_eq!(on_each(5, |w| w * 2).unwrap(), [0, 2, 4, 6, 8]);
    }
}
