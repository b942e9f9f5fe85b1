//! Atomic counters: the race-free replacement for a shared `t.n = t.n + 1`.

use std::sync::atomic::{AtomicI64, Ordering};

/// A 64-bit integer any thread may add to. Additions wrap on overflow, as Lua 5.4
/// integers do.
#[derive(Debug, Default)]
pub struct Counter(AtomicI64);

impl Counter {
    /// A counter starting at `n`.
    pub fn new(n: i64) -> Counter {
        Counter(AtomicI64::new(n))
    }

    /// Add `delta` and return the new value (one atomic instruction).
    pub fn add(&self, delta: i64) -> i64 {
        self.0
            .fetch_add(delta, Ordering::AcqRel)
            .wrapping_add(delta)
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }

    /// Replace the value.
    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Release)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_adds_are_never_lost() {
        // Miri interprets every step: fewer adds there, still interleaved across threads.
        let each: i64 = if cfg!(miri) { 100 } else { 10_000 };
        let c = Arc::new(Counter::new(5));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..each).for_each(|_| _ = c.add(1)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(c.get(), 4 * each + 5);
        assert_eq!(c.add(-5), 4 * each);
        c.set(i64::MAX);
        assert_eq!(c.add(1), i64::MIN);
    }
}
