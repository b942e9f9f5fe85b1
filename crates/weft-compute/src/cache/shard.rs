//! Shards of a diversity cache: `K/M` names the K-th (0-based) of M contiguous ranges of
//! starts, so that M machines of a batch system can each fill one part file and
//! [`merge`](super::merge) can join the parts into the cache one run would write.

use std::fmt;
use std::ops::Range;

/// Shard `index` of `count`: the starts `⌊index·N/count⌋ .. ⌊(index+1)·N/count⌋`.
///
/// Every ordering costs the same, so contiguous ranges of (almost) equal length balance
/// the work as well as interleaving would, and each part's records are one contiguous
/// stretch of the file, which the merge copies in order.
///
/// ```
/// use weft_compute::cache::Shard;
/// let s = Shard::parse("1/3")?;
/// assert_eq!((s.index(), s.count()), (1, 3));
/// assert_eq!(s.starts(10), 3..6);
/// assert!(Shard::parse("3/2").is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: usize,
    count: usize,
}

impl Shard {
    /// Shard `index` (0-based) of `count`; an error unless `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Shard, String> {
        if count == 0 {
            return Err("the shard count M must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "the shard index {index} must be below the shard count {count} (K is 0-based: 0 to {})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// Parses `K/M` (0-based K, `K < M`).
    pub fn parse(spec: &str) -> Result<Shard, String> {
        let bad = || format!("'{spec}' is not a shard K/M such as 0/4 (K is 0-based, K < M)");
        let (k, m) = spec.trim().split_once('/').ok_or_else(bad)?;
        let k: usize = k.trim().parse().map_err(|_| bad())?;
        let m: usize = m.trim().parse().map_err(|_| bad())?;
        Shard::new(k, m)
    }

    /// K (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// M.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The starts of this shard among `n` items (empty only when `count > n`).
    pub fn starts(&self, n: usize) -> Range<usize> {
        let at = |k: usize| (k as u128 * n as u128 / self.count as u128) as usize;
        at(self.index)..at(self.index + 1)
    }

    /// Fails unless every shard of this count holds at least one of `n` starts.
    pub fn check(&self, n: usize) -> Result<(), String> {
        if self.count > n {
            return Err(format!(
                "{} shards of {}: the shard count must be at most N = {n}",
                self.count,
                crate::count(n, "item")
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_tile_every_start_once() {
        for n in [1usize, 2, 7, 10, 33, 100] {
            for m in 1..=n.min(12) {
                let mut next = 0;
                for k in 0..m {
                    let r = Shard::new(k, m).unwrap().starts(n);
                    assert_eq!(r.start, next, "n {n} m {m} k {k}");
                    assert!(!r.is_empty(), "n {n} m {m} k {k}");
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
    }

    #[test]
    fn bad_specs() {
        for s in ["3/2", "0/0", "x", "1", "-1/2", "1/2/3", "/2", "1/"] {
            assert!(Shard::parse(s).is_err(), "{s}");
        }
        assert_eq!(Shard::parse(" 2/7 ").unwrap(), Shard::new(2, 7).unwrap());
        assert!(Shard::new(0, 5).unwrap().check(4).is_err());
        assert!(Shard::new(0, 4).unwrap().check(4).is_ok());
    }
}
