//! Diversity orderings (docs/design.md, "Diversity ordering"): from a start item, repeatedly take
//! the unchosen item least similar to the centroid of those chosen so far.
//!
//! The pick is defined exactly by the crate-private `rule` module; with S in memory each step is O(N).

use crate::budget::Budget;
use crate::error::ComputeError;
use crate::orderings::Engine;
use crate::rows::Rows;
use crate::similarity::similarity;
use crate::threads;
use crate::tiles::check_finite;
use std::sync::atomic::AtomicBool;

/// The diversity ordering of all N items from `start` (0-based ids), for normalised rows.
///
/// `s`: the f32 similarity matrix of these rows when the caller has it (n×n, as
/// [`fn@crate::similarity`] returns). Without it, S is computed first when n²·4 bytes fit
/// `budget`, else every step is evaluated from the embeddings (O(N·d) a step: slow).
/// The result does not depend on which path ran.
///
/// ```
/// use weft_compute::{diversity, normalize, Budget, Rows};
///
/// // (1, 0), (0, 1), (-1, 0), (0.6, 0.8)
/// let raw = [1.0f32, 0.0, 0.0, 1.0, -1.0, 0.0, 0.6, 0.8];
/// let e = normalize(Rows::new(&raw, 4, 2)?)?;
/// let rows = Rows::new(&e, 4, 2)?;
/// let seq = diversity(rows, None, 0, None, Budget::default())?;
/// // from 0, the least similar item is 2 (opposite); then the centroid of 0 and 2 is the
/// // origin, every remaining item scores 0, and the tie goes to the lower id, 1
/// assert_eq!(seq, [0, 2, 1, 3]);
/// // the same ordering over a similarity matrix the caller already has
/// let s = weft_compute::similarity(rows, None, Budget::default())?;
/// assert_eq!(diversity(rows, Some(&s), 0, None, Budget::default())?, seq);
/// # Ok::<(), weft_compute::ComputeError>(())
/// ```
pub fn diversity(
    e: Rows<'_>,
    s: Option<&[f32]>,
    start: usize,
    threads: Option<usize>,
    budget: Budget,
) -> Result<Vec<u32>, ComputeError> {
    check(e, &[start])?;
    let t = threads::resolve(threads)?;
    let n = e.n();
    if let Some(s) = s {
        if s.len() != n * n {
            return Err(ComputeError::SimilarityShape {
                len: s.len(),
                n,
                expected: n * n,
            });
        }
        return Ok(one_with_matrix(e, s, start, t));
    }
    if budget.fits((n as u64) * (n as u64) * 4) {
        let s = similarity(e, Some(t), budget)?;
        return Ok(one_with_matrix(e, &s, start, t));
    }
    Ok(Engine::compact(e, t, budget)?.ordering(start, n))
}

/// One ordering over an f32 S runs on one thread (see [`crate::matrix`] for why); `threads`
/// serves computing S when the caller has none.
fn one_with_matrix(e: Rows<'_>, s: &[f32], start: usize, _threads: usize) -> Vec<u32> {
    crate::matrix::ordering(e, s, start, e.n())
}

/// The orderings from each of `starts`, sharing one compact (i16) copy of S when n²·2 bytes
/// fit `budget` (else evaluated from the embeddings), spread over `threads` workers.
pub fn diversity_many(
    e: Rows<'_>,
    starts: &[usize],
    threads: Option<usize>,
    budget: Budget,
) -> Result<Vec<Vec<u32>>, ComputeError> {
    check(e, starts)?;
    let t = threads::resolve(threads)?;
    if starts.is_empty() {
        return Ok(Vec::new());
    }
    let engine = Engine::compact(e, t, budget)?;
    let seqs = engine.many(starts, e.n(), t, None)?;
    Ok(seqs
        .into_iter()
        .map(|s| s.expect("not cancelled"))
        .collect())
}

