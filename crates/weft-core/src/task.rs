//! The completion latch of one unit of work: a spawned thread or a pool future.
//!
//! The outcome is written once and then read without locking by any number of joiners
//! (a handle may be shared with other threads). Waiting spins briefly before sleeping,
//! because a pool round trip is a few microseconds and a futex sleep/wake costs more, but
//! only while the finishing thread runs on another core (`backoff.rs`).

use crate::backoff::{self, Backoff, CpuHint, NO_CPU};
use crate::cancel::{CancelToken, Interrupt};
use crate::deadline::Deadline;
use crate::message::Message;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Queued (a pool job, or a spawned thread's function its thread has not taken yet).
    Pending = 0,
    /// Running.
    Running = 1,
    /// Returned normally.
    Done = 2,
    /// Raised an error.
    Failed = 3,
    /// Stopped by cancellation (before or while running).
    Cancelled = 4,
}

impl Status {
    fn from_u8(v: u8) -> Status {
        match v {
            0 => Status::Pending,
            1 => Status::Running,
            2 => Status::Done,
            3 => Status::Failed,
            _ => Status::Cancelled,
        }
    }

    /// The name Lua sees. A queued task reports "running": docs/design.md fixes the four names.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending | Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// True for the three end states.
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Done | Status::Failed | Status::Cancelled)
    }
}

/// How a task ended.
#[derive(Debug)]
pub enum Outcome {
    /// The function's results.
    Returned(Message),
    /// The error it raised.
    Failed(Failure),
    /// It was cancelled.
    Cancelled,
}

/// An error raised by a task, kept so every joiner can re-raise it.
#[derive(Debug)]
pub struct Failure {
    /// The error value itself (usually a string; tables survive too).
    pub error: Message,
    /// `tostring` of the error value, for messages that must be text.
    pub text: String,
    /// The traceback taken where the error was raised, in the task's own state.
    pub traceback: String,
}

impl Failure {
    /// A failure that is only text (a weft error, an unsendable error value): the text is
    /// also the error value and the traceback.
    pub fn from_text(text: String) -> Failure {
        Failure {
            error: Message::single(crate::message::Value::string(text.as_bytes())),
            traceback: text.clone(),
            text,
        }
    }
}

/// Why [`Task::wait`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitEnd {
    /// The task has an outcome.
    Finished,
    /// The deadline passed first.
    TimedOut,
    /// The waiting task itself was cancelled.
    Cancelled,
}

/// A unit of work's status, outcome and cancellation token.
pub struct Task {
    status: AtomicU8,
    outcome: OnceLock<Outcome>,
    watchers: Mutex<Vec<Arc<dyn Interrupt>>>,
    finished: Condvar,
    cancel: Arc<CancelToken>,
    /// The CPU of the thread that started the task ([`NO_CPU`]: not started yet): a
    /// joiner spins only while this differs from its own (`backoff.rs`).
    runner_cpu: AtomicI32,
    /// The CPU a joiner last ran on: the worker that finishes the task, polling for its
    /// next job (likely from that joiner), parks at once when that is its own CPU.
    joiner_cpu: CpuHint,
}

impl Task {
    /// A task that is already running or queued (claimed later with [`Task::start`]).
    pub fn new(running: bool) -> Arc<Task> {
        let status = if running {
            Status::Running
        } else {
            Status::Pending
        };
        Arc::new(Task {
            status: AtomicU8::new(status as u8),
            outcome: OnceLock::new(),
            watchers: Mutex::new(Vec::new()),
            finished: Condvar::new(),
            cancel: CancelToken::new(),
            runner_cpu: AtomicI32::new(NO_CPU),
            joiner_cpu: CpuHint::new(),
        })
    }

    /// Current status.
    pub fn status(&self) -> Status {
        Status::from_u8(self.status.load(Ordering::Acquire))
    }

    /// The token the task's own code checks.
    pub fn cancel_token(&self) -> &Arc<CancelToken> {
        &self.cancel
    }

