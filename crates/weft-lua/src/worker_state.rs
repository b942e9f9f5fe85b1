//! The Lua state of a worker thread (a `weft.spawn` thread or a pool worker): built with
//! the C API alone, with mlua attached only when code in it needs mlua.
//!
//! A fresh state has every standard library (including `debug` and, on LuaJIT, `ffi` and
//! `jit`), the creating state's `package.path`/`cpath`, weft's registry entries
//! (`setup::prepare_raw`) and `weft` in `package.preload`. Running a task in it needs
//! only the codec, which works on the raw state. mlua's wrapper costs about as much as
//! the standard libraries to set up (its error registry and internal metatables: ~15 % of
//! a spawn + join loop's CPU), so it is attached when Lua first reaches something that is
//! written with mlua — `require "weft"`, or a received handle, which needs weft's methods —
//! through `Lua::entrypoint`, as a host interpreter's `require` attaches it.
//!
//! Outside Lua calls, weft's Rust code touches a worker state only through this raw API:
//! mlua attached from inside a coroutine (on LuaJIT and 5.1 it cannot find the main
//! thread) is valid in callbacks, where mlua switches to the calling thread, but not after
//! that coroutine is gone.

use crate::runtime::StateData;
use crate::setup;
use mlua::ffi;
use std::ffi::{c_int, c_void, CStr};
use std::panic::AssertUnwindSafe;

/// What a worker state copies from the state that created it.
#[derive(Clone, Default)]
pub struct Inherit {
    path: Option<String>,
    cpath: Option<String>,
}

impl Inherit {
    /// Set `package.path` and `package.cpath` of `state` to the inherited values.
    pub fn apply(&self, state: &WorkerState) -> Result<(), String> {
        if self.path.is_none() && self.cpath.is_none() {
            return Ok(());
        }
        // SAFETY: table reads and writes on the state's own thread, under protection.
        state.protected(|s| unsafe {
            ffi::lua_getglobal(s, c"package".as_ptr());
            if ffi::lua_type(s, -1) != ffi::LUA_TTABLE {
                return;
            }
            for (key, value) in [(c"path", &self.path), (c"cpath", &self.cpath)] {
                if let Some(v) = value {
                    crate::codec::raw::push_bytes(s, v.as_bytes());
                    ffi::lua_setfield(s, -2, key.as_ptr());
                }
            }
        })
    }
}

