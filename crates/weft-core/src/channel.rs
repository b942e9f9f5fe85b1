//! Multi-producer multi-consumer queues of [`Message`]s.
//!
//! The queue itself is lock-free (crossbeam's `ArrayQueue` when bounded, `SegQueue`
//! otherwise): a producer and a consumer on two cores do not take turns on a lock for
//! every item, which is what limited a locked deque. A mutex and two condition variables
//! exist only for sleeping: sleepers are counted, so the common path never touches them,
//! and a consumer that finds the queue empty polls briefly before sleeping (the next item
//! is usually under a microsecond away; a futex sleep and wake-up costs several).
//!
//! Wake-ups cannot be lost. A sleeper counts itself in `waiting_*`, issues a
//! sequentially consistent fence, then re-checks the queue, all under the sleep lock; the
//! other side changes the queue, issues a fence, then reads the count and, if it is not
//! zero, notifies under the sleep lock. The two fences make "the sleeper misses the item
//! and the other side misses the sleeper" impossible without relying on the orderings
//! inside crossbeam's queues. Close and cancel wake through the sleep lock alone. The
//! argument step by step is in `src/channel/README.md`; a loom model of it is in
//! `src/channel/loom_tests.rs` (`make loom`).
//!
//! A consumer streaming right behind its producer lets a batch gather before it goes on
//! (`pace.rs`): trailing item by item makes the two cores trade cache lines on every
//! item, at a third of the speed.

use crate::cancel::{CancelToken, Interrupt};
use crate::deadline::Deadline;
use crate::message::Message;
use crossbeam_utils::CachePadded;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::Arc;
use sync::{fence, yield_now, ArrayQueue, AtomicBool, AtomicUsize, Condvar, Mutex, SegQueue};

mod pace;
mod sync;

#[cfg(all(test, loom))]
mod loom_tests;

/// Why a push did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The channel was closed.
    #[error("closed")]
    Closed,
    /// It stayed full until the deadline.
    #[error("timeout")]
    Timeout,
    /// The pushing task was cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// Why a pop returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PopError {
    /// Closed and drained.
    #[error("closed")]
    Closed,
    /// It stayed empty until the deadline.
    #[error("timeout")]
    Timeout,
    /// The popping task was cancelled.
    #[error("cancelled")]
    Cancelled,
}

enum Queue {
    Bounded(ArrayQueue<Message>),
    Unbounded(SegQueue<Message>),
}

impl Queue {
    // The error hands a refused message back unmoved, as crossbeam's `push` does; boxing
    // it would cost an allocation on every full-channel retry.
    #[allow(clippy::result_large_err)]
    fn push(&self, m: Message) -> Result<(), Message> {
        match self {
            Queue::Bounded(q) => q.push(m),
            Queue::Unbounded(q) => {
                q.push(m);
                Ok(())
            }
        }
    }

