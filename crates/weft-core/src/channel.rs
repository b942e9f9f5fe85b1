//! Multi-producer multi-consumer queues of [`Message`]s.
//!
//! One mutex guards the queue; it is held for a push or pop of an already-encoded message
//! only (encoding and decoding happen outside it). Sleepers are counted so the common
//! case never touches a condition variable, and a consumer that finds the queue empty
//! spins briefly first: with a producer on the other core the next item is usually less
//! than a microsecond away, while a futex sleep and wake-up costs several.

use crate::cancel::{CancelToken, Interrupt};
use crate::deadline::Deadline;
use crate::message::Message;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Why a push did not happen.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
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
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
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

struct State {
    queue: VecDeque<Message>,
    closed: bool,
    waiting_pop: usize,
    waiting_push: usize,
}

/// A channel. Share it as `Arc<Channel>`.
pub struct Channel {
    state: Mutex<State>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: Option<usize>,
    len: AtomicUsize,
    closed: AtomicBool,
}

const SPIN_ROUNDS: u32 = 2_000;

impl Channel {
    /// A channel holding at most `capacity` items (`None`: unbounded).
    pub fn new(capacity: Option<usize>) -> Arc<Channel> {
        Arc::new(Channel {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                closed: false,
                waiting_pop: 0,
                waiting_push: 0,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity,
            len: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        })
    }

    /// The capacity it was made with.
    pub fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// True when no item is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Has [`Channel::close`] been called?
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Refuse further pushes; queued items can still be popped. Wakes every sleeper.
    pub fn close(&self) {
        let mut s = self.state.lock();
        s.closed = true;
        self.closed.store(true, Ordering::Release);
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    fn is_full(&self, s: &State) -> bool {
        self.capacity.is_some_and(|c| s.queue.len() >= c)
    }

    /// Queue `msg`, waiting for room until `deadline`.
    pub fn push(
        self: &Arc<Self>,
        msg: Message,
        deadline: Deadline,
        cancel: Option<&CancelToken>,
    ) -> Result<(), PushError> {
        let mut s = self.state.lock();
        if s.closed {
            return Err(PushError::Closed);
        }
        if self.is_full(&s) {
            drop(s);
            let _blocked = cancel.map(|c| c.blocked_on(self.clone()));
            s = self.state.lock();
            loop {
                if s.closed {
                    return Err(PushError::Closed);
                }
                if !self.is_full(&s) {
                    break;
                }
                if cancel.is_some_and(|c| c.is_cancelled()) {
                    return Err(PushError::Cancelled);
                }
                s.waiting_push += 1;
                let timed_out = match deadline.instant() {
                    None => {
                        self.not_full.wait(&mut s);
                        false
                    }
                    Some(t) => self.not_full.wait_until(&mut s, t).timed_out(),
                };
                s.waiting_push -= 1;
                if timed_out && self.is_full(&s) && !s.closed {
                    return Err(PushError::Timeout);
                }
            }
        }
        s.queue.push_back(msg);
        self.len.store(s.queue.len(), Ordering::Relaxed);
        if s.waiting_pop > 0 {
            self.not_empty.notify_one();
        }
        Ok(())
    }

    /// Take the oldest item, waiting until `deadline`. A closed channel still yields
    /// what it holds, then [`PopError::Closed`].
    pub fn pop(
        self: &Arc<Self>,
        deadline: Deadline,
        cancel: Option<&CancelToken>,
    ) -> Result<Message, PopError> {
        self.pop_if(deadline, cancel, |_| true)
            .map(|m| m.expect("every item is accepted"))
    }

    /// Wait like [`Channel::pop`] for an item, then take it only if `accept` says so;
    /// `Ok(None)` leaves a refused item at the front. (The LuaJIT FFI path takes numbers
    /// itself and leaves anything else to the general decoder.)
    pub fn pop_if(
        self: &Arc<Self>,
        deadline: Deadline,
        cancel: Option<&CancelToken>,
        accept: impl Fn(&Message) -> bool,
    ) -> Result<Option<Message>, PopError> {
        if self.len.load(Ordering::Relaxed) > 0 || deadline.expired() {
            let mut s = self.state.lock();
            if let Some(front) = s.queue.front() {
                return Ok(if accept(front) {
                    self.take(&mut s)
                } else {
                    None
                });
            }
            if s.closed {
                return Err(PopError::Closed);
            }
            if deadline.expired() {
                return Err(PopError::Timeout);
            }
        }
        for _ in 0..SPIN_ROUNDS {
            if self.len.load(Ordering::Relaxed) > 0 || self.closed.load(Ordering::Relaxed) {
                break;
            }
            std::hint::spin_loop();
        }
        let mut s = self.state.lock();
        let _blocked = if s.queue.is_empty() && !s.closed {
            drop(s);
            let guard = cancel.map(|c| c.blocked_on(self.clone()));
            s = self.state.lock();
            guard
        } else {
            None
        };
        loop {
            if let Some(front) = s.queue.front() {
                return Ok(if accept(front) {
                    self.take(&mut s)
                } else {
                    None
                });
            }
            if s.closed {
                return Err(PopError::Closed);
            }
            if cancel.is_some_and(|c| c.is_cancelled()) {
                return Err(PopError::Cancelled);
            }
            if deadline.expired() {
                return Err(PopError::Timeout);
            }
            s.waiting_pop += 1;
            match deadline.instant() {
                None => self.not_empty.wait(&mut s),
                Some(t) => {
                    let _ = self.not_empty.wait_until(&mut s, t);
                }
            }
            s.waiting_pop -= 1;
        }
    }

    /// Take the oldest item if there is one, never blocking.
    pub fn try_pop(&self) -> Option<Message> {
        let mut s = self.state.lock();
        self.take(&mut s)
    }

    fn take(&self, s: &mut State) -> Option<Message> {
        let m = s.queue.pop_front()?;
        self.len.store(s.queue.len(), Ordering::Relaxed);
        if s.waiting_push > 0 {
            self.not_full.notify_one();
        }
        Some(m)
    }
}

impl Interrupt for Channel {
    fn interrupt(&self) {
        let _s = self.state.lock();
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }
}

#[cfg(test)]
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
    fn many_producers_many_consumers_lose_nothing() {
        let ch = Channel::new(Some(16));
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
