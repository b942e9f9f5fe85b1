//! A fixed set of worker threads sharing one job queue.
//!
//! Each worker runs a caller-supplied start hook first (weft-lua builds the worker's Lua
//! state there and runs the pool's `init`), and [`Pool::new`] returns only when every
//! worker has started, so an `init` error is reported by the call that made the pool.
//!
//! Waiting for a task from inside a worker ([`wait_task`]) does not just sleep: the worker
//! keeps taking jobs from its own pool's queue until the awaited task finishes. That is
//! what lets a task submit to its own pool and join the result on a pool of any size,
//! including one worker, without deadlock.

use crate::backoff::{self, Backoff};
use crate::cancel::{CancelToken, Interrupt};
use crate::deadline::Deadline;
use crate::task::{Task, WaitEnd};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// A unit of work for a pool thread.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// What a pool runs on each of its threads when the thread starts and before it exits.
pub trait WorkerLifecycle: Send + Sync + 'static {
    /// Prepare the thread (worker `index`, 0-based). An error stops the pool's creation.
    fn start(&self, index: usize) -> Result<(), String>;
    /// Release what `start` made; runs on the same thread after its last job.
    fn stop(&self, index: usize);
}

/// Why a pool could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// A worker's start hook failed.
    #[error("pool worker {worker} failed to start: {message}")]
    Init {
        /// 1-based worker number, as Lua users count.
        worker: usize,
        /// The hook's error.
        message: String,
    },
    /// The OS refused a thread.
    #[error("cannot start a pool thread: {0}")]
    Spawn(String),
    /// The pool is closed.
    #[error("the pool is closed")]
    Closed,
    /// `close` with waiting was called by one of the pool's own workers.
    #[error("a pool cannot wait for its own workers from inside one of its tasks")]
    SelfJoin,
}

struct State {
    queue: VecDeque<Job>,
    closing: bool,
    /// Idle workers asleep on `idle`, and how many of them a submit has woken already.
    idle: Sleepers,
    /// Workers asleep on `helpers` while they wait for a task, likewise.
    helping: Sleepers,
}

/// Threads asleep on one condition variable. A submit wakes one that no earlier submit has
/// woken yet: two jobs submitted back to back wake two threads, as they did when every
/// sleeper shared one condition variable.
#[derive(Default)]
struct Sleepers {
    asleep: usize,
    woken: usize,
    /// Sleeps ended, by any cause (tests count spurious wake-ups with it).
    #[cfg(test)]
    ended: usize,
}

impl Sleepers {
    /// Counts a thread that wakes for one job, if one is asleep and not yet called.
    fn call(&mut self) -> bool {
        let free = self.asleep > self.woken;
        if free {
            self.woken += 1;
        }
        free
    }

    /// Waits on `cv` (until `until`, when given) counted as asleep.
    fn sleep(
        state: &mut MutexGuard<'_, State>,
        which: fn(&mut State) -> &mut Sleepers,
        cv: &Condvar,
        until: Option<std::time::Instant>,
    ) {
        which(state).asleep += 1;
        match until {
            None => cv.wait(state),
            Some(t) => {
                let _ = cv.wait_until(state, t);
            }
        }
        let me = which(state);
        me.asleep -= 1;
        // A notify_all or a timeout also ends a sleep: the count may drop below the calls
        // still on their way, which only makes a later submit wake one thread more.
        me.woken = me.woken.saturating_sub(1);
        #[cfg(test)]
        {
            me.ended += 1;
        }
    }
}

/// The part of a pool its workers share.
pub struct Shared {
    state: Mutex<State>,
    /// Idle workers sleep here: a submitted job wakes one of them.
    idle: Condvar,
    /// Workers waiting for a task (and running queued jobs meanwhile) sleep here, apart from
    /// the idle ones, so that a finished or cancelled task wakes only the workers that may
    /// be waiting for it, not every idle worker of the pool.
    helpers: Condvar,
    queued: AtomicUsize,
}

impl Interrupt for Shared {
    fn interrupt(&self) {
        let _s = self.state.lock();
        self.helpers.notify_all();
    }
}