    /// Claim a queued task for running; false if it was cancelled while queued.
    pub fn start(&self) -> bool {
        let started = self
            .status
            .compare_exchange(
                Status::Pending as u8,
                Status::Running as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if started {
            // A hint only (a stale value costs a spin or a sleep, never correctness).
            self.runner_cpu
                .store(backoff::current_cpu(), Ordering::Relaxed);
        }
        started
    }

    /// Record the outcome and wake every waiter. Only the first call has an effect.
    pub fn finish(&self, outcome: Outcome) {
        let status = match &outcome {
            Outcome::Returned(_) => Status::Done,
            Outcome::Failed(_) => Status::Failed,
            Outcome::Cancelled => Status::Cancelled,
        };
        if self.outcome.set(outcome).is_err() {
            return;
        }
        let watchers = {
            let guard = self.watchers.lock();
            self.status.store(status as u8, Ordering::Release);
            self.finished.notify_all();
            guard.clone()
        };
        for w in watchers {
            w.interrupt();
        }
        backoff::set_last_joiner(&self.joiner_cpu);
    }

    /// The outcome, once finished.
    pub fn outcome(&self) -> Option<&Outcome> {
        if self.status().is_finished() {
            self.outcome.get()
        } else {
            None
        }
    }

    /// Request cancellation. A task still queued ends at once as cancelled; a running one
    /// ends when its code next checks.
    pub fn cancel(&self) {
        self.cancel.cancel();
        // Claiming a queued task the way a worker would means no worker will run it.
        if self.start() {
            self.finish(Outcome::Cancelled);
        }
    }

    /// Wait for the outcome until `deadline`; `waiter` is the waiting task's own token,
    /// so cancelling the waiter interrupts the wait.
    pub fn wait(self: &Arc<Self>, deadline: Deadline, waiter: Option<&CancelToken>) -> WaitEnd {
        if let Some(end) = self.spin_until_finished(deadline, waiter) {
            if end == WaitEnd::Finished {
                self.note_runner();
            }
            return end;
        }
        let _blocked = waiter.map(|w| w.blocked_on(self.clone()));
        let mut guard = self.watchers.lock();
        loop {
            if self.status().is_finished() {
                self.note_runner();
                return WaitEnd::Finished;
            }
            if waiter.is_some_and(|w| w.is_cancelled()) {
                return WaitEnd::Cancelled;
            }
            match deadline.instant() {
                None => self.finished.wait(&mut guard),
                Some(t) => {
                    if self.finished.wait_until(&mut guard, t).timed_out() {
                        return if self.status().is_finished() {
                            WaitEnd::Finished
                        } else {
                            WaitEnd::TimedOut
                        };
                    }
                }
            }
            // Awake, maybe on another CPU: tell the worker polling for its next job.
            self.joiner_cpu.publish();
        }
    }

    fn spin_until_finished(
        &self,
        deadline: Deadline,
        waiter: Option<&CancelToken>,
    ) -> Option<WaitEnd> {
        // Spin while the runner is on another CPU (`backoff.rs`), then sleep.
        let mut backoff = Backoff::new();
        self.joiner_cpu.publish();
        loop {
            if self.status().is_finished() {
                return Some(WaitEnd::Finished);
            }
            if waiter.is_some_and(|w| w.is_cancelled()) {
                return Some(WaitEnd::Cancelled);
            }
            if deadline.expired() {
                return Some(WaitEnd::TimedOut);
            }
            let started = self.status() != Status::Pending;
            let runner = if started {
                self.runner_cpu.load(Ordering::Relaxed)
            } else {
                // Queued: the worker that ran this thread's last joined task will likely
                // take it; if it was on our CPU, spinning only keeps it waiting.
                backoff::last_runner()
            };
            if !backoff.snooze(runner, started) {
                return None;
            }
        }
    }

    /// Remember where this task ran, for this thread's next wait (see above).
    fn note_runner(&self) {
        backoff::set_last_runner(self.runner_cpu.load(Ordering::Relaxed));
    }

    /// Have `watcher` interrupted when this task finishes (used by pool workers that help
    /// run other jobs while they wait). Returns false if the task already finished.
    pub fn watch(&self, watcher: Arc<dyn Interrupt>) -> bool {
        let mut w = self.watchers.lock();
        if self.status().is_finished() {
            return false;
        }
        w.push(watcher);
        true
    }

    /// Undo [`Task::watch`].
    pub fn unwatch(&self, watcher: &Arc<dyn Interrupt>) {
        self.watchers.lock().retain(|w| !Arc::ptr_eq(w, watcher));
    }
}

impl Interrupt for Task {
    fn interrupt(&self) {
        let _g = self.watchers.lock();
        self.finished.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Value;
    use std::time::Duration;

    #[test]
    fn joiner_on_another_thread_sees_the_outcome() {
        let task = Task::new(true);
        let t2 = task.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            t2.finish(Outcome::Returned(Message::single(Value::Int(7))));
        });
        assert_eq!(task.wait(Deadline::Never, None), WaitEnd::Finished);
        assert_eq!(task.status(), Status::Done);
        match task.outcome() {
            Some(Outcome::Returned(m)) => assert!(matches!(m.values[0], Value::Int(7))),
            other => panic!("unexpected {other:?}"),
        }
        h.join().unwrap();
    }

    #[test]
    fn wait_times_out_then_succeeds() {
        let task = Task::new(true);
        assert_eq!(
            task.wait(Deadline::after_secs(Some(0.02)), None),
            WaitEnd::TimedOut
        );
        task.finish(Outcome::Cancelled);
        assert_eq!(
            task.wait(Deadline::after_secs(Some(0.0)), None),
            WaitEnd::Finished
        );
    }

    #[test]
    fn cancelling_the_waiter_interrupts_its_wait() {
        let task = Task::new(true);
        let waiter = CancelToken::new();
        let w2 = waiter.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            w2.cancel();
        });
        assert_eq!(
            task.wait(Deadline::Never, Some(&waiter)),
            WaitEnd::Cancelled
        );
        h.join().unwrap();
    }

    #[test]
    fn cancelling_a_queued_task_ends_it_and_it_cannot_start() {
        let task = Task::new(false);
        task.cancel();
        assert_eq!(task.status(), Status::Cancelled);
        assert!(!task.start());
    }

    #[test]
    fn only_the_first_outcome_counts() {
        let task = Task::new(true);
        task.finish(Outcome::Cancelled);
        task.finish(Outcome::Returned(Message::default()));
        assert_eq!(task.status(), Status::Cancelled);
    }
}
