//! Keeping a streaming consumer from trailing its producer item by item.
//!
//! When a producer and a consumer on two cores stream items through an unbounded channel
//! (crossbeam's `SegQueue`), the pair runs in one of two ways. Either the consumer reads
//! well behind the producer, in queue blocks the producer finished with, and both run at
//! their own speed (numbers: 10–14 M/s on the machines weft is measured on), or the
//! consumer is right behind the producer: each pop then reads the slot and the queue tail
//! the producer is writing (`SegQueue`'s pop reads the tail while it is in the tail's
//! block), the cache lines cross between the cores on every item, and the pair falls into
//! lockstep at 3–4 M/s. Nothing pulls it out again: trailing slows both sides alike, so the consumer
//! stays just behind and rarely finds the queue empty — which is why waiting longer on an
//! *empty* queue (tried, BENCHMARKS.md) did not help. Pinned to two CPUs, a Rust-only pair
//! sat in the slow way in most of its runs (`examples/pinned_stream.rs` in weft-cli; issue
//! 15).
//!
//! The cure is for the consumer to notice that it trails and let a batch gather before
//! it goes on. Once [`CHECK_EVERY`] pops in a row have found an item at once, the next pop
//! first reads the queue's length (one look at the tail, the line it would pull over
//! anyway when trailing); if fewer than [`GATHER`] items are queued, it pauses, looking
//! again every [`LOOK_EVERY`] pause instructions, until [`GATHER`] are there, the queue
//! stops growing (the producer is not streaming, so waiting gains nothing), the channel
//! closes, or [`MAX_WAIT`] passes. The items it then takes were written long enough ago
//! that the producer has moved on to other lines.
//!
//! A bounded channel does not pace: `ArrayQueue`'s pop reads only the slot while items
//! are there, and its number streams showed no slow mode to cure.
//!
//! What it costs: a consumer that finds the queue empty now and then (a request, a reply;
//! a producer slower than it) never pauses, since each empty find starts the count
//! again. A stream that stops mid-batch delays the next pop by one look (~64 pauses,
//! about a microsecond). A consumer far behind reads the length less and less often (the
//! gap between checks doubles while it finds a full batch queued, up to
//! [`CHECK_AT_MOST_EVERY`] pops), since each read pulls the tail's line away from the
//! producer. The counts are the channel's ([`Streak`]).

use crate::deadline::Deadline;
use crossbeam_utils::CachePadded;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Pops in a row that found an item at once before the consumer checks whether it trails
/// (after a check that found it trailing, or an empty find).
const CHECK_EVERY: u32 = 16;

/// The longest gap between two checks, reached by doubling while checks find the
/// consumer well behind.
const CHECK_AT_MOST_EVERY: u32 = 1024;

/// Queued items below which a consumer counts as trailing, and the batch it lets gather.
const GATHER: usize = 256;

/// Pause instructions between two looks at the queue's length while a batch gathers.
const LOOK_EVERY: u32 = 64;

/// The longest a consumer waits for a batch: a producer streaming at full speed fills
/// [`GATHER`] items in ~20 µs.
const MAX_WAIT: Duration = Duration::from_micros(25);

/// What a check ([`Streak::before_pop`]) found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Paced {
    /// A full batch was queued already: the consumer does not trail.
    Behind,
    /// It waited until the batch was there.
    Gathered,
    /// It stopped waiting because the queue stopped growing.
    Stalled,
    /// It stopped waiting because the channel closed.
    Closed,
    /// It waited [`MAX_WAIT`].
    TimedOut,
}

/// The consumers' side of a channel's pacing: pops in a row that found an item at once
/// (over all of the channel's consumers: one, when it streams) and the gap to the next
/// check. A cache line of its own: the consumer writes it on every pop, and the producer
/// must not pay for that. (A per-thread count would be exact for several consumers, but a
/// thread-local costs a library call per pop in the loadable module.) Loads and stores,
/// not read-modify-writes: consumers racing here may lose a count, which only moves a
/// check.
pub(super) struct Streak(CachePadded<Counts>);