    fn pop(&self) -> Option<Message> {
        match self {
            Queue::Bounded(q) => q.pop(),
            Queue::Unbounded(q) => q.pop(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Queue::Bounded(q) => q.len(),
            Queue::Unbounded(q) => q.len(),
        }
    }
}

/// A channel. Share it as `Arc<Channel>`.
pub struct Channel {
    queue: Queue,
    capacity: Option<usize>,
    closed: AtomicBool,
    sleep: Mutex<()>,
    not_empty: Condvar,
    not_full: Condvar,
    waiting_pop: AtomicUsize,
    waiting_push: AtomicUsize,
    /// Pushes between their `closed` check and the end of their enqueue (README.md, "A
    /// push racing close"): a consumer that finds the channel closed waits for these before
    /// its last look at the queue, so an accepted push is never stranded.
    ///
    /// Written twice by every push, so it has a cache line of its own: next to `closed`
    /// and `waiting_pop`, which a polling consumer and every push read, it made that line
    /// travel between the two cores on every item.
    pushing: CachePadded<AtomicUsize>,
    /// Pops in a row that found an item at once (`pace.rs`).
    streak: pace::Streak,
}

/// How long a consumer polls an empty queue before sleeping, in pause instructions. One
/// under loom: every retry multiplies the interleavings the model explores, and one
/// already covers the path.
const SPIN_PAUSES: u32 = if cfg!(loom) { 1 } else { 2_000 };

/// The most pauses between two looks at an empty queue. Each look reads the queue's tail,
/// the line the producer writes on every push: a consumer looking after every pause
/// pulled that line away from the producer on every item (issue 15: with `pushing` on its
/// own line too, the slow runs of a number channel went from ~2 to ~5 M/s). Doubling the
/// gap up to this lets a few items gather, which the consumer then takes without
/// contention, at a cost of at most this many pauses (about a microsecond) of latency.
const MAX_PAUSE: u32 = 32;

impl Channel {
    /// A channel holding at most `capacity` items (`None`: unbounded).
    pub fn new(capacity: Option<usize>) -> Arc<Channel> {
        let queue = match capacity {
            Some(c) => Queue::Bounded(ArrayQueue::new(c.max(1))),
            None => Queue::Unbounded(SegQueue::new()),
        };
        Arc::new(Channel {
            queue,
            capacity,
            closed: AtomicBool::new(false),
            sleep: Mutex::new(()),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            waiting_pop: AtomicUsize::new(0),
            waiting_push: AtomicUsize::new(0),
            pushing: CachePadded::new(AtomicUsize::new(0)),
            streak: pace::Streak::new(),
        })
    }

