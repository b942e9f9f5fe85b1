//! `weft.counter`: one atomic integer shared by reference (`c:add(d)` is a single
//! instruction, whichever thread calls it), as a raw userdata (see `rawud`).

use crate::rawud::{self, arg, guard, set_fn, RawType};
use mlua::ffi;
use std::ffi::{c_int, CStr};
use std::sync::Arc;
use weft_core::counter::Counter;
use weft_core::Handle;

/// A counter as Lua holds it.
pub(crate) struct LuaCounter(pub Arc<Counter>);

impl RawType for LuaCounter {
    const MAGIC: u64 = 0x7765_6674_434e_5431;
    const NAME: &'static CStr = c"weft.counter";

    unsafe fn metatable(state: *mut ffi::lua_State) {
        // SAFETY: builds tables on a valid state with the metatable on top.
        unsafe {
            ffi::lua_createtable(state, 0, 3);
            set_fn(state, c"add", counter_add);
            set_fn(state, c"get", counter_get);
            set_fn(state, c"set", counter_set);
            ffi::lua_setfield(state, -2, c"__index".as_ptr());
        }
    }

    fn handle(&self) -> Option<Handle> {
        Some(Handle::Counter(self.0.clone()))
    }

    fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    fn describe(&self) -> String {
        format!(
            "weft.counter ({}): {:p}",
            self.0.get(),
            Arc::as_ptr(&self.0)
        )
    }
}

/// An integer argument, or `default` when absent.
unsafe fn integer(
    state: *mut ffi::lua_State,
    idx: c_int,
    default: Option<i64>,
    what: &str,
) -> Result<i64, String> {
    // SAFETY: a type check of a valid index, then the shared integer reader.
    unsafe {
        match (ffi::lua_type(state, idx), default) {
            (ffi::LUA_TNONE | ffi::LUA_TNIL, Some(d)) => Ok(d),
            _ => rawud::int_arg(state, idx, what),
        }
    }
}

/// `weft.counter([n])`.
pub(crate) unsafe extern "C-unwind" fn new_counter(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let n = integer(state, 1, Some(0), "weft.counter: the start value")?;
            rawud::push(state, LuaCounter(Arc::new(Counter::new(n))))?;
            Ok(1)
        })
    }
}

unsafe extern "C-unwind" fn counter_add(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let c = &arg::<LuaCounter>(state, 1, "c:add")?.0;
            let d = integer(state, 2, Some(1), "c:add: the amount")?;
            ffi::lua_pushinteger(state, c.add(d) as ffi::lua_Integer);
            Ok(1)
        })
    }
}

unsafe extern "C-unwind" fn counter_get(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let c = &arg::<LuaCounter>(state, 1, "c:get")?.0;
            ffi::lua_pushinteger(state, c.get() as ffi::lua_Integer);
            Ok(1)
        })
    }
}

unsafe extern "C-unwind" fn counter_set(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let c = &arg::<LuaCounter>(state, 1, "c:set")?.0;
            c.set(integer(state, 2, None, "c:set: the value")?);
            Ok(0)
        })
    }
}
