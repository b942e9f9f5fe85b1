//! Lua's garbage collectors paced by the array memory weft allocates.
//!
//! An array's elements live outside the Lua heap, where the collector cannot see them: a
//! loop making a 4 MB array per iteration grows the heap by a few hundred bytes each time,
//! so dead arrays piled up until a cycle finally ran (2,000 iterations writing each array
//! peaked at 3.4 GB resident under LuaJIT, about 850 dead arrays). So before a state gets
//! a new array userdata, it runs its collector as if the array memory allocated since
//! this thread's last step (by any thread: arrays are made on workers and handed over)
//! had been allocated in its own heap: `lua_gc(LUA_GCSTEP, KB)`, the pacing Lua applies
//! to its own allocations, so a big heap is collected in proportion, not from scratch.

use mlua::ffi;
use std::cell::Cell;
use std::ffi::c_int;

/// Array memory allocated since the last step below this is not worth a step.
const STEP_AFTER: usize = 1 << 20;

/// `LUA_GCISRUNNING` (LuaJIT 2.1, Lua 5.2+); PUC Lua 5.1 answers -1 (unknown option).
const GC_IS_RUNNING: c_int = 9;

thread_local! {
    /// [`weft_core::memory::allocated`] when this thread last stepped a collector.
    static STEPPED_AT: Cell<usize> = const { Cell::new(0) };
}

/// Step `state`'s collector for the array memory allocated since this thread last did,
/// unless that is under [`STEP_AFTER`] or the program stopped the collector.
///
/// # Safety
/// A valid state, inside a protected call (a step may run finalizers, which may raise).
pub(crate) unsafe fn step(state: *mut ffi::lua_State) {
    let now = weft_core::memory::allocated();
    let since = now.wrapping_sub(STEPPED_AT.with(Cell::get));
    if since < STEP_AFTER {
        return;
    }
    STEPPED_AT.with(|c| c.set(now));
    let kb = c_int::try_from(since >> 10).unwrap_or(c_int::MAX);
    // SAFETY: collector calls on a valid state, in a protected call (forwarded contract).
    unsafe {
        if ffi::lua_gc(state, GC_IS_RUNNING, 0) == 0 {
            return; // collectgarbage("stop"): the program's choice
        }
        ffi::lua_gc(state, ffi::LUA_GCSTEP, kb);
    }
}