struct Counts {
    in_a_row: AtomicU32,
    check_every: AtomicU32,
}

impl Streak {
    /// No pops yet.
    pub(super) fn new() -> Streak {
        Streak(CachePadded::new(Counts {
            in_a_row: AtomicU32::new(0),
            check_every: AtomicU32::new(CHECK_EVERY),
        }))
    }

    /// A pop found the queue empty: its consumers are not trailing a stream.
    pub(super) fn found_empty(&self) {
        if cfg!(loom) {
            return;
        }
        if self.0.in_a_row.load(Relaxed) != 0 {
            self.0.in_a_row.store(0, Relaxed);
        }
        if self.0.check_every.load(Relaxed) != CHECK_EVERY {
            self.0.check_every.store(CHECK_EVERY, Relaxed);
        }
    }

    /// Called before a pop looks at the queue: counts the pop as one that finds an item at
    /// once (if it finds none, [`Streak::found_empty`] starts the count again), and when
    /// enough such pops came before it and `queued()` is below the batch, waits for one as
    /// the module docs say, but not past `deadline`. `closed()` is the channel's flag.
    /// Returns what the check did, if this pop checked.
    #[inline]
    pub(super) fn before_pop(
        &self,
        queued: impl Fn() -> usize,
        closed: impl Fn() -> bool,
        deadline: &Deadline,
    ) -> Option<Paced> {
        if cfg!(loom) {
            return None;
        }
        let counts = &*self.0;
        let in_a_row = counts.in_a_row.load(Relaxed);
        if in_a_row < counts.check_every.load(Relaxed) {
            counts.in_a_row.store(in_a_row + 1, Relaxed);
            return None;
        }
        // Never past the pop's own deadline (`ch:pop(0)` drains without waiting).
        let max_wait = deadline.instant().map_or(MAX_WAIT, |t| {
            t.saturating_duration_since(Instant::now()).min(MAX_WAIT)
        });
        let paced = self.check(queued, closed, max_wait);
        counts.in_a_row.store(1, Relaxed);
        Some(paced)
    }

