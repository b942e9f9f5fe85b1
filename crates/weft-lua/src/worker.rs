//! Lua states on worker threads: creating them, and running one call in them.
//!
//! A worker state is a fresh state with every standard library (including `debug` and, on
//! LuaJIT, `ffi` and `jit`), the creating state's `package.path`/`cpath`, and `weft`
//! loaded on first `require`. Cancellation reaches its running code as described in
//! `interrupt`.

use crate::codec::decode::{push_all, push_task};
use crate::codec::{raw::push_named, Decoder, Encoder, Label};
use crate::runtime::StateData;
use mlua::{ffi, Lua, Table};
use std::cell::RefCell;
use std::mem::ManuallyDrop;
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

/// What a worker state copies from the state that created it.
#[derive(Clone, Default)]
pub struct Inherit {
    path: Option<String>,
    cpath: Option<String>,
}

impl Inherit {
    /// Set `package.path` and `package.cpath` of `lua` to the inherited values.
    pub fn apply(&self, lua: &Lua) -> mlua::Result<()> {
        let package: Table = lua.globals().get("package")?;
        if let Some(p) = &self.path {
            package.set("path", p.as_str())?;
        }
        if let Some(p) = &self.cpath {
            package.set("cpath", p.as_str())?;
        }
        Ok(())
    }
}

/// Read `package.path` and `package.cpath` of `lua`.
pub fn inherit(lua: &Lua) -> Inherit {
    let package: Option<Table> = lua.globals().get("package").ok();
    let get = |k: &str| {
        package
            .as_ref()
            .and_then(|p| p.get::<Option<String>>(k).ok().flatten())
    };
    Inherit {
        path: get("path"),
        cpath: get("cpath"),
    }
}

/// A worker's Lua state. Built with the C API (`lua_newstate` on the C allocator +
/// `luaL_openlibs`, far cheaper than `Lua::unsafe_new`, which matters for `weft.spawn`)
/// and wrapped by mlua; closed when dropped.
pub struct WorkerState {
    lua: ManuallyDrop<Lua>,
    raw: *mut ffi::lua_State,
}

impl std::ops::Deref for WorkerState {
    type Target = Lua;
    fn deref(&self) -> &Lua {
        &self.lua
    }
}

impl Drop for WorkerState {
    fn drop(&mut self) {
        // SAFETY: the only mlua handle is dropped first; mlua does not own a state made by
        // get_or_init_from_ptr, so closing it is ours to do, exactly once.
        unsafe {
            ManuallyDrop::drop(&mut self.lua);
            ffi::lua_close(self.raw);
        }
    }
}

/// `lua_Alloc` over Rust's global allocator: the C allocator in the CLI and the tests,
/// mimalloc in the loadable module (feature `mimalloc`, see lib.rs). Lua frees and resizes
/// a block with the size it asked for (`old_size`), which is what the layout needs.
unsafe extern "C" fn global_allocator(
    _: *mut std::ffi::c_void,
    ptr: *mut std::ffi::c_void,
    old_size: usize,
    new_size: usize,
) -> *mut std::ffi::c_void {
    use std::alloc::Layout;
    let layout = |size| Layout::from_size_align(size, LUA_ALIGN).ok();
    // SAFETY: the lua_Alloc contract: `ptr` is null (then `old_size` encodes a type, not
    // a size) or a block this function returned for `old_size` bytes; size 0 frees it and
    // returns null; null on failure, which Lua turns into a memory error. Layouts are
    // non-zero sized with a valid alignment.
    unsafe {
        let null = std::ptr::null_mut();
        if new_size == 0 {
            if let (false, Some(old)) = (ptr.is_null(), layout(old_size)) {
                std::alloc::dealloc(ptr.cast(), old);
            }
            return null;
        }
        match (ptr.is_null(), layout(old_size), layout(new_size)) {
            (true, _, Some(new)) => std::alloc::alloc(new).cast(),
            (false, Some(old), Some(_)) => std::alloc::realloc(ptr.cast(), old, new_size).cast(),
            _ => null,
        }
    }
}

/// What `malloc` guarantees on 64-bit targets, and so what Lua's own allocator assumes.
const LUA_ALIGN: usize = 16;