/// The first `len` items of the orderings from each of `starts`: exactly the prefixes of
/// what [`diversity`] returns, for when only the beginning matters (a "something different"
/// list per item). Each prefix costs `len` rows of S instead of N, so all N prefixes of a
/// short length take about as long as computing S.
///
/// `s` as for [`diversity`]; without it S is computed when it fits `budget`, else the
/// prefixes are evaluated from the embeddings (one compact copy of S when that fits).
/// `len` is clamped to 1..=N. Spread over `threads` workers.
pub fn diversity_prefixes(
    e: Rows<'_>,
    s: Option<&[f32]>,
    starts: &[usize],
    len: usize,
    threads: Option<usize>,
    budget: Budget,
) -> Result<Vec<Vec<u32>>, ComputeError> {
    check(e, starts)?;
    let t = threads::resolve(threads)?;
    let n = e.n();
    if let Some(s) = s.filter(|s| s.len() != n * n) {
        return Err(ComputeError::SimilarityShape {
            len: s.len(),
            n,
            expected: n * n,
        });
    }
    if starts.is_empty() {
        // Nothing to order: no S to build.
        return Ok(Vec::new());
    }
    let len = len.clamp(1, n);
    let owned;
    let s = match s {
        Some(s) => s,
        None if budget.fits((n as u64) * (n as u64) * 4) => {
            owned = similarity(e, Some(t), budget)?;
            &owned
        }
        None => {
            let engine = Engine::compact(e, t, budget)?;
            let seqs = engine.many(starts, len, t, None)?;
            return Ok(seqs
                .into_iter()
                .map(|s| s.expect("not cancelled"))
                .collect());
        }
    };
    let out = std::sync::Mutex::new(vec![Vec::new(); starts.len()]);
    let next = std::sync::atomic::AtomicUsize::new(0);
    threads::on_each(t.min(starts.len()).max(1), |_| loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(&start) = starts.get(i) else { break };
        let seq = crate::matrix::ordering(e, s, start, len);
        out.lock().unwrap_or_else(|e| e.into_inner())[i] = seq;
    })?;
    Ok(out.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// A reusable compact copy of S for computing many orderings over time (the cache and the
/// benchmarks use it): built once, then [`Orderings::run`] any starts.
pub struct Orderings<'a> {
    engine: Engine<'a>,
    threads: usize,
}

impl<'a> Orderings<'a> {
    /// Builds the i16 copy of S when n²·2 bytes fit `budget` (else orderings are evaluated
    /// from the embeddings at every step).
    pub fn new(e: Rows<'a>, threads: Option<usize>, budget: Budget) -> Result<Self, ComputeError> {
        check(e, &[])?;
        let threads = threads::resolve(threads)?;
        Ok(Orderings {
            engine: Engine::compact(e, threads, budget)?,
            threads,
        })
    }

    /// The same, but every ordering is computed in full, taking no other's picks: for
    /// benchmarks that project a full run from a few starts (run again, those starts would
    /// take the first run's picks; and few starts share far less than all N do).
    pub fn unshared(self) -> Self {
        Orderings {
            engine: self.engine.unshared(),
            ..self
        }
    }

    /// Orderings the cache computes and commits together for `n` items: four lockstep
    /// groups per worker thread, but at least [`crate::cache::BATCH`] and at most n/16 (a
    /// small set still commits in many steps). Orderings that take another's picks finish
    /// early and unevenly, and a batch ends with its slowest group: with several groups per
    /// worker, one whose groups end early takes another instead of waiting.
    pub fn batch(&self, n: usize) -> usize {
        let per_run = 4 * self.threads * crate::orderings::GROUP;
        per_run.min(n / 16).max(crate::cache::BATCH)
    }

    /// The normalised rows the orderings are computed over.
    pub fn rows(&self) -> Rows<'a> {
        self.engine.rows()
    }

    /// Bytes the compact copy of S takes for `n` items: [`Orderings::new`] builds it when
    /// they fit its budget (else every step is computed from the embeddings).
    pub fn s_bytes(n: usize) -> u64 {
        crate::compact::bytes(n)
    }

    /// The orderings from `starts`.
    pub fn run(&self, starts: &[usize]) -> Result<Vec<Vec<u32>>, ComputeError> {
        check(self.engine.rows(), starts)?;
        let seqs = self
            .engine
            .many(starts, self.engine.rows().n(), self.threads, None)?;
        Ok(seqs
            .into_iter()
            .map(|s| s.expect("not cancelled"))
            .collect())
    }

    /// Like [`Orderings::run`], but stops starting new orderings once `cancel` is set; those
    /// not computed are `None`.
    pub fn run_cancellable(
        &self,
        starts: &[usize],
        cancel: &AtomicBool,
    ) -> Result<Vec<Option<Vec<u32>>>, ComputeError> {
        check(self.engine.rows(), starts)?;
        self.engine
            .many(starts, self.engine.rows().n(), self.threads, Some(cancel))
    }

    /// Bytes of rows of the compact copy of S read by the orderings run so far (0 on the
    /// slow path): what the benchmarks divide by time for the bandwidth actually used.
    pub fn s_bytes_read(&self) -> u64 {
        self.engine.bytes_read()
    }

    /// Orderings that reached the state of an earlier one and took the rest of its picks,
    /// and the picks they did not compute (benchmarks; see docs/design.md, "Shared tails").
    pub fn followed(&self) -> (u64, u64) {
        self.engine.followed()
    }

    /// Whether S is held in memory (false: the slow on-the-fly path).
    pub fn in_memory(&self) -> bool {
        !self.engine.is_direct()
    }
}

/// Validates rows and starts.
pub(crate) fn check(e: Rows<'_>, starts: &[usize]) -> Result<(), ComputeError> {
    e.require(1)?;
    check_finite(e)?;
    if e.n() > u32::MAX as usize {
        return Err(ComputeError::TooManyRows {
            n: e.n(),
            max: u32::MAX as usize,
        });
    }
    if let Some(&start) = starts.iter().find(|&&s| s >= e.n()) {
        return Err(ComputeError::StartOutOfRange { start, n: e.n() });
    }
    Ok(())
}
