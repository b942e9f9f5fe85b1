//! Running calls in worker threads' Lua states (built by `worker_state`): one call, a
//! `map` chunk, a pool worker's lifecycle. Cancellation reaches the running code as
//! described in `interrupt`.

use crate::codec::decode::{push_all, push_task};
use crate::codec::{raw::push_named, Decoder, Encoder, Label};
use crate::runtime::StateData;
use crate::worker_state::{new_state, Inherit, WorkerState};
use mlua::ffi;
use std::cell::RefCell;
use std::ffi::{c_int, CStr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use weft_core::cancel;
use weft_core::message::Message;
use weft_core::pool::WorkerLifecycle;
use weft_core::task::{Failure, Outcome, Task};

/// Native stack of weft's threads: room for the value encoder's
/// [`crate::codec::encode::MAX_DEPTH`] levels of nesting plus deep Lua recursion (the
/// memory is reserved, and only the pages a thread touches are committed).
pub const STACK_SIZE: usize = 16 << 20;

pub(crate) fn failed(text: String) -> Outcome {
    Outcome::Failed(Failure::from_text(text))
}

/// The outcome of a panic caught at a worker's edge.
pub(crate) fn panicked() -> Outcome {
    failed("weft: internal error (a Rust panic) while running the task".into())
}

/// Read the error left by `lua_pcall` with the `weft.handler` message handler.
unsafe fn failure_on_top(state: *mut ffi::lua_State, data: &StateData) -> Failure {
    // SAFETY: the handler returns {error, traceback, text}; anything else (a memory error)
    // is read as text. Balanced pushes and pops.
    unsafe {
        let top = ffi::lua_gettop(state);
        if ffi::lua_type(state, top) != ffi::LUA_TTABLE {
            let text = if ffi::lua_type(state, top) == ffi::LUA_TSTRING {
                String::from_utf8_lossy(crate::codec::raw::str_bytes(state, top)).into_owned()
            } else {
                "(error object is not a string)".into()
            };
            return Failure::from_text(text);
        }
        ffi::lua_rawgeti(state, top, 2);
        ffi::lua_rawgeti(state, top, 3);
        let traceback =
            String::from_utf8_lossy(crate::codec::raw::str_bytes(state, top + 1)).into_owned();
        let text =
            String::from_utf8_lossy(crate::codec::raw::str_bytes(state, top + 2)).into_owned();
        ffi::lua_rawgeti(state, top, 1);
        let mut enc = Encoder::new(&data.codec);
        let error = match enc.push(state, top + 3, Label::Error, 1) {
            Ok(()) => enc.finish(),
            Err(_) => Message::single(weft_core::Value::string(text.as_bytes())),
        };
        ffi::lua_settop(state, top);
        Failure {
            error,
            text,
            traceback,
        }
    }
}

/// Run `func(args...)` (both messages decoded here) and capture its outcome.
pub fn run_call(ws: &WorkerState, func: &Message, args: &Message) -> Outcome {
    let mut outcome = None;
    // SAFETY: on the owning thread inside `protected`; the user function
    // runs under lua_pcall, so its errors never unwind through these frames.
    let r = unsafe {
        ws.protected(|state| {
            let data = crate::runtime::state_data(state);
            push_named(state, c"weft.handler");
            let handler = ffi::lua_gettop(state);
            let (n, borrowed) = match push_task(state, &data.codec, func).and_then(|(n, b)| {
                match push_all(state, &data.codec, args) {
                    Ok(a) => Ok((n + a, b)),
                    Err(e) => {
                        if let Some(h) = b {
                            data.codec.loads.borrow_mut().release(h);
                        }
                        Err(e)
                    }
                }
            }) {
                Ok(nb) => nb,
                Err(e) => {
                    outcome = Some(failed(e));
                    ffi::lua_settop(state, 0);
                    return;
                }
            };
            let status = crate::interrupt::running(state, || {
                ffi::lua_pcall(state, n - 1, ffi::LUA_MULTRET, handler)
            });
            if let Some(h) = borrowed {
                data.codec.loads.borrow_mut().release(h);
            }
            if status != ffi::LUA_OK {
                outcome = Some(Outcome::Failed(failure_on_top(state, data)));
            } else {
                // SAFETY (for_held_values): the results stay on the stack until the
                // settop below, after the encoder is finished.
                let mut enc = Encoder::for_held_values(&data.codec);
                let results = ffi::lua_gettop(state) - handler;
                for i in 1..=results {
                    if let Err(e) = enc.push(state, handler + i, Label::Result, i as usize) {
                        outcome = Some(failed(e));
                        break;
                    }
                }
                if outcome.is_none() {
                    outcome = Some(Outcome::Returned(enc.finish()));
                }
            }
            ffi::lua_settop(state, 0);
        })
    };
    finished(r, outcome)
}

/// Run `func(item)` for each item of a `map` chunk; results come back as the message's
/// values, in order. A failure names the item by its 1-based index in the whole list.
pub fn run_map_chunk(
    ws: &WorkerState,
    func: &Message,
    items: &Message,
    first_index: usize,
    task: &Task,
) -> Outcome {
    let mut outcome = None;
    // SAFETY: as in run_call: each item call runs under lua_pcall with the handler.
    let r = unsafe {
        ws.protected(|state| {
            let data = crate::runtime::state_data(state);
            push_named(state, c"weft.handler");
            let handler = ffi::lua_gettop(state);
            let borrowed = match push_task(state, &data.codec, func) {
                Ok((_, b)) => b,
                Err(e) => {
                    outcome = Some(failed(e));
                    ffi::lua_settop(state, 0);
                    return;
                }
            };
            let f = ffi::lua_gettop(state);
            let decoder = match Decoder::new(state, &data.codec, items) {
                Ok(d) => d,
                Err(e) => {
                    if let Some(h) = borrowed {
                        data.codec.loads.borrow_mut().release(h);
                    }
                    outcome = Some(failed(e));
                    ffi::lua_settop(state, 0);
                    return;
                }
            };
            let mut enc = Encoder::new(&data.codec);
            // The encoder knows tables by address: every result must stay alive until
            // the message is finished, or a collected result's address could be reused
            // by the next item's result, which would then be encoded as the old one.
            ffi::lua_createtable(state, decoder.values().len() as std::ffi::c_int, 0);
            let keep = ffi::lua_gettop(state);
            for (k, item) in decoder.values().iter().enumerate() {
                if task.cancel_token().is_cancelled() {
                    outcome = Some(Outcome::Cancelled);
                    break;
                }
                let base = ffi::lua_gettop(state);
                ffi::lua_pushvalue(state, f);
                if let Err(e) = decoder.push(state, item) {
                    outcome = Some(failed(format!("weft: map item {}: {e}", first_index + k)));
                    break;
                }
                if crate::interrupt::running(state, || ffi::lua_pcall(state, 1, 1, handler))
                    != ffi::LUA_OK
                {
                    let mut failure = failure_on_top(state, data);
                    failure.traceback = format!(
                        "weft: map item {} failed: {}",
                        first_index + k,
                        failure.traceback
                    );
                    outcome = Some(Outcome::Failed(failure));
                    break;
                }
                if let Err(e) = enc.push(state, base + 1, Label::Result, 1) {
                    let item = format!("cannot send the result of map item {}", first_index + k);
                    outcome = Some(failed(e.replacen("cannot send result 1", &item, 1)));
                    break;
                }
                ffi::lua_rawseti(state, keep, k as ffi::lua_Integer + 1);
                ffi::lua_settop(state, base);
            }
            if let Some(h) = borrowed {
                data.codec.loads.borrow_mut().release(h);
            }
            if outcome.is_none() {
                outcome = Some(Outcome::Returned(enc.finish()));
            }
            ffi::lua_settop(state, 0);
        })
    };
    finished(r, outcome)
}

/// The outcome a raw run left, or why there is none.
fn finished(run: Result<(), String>, outcome: Option<Outcome>) -> Outcome {
    match (run, outcome) {
        (Ok(()), Some(o)) => o,
        (Err(e), _) => failed(format!("weft: {e}")),
        (Ok(()), None) => failed("weft: the task produced no outcome".into()),
    }
}

/// Report a failure that happened because the task was cancelled as a cancellation.
pub fn settle(outcome: Outcome, task: &Task) -> Outcome {
    match outcome {
        Outcome::Failed(_) if task.cancel_token().is_cancelled() => Outcome::Cancelled,
        o => o,
    }
}

/// Run `body` as `task` on this thread: its token is current, panics become failures, and
/// the outcome is recorded.
pub fn run_as_task(task: &Arc<Task>, body: impl FnOnce() -> Outcome) {
    let _current = cancel::enter(task.cancel_token().clone());
    let outcome = {
        let _interruptible = crate::interrupt::interruptible(task.cancel_token());
        std::panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| panicked())
    };
    task.finish(settle(outcome, task));
}