/// A new worker state. `weft` itself is loaded on first `require` (or when a received
/// handle needs its methods), so a task that never touches weft does not pay for it.
pub fn new_state(inherit: &Inherit) -> mlua::Result<WorkerState> {
    // SAFETY: a fresh state owned by this WorkerState; openlibs gives the same libraries as
    // a standalone interpreter (debug, and on LuaJIT ffi and jit, included). The global
    // allocator reuses memory freed by earlier states (LuaJIT's own maps fresh pages,
    // whose faults cost ~15% of a state's construction); lua_newstate refuses custom
    // allocators only on non-GC64 LuaJIT, where luaL_newstate takes over.
    let raw = unsafe {
        let state = ffi::lua_newstate(global_allocator, std::ptr::null_mut());
        if state.is_null() {
            ffi::luaL_newstate()
        } else {
            state
        }
    };
    if raw.is_null() {
        return Err(mlua::Error::MemoryError("cannot create a Lua state".into()));
    }
    // SAFETY: raw is a valid, empty state used only by this thread.
    let lua = unsafe {
        ffi::luaL_openlibs(raw);
        Lua::get_or_init_from_ptr(raw).clone()
    };
    let state = WorkerState {
        lua: ManuallyDrop::new(lua),
        raw,
    };
    inherit.apply(&state)?;
    let package: Table = state.globals().get("package")?;
    crate::runtime::prepare_state(&state)?;
    package
        .get::<Table>("preload")?
        .set("weft", state.create_function(|lua, ()| crate::open(lua))?)?;
    Ok(state)
}

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
pub fn run_call(lua: &Lua, func: &Message, args: &Message) -> Outcome {
    let data = lua.app_data_ref::<StateData>().expect("weft state data");
    let mut outcome = None;
    // SAFETY: on the owning thread inside exec_raw's protected call; the user function
    // runs under lua_pcall, so its errors never unwind through these frames.
    let r = unsafe {
        lua.exec_raw::<()>((), |state| {
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
                outcome = Some(Outcome::Failed(failure_on_top(state, &data)));
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
    lua: &Lua,
    func: &Message,
    items: &Message,
    first_index: usize,
    task: &Task,
) -> Outcome {
    let data = lua.app_data_ref::<StateData>().expect("weft state data");
    let mut outcome = None;
    // SAFETY: as in run_call: each item call runs under lua_pcall with the handler.
    let r = unsafe {
        lua.exec_raw::<()>((), |state| {
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
                    let mut failure = failure_on_top(state, &data);
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
fn finished(run: mlua::Result<()>, outcome: Option<Outcome>) -> Outcome {
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
pub fn with_worker_state(f: impl FnOnce(&Lua) -> Outcome) -> Outcome {
    WORKER_STATE.with(|w| match &*w.borrow() {
        Some(lua) => {
            let outcome = f(lua);
            if !matches!(outcome, Outcome::Returned(_)) {
                forget_interrupted_requires(lua);
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
fn forget_interrupted_requires(lua: &Lua) {
    let clean = || -> mlua::Result<()> {
        let package: mlua::Table = lua.globals().raw_get("package")?;
        let (loaded, preload): (mlua::Table, mlua::Table) =
            (package.raw_get("loaded")?, package.raw_get("preload")?);
        const PROBE: &str = "weft: sentinel probe";
        preload.raw_set(
            PROBE,
            lua.create_function(|_, ()| -> mlua::Result<()> {
                Err(mlua::Error::runtime("probe"))
            })?,
        )?;
        let require: mlua::Function = lua.globals().raw_get("require")?;
        let _ = require.call::<mlua::Value>(PROBE);
        preload.raw_set(PROBE, mlua::Value::Nil)?;
        let sentinel: mlua::Value = loaded.raw_get(PROBE)?;
        if sentinel.is_nil() {
            return Ok(());
        }
        let stale: Vec<mlua::Value> = loaded
            .pairs::<mlua::Value, mlua::Value>()
            .filter_map(Result::ok)
            .filter(|(_, v)| v == &sentinel)
            .map(|(k, _)| k)
            .collect();
        for k in stale {
            loaded.raw_set(k, mlua::Value::Nil)?;
        }
        Ok(())
    };
    let _ = clean();
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
        let lua = new_state(&self.inherit).map_err(|e| e.to_string())?;
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

#[cfg(test)]
mod tests {
    use super::global_allocator;
    use std::ffi::c_void;

    /// Calls the `lua_Alloc` as Lua does.
    fn call(ptr: *mut c_void, old: usize, new: usize) -> *mut c_void {
        // SAFETY: each call below follows the lua_Alloc contract (a pointer is only passed
        // back with the size it was last given).
        unsafe { global_allocator(std::ptr::null_mut(), ptr, old, new) }
    }

    #[test]
    fn the_lua_allocator_keeps_contents_across_resizes_and_refuses_impossible_sizes() {
        // A fresh block: Lua 5.4 passes a type tag (here 5, a table) as the old size.
        let p = call(std::ptr::null_mut(), 5, 24).cast::<u8>();
        assert!(!p.is_null());
        assert_eq!(p as usize % 16, 0, "aligned as malloc would");
        // SAFETY: p holds 24 bytes, then 4,096 after the grow, then 8 after the shrink.
        unsafe {
            for i in 0..24 {
                *p.add(i) = i as u8;
            }
            let grown = call(p.cast(), 24, 4096).cast::<u8>();
            assert!(!grown.is_null());
            assert!(
                (0..24).all(|i| *grown.add(i) == i as u8),
                "grow kept the bytes"
            );
            *grown.add(4095) = 7;
            let shrunk = call(grown.cast(), 4096, 8).cast::<u8>();
            assert!(
                (0..8).all(|i| *shrunk.add(i) == i as u8),
                "shrink kept the bytes"
            );
            // No size can be laid out this big: a refusal (null), which Lua turns into a
            // memory error, and the block is still the caller's.
            assert!(call(shrunk.cast(), 8, usize::MAX - 4).is_null());
            assert_eq!(*shrunk.add(7), 7);
            assert!(call(shrunk.cast(), 8, 0).is_null(), "a free returns null");
        }
        assert!(call(std::ptr::null_mut(), 0, usize::MAX - 4).is_null());
        assert!(
            call(std::ptr::null_mut(), 3, 0).is_null(),
            "freeing nothing is nothing"
        );
    }
}
