//! Cancellation: a flag per task plus a link to whatever the task is blocked on.
//!
//! A cancelled task notices at its next check (`weft.check()`, the instruction hook, a
//! blocking weft call). A task asleep in a blocking call must be woken: before sleeping it
//! registers the object it sleeps on (an [`Interrupt`]) with its token, and
//! [`CancelToken::cancel`] calls that object's `interrupt`, which takes the object's own
//! lock before notifying, so the wake-up cannot be lost between the sleeper's last flag
//! check and its wait.

use parking_lot::Mutex;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Something a thread can sleep on and that can be told to wake its sleepers.
pub trait Interrupt: Send + Sync {
    /// Wake every thread sleeping on this object so it re-checks its conditions.
    fn interrupt(&self);
}

/// The cancellation state of one task.
#[derive(Default)]
pub struct CancelToken {
    cancelled: AtomicBool,
    blocker: Mutex<Option<Arc<dyn Interrupt>>>,
    runner: Mutex<Option<Arc<dyn Interrupt>>>,
}

impl CancelToken {
    /// A fresh, not-cancelled token.
    pub fn new() -> Arc<CancelToken> {
        Arc::new(CancelToken::default())
    }

    /// Request cancellation, wake the task if it is asleep in a weft call, and
    /// interrupt the thread running it (see [`CancelToken::running_on`]).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        let blocker = self.blocker.lock().clone();
        if let Some(b) = blocker {
            b.interrupt();
        }
        // Called with the lock held: the runner cannot leave the task (and its thread
        // cannot go away) while it is being interrupted.
        if let Some(r) = &*self.runner.lock() {
            r.interrupt();
        }
    }

    /// Record how to interrupt the thread running this task (weft-lua uses a signal that
    /// makes the thread's Lua state check for cancellation), until the guard drops.
    pub fn running_on(&self, runner: Arc<dyn Interrupt>) -> RunningGuard<'_> {
        *self.runner.lock() = Some(runner);
        RunningGuard { token: self }
    }

    /// Has cancellation been requested?
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Record that the current thread is about to sleep on `on`; the registration is
    /// undone when the guard drops.
    pub fn blocked_on(&self, on: Arc<dyn Interrupt>) -> BlockedGuard<'_> {
        *self.blocker.lock() = Some(on);
        BlockedGuard { token: self }
    }
}

/// Undoes [`CancelToken::blocked_on`] on drop.
pub struct BlockedGuard<'a> {
    token: &'a CancelToken,
}

impl Drop for BlockedGuard<'_> {
    fn drop(&mut self) {
        *self.token.blocker.lock() = None;
    }
}

/// Undoes [`CancelToken::running_on`] on drop.
pub struct RunningGuard<'a> {
    token: &'a CancelToken,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        *self.token.runner.lock() = None;
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<CancelToken>>> = const { RefCell::new(None) };
}

/// The token of the task running on this thread, if any (the main script has none).
pub fn current() -> Option<Arc<CancelToken>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Run `f` with the current task's token borrowed (no reference-count traffic: this is on
/// every channel operation).
pub fn with_current<R>(f: impl FnOnce(Option<&CancelToken>) -> R) -> R {
    CURRENT.with(|c| f(c.borrow().as_deref()))
}

/// Is the task running on this thread cancelled? Cheap: one thread-local read and one
/// atomic load.
pub fn current_is_cancelled() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|t| t.is_cancelled()))
}

/// Make `token` the current task's token until the guard drops (nesting restores the
/// outer one, which matters when a waiting worker helps run another job).
pub fn enter(token: Arc<CancelToken>) -> CurrentGuard {
    let previous = CURRENT.with(|c| c.replace(Some(token)));
    CurrentGuard { previous }
}

/// Restores the previous current token on drop.
pub struct CurrentGuard {
    previous: Option<Arc<CancelToken>>,
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Counting(AtomicUsize);
    impl Interrupt for Counting {
        fn interrupt(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn cancel_wakes_the_registered_blocker_only_while_registered() {
        let token = CancelToken::new();
        let blocker = Arc::new(Counting(AtomicUsize::new(0)));
        {
            let _g = token.blocked_on(blocker.clone());
            token.cancel();
        }
        assert!(token.is_cancelled());
        assert_eq!(blocker.0.load(Ordering::SeqCst), 1);
        token.cancel();
        assert_eq!(blocker.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn entering_nests_and_restores() {
        assert!(current().is_none());
        let outer = CancelToken::new();
        let inner = CancelToken::new();
        let _a = enter(outer.clone());
        {
            let _b = enter(inner.clone());
            inner.cancel();
            assert!(current_is_cancelled());
        }
        assert!(!current_is_cancelled());
        assert!(Arc::ptr_eq(&current().unwrap(), &outer));
    }
}