    /// The capacity it was made with.
    pub fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when no item is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Has [`Channel::close`] been called?
    pub fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// Refuse further pushes; queued items can still be popped. Wakes every sleeper.
    pub fn close(&self) {
        let _sleep = self.sleep.lock();
        self.closed.store(true, SeqCst);
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    /// Called after changing the queue (an item added or taken): wake one thread asleep
    /// on `cond` waiting for that change, if any is counted in `waiting`.
    fn wake(&self, waiting: &AtomicUsize, cond: &Condvar) {
        // The waker's fence (README.md, "the two fences"): orders the queue change above
        // before the read of the sleeper count below, pairing with the fence in
        // `sleep_until`. Without it the read may miss a sleeper who missed the change.
        fence(SeqCst);
        if waiting.load(Relaxed) > 0 {
            let _sleep = self.sleep.lock();
            cond.notify_one();
        }
    }

    /// Queue `msg`, waiting for room until `deadline`.
    pub fn push(
        self: &Arc<Self>,
        msg: Message,
        deadline: Deadline,
        cancel: Option<&CancelToken>,
    ) -> Result<(), PushError> {
        // Counted, then a fence, then the `closed` check; it pairs with the fence in
        // `pop_closed` (README.md, "A push racing close"): either the consumer sees this
        // count, or this push sees `closed` and is refused.
        self.pushing.fetch_add(1, Relaxed);
        fence(SeqCst);
        let pushed = self.push_counted(msg, deadline, cancel);
        // Release: a consumer that reads the lowered count also sees the item queued.
        self.pushing.fetch_sub(1, Release);
        pushed
    }

    /// [`Channel::push`] while counted in `pushing`.
    fn push_counted(
        self: &Arc<Self>,
        msg: Message,
        deadline: Deadline,
        cancel: Option<&CancelToken>,
    ) -> Result<(), PushError> {
        if self.closed.load(SeqCst) {
            return Err(PushError::Closed);
        }
        let msg = match self.queue.push(msg) {
            Ok(()) => {
                self.wake(&self.waiting_pop, &self.not_empty);
                return Ok(());
            }
            Err(m) => m,
        };
        let mut pending = Some(msg);
        // No poll before sleeping here, unlike a consumer's: measured, a producer polling
        // a full queue fought its consumer for the queue's head and halved throughput
        // (capacity 1024, numbers: 8-9 M/s sleeping, 3-6 M/s polling), while a sleeping
        // one lets the consumer drain a run of items undisturbed.
        let pushed = self.sleep_until(
            &self.not_full,
            &self.waiting_push,
            deadline,
            cancel,
            PushError::Cancelled,
            PushError::Timeout,
            || {
                if self.closed.load(SeqCst) {
                    return Some(Err(PushError::Closed));
                }
                match self.queue.push(pending.take()?) {
                    Ok(()) => Some(Ok(())),
                    Err(m) => {
                        pending = Some(m);
                        None
                    }
                }
            },
        );
        if pushed.is_ok() {
            self.wake(&self.waiting_pop, &self.not_empty);
        }
        pushed
    }

    /// Take the oldest item, waiting until `deadline`. A closed channel still yields
    /// what it holds, then [`PopError::Closed`].
    pub fn pop(
        self: &Arc<Self>,
        deadline: Deadline,
        cancel: Option<&CancelToken>,
    ) -> Result<Message, PopError> {
        // The queue's own pop on each side, not `try_pop`: a call between taking the
        // message and returning it makes the compiler copy the 144-byte message through
        // the stack again (measured: ~10 ns a pop). Pacing (`pace.rs`) is for the
        // unbounded queue only: a bounded one's pop reads no tail while items are there,
        // and its streams showed no slow mode to cure.
        match &self.queue {
            Queue::Unbounded(q) => {
                self.streak
                    .before_pop(|| q.len(), || self.closed.load(Relaxed), &deadline);
                if let Some(m) = q.pop() {
                    return Ok(m);
                }
            }
            Queue::Bounded(q) => {
                if let Some(m) = q.pop() {
                    self.made_room();
                    return Ok(m);
                }
            }
        }
        self.streak.found_empty();
        if self.closed.load(SeqCst) {
            return self.pop_closed();
        }
        if deadline.expired() {
            return Err(PopError::Timeout);
        }
        if let Some(m) = self.poll(|| self.try_pop()) {
            return Ok(m);
        }
        let popped = self.sleep_until(
            &self.not_empty,
            &self.waiting_pop,
            deadline,
            cancel,
            PopError::Cancelled,
            PopError::Timeout,
            || match self.queue.pop() {
                Some(m) => Some(Ok(m)),
                // Settled outside the sleep lock: a push in flight may need it to wake us.
                None if self.closed.load(SeqCst) => Some(Err(PopError::Closed)),
                None => None,
            },
        );
        match popped {
            Ok(_) => self.made_room(),
            Err(PopError::Closed) => return self.pop_closed(),
            Err(_) => {}
        }
        popped
    }

    /// Retry `attempt` for a short while ([`SPIN_PAUSES`]), looking less often as the wait
    /// grows ([`MAX_PAUSE`]); `None` when the time ran out or the channel was closed.
    fn poll<T>(&self, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
        let mut paused = 0;
        let mut pause = 1;
        while paused < SPIN_PAUSES {
            if let Some(done) = attempt() {
                return Some(done);
            }
            if self.closed.load(SeqCst) {
                return None;
            }
            for _ in 0..pause {
                std::hint::spin_loop();
            }
            paused += pause;
            pause = (pause * 2).min(MAX_PAUSE);
        }
        None
    }

    /// The last look at a closed channel: wait out the pushes that passed their `closed`
    /// check before `close` (they finish without blocking: `close` woke any that slept),
    /// then take what is queued, or report [`PopError::Closed`].
    fn pop_closed(&self) -> Result<Message, PopError> {
        fence(SeqCst);
        while self.pushing.load(Acquire) != 0 {
            yield_now();
        }
        self.try_pop().ok_or(PopError::Closed)
    }

    /// Sleep on `cond` until `attempt` settles the operation (`Some`), the waiting task is
    /// cancelled, or `deadline` passes. The sleeper is counted in `waiting` and re-checks
    /// under the sleep lock, so a wake-up between its check and its sleep is not lost.
    #[allow(clippy::too_many_arguments)]
    fn sleep_until<T, E>(
        self: &Arc<Self>,
        cond: &Condvar,
        waiting: &AtomicUsize,
        deadline: Deadline,
        cancel: Option<&CancelToken>,
        cancelled: E,
        timed_out: E,
        mut attempt: impl FnMut() -> Option<Result<T, E>>,
    ) -> Result<T, E> {
        let _blocked = cancel.map(|c| c.blocked_on(self.clone()));
        let mut sleep = self.sleep.lock();
        waiting.fetch_add(1, Relaxed);
        // The sleeper's fence (README.md, "the two fences"): orders the count above before
        // the queue check in `attempt`, pairing with the fence in `wake`.
        fence(SeqCst);
        let result = loop {
            if let Some(settled) = attempt() {
                break settled;
            }
            if cancel.is_some_and(|c| c.is_cancelled()) {
                break Err(cancelled);
            }
            if deadline.expired() {
                break Err(timed_out);
            }
            match deadline.instant() {
                None => sleep = cond.wait(sleep),
                Some(t) => sleep = cond.wait_until(sleep, t),
            }
        };
        // A waker that still reads the old count only takes the lock and notifies nobody.
        waiting.fetch_sub(1, Relaxed);
        result
    }

    /// Take the oldest item if there is one, never blocking.
    pub fn try_pop(&self) -> Option<Message> {
        let m = self.queue.pop()?;
        self.made_room();
        Some(m)
    }

    /// Called after an item was taken: wakes a producer asleep for room. Only a bounded
    /// channel's producers ever sleep for room (an unbounded push cannot fail), so only
    /// there does taking an item owe anyone a wake-up; skipping it saves the unbounded
    /// consumer a fence per item.
    fn made_room(&self) {
        if self.capacity.is_some() {
            self.wake(&self.waiting_push, &self.not_full);
        }
    }
}

impl Interrupt for Channel {
    fn interrupt(&self) {
        let _sleep = self.sleep.lock();
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::message::Value;
    use std::time::Duration;

    fn int(m: &Message) -> i64 {
        match m.values[0] {
            Value::Int(i) => i,
            ref v => panic!("not an int: {v:?}"),
        }
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "20 000 messages take too long under Miri; tests/channel_small.rs is its Miri-sized twin"
    )]
    fn many_producers_many_consumers_lose_nothing() {
        // Bounded, and unbounded, where the consumers' pops pace (pace.rs).
        for capacity in [Some(16), None] {
            many_producers_many_consumers_on(Channel::new(capacity));
        }
    }

