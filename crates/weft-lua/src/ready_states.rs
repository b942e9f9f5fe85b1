//! Fresh Lua states for `weft.spawn`, built ahead by one background thread.
//!
//! A spawn thread used to build its next state itself as soon as its function returned,
//! and was ready for another spawn only after that (~50 µs of CPU on these VMs, half of
//! it LuaJIT's CPU detection). Back to back on two cores, the next spawn's thread was
//! then often woken onto the core where the last one was still building, and waited for
//! it: a join took ~55 µs for a function that takes 5. Now one builder thread keeps up to
//! [`READY`] states in a lock-free queue, a spawn thread takes one when its function has
//! returned and is ready again at once, and the builds run beside the spawns instead of
//! in their threads. When none is ready (spawns outrunning the builder) the spawn thread
//! builds its own, as before.
//!
//! Only plain states come from here. A thread whose last function used weft builds its
//! next state itself with weft's module ahead (`spawner`): such a loop is bound by CPU
//! (~200 µs of it per spawn on two cores), where a second builder gains nothing, and a
//! state built on one thread and freed on another costs the allocator a cross-thread free
//! per block, which a module's heap has thousands of.
//!
//! The builder runs at normal priority. At nice 19 it measured no faster, and in about
//! one repetition in five a whole loop of 1,000 spawns ran 5–25× slower: a starved
//! low-priority builder holding something the spawn threads wait for (not pinned down; a
//! lock in the allocator or the kernel, which passes no priority on to its holder).
//!
//! Each state is still fresh: built, then used by exactly one spawned function. The
//! builder frees its states and sleeps after [`IDLE_TIMEOUT`] without a taker; a later
//! take wakes it.

use crate::worker_state::{new_state, Inherit, WorkerState};
use crossbeam_queue::ArrayQueue;
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

/// States kept ready: enough to cover a short burst of spawns while the builder catches
/// up; few, since each holds its heap (~100 KB).
const READY: usize = 4;

/// How long the builder keeps ready states without anyone taking one.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

struct Supply {
    ready: ArrayQueue<WorkerState>,
    builder: OnceLock<Option<Thread>>,
}

static SUPPLY: OnceLock<Supply> = OnceLock::new();

fn supply() -> &'static Supply {
    SUPPLY.get_or_init(|| Supply {
        ready: ArrayQueue::new(READY),
        builder: OnceLock::new(),
    })
}

/// A fresh state the builder made ahead, if one is ready, and a nudge for the builder to
/// replace it. (Waking it only once half the queue was gone, so that it built in bursts,
/// measured no faster and more variable.)
pub(crate) fn take() -> Option<WorkerState> {
    let s = supply();
    let state = s.ready.pop();
    // Started on the first take; if it cannot start, spawn threads build their own.
    let builder = s.builder.get_or_init(|| {
        std::thread::Builder::new()
            .name("weft-builder".into())
            .stack_size(crate::worker::STACK_SIZE)
            .spawn(builder_main)
            .ok()
            .map(|h| h.thread().clone())
    });
    if let Some(thread) = builder {
        // A token if the builder is awake (an atomic swap), a futex wake if it sleeps.
        thread.unpark();
    }
    state
}

/// Keep [`READY`] states built, sleeping while the queue is full.
fn builder_main() {
    let s = supply();
    loop {
        while !s.ready.is_full() {
            let Ok(state) = new_state(&Inherit::default()) else {
                break; // out of memory: leave it to the spawn threads
            };
            if let Err(state) = s.ready.push(state) {
                drop(state);
                break;
            }
        }
        let slept = Instant::now();
        std::thread::park_timeout(IDLE_TIMEOUT);
        if slept.elapsed() >= IDLE_TIMEOUT && s.ready.is_full() {
            // Nobody took one for a while: free them, and sleep until someone does.
            while s.ready.pop().is_some() {}
            std::thread::park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::ffi;

    /// A state from the builder (not one built by the caller), taken within 20 s.
    fn take_ready() -> WorkerState {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Some(state) = take() {
                return state;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the builder made no state in 20 s");
    }

    /// The state's address, whether its registry holds weft's built module, and the
    /// Lua type of global `name`.
    fn inspect(state: &WorkerState, global: &std::ffi::CStr) -> (usize, bool, i32) {
        let (mut at, mut module, mut kind) = (0, false, -1);
        // SAFETY: reads on the state's own (this) thread, inside its protected call.
        state
            .protected(|s| unsafe {
                at = s as usize;
                ffi::lua_getfield(s, ffi::LUA_REGISTRYINDEX, c"weft.module".as_ptr());
                module = ffi::lua_type(s, -1) == ffi::LUA_TTABLE;
                ffi::lua_getglobal(s, global.as_ptr());
                kind = ffi::lua_type(s, -1);
                ffi::lua_pop(s, 2);
            })
            .unwrap();
        (at, module, kind)
    }

    #[test]
    fn the_builder_hands_out_distinct_fresh_states() {
        let a = take_ready();
        // SAFETY: a write on the state's own thread, inside its protected call.
        a.protected(|s| unsafe {
            ffi::lua_pushboolean(s, 1);
            ffi::lua_setglobal(s, c"WEFT_READY_MARK".as_ptr());
        })
        .unwrap();
        let (at_a, _, mark_a) = inspect(&a, c"WEFT_READY_MARK");
        assert_eq!(mark_a, ffi::LUA_TBOOLEAN);
        // Held together, so no address can be reused: each take is another state.
        let more: Vec<WorkerState> = (0..2 * READY).map(|_| take_ready()).collect();
        let mut seen = vec![at_a];
        for state in &more {
            let (at, module, mark) = inspect(state, c"WEFT_READY_MARK");
            assert!(!seen.contains(&at), "one state handed out twice");
            seen.push(at);
            assert_eq!(mark, ffi::LUA_TNIL, "a global of another state leaked in");
            assert!(!module, "plain states: weft's module is not built ahead");
            assert!(!state.used_weft());
            assert_eq!(
                inspect(state, c"string").2,
                ffi::LUA_TTABLE,
                "libraries open"
            );
            assert_eq!(inspect(state, c"package").2, ffi::LUA_TTABLE);
        }
    }
}
