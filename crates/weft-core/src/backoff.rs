//! How a thread polls for another thread's progress before it parks: spin only while the
//! thread it waits for runs on another core, then sleep.
//!
//! Why not just spin for a while: the thread we wait for may need *our* core. On a
//! machine whose cores other processes keep busy, a joiner that spun 200 µs on the core
//! its pool worker had been placed on made every round trip cost those 200 µs, and the
//! worker, spinning for its next job, did the same to the joiner (issue 15). So each side
//! publishes the CPU it runs on (`sched_getcpu`, a few nanoseconds), and a waiter
//!
//! - parks at once when its partner last ran on the waiter's own CPU (spinning there only
//!   keeps the partner off it);
//! - otherwise spins up to [`SPIN_TIME`] (an idle pool round trip is a few microseconds,
//!   a futex sleep and wake-up on a VM costs more), then parks;
//! - spins only [`BRIEF_SPIN`] when the partner has not even started (a joiner whose task is
//!   still queued): a polling worker takes a job within a microsecond, so a longer wait
//!   means the worker slept and is being woken, maybe onto the joiner's own CPU. The
//!   joiner then judges by where its previous task ran (parking at once if that was its
//!   own CPU).
//!
//! No `yield` step (rayon-core and crossbeam's `Backoff` yield before sleeping): measured
//! here with busy processes on the cores, a yield handed the core to a busy process for
//! its whole slice (several milliseconds on Linux's EEVDF scheduler), while a sleeper
//! woken by its partner gets the core back with the scheduler's wake-up priority.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// "Not known": where a partner's CPU has not been published, or cannot be.
pub(crate) const NO_CPU: i32 = -1;

/// The longest poll: covers a pool round trip or a spawn's hand-off between two running
/// threads; short enough not to matter to a long wait.
const SPIN_TIME: Duration = Duration::from_micros(50);

/// The poll for a partner that has not started (see the module comment).
const BRIEF_SPIN: Duration = Duration::from_micros(3);

/// Calls of [`Backoff::snooze`] (one pause instruction each) between two looks at the
/// clock and the CPUs: the caller re-checks its condition after every pause, so it sees
/// the partner's progress within tens of nanoseconds, as a plain spin loop would.
const CHECK_EVERY: u32 = 16;

/// The CPU this thread runs on now, or [`NO_CPU`].
pub(crate) fn current_cpu() -> i32 {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        // SAFETY: sched_getcpu takes no arguments and only reads the running CPU (glibc
        // answers from the vDSO or rseq area); it returns -1 on failure, which is NO_CPU.
        unsafe { libc::sched_getcpu() }
    }
    #[cfg(not(all(target_os = "linux", not(miri))))]
    {
        NO_CPU
    }
}

/// The state of one wait (a fresh one per wait).
pub(crate) struct Backoff {
    started: Option<Instant>,
    rounds: u32,
}

impl Backoff {
    /// A wait that has not polled yet.
    pub(crate) fn new() -> Backoff {
        Backoff {
            started: None,
            rounds: 0,
        }
    }

    /// Spin a little before the caller checks its condition again, given the CPU its
    /// partner last ran on and whether the partner has started at all. Returns false when
    /// the caller should park instead.
    pub(crate) fn snooze(&mut self, partner: i32, started: bool) -> bool {
        if self.rounds.is_multiple_of(CHECK_EVERY) {
            if partner != NO_CPU && partner == current_cpu() {
                return false;
            }
            let limit = if started { SPIN_TIME } else { BRIEF_SPIN };
            let now = Instant::now();
            if now.duration_since(*self.started.get_or_insert(now)) >= limit {
                return false;
            }
        }
        self.rounds = self.rounds.wrapping_add(1);
        std::hint::spin_loop();
        true
    }
}

/// Where a waiting thread publishes the CPU it polls on, for the thread it waits for.
#[derive(Clone, Default)]
pub(crate) struct CpuHint(Arc<AtomicI32>);

impl CpuHint {
    /// A hint saying "unknown".
    pub(crate) fn new() -> CpuHint {
        CpuHint(Arc::new(AtomicI32::new(NO_CPU)))
    }

    /// Publish the CPU this thread runs on now. Relaxed: a hint only (a stale value
    /// costs a spin or a sleep, never correctness).
    pub(crate) fn publish(&self) {
        self.0.store(current_cpu(), Ordering::Relaxed);
    }

    /// The CPU last published, or [`NO_CPU`].
    pub(crate) fn get(&self) -> i32 {
        self.0.load(Ordering::Relaxed)
    }
}

thread_local! {
    /// The joiner of the last task this thread finished: the likely submitter of the next
    /// job, which a pool worker polls for.
    static LAST_JOINER: RefCell<Option<CpuHint>> = const { RefCell::new(None) };
}

thread_local! {
    /// The CPU of the worker that ran the last task this thread joined: the likely runner
    /// of its next one, which it waits for while that is still queued.
    static LAST_RUNNER: Cell<i32> = const { Cell::new(NO_CPU) };
}

/// Record where the task this thread just joined ran.
pub(crate) fn set_last_runner(cpu: i32) {
    LAST_RUNNER.with(|c| c.set(cpu));
}

/// The CPU recorded by [`set_last_runner`], or [`NO_CPU`].
pub(crate) fn last_runner() -> i32 {
    LAST_RUNNER.with(|c| c.get())
}

/// Remember `joiner` as the likely partner of this thread's next wait.
pub(crate) fn set_last_joiner(joiner: &CpuHint) {
    LAST_JOINER.with(|c| *c.borrow_mut() = Some(joiner.clone()));
}

/// The hint remembered by [`set_last_joiner`] (then forgotten), if any.
pub(crate) fn take_last_joiner() -> Option<CpuHint> {
    LAST_JOINER.with(|c| c.borrow_mut().take())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partner_on_this_cpu_means_park_at_once() {
        let here = current_cpu();
        if here != NO_CPU {
            assert!(!Backoff::new().snooze(here, true));
        }
    }

    #[test]
    fn a_poll_spins_first_then_ends_in_a_park() {
        for partner in [NO_CPU, i32::MAX] {
            for started in [false, true] {
                // i32::MAX: "another CPU" (no machine has that many). The first round
                // always spins; after that the poll is bounded by time, so the loop ends
                // (a hang is the failure), and once it said park it keeps saying so.
                let mut b = Backoff::new();
                assert!(b.snooze(partner, started));
                while b.snooze(partner, started) {}
                assert!(!b.snooze(partner, started));
            }
        }
    }

    #[test]
    fn the_last_runner_is_remembered_per_thread() {
        set_last_runner(3);
        assert_eq!(last_runner(), 3);
        assert_eq!(std::thread::spawn(last_runner).join().unwrap(), NO_CPU);
    }

    #[test]
    fn the_last_joiner_is_taken_once_and_read_live() {
        let hint = CpuHint::new();
        assert_eq!(hint.get(), NO_CPU);
        set_last_joiner(&hint);
        let taken = take_last_joiner().expect("a joiner was set");
        assert!(take_last_joiner().is_none());
        // The taken hint is the joiner's own: what it publishes later is seen.
        hint.publish();
        assert_eq!(taken.get(), current_cpu());
    }
}