    fn many_producers_many_consumers_on(ch: Arc<Channel>) {
        let producers: Vec<_> = (0..4)
            .map(|p| {
                let ch = ch.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        ch.push(
                            Message::single(Value::Int(p * 1_000_000 + i)),
                            Deadline::Never,
                            None,
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let ch = ch.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Ok(m) = ch.pop(Deadline::Never, None) {
                        got.push(int(&m));
                    }
                    got
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        ch.close();
        let mut all: Vec<i64> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        all.sort_unstable();
        let mut expected: Vec<i64> = (0..4)
            .flat_map(|p| (0..5_000).map(move |i| p * 1_000_000 + i))
            .collect();
        expected.sort_unstable();
        assert_eq!(all, expected);
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "1 000 blocking hand-offs take too long under Miri; tests/channel_small.rs checks order there"
    )]
    fn per_producer_order_is_kept() {
        let ch = Channel::new(Some(4));
        let c2 = ch.clone();
        let h = std::thread::spawn(move || {
            for i in 0..1000 {
                c2.push(Message::single(Value::Int(i)), Deadline::Never, None)
                    .unwrap();
            }
            c2.close();
        });
        let mut next = 0;
        while let Ok(m) = ch.pop(Deadline::Never, None) {
            assert_eq!(int(&m), next);
            next += 1;
        }
        assert_eq!(next, 1000);
        h.join().unwrap();
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "20 000 messages take too long under Miri; the pacing's rules are unit-tested in pace.rs"
    )]
    fn a_streaming_consumer_gets_every_item_in_order_and_is_not_held_by_a_pause() {
        // A stream long enough for the consumer's pacing checks (pace.rs), then a short
        // burst after which the producer waits for the consumer: a consumer that waited
        // for a batch that never comes would time out here instead of answering.
        let (ch, ack) = (Channel::new(None), Channel::new(None));
        let (c2, a2) = (ch.clone(), ack.clone());
        let h = std::thread::spawn(move || {
            for i in 0..20_010 {
                c2.push(Message::single(Value::Int(i)), Deadline::Never, None)
                    .unwrap();
            }
            let answer = a2.pop(Deadline::after_secs(Some(30.0)), None);
            c2.close();
            answer.map(|m| int(&m))
        });
        for i in 0..20_010 {
            let m = ch.pop(Deadline::after_secs(Some(30.0)), None).unwrap();
            assert_eq!(int(&m), i);
        }
        ack.push(Message::single(Value::Int(-1)), Deadline::Never, None)
            .unwrap();
        assert_eq!(h.join().unwrap(), Ok(-1));
        assert_eq!(ch.pop(Deadline::Never, None).unwrap_err(), PopError::Closed);
    }

    #[test]
    fn timeouts_on_empty_and_full() {
        let ch = Channel::new(Some(1));
        assert_eq!(
            ch.pop(Deadline::after_secs(Some(0.01)), None).unwrap_err(),
            PopError::Timeout
        );
        ch.push(Message::default(), Deadline::Never, None).unwrap();
        assert_eq!(
            ch.push(Message::default(), Deadline::after_secs(Some(0.01)), None)
                .unwrap_err(),
            PushError::Timeout
        );
        assert_eq!(ch.len(), 1);
    }

    #[test]
    fn closed_channel_drains_then_reports_closed() {
        let ch = Channel::new(None);
        ch.push(Message::single(Value::Int(1)), Deadline::Never, None)
            .unwrap();
        ch.close();
        assert_eq!(
            ch.push(Message::default(), Deadline::Never, None)
                .unwrap_err(),
            PushError::Closed
        );
        assert_eq!(int(&ch.pop(Deadline::Never, None).unwrap()), 1);
        assert_eq!(ch.pop(Deadline::Never, None).unwrap_err(), PopError::Closed);
    }

    #[test]
    fn close_wakes_a_blocked_consumer() {
        let ch = Channel::new(None);
        let c2 = ch.clone();
        let h = std::thread::spawn(move || c2.pop(Deadline::Never, None));
        std::thread::sleep(Duration::from_millis(30));
        ch.close();
        assert_eq!(h.join().unwrap().unwrap_err(), PopError::Closed);
    }

    #[test]
    fn cancel_wakes_blocked_pop_and_push() {
        let ch = Channel::new(Some(1));
        ch.push(Message::default(), Deadline::Never, None).unwrap();
        let (t1, t2) = (CancelToken::new(), CancelToken::new());
        let empty = Channel::new(None);
        let (c1, tc1, e2, tc2) = (ch.clone(), t1.clone(), empty.clone(), t2.clone());
        let pusher =
            std::thread::spawn(move || c1.push(Message::default(), Deadline::Never, Some(&tc1)));
        let popper = std::thread::spawn(move || e2.pop(Deadline::Never, Some(&tc2)).map(|_| ()));
        std::thread::sleep(Duration::from_millis(30));
        t1.cancel();
        t2.cancel();
        assert_eq!(pusher.join().unwrap().unwrap_err(), PushError::Cancelled);
        assert_eq!(popper.join().unwrap().unwrap_err(), PopError::Cancelled);
    }
}