thread_local! {
    static WORKER_OF: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

/// A pool of worker threads. Dropping the last reference closes it: queued jobs still
/// run, then the workers exit (nobody waits for them).
pub struct Pool {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    size: usize,
}

impl Pool {
    /// Start `size` workers named `name-1`, `name-2`, … and wait until each has run
    /// `lifecycle.start`.
    pub fn new(
        size: usize,
        name: &str,
        lifecycle: Arc<dyn WorkerLifecycle>,
    ) -> Result<Pool, PoolError> {
        let size = size.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                closing: false,
                idle: Sleepers::default(),
                helping: Sleepers::default(),
            }),
            idle: Condvar::new(),
            helpers: Condvar::new(),
            queued: AtomicUsize::new(0),
        });
        let pool = Pool {
            shared: shared.clone(),
            threads: Mutex::new(Vec::new()),
            size,
        };
        let (started_tx, started_rx) = mpsc::channel();
        for index in 0..size {
            let shared = shared.clone();
            let lifecycle = lifecycle.clone();
            let started = started_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{}", index + 1))
                // Room for deeply nested values (the Lua value encoder recurses per level).
                .stack_size(16 << 20)
                .spawn(move || worker_main(index, shared, lifecycle, started));
            match spawned {
                Ok(h) => pool.threads.lock().push(h),
                Err(e) => {
                    pool.shut_down_after_failed_start();
                    return Err(PoolError::Spawn(e.to_string()));
                }
            }
        }
        drop(started_tx);
        let mut failure = None;
        for _ in 0..size {
            match started_rx.recv() {
                Ok((_, Ok(()))) => {}
                Ok((index, Err(message))) => {
                    failure.get_or_insert(PoolError::Init {
                        worker: index + 1,
                        message,
                    });
                }
                Err(_) => {
                    failure
                        .get_or_insert(PoolError::Spawn("a worker exited while starting".into()));
                }
            }
        }
        match failure {
            None => Ok(pool),
            Some(e) => {
                pool.shut_down_after_failed_start();
                Err(e)
            }
        }
    }

    fn shut_down_after_failed_start(&self) {
        self.close();
        for h in self.threads.lock().drain(..) {
            let _ = h.join();
        }
    }

    /// Number of worker threads.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Queue a job.
    pub fn submit(&self, job: Job) -> Result<(), PoolError> {
        let mut s = self.shared.state.lock();
        if s.closing {
            return Err(PoolError::Closed);
        }
        s.queue.push_back(job);
        self.shared.queued.fetch_add(1, Ordering::Release);
        // An idle worker first: a helper runs the job only between looks at its own task.
        if s.idle.call() {
            self.shared.idle.notify_one();
        } else if s.helping.call() {
            self.shared.helpers.notify_one();
        }
        Ok(())
    }

    /// Refuse new jobs; the workers finish what is queued, then exit.
    pub fn close(&self) {
        let mut s = self.shared.state.lock();
        s.closing = true;
        self.shared.idle.notify_all();
        self.shared.helpers.notify_all();
    }

    /// True once [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.shared.state.lock().closing
    }

    /// Close and wait for every worker to exit.
    pub fn close_and_join(&self) -> Result<(), PoolError> {
        let own = WORKER_OF.with(|w| {
            w.borrow()
                .as_ref()
                .is_some_and(|s| Arc::ptr_eq(s, &self.shared))
        });
        if own {
            return Err(PoolError::SelfJoin);
        }
        self.close();
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        for h in threads {
            let _ = h.join();
        }
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    fn try_pop(&self) -> Option<Job> {
        if self.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut s = self.state.lock();
        let job = s.queue.pop_front();
        if job.is_some() {
            self.queued.fetch_sub(1, Ordering::Release);
        }
        job
    }

    fn next_job(&self) -> Option<Job> {
        // Spin briefly (the next job of a submit/join loop is microseconds away), unless the
        // likely submitter, the last job's joiner, is on this CPU: then spinning only keeps
        // it off the core (`backoff.rs`). Then sleep.
        let mut backoff = Backoff::new();
        let submitter = backoff::take_last_joiner();
        let partner = || submitter.as_ref().map_or(backoff::NO_CPU, |h| h.get());
        while self.queued.load(Ordering::Acquire) == 0 && backoff.snooze(partner(), true) {}
        drop(submitter);
        let mut s = self.state.lock();
        loop {
            if let Some(job) = s.queue.pop_front() {
                self.queued.fetch_sub(1, Ordering::Release);
                return Some(job);
            }
            if s.closing {
                return None;
            }
            Sleepers::sleep(&mut s, |s| &mut s.idle, &self.idle, None);
        }
    }

    fn help_until(
        self: &Arc<Self>,
        task: &Arc<Task>,
        deadline: Deadline,
        waiter: Option<&CancelToken>,
    ) -> WaitEnd {
        let watcher: Arc<dyn Interrupt> = self.clone();
        if !task.watch(watcher.clone()) {
            return WaitEnd::Finished;
        }
        let _blocked = waiter.map(|w| w.blocked_on(self.clone()));
        let end = loop {
            if task.status().is_finished() {
                break WaitEnd::Finished;
            }
            if waiter.is_some_and(|w| w.is_cancelled()) {
                break WaitEnd::Cancelled;
            }
            if deadline.expired() {
                break WaitEnd::TimedOut;
            }
            if let Some(job) = self.try_pop() {
                run_job(job);
                continue;
            }
            let mut s = self.state.lock();
            if !s.queue.is_empty()
                || task.status().is_finished()
                || waiter.is_some_and(|w| w.is_cancelled())
            {
                continue;
            }
            Sleepers::sleep(
                &mut s,
                |s| &mut s.helping,
                &self.helpers,
                deadline.instant(),
            );
        };
        task.unwatch(&watcher);
        end
    }
}

