//! Everything the channel synchronises with, from one place, so that a build with
//! `--cfg loom` can put loom's model-checked versions in its place (tokio and crossbeam
//! do the same).
//!
//! The mutex and condition variable have one small API in both builds: `lock()` returns
//! the guard (no poisoning), and `wait` takes the guard by value and hands it back.
//!
//! Under loom the lock-free queues are stand-ins ([`ArrayQueue`], [`SegQueue`] below)
//! that are deliberately weak: publishing an item is a release store, taking one an
//! acquire load and a CAS, and finding the queue empty is plain loads that write nothing. crossbeam's real queues use
//! sequentially consistent operations inside; the stand-ins do not, so the model shows
//! that the fences in `channel.rs` carry the no-lost-wake-up argument on their own.

#[cfg(not(loom))]
pub(super) use imp_std::*;

#[cfg(loom)]
pub(super) use imp_loom::*;

#[cfg(not(loom))]
mod imp_std {
    pub(in crate::channel) use crossbeam_queue::{ArrayQueue, SegQueue};
    pub(in crate::channel) use parking_lot::{Mutex, MutexGuard};
    pub(in crate::channel) use std::sync::atomic::{fence, AtomicBool, AtomicUsize};
    pub(in crate::channel) use std::thread::yield_now;
    use std::time::Instant;

    /// parking_lot's condition variable, with the guard passed by value.
    pub(in crate::channel) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        /// A condition variable nobody waits on.
        #[inline]
        pub(in crate::channel) fn new() -> Condvar {
            Condvar(parking_lot::Condvar::new())
        }

        /// Release the lock, sleep until notified, take the lock again.
        #[inline]
        pub(in crate::channel) fn wait<'a, T>(
            &self,
            mut guard: MutexGuard<'a, T>,
        ) -> MutexGuard<'a, T> {
            self.0.wait(&mut guard);
            guard
        }

        /// [`Condvar::wait`], giving up at `deadline`.
        #[inline]
        pub(in crate::channel) fn wait_until<'a, T>(
            &self,
            mut guard: MutexGuard<'a, T>,
            deadline: Instant,
        ) -> MutexGuard<'a, T> {
            let _ = self.0.wait_until(&mut guard, deadline);
            guard
        }

        /// Wake one sleeper, if any.
        #[inline]
        pub(in crate::channel) fn notify_one(&self) {
            self.0.notify_one();
        }

        /// Wake every sleeper.
        #[inline]
        pub(in crate::channel) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

#[cfg(loom)]
mod imp_loom {
    pub(in crate::channel) use loom::sync::atomic::{fence, AtomicBool, AtomicUsize};
    pub(in crate::channel) use loom::sync::MutexGuard;
    pub(in crate::channel) use loom::thread::yield_now;
    use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
    use std::time::Instant;

    /// loom's mutex, locked without poisoning (as parking_lot's).
    pub(in crate::channel) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        /// A mutex holding `value`.
        pub(in crate::channel) fn new(value: T) -> Mutex<T> {
            Mutex(loom::sync::Mutex::new(value))
        }