/// Read `package.path` and `package.cpath` of `lua`.
pub fn inherit(lua: &mlua::Lua) -> Inherit {
    let package: Option<mlua::Table> = lua.globals().get("package").ok();
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

/// A worker's Lua state, closed when dropped. Used only on the thread that holds it.
pub struct WorkerState {
    raw: *mut ffi::lua_State,
    /// The state's [`StateData`], which its registry points at (and mlua's app data, once
    /// attached); dropped after the state is closed, whose finalizers may still use it.
    _data: Box<StateData>,
}

// SAFETY: a Lua state is tied to no OS thread, only to one thread at a time, which owning
// the WorkerState ensures; its StateData moves with it. A state built ahead by
// `ready_states` moves once, between Lua calls and before mlua is attached to it.
unsafe impl Send for WorkerState {}

impl Drop for WorkerState {
    fn drop(&mut self) {
        // SAFETY: the state is ours and closed exactly once; mlua, if attached, does not
        // own it (attached through get_or_init_from_ptr) and holds no handle outside it.
        unsafe { ffi::lua_close(self.raw) };
    }
}

impl WorkerState {
    /// Whether Lua code in this state asked for weft's module (`require "weft"`, a
    /// received handle); building it ahead ([`WorkerState::open_weft`]) does not count.
    pub fn used_weft(&self) -> bool {
        self._data.used_weft.get()
    }

    /// Attach mlua and build the `weft` module now, on the state's main thread and outside
    /// any Lua call, so that a function that needs them does not wait for them.
    pub fn open_weft(&self) -> Result<(), String> {
        // SAFETY: the state is valid, used only by this thread, and not inside a Lua call;
        // mlua attached here keeps the main thread as its state.
        let lua = unsafe { mlua::Lua::get_or_init_from_ptr(self.raw) };
        crate::module(lua).map(|_| ()).map_err(|e| e.to_string())
    }

    /// Run `body` on the state inside `lua_pcall`, with an empty stack, so that a Lua
    /// error it raises (a memory error in a push) unwinds to here rather than aborting the
    /// process. `body` must leave nothing needing drop on its own frame while it calls
    /// into Lua; a panic in it becomes an error here.
    pub fn protected(&self, body: impl FnOnce(*mut ffi::lua_State)) -> Result<(), String> {
        // SAFETY: a valid state, on the thread that owns it.
        unsafe { protected(self.raw, body) }
    }
}

/// [`WorkerState::protected`] on any valid state.
///
/// # Safety
/// `state` must be valid and used only by this thread, with two free stack slots.
pub(crate) unsafe fn protected<F: FnOnce(*mut ffi::lua_State)>(
    state: *mut ffi::lua_State,
    body: F,
) -> Result<(), String> {
    struct Call<F> {
        body: Option<F>,
        panicked: bool,
    }
    unsafe extern "C-unwind" fn run<G: FnOnce(*mut ffi::lua_State)>(
        state: *mut ffi::lua_State,
    ) -> c_int {
        // SAFETY: slot 1 is the light userdata pointing at the Call below, alive for the
        // whole lua_pcall; the body runs with the slot removed, on an empty stack.
        unsafe {
            let call = &mut *(ffi::lua_touserdata(state, 1) as *mut Call<G>);
            ffi::lua_settop(state, 0);
            if let Some(body) = call.body.take() {
                let ran = std::panic::catch_unwind(AssertUnwindSafe(|| body(state)));
                call.panicked = ran.is_err();
            }
            0
        }
    }
    let mut call = Call {
        body: Some(body),
        panicked: false,
    };
    // SAFETY: the caller's contract; the pushed function and its argument are consumed
    // by the pcall, which leaves the stack as it found it (pcall pops an error value).
    unsafe {
        let top = ffi::lua_gettop(state);
        ffi::lua_pushcfunction(state, run::<F>);
        ffi::lua_pushlightuserdata(state, &mut call as *mut Call<F> as *mut c_void);
        let result = crate::codec::raw::pcall(state, 1, 0);
        ffi::lua_settop(state, top);
        match (result, call.panicked) {
            (_, true) => Err("internal error (a Rust panic) in a worker's Lua state".into()),
            (r, false) => r,
        }
    }
}

/// `lua_Alloc` over Rust's global allocator: the C allocator in the CLI and the tests,
/// mimalloc in the loadable module (feature `mimalloc`, see lib.rs). Lua frees and resizes
/// a block with the size it asked for (`old_size`), which is what the layout needs.
unsafe extern "C" fn global_allocator(
    _: *mut c_void,
    ptr: *mut c_void,
    old_size: usize,
    new_size: usize,
) -> *mut c_void {
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
pub fn new_state(inherit: &Inherit) -> Result<WorkerState, String> {
    // SAFETY: a fresh state owned by the WorkerState below; openlibs gives the same
    // libraries as a standalone interpreter (debug, and on LuaJIT ffi and jit, included).
    // The global allocator reuses memory freed by earlier states (LuaJIT's own maps fresh
    // pages, whose faults cost ~15% of a state's construction); lua_newstate refuses
    // custom allocators only on non-GC64 LuaJIT, where luaL_newstate takes over.
    let raw = unsafe {
        let state = ffi::lua_newstate(global_allocator, std::ptr::null_mut());
        if state.is_null() {
            ffi::luaL_newstate()
        } else {
            state
        }
    };
    if raw.is_null() {
        return Err("cannot create a Lua state (out of memory)".into());
    }
    let state = WorkerState {
        raw,
        _data: Box::new(StateData::default()),
    };
    let data: *const StateData = &*state._data;
    // SAFETY: the collector is stopped while the libraries are built: its cycles over a
    // heap that only grows were ~6 % of a spawn's CPU. It restarts with the pause a
    // finished cycle would have set (LuaJIT: twice the heap; PUC Lua ignores the -1).
    unsafe { ffi::lua_gc(raw, ffi::LUA_GCSTOP, 0) };
    let mut failure = None;
    // SAFETY: library loading, registry and table writes on the state's own thread,
    // protected; `data` lives as long as the state.
    state.protected(|s| unsafe {
        ffi::luaL_openlibs(s);
        match setup::prepare_raw(s, data) {
            Ok(()) => set_preload(s, c"weft", setup::open_weft),
            Err(e) => failure = Some(e),
        }
    })?;
    if let Some(e) = failure {
        return Err(format!("weft: {e}"));
    }
    inherit.apply(&state)?;
    // SAFETY: a valid state on its own thread.
    unsafe { ffi::lua_gc(raw, ffi::LUA_GCRESTART, -1) };
    Ok(state)
}

/// `package.preload[name] = f`.
///
/// # Safety
/// A valid state inside a protected call, with two free stack slots.
unsafe fn set_preload(state: *mut ffi::lua_State, name: &CStr, f: ffi::lua_CFunction) {
    // SAFETY: the caller's contract; balanced pushes.
    unsafe {
        ffi::lua_getglobal(state, c"package".as_ptr());
        ffi::lua_getfield(state, -1, c"preload".as_ptr());
        ffi::lua_pushcfunction(state, f);
        ffi::lua_setfield(state, -2, name.as_ptr());
        ffi::lua_pop(state, 2);
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