thread_local! {
    static WORKER_STATE: RefCell<Option<WorkerState>> = const { RefCell::new(None) };
}

/// Run `f` with this pool worker's Lua state.
pub fn with_worker_state(f: impl FnOnce(&WorkerState) -> Outcome) -> Outcome {
    WORKER_STATE.with(|w| match &*w.borrow() {
        Some(state) => {
            let outcome = f(state);
            if !matches!(outcome, Outcome::Returned(_)) {
                forget_interrupted_requires(state);
            }
            outcome
        }
        None => failed("weft: no Lua state on this worker".into()),
    })
}

/// On Lua 5.1 and LuaJIT, a `require` interrupted by an error or a cancellation leaves a
/// sentinel in `package.loaded`, and every later `require` of that module in the state
/// fails with "loop or previous error loading module". A pool worker's state outlives the
/// task that failed, so remove such sentinels (found by provoking one: its value differs
/// between versions, and Lua 5.4 leaves none).
fn forget_interrupted_requires(ws: &WorkerState) {
    /// A loader that fails, to see what a failed `require` leaves behind.
    unsafe extern "C-unwind" fn failing_loader(state: *mut ffi::lua_State) -> c_int {
        // SAFETY: raises a string with nothing on this frame to drop.
        unsafe {
            ffi::lua_pushstring(state, c"probe".as_ptr());
            ffi::lua_error(state)
        }
    }
    const PROBE: &CStr = c"weft: sentinel probe";
    // SAFETY: balanced table reads and writes on the state's own thread, protected; the
    // sentinels are cleared while iterating, which `lua_next` allows (existing fields
    // set to nil).
    let _ = ws.protected(|s| unsafe {
        ffi::lua_getglobal(s, c"package".as_ptr());
        if ffi::lua_type(s, 1) != ffi::LUA_TTABLE {
            return;
        }
        ffi::lua_getfield(s, 1, c"loaded".as_ptr()); // 2
        ffi::lua_getfield(s, 1, c"preload".as_ptr()); // 3
        if ffi::lua_type(s, 2) != ffi::LUA_TTABLE || ffi::lua_type(s, 3) != ffi::LUA_TTABLE {
            return;
        }
        ffi::lua_pushcfunction(s, failing_loader);
        ffi::lua_setfield(s, 3, PROBE.as_ptr());
        ffi::lua_getglobal(s, c"require".as_ptr());
        ffi::lua_pushstring(s, PROBE.as_ptr());
        let _ = crate::codec::raw::pcall(s, 1, 0);
        ffi::lua_settop(s, 3);
        ffi::lua_pushnil(s);
        ffi::lua_setfield(s, 3, PROBE.as_ptr());
        ffi::lua_getfield(s, 2, PROBE.as_ptr()); // 4: the sentinel, if this Lua leaves one
        if ffi::lua_type(s, 4) == ffi::LUA_TNIL {
            return;
        }
        ffi::lua_pushnil(s);
        while ffi::lua_next(s, 2) != 0 {
            if ffi::lua_rawequal(s, -1, 4) != 0 {
                ffi::lua_pushvalue(s, -2);
                ffi::lua_pushnil(s);
                ffi::lua_rawset(s, 2);
            }
            ffi::lua_pop(s, 1);
        }
    });
}

/// Pool lifecycle: build a state per worker and run the pool's `init` in it.
pub struct LuaWorkers {
    /// Paths copied from the creating state.
    pub inherit: Inherit,
    /// `init`, called as `init(worker_index)` with a 1-based index.
    pub init: Option<Arc<Message>>,
}

impl WorkerLifecycle for LuaWorkers {
    fn start(&self, index: usize) -> Result<(), String> {
        let lua = new_state(&self.inherit)?;
        if let Some(init) = &self.init {
            let args = Message::single(weft_core::Value::Int(index as i64 + 1));
            match run_call(&lua, init, &args) {
                Outcome::Returned(_) => {}
                Outcome::Failed(f) => return Err(f.traceback),
                Outcome::Cancelled => return Err("cancelled".into()),
            }
        }
        WORKER_STATE.with(|w| *w.borrow_mut() = Some(lua));
        Ok(())
    }

    fn stop(&self, _: usize) {
        let lua = WORKER_STATE.with(|w| w.borrow_mut().take());
        drop(lua);
    }
}