    /// The pop that checks: is the consumer trailing, and if so, wait for a batch, for at
    /// most `max_wait` (tests give one no preemption reaches).
    #[cold]
    #[inline(never)]
    fn check(
        &self,
        queued: impl Fn() -> usize,
        closed: impl Fn() -> bool,
        max_wait: Duration,
    ) -> Paced {
        let counts = &*self.0;
        let check_every = counts.check_every.load(Relaxed);
        counts.in_a_row.store(0, Relaxed);
        let mut seen = queued();
        if seen >= GATHER {
            let next = (check_every * 2).min(CHECK_AT_MOST_EVERY);
            counts.check_every.store(next, Relaxed);
            return Paced::Behind;
        }
        counts.check_every.store(CHECK_EVERY, Relaxed);
        let until = Instant::now() + max_wait;
        loop {
            for _ in 0..LOOK_EVERY {
                std::hint::spin_loop();
            }
            let now_queued = queued();
            if now_queued >= GATHER {
                return Paced::Gathered;
            }
            if now_queued <= seen {
                return Paced::Stalled;
            }
            if closed() {
                return Paced::Closed;
            }
            if Instant::now() >= until {
                return Paced::TimedOut;
            }
            seen = now_queued;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// An hour: no test waits that long, so only `queued` and `closed` decide.
    const NO_LIMIT: Duration = Duration::from_secs(3600);

    /// One pop that finds an item at once, as `Channel::pop` makes it.
    fn pop(streak: &Streak, queued: impl Fn() -> usize) -> Option<Paced> {
        streak.before_pop(queued, || false, &Deadline::Never)
    }

    /// Pops on `streak` until one checks; how many it took, and what the check did.
    fn pops_until_a_check(streak: &Streak, queued: impl Fn() -> usize) -> (u32, Paced) {
        let mut pops = 1;
        loop {
            if let Some(paced) = pop(streak, &queued) {
                return (pops, paced);
            }
            pops += 1;
        }
    }

    /// A streak ready to check: [`CHECK_EVERY`] pops in a row behind it.
    fn ready() -> Streak {
        let streak = Streak::new();
        for _ in 0..CHECK_EVERY {
            assert_eq!(pop(&streak, || unreachable!("no check yet")), None);
        }
        streak
    }

    #[test]
    fn the_pop_after_check_every_pops_in_a_row_checks_and_an_empty_find_starts_again() {
        let streak = Streak::new();
        assert_eq!(
            pops_until_a_check(&streak, || 1000),
            (CHECK_EVERY + 1, Paced::Behind)
        );
        streak.found_empty();
        for _ in 0..CHECK_EVERY - 1 {
            pop(&streak, || unreachable!("no check yet"));
        }
        streak.found_empty();
        assert_eq!(
            pops_until_a_check(&streak, || 1000),
            (CHECK_EVERY + 1, Paced::Behind)
        );
    }

    #[test]
    fn checks_grow_rarer_while_the_consumer_is_well_behind() {
        let streak = Streak::new();
        let gaps: Vec<u32> = (0..8)
            .map(|_| pops_until_a_check(&streak, || 1000).0)
            .collect();
        // The first check comes on the pop after CHECK_EVERY; each later one after the gap.
        assert_eq!(gaps, [17, 32, 64, 128, 256, 512, 1024, 1024]);
        // A check that finds the consumer trailing, or an empty find: back to the start.
        assert_eq!(pops_until_a_check(&streak, || 0), (1024, Paced::Stalled));
        assert_eq!(
            pops_until_a_check(&streak, || 1000),
            (CHECK_EVERY, Paced::Behind)
        );
        streak.found_empty();
        assert_eq!(pops_until_a_check(&streak, || 1000).0, CHECK_EVERY + 1);
    }

    #[test]
    fn a_pop_whose_deadline_has_passed_looks_once_and_goes_on() {
        let streak = ready();
        let looks = Cell::new(0);
        let growing = || {
            looks.set(looks.get() + 1);
            looks.get()
        };
        let now = Deadline::after_secs(Some(0.0));
        assert_eq!(
            streak.before_pop(growing, || false, &now),
            Some(Paced::TimedOut)
        );
        assert_eq!(looks.get(), 2);
    }

    #[test]
    fn a_trailing_consumer_waits_while_the_queue_grows_until_the_batch_is_there() {
        let looks = Cell::new(0);
        let queued = || {
            looks.set(looks.get() + 1);
            (looks.get() - 1) * 100
        };
        assert_eq!(ready().check(queued, || false, NO_LIMIT), Paced::Gathered);
        assert_eq!(looks.get(), 4, "0, 100, 200, then 300 >= {GATHER}");
    }

    #[test]
    fn it_stops_waiting_when_the_queue_stops_growing_or_the_channel_closes() {
        assert_eq!(ready().check(|| 5, || false, NO_LIMIT), Paced::Stalled);
        let looks = Cell::new(0);
        let growing = || {
            looks.set(looks.get() + 1);
            looks.get()
        };
        assert_eq!(ready().check(growing, || true, NO_LIMIT), Paced::Closed);
        assert_eq!(looks.get(), 2);
    }

    #[test]
    fn a_queue_that_grows_too_slowly_is_waited_for_at_most_max_wait() {
        let looks = Cell::new(0);
        let start = Instant::now();
        // One more item per look, and a look takes at least 100 µs: the batch would take
        // over 25 ms.
        let creeping = || {
            std::thread::sleep(Duration::from_micros(100));
            looks.set(looks.get() + 1);
            looks.get()
        };
        let max_wait = Duration::from_millis(5);
        assert_eq!(ready().check(creeping, || false, max_wait), Paced::TimedOut);
        assert!(start.elapsed() >= max_wait);
        assert!(
            looks.get() < GATHER,
            "it gave up before the batch was there"
        );
    }
}