fn run_job(job: Job) {
    // The job catches its own panics (it owns the outcome to report); this is the
    // backstop that keeps the worker alive whatever a job does.
    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
}

type Started = mpsc::Sender<(usize, Result<(), String>)>;

fn worker_main(
    index: usize,
    shared: Arc<Shared>,
    lifecycle: Arc<dyn WorkerLifecycle>,
    started: Started,
) {
    WORKER_OF.with(|w| *w.borrow_mut() = Some(shared.clone()));
    let start = std::panic::catch_unwind(AssertUnwindSafe(|| lifecycle.start(index)))
        .unwrap_or_else(|_| Err("the start hook panicked".into()));
    let ok = start.is_ok();
    let _ = started.send((index, start));
    drop(started);
    if ok {
        while let Some(job) = shared.next_job() {
            run_job(job);
        }
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| lifecycle.stop(index)));
    }
    WORKER_OF.with(|w| *w.borrow_mut() = None);
}

/// Wait for `task`. On a pool worker, run the pool's queued jobs while waiting.
pub fn wait_task(task: &Arc<Task>, deadline: Deadline, waiter: Option<&CancelToken>) -> WaitEnd {
    match WORKER_OF.with(|w| w.borrow().clone()) {
        Some(shared) => shared.help_until(task, deadline, waiter),
        None => task.wait(deadline, waiter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, Value};
    use crate::task::Outcome;
    use std::sync::atomic::AtomicBool;
    use std::sync::OnceLock;

    struct Noop;
    impl WorkerLifecycle for Noop {
        fn start(&self, _: usize) -> Result<(), String> {
            Ok(())
        }
        fn stop(&self, _: usize) {}
    }

    struct FailSecond;
    impl WorkerLifecycle for FailSecond {
        fn start(&self, index: usize) -> Result<(), String> {
            if index == 1 {
                Err("init exploded".into())
            } else {
                Ok(())
            }
        }
        fn stop(&self, _: usize) {}
    }

    fn job_returning(task: Arc<Task>, v: i64) -> Job {
        Box::new(move || {
            if task.start() {
                task.finish(Outcome::Returned(Message::single(Value::Int(v))));
            }
        })
    }

    #[test]
    fn runs_jobs_on_all_workers() {
        let pool = Pool::new(3, "t", Arc::new(Noop)).unwrap();
        let tasks: Vec<_> = (0..50).map(|_| Task::new(false)).collect();
        for (i, t) in tasks.iter().enumerate() {
            pool.submit(job_returning(t.clone(), i as i64)).unwrap();
        }
        for t in &tasks {
            assert_eq!(wait_task(t, Deadline::Never, None), WaitEnd::Finished);
        }
        pool.close_and_join().unwrap();
        assert!(matches!(
            pool.submit(Box::new(|| {})),
            Err(PoolError::Closed)
        ));
    }

    #[test]
    fn a_failing_start_hook_fails_creation_and_names_the_worker() {
        match Pool::new(2, "t", Arc::new(FailSecond)) {
            Err(PoolError::Init { worker, message }) => {
                assert_eq!(worker, 2);
                assert_eq!(message, "init exploded");
            }
            other => panic!("unexpected {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn nested_submit_and_wait_on_one_worker_does_not_deadlock() {
        static POOL: OnceLock<Pool> = OnceLock::new();
        let pool = POOL.get_or_init(|| Pool::new(1, "nested", Arc::new(Noop)).unwrap());
        let outer = Task::new(false);
        let o2 = outer.clone();
        pool.submit(Box::new(move || {
            assert!(o2.start());
            let inner = Task::new(false);
            POOL.get()
                .unwrap()
                .submit(job_returning(inner.clone(), 41))
                .unwrap();
            assert_eq!(wait_task(&inner, Deadline::Never, None), WaitEnd::Finished);
            o2.finish(Outcome::Returned(Message::single(Value::Int(42))));
        }))
        .unwrap();
        assert_eq!(
            outer.wait(Deadline::after_secs(Some(10.0)), None),
            WaitEnd::Finished
        );
        // A static pool is never dropped: end its worker (Miri refuses threads left running).
        pool.close_and_join().unwrap();
    }

    /// Waits (at most 10 s) until `cond` holds for the pool's state.
    fn until_state(pool: &Pool, what: &str, cond: impl Fn(&State) -> bool) {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !cond(&pool.shared.state.lock()) {
            assert!(
                std::time::Instant::now() < end,
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// A job that returns once `count` reaches `want` (or fails after 10 s).
    fn meeting(task: Arc<Task>, count: Arc<AtomicUsize>, want: usize) -> Job {
        Box::new(move || {
            assert!(task.start());
            count.fetch_add(1, Ordering::SeqCst);
            let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let met = loop {
                if count.load(Ordering::SeqCst) >= want {
                    break true;
                }
                if std::time::Instant::now() > end {
                    break false;
                }
                std::thread::yield_now();
            };
            task.finish(Outcome::Returned(Message::single(Value::Bool(met))));
        })
    }

    /// A job (task `outer`) that waits on its worker for `awaited` (at most 30 s) and
    /// returns whether it finished.
    fn waiting_for(outer: Arc<Task>, awaited: Arc<Task>) -> Job {
        Box::new(move || {
            assert!(outer.start());
            let end = wait_task(&awaited, Deadline::after_secs(Some(30.0)), None);
            outer.finish(Outcome::Returned(Message::single(Value::Bool(
                end == WaitEnd::Finished,
            ))));
        })
    }

    fn returned_true(task: &Task) -> bool {
        matches!(task.outcome(), Some(Outcome::Returned(m)) if matches!(m.values[0], Value::Bool(true)))
    }

    /// Two jobs submitted back to back, one idle worker and one worker waiting for the
    /// second job: the second submit must wake the waiting worker, not count on the idle one
    /// that the first submit already woke. The jobs wait for each other, so a lost wake-up
    /// shows as a job that gave up waiting.
    #[test]
    fn back_to_back_submits_wake_an_idle_and_a_waiting_worker() {
        let pool = Pool::new(2, "two", Arc::new(Noop)).unwrap();
        for round in 0..10 {
            let count = Arc::new(AtomicUsize::new(0));
            let (first, second, outer) = (Task::new(false), Task::new(false), Task::new(false));
            pool.submit(waiting_for(outer.clone(), second.clone()))
                .unwrap();
            until_state(&pool, "one worker idle, one waiting", |s| {
                s.idle.asleep == 1 && s.helping.asleep == 1
            });
            pool.submit(meeting(first.clone(), count.clone(), 2))
                .unwrap();
            pool.submit(meeting(second.clone(), count.clone(), 2))
                .unwrap();
            for t in [&first, &second, &outer] {
                assert_eq!(
                    t.wait(Deadline::after_secs(Some(30.0)), None),
                    WaitEnd::Finished
                );
                assert!(
                    returned_true(t),
                    "round {round}: the jobs did not run together"
                );
            }
        }
    }

    /// A worker waiting for a task sleeps apart from the idle ones: finishing the task wakes
    /// it, and no idle worker.
    #[test]
    fn a_finished_task_wakes_its_waiting_worker_only() {
        let pool = Pool::new(3, "helpers", Arc::new(Noop)).unwrap();
        let awaited = Task::new(false);
        let outer = Task::new(false);
        pool.submit(waiting_for(outer.clone(), awaited.clone()))
            .unwrap();
        until_state(&pool, "one helper and two idle workers asleep", |s| {
            s.helping.asleep == 1 && s.idle.asleep == 2
        });
        let idle_wakes = pool.shared.state.lock().idle.ended;
        assert!(awaited.start());
        awaited.finish(Outcome::Returned(Message::single(Value::Int(1))));
        assert_eq!(
            outer.wait(Deadline::after_secs(Some(30.0)), None),
            WaitEnd::Finished
        );
        assert!(returned_true(&outer));
        assert_eq!(
            pool.shared.state.lock().idle.ended,
            idle_wakes,
            "an idle worker was woken"
        );
    }

    /// With no idle worker, a submitted job wakes a worker that sleeps waiting for a task,
    /// which runs it (here: the very job it waits for).
    #[test]
    fn a_submit_wakes_a_waiting_worker_when_none_is_idle() {
        static POOL: OnceLock<Pool> = OnceLock::new();
        let pool = POOL.get_or_init(|| Pool::new(1, "waker", Arc::new(Noop)).unwrap());
        let inner = Task::new(false);
        let outer = Task::new(false);
        pool.submit(waiting_for(outer.clone(), inner.clone()))
            .unwrap();
        until_state(pool, "the worker asleep waiting", |s| s.helping.asleep == 1);
        pool.submit(job_returning(inner.clone(), 7)).unwrap();
        assert_eq!(
            outer.wait(Deadline::after_secs(Some(30.0)), None),
            WaitEnd::Finished
        );
        assert!(returned_true(&outer));
        pool.close_and_join().unwrap();
    }

    /// Pin the calling thread to `cpu`; false if the OS refused.
    #[cfg(all(target_os = "linux", not(miri)))]
    fn pin_to_cpu(cpu: usize) -> bool {
        // SAFETY: an all-zero cpu_set_t is a valid empty set, CPU_SET writes inside it, and
        // sched_setaffinity(0, ..) reads the set and changes only the calling thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
        }
    }

    #[cfg(all(target_os = "linux", not(miri)))]
    struct PinTo(usize);
    #[cfg(all(target_os = "linux", not(miri)))]
    impl WorkerLifecycle for PinTo {
        fn start(&self, _: usize) -> Result<(), String> {
            if pin_to_cpu(self.0) {
                Ok(())
            } else {
                Err(format!("cannot pin to CPU {}", self.0))
            }
        }
        fn stop(&self, _: usize) {}
    }

    /// Worker and joiner on one CPU: each side sees its partner there and parks at once
    /// instead of spinning (backoff.rs). Every round trip must still complete.
    #[test]
    #[cfg(all(target_os = "linux", not(miri)))]
    fn round_trips_with_worker_and_joiner_pinned_to_one_cpu() {
        let cpu = crate::backoff::current_cpu();
        assert!(cpu >= 0, "sched_getcpu failed");
        let cpu = cpu as usize;
        std::thread::spawn(move || {
            assert!(pin_to_cpu(cpu));
            let pool = Pool::new(1, "pinned", Arc::new(PinTo(cpu))).unwrap();
            for i in 0..300 {
                let task = Task::new(false);
                let t2 = task.clone();
                pool.submit(Box::new(move || {
                    if t2.start() {
                        let here = crate::backoff::current_cpu() as i64;
                        t2.finish(Outcome::Returned(Message::single(Value::Int(here + i))));
                    }
                }))
                .unwrap();
                // A hang guard, not a speed check: a lost wake-up would stop here.
                let end = task.wait(Deadline::after_secs(Some(60.0)), None);
                assert_eq!(end, WaitEnd::Finished, "round trip {i}");
                match task.outcome() {
                    // The job ran on the pinned CPU, so both sides were on it.
                    Some(Outcome::Returned(m)) => {
                        assert!(matches!(m.values[0], Value::Int(v) if v == cpu as i64 + i))
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            pool.close_and_join().unwrap();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_panicking_job_does_not_kill_its_worker() {
        let pool = Pool::new(1, "p", Arc::new(Noop)).unwrap();
        pool.submit(Box::new(|| panic!("job panic"))).unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let task = Task::new(false);
        let (r2, t2) = (ran.clone(), task.clone());
        pool.submit(Box::new(move || {
            r2.store(true, Ordering::SeqCst);
            t2.start();
            t2.finish(Outcome::Cancelled);
        }))
        .unwrap();
        assert_eq!(
            task.wait(Deadline::after_secs(Some(10.0)), None),
            WaitEnd::Finished
        );
        assert!(ran.load(Ordering::SeqCst));
    }

    #[test]
    fn closing_from_inside_a_worker_is_refused() {
        static POOL: OnceLock<Pool> = OnceLock::new();
        let pool = POOL.get_or_init(|| Pool::new(1, "self", Arc::new(Noop)).unwrap());
        let task = Task::new(false);
        let t2 = task.clone();
        pool.submit(Box::new(move || {
            t2.start();
            let refused = matches!(
                POOL.get().unwrap().close_and_join(),
                Err(PoolError::SelfJoin)
            );
            t2.finish(Outcome::Returned(Message::single(Value::Bool(refused))));
        }))
        .unwrap();
        task.wait(Deadline::Never, None);
        match task.outcome() {
            Some(Outcome::Returned(m)) => assert!(matches!(m.values[0], Value::Bool(true))),
            other => panic!("unexpected {other:?}"),
        }
        // From outside a worker, closing works (and ends the static pool's worker).
        pool.close_and_join().unwrap();
    }
}