        /// Take the lock.
        pub(in crate::channel) fn lock(&self) -> MutexGuard<'_, T> {
            self.0
                .lock()
                .expect("a loom model thread panicked holding the lock")
        }
    }

    /// loom's condition variable (it never wakes spuriously, and has no clock: a timed
    /// wait is an untimed one, so the models use no deadlines).
    pub(in crate::channel) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        /// A condition variable nobody waits on.
        pub(in crate::channel) fn new() -> Condvar {
            Condvar(loom::sync::Condvar::new())
        }

        /// Release the lock, sleep until notified, take the lock again.
        pub(in crate::channel) fn wait<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
        ) -> MutexGuard<'a, T> {
            self.0
                .wait(guard)
                .expect("a loom model thread panicked holding the lock")
        }

        /// As [`Condvar::wait`]: loom does not model time.
        pub(in crate::channel) fn wait_until<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            _deadline: Instant,
        ) -> MutexGuard<'a, T> {
            self.wait(guard)
        }

        /// Wake one sleeper, if any.
        pub(in crate::channel) fn notify_one(&self) {
            self.0.notify_one();
        }

        /// Wake every sleeper.
        pub(in crate::channel) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    const EMPTY: usize = 0;
    const BUSY: usize = 1;
    const FULL: usize = 2;

    /// One place for an item. `state` is the only thing loom sees; the item itself sits
    /// in a std mutex that only the thread which moved `state` to `BUSY` touches, so it
    /// is never contended and adds no synchronisation loom would count.
    struct Slot<T> {
        state: AtomicUsize,
        item: std::sync::Mutex<Option<T>>,
    }

    /// The stand-in for crossbeam's bounded queue: `capacity` slots, taken in slot
    /// order rather than first in, first out (order plays no part in wake-ups).
    pub(in crate::channel) struct ArrayQueue<T> {
        slots: Vec<Slot<T>>,
    }

    impl<T> ArrayQueue<T> {
        /// A queue with room for `capacity` items.
        pub(in crate::channel) fn new(capacity: usize) -> ArrayQueue<T> {
            let slots = (0..capacity)
                .map(|_| Slot {
                    state: AtomicUsize::new(EMPTY),
                    item: std::sync::Mutex::new(None),
                })
                .collect();
            ArrayQueue { slots }
        }

        /// Store `item` in an empty slot (publishing it with a release store), or hand
        /// it back when every slot is in use.
        pub(in crate::channel) fn push(&self, item: T) -> Result<(), T> {
            for slot in &self.slots {
                // A plain load first, as crossbeam reads a stamp: loom lets it see an
                // older value, where a failed CAS would always read the newest.
                if slot.state.load(Relaxed) == EMPTY
                    && slot
                        .state
                        .compare_exchange(EMPTY, BUSY, Acquire, Relaxed)
                        .is_ok()
                {
                    *slot.item.lock().expect("slot lock") = Some(item);
                    slot.state.store(FULL, Release);
                    return Ok(());
                }
            }
            Err(item)
        }

        /// Take an item from a full slot (an acquire load, then a CAS), or `None` having
        /// written nothing.
        pub(in crate::channel) fn pop(&self) -> Option<T> {
            for slot in &self.slots {
                if slot.state.load(Acquire) == FULL
                    && slot
                        .state
                        .compare_exchange(FULL, BUSY, Acquire, Relaxed)
                        .is_ok()
                {
                    let item = slot.item.lock().expect("slot lock").take();
                    slot.state.store(EMPTY, Release);
                    return item;
                }
            }
            None
        }

        /// Items stored now.
        pub(in crate::channel) fn len(&self) -> usize {
            self.slots
                .iter()
                .filter(|s| s.state.load(Relaxed) == FULL)
                .count()
        }
    }

    /// How many items the unbounded stand-in holds; the models push fewer.
    const UNBOUNDED_SLOTS: usize = 4;

    /// The stand-in for crossbeam's unbounded queue: a bounded one the models never fill.
    pub(in crate::channel) struct SegQueue<T>(ArrayQueue<T>);

    impl<T> SegQueue<T> {
        /// An empty queue.
        pub(in crate::channel) fn new() -> SegQueue<T> {
            SegQueue(ArrayQueue::new(UNBOUNDED_SLOTS))
        }

        /// Store `item`.
        pub(in crate::channel) fn push(&self, item: T) {
            if self.0.push(item).is_err() {
                panic!("a loom model pushed more than {UNBOUNDED_SLOTS} items");
            }
        }

        /// Take an item, if any.
        pub(in crate::channel) fn pop(&self) -> Option<T> {
            self.0.pop()
        }

        /// Items stored now.
        pub(in crate::channel) fn len(&self) -> usize {
            self.0.len()
        }
    }
}
