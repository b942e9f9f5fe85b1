//! OS threads for `weft.spawn`, kept ready with a fresh Lua state.
//!
//! Building a state with every standard library costs more than the rest of a spawn put
//! together. So a spawn thread, once its function has returned, closes that state, takes
//! a *new* one (built ahead by `ready_states`, or built there and then) and parks; the
//! next `weft.spawn` hands its function to a parked thread and only the hand-off is on
//! the caller's path. A state is never reused: each spawned function runs in a state no
//! other code has touched. A thread whose last function used weft builds its next state
//! itself, with weft's module already built (in the registry, not in `package.loaded`; no
//! global set), since building it on `require` cost a spawn ~100 µs. Parked threads exit
//! after [`IDLE_TIMEOUT`], and at most [`MAX_IDLE`] are kept.

use crate::ready_states;
use crate::worker_state::{new_state, Inherit, WorkerState};
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::time::Duration;

/// What a spawn thread runs: the job receives the fresh state (or why there is none) and
/// returns whether Lua code in it used weft ([`WorkerState::used_weft`]), read before it
/// closed the state.
pub(crate) type SpawnJob = Box<dyn FnOnce(Result<WorkerState, String>) -> bool + Send + 'static>;

/// How long a parked thread waits for work before exiting.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Parked threads beyond this exit instead of parking.
const MAX_IDLE: usize = 16;

struct Parked {
    jobs: VecDeque<SpawnJob>,
    /// Parked threads not yet promised a job. Invariant: threads waiting = idle + jobs.
    idle: usize,
}

static PARKED: Mutex<Parked> = Mutex::new(Parked {
    jobs: VecDeque::new(),
    idle: 0,
});
static WAKE: Condvar = Condvar::new();

/// Run `job` on a parked thread if one is ready, else on a new thread.
pub(crate) fn spawn(job: SpawnJob) -> std::io::Result<()> {
    {
        let mut p = PARKED.lock();
        if p.idle > 0 {
            p.idle -= 1;
            p.jobs.push_back(job);
            WAKE.notify_one();
            return Ok(());
        }
    }
    std::thread::Builder::new()
        .name("weft-thread".into())
        .stack_size(crate::worker::STACK_SIZE)
        .spawn(move || thread_main(job))
        .map(|_| ())
}

fn thread_main(first: SpawnJob) {
    let mut job = first;
    let mut state = next_state(false);
    loop {
        // A thread whose last function used weft builds its next state with weft loaded:
        // a program that spawns such functions would otherwise wait for the module to be
        // built in every one (~100 µs), while one that never uses weft does not pay for it.
        let used_weft = job(state);
        state = next_state(used_weft);
        if state.is_err() {
            return;
        }
        match wait_for_job() {
            Some(next) => job = next,
            None => return,
        }
    }
}

/// The state for this thread's next function: with weft's module built ahead if its last
/// one used weft, built here; otherwise one the builder made ahead (`ready_states`), or
/// one built here and now when none is ready.
fn next_state(with_weft: bool) -> Result<WorkerState, String> {
    if !with_weft {
        if let Some(state) = ready_states::take() {
            return Ok(state);
        }
    }
    let state = new_state(&Inherit::default())?;
    if with_weft {
        state.open_weft()?;
    }
    Ok(state)
}

fn wait_for_job() -> Option<SpawnJob> {
    let mut p = PARKED.lock();
    if p.idle >= MAX_IDLE {
        return None;
    }
    p.idle += 1;
    loop {
        if let Some(job) = p.jobs.pop_front() {
            return Some(job);
        }
        if WAKE.wait_for(&mut p, IDLE_TIMEOUT).timed_out() {
            if let Some(job) = p.jobs.pop_front() {
                return Some(job);
            }
            p.idle -= 1;
            return None;
        }
    }
}
