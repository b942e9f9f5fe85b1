//! Thread counts and the rayon pools the kernels run on.

use crate::error::ComputeError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The machine's parallelism (`std::thread::available_parallelism`), at least 1.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `None` → the machine's cores; `Some(0)` is an error; `Some(n)` → n.
pub fn resolve(threads: Option<usize>) -> Result<usize, ComputeError> {
    match threads {
        None => Ok(default_threads()),
        Some(0) => Err(ComputeError::Threads("threads must be at least 1".into())),
        Some(n) => Ok(n),
    }
}

/// A pool of exactly `n` threads, built once per size and kept for the process.
pub(crate) fn pool(n: usize) -> Result<Arc<rayon::ThreadPool>, ComputeError> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(Default::default);
    let mut map = pools.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = map.get(&n) {
        return Ok(Arc::clone(p));
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("weft-compute-{i}"))
        .build()
        .map_err(|e| ComputeError::Threads(e.to_string()))?;
    let p = Arc::new(p);
    map.insert(n, Arc::clone(&p));
    Ok(p)
}

/// Runs `f(worker)` once on each of the pool's `n` threads and collects the results in
/// worker order. Work inside is shared out by the caller (e.g. an atomic counter).
pub(crate) fn on_each<T: Send>(
    n: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Result<Vec<T>, ComputeError> {
    if n == 1 {
        return Ok(vec![f(0)]);
    }
    let p = pool(n)?;
    Ok(p.broadcast(|ctx| f(ctx.index())))
}
