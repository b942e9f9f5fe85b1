//! `weft.freeze` and the frozen-table userdata.
//!
//! Reads (`t.x`, `t[i]`, `#t`) are raw C metamethods over the snapshot, with no lock and
//! no copy: a number or string is pushed directly, a nested table becomes another view of
//! the same snapshot. Views are cached per state (weak values, keyed by the table's
//! address in the snapshot), so `t.config` is the same userdata every time it is read and
//! a read of a nested table allocates nothing after the first.
//!
//! Keys are looked up as data first; `pairs`, `totable` and `len` answer only when the
//! table has no such key (`weft.pairs(t)` and friends work regardless).

use crate::codec::{decode::push_leaf, Decoder, Encoder, Label};
use crate::rawud::{self, arg, guard, set_fn, RawType};
use mlua::ffi;
use std::ffi::{c_int, CStr};
use weft_core::frozen::{Entry, EntryKey};
use weft_core::message::Value;
use weft_core::{Frozen, Handle};

/// A frozen view as Lua holds it.
pub(crate) struct LuaFrozen(pub Frozen);

const METHODS: &CStr = c"weft.frozen.methods";

impl RawType for LuaFrozen {
    const MAGIC: u64 = 0x7765_6674_665a_4e31;
    const NAME: &'static CStr = c"weft.frozen";

    unsafe fn metatable(state: *mut ffi::lua_State) {
        // SAFETY: builds tables on a valid state with the metatable on top.
        unsafe {
            ffi::lua_createtable(state, 0, 3);
            set_fn(state, c"pairs", pairs);
            set_fn(state, c"totable", totable);
            set_fn(state, c"len", len);
            ffi::lua_pushvalue(state, -1);
            ffi::lua_setfield(state, ffi::LUA_REGISTRYINDEX, METHODS.as_ptr());
            ffi::lua_pushcclosure(state, index, 1);
            ffi::lua_setfield(state, -2, c"__index".as_ptr());
            #[cfg(feature = "luajit")]
            crate::jit_reads::install_frozen(state);
            set_fn(state, c"__newindex", newindex);
            set_fn(state, c"__len", len);
            set_fn(state, c"__pairs", pairs);
        }
    }

    fn handle(&self) -> Option<Handle> {
        Some(Handle::Frozen(Box::new(self.0.clone())))
    }

    fn same(&self, other: &Self) -> bool {
        self.0.same(&other.0)
    }

    fn describe(&self) -> String {
        format!("weft.frozen (#{}): {:p}", self.0.len(), self.0.address())
    }
}

/// Push a view, reusing this state's userdata for the same table when one is alive.
///
/// # Safety
/// A valid state with 4 free slots.
pub(crate) unsafe fn push_view(state: *mut ffi::lua_State, view: Frozen) -> Result<(), String> {
    // SAFETY: forwarded contract.
    unsafe { push_cached(state, view.address(), || view) }
}

/// Push the view of table `node` of `parent`'s snapshot. A cache hit touches no reference
/// count: readers on several threads would otherwise contend for the snapshot's.
unsafe fn push_child(state: *mut ffi::lua_State, parent: &Frozen, node: u32) -> Result<(), String> {
    // SAFETY: forwarded contract.
    unsafe { push_cached(state, parent.child_address(node), || parent.child(node)) }
}

/// Registry key (its address) of this state's view cache. A light userdata key, so that
/// looking the cache up allocates nothing and cannot raise.
static VIEWS: u8 = 0;

/// Push this state's userdata for the table at `address`, or `make()` a view and cache it.
/// A cache hit calls nothing that can raise; a miss allocates under protection.
unsafe fn push_cached(
    state: *mut ffi::lua_State,
    address: *const (),
    make: impl FnOnce() -> Frozen,
) -> Result<(), String> {
    // SAFETY: forwarded contract; on success exactly 1 value(s) are left on top.
    unsafe { crate::stack::checked(state, 1, || push_cached_unchecked(state, address, make)) }
}

/// [`push_cached`] without its debug-build stack check.
unsafe fn push_cached_unchecked(
    state: *mut ffi::lua_State,
    address: *const (),
    make: impl FnOnce() -> Frozen,
) -> Result<(), String> {
    let views = &VIEWS as *const u8 as *mut std::ffi::c_void;
    // SAFETY: balanced registry and cache-table work on a valid state; raw reads with
    // light userdata keys allocate nothing, and everything that allocates is protected.
    unsafe {
        ffi::lua_pushlightuserdata(state, views);
        ffi::lua_rawget(state, ffi::LUA_REGISTRYINDEX);
        if ffi::lua_type(state, -1) != ffi::LUA_TTABLE {
            ffi::lua_pop(state, 1);
            rawud::protect(state, 0, 1, &mut |state| {
                ffi::lua_createtable(state, 0, 0);
                ffi::lua_createtable(state, 0, 1);
                ffi::lua_pushstring(state, c"v".as_ptr());
                ffi::lua_setfield(state, -2, c"__mode".as_ptr());
                ffi::lua_setmetatable(state, -2);
                ffi::lua_pushlightuserdata(state, views);
                ffi::lua_pushvalue(state, -2);
                ffi::lua_rawset(state, ffi::LUA_REGISTRYINDEX);
            })?;
        }
        let key = address as *mut std::ffi::c_void;
        ffi::lua_pushlightuserdata(state, key);
        ffi::lua_rawget(state, -2);
        if ffi::lua_type(state, -1) == ffi::LUA_TUSERDATA {
            ffi::lua_remove(state, -2);
            return Ok(());
        }
        ffi::lua_pop(state, 1);
        rawud::push(state, LuaFrozen(make()))?;
        // cache[key] = view (the cache table may grow)
        ffi::lua_pushvalue(state, -2);
        ffi::lua_pushvalue(state, -2);
        rawud::protect(state, 2, 0, &mut |state| {
            ffi::lua_pushlightuserdata(state, key);
            ffi::lua_pushvalue(state, 2);
            ffi::lua_rawset(state, 1);
        })?;
        ffi::lua_remove(state, -2);
    }
    Ok(())
}

/// Push the first value of `msg` as plain Lua values (tables built anew), under
/// protection: a memory error while building becomes `Err`.
///
/// # Safety
/// A valid state with 4 free slots.
pub(crate) unsafe fn decode_one(
    state: *mut ffi::lua_State,
    msg: &weft_core::Message,
) -> Result<(), String> {
    // SAFETY: state_data reads an existing registry key (no allocation). The decoder runs
    // under protect; on a memory error its values are dropped by LuaJIT's unwinding (PUC
    // Lua's longjmp would leak them; it cannot reach a catch_unwind either way).
    unsafe {
        let codec = &crate::runtime::state_data(state).codec;
        let mut result = Ok(());
        rawud::protect(state, 0, 1, &mut |state| {
            result = Decoder::new(state, codec, msg).and_then(|decoder| {
                decoder.push(state, &msg.values[0])?;
                decoder.finish(state);
                Ok(())
            });
            if result.is_err() {
                ffi::lua_pushnil(state);
            }
        })?;
        if result.is_err() {
            ffi::lua_pop(state, 1);
        }
        result
    }
}

/// `weft.freeze(t)`.
pub(crate) unsafe extern "C-unwind" fn freeze(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            if rawud::slot::<LuaFrozen>(state, 1).is_some() {
                ffi::lua_settop(state, 1);
                return Ok(1);
            }
            if ffi::lua_type(state, 1) != ffi::LUA_TTABLE {
                return Err(format!(
                    "weft.freeze: expected a table (got {})",
                    rawud::type_of(state, 1)
                ));
            }
            let codec = &crate::runtime::state_data(state).codec;
            let mut encoder = Encoder::new(codec);
            rawud::encode(state, &mut encoder, 1, Label::Argument).map_err(|e| {
                e.replacen(
                    "weft: cannot send argument 1",
                    "weft.freeze: cannot freeze",
                    1,
                )
            })?;
            let frozen = Frozen::new(encoder.finish()).map_err(|e| format!("weft.freeze: {e}"))?;
            push_view(state, frozen)?;
            Ok(1)
        })
    }
}

/// Push what a view holds at `key` (nil when absent).
unsafe fn push_entry(
    state: *mut ffi::lua_State,
    view: &Frozen,
    entry: Option<Entry<'_>>,
) -> Result<(), String> {
    // SAFETY: pushes exactly one value on a valid state.
    unsafe {
        match entry {
            None => ffi::lua_pushnil(state),
            Some(Entry::Number(n)) => ffi::lua_pushnumber(state, n),
            Some(Entry::Value(v)) => push_value(state, view, v)?,
        }
        Ok(())
    }
}

unsafe fn push_value(state: *mut ffi::lua_State, view: &Frozen, v: &Value) -> Result<(), String> {
    // SAFETY: forwarded contract; on success exactly 1 value(s) are left on top.
    unsafe { crate::stack::checked(state, 1, || push_value_unchecked(state, view, v)) }
}

/// [`push_value`] without its debug-build stack check.
unsafe fn push_value_unchecked(
    state: *mut ffi::lua_State,
    view: &Frozen,
    v: &Value,
) -> Result<(), String> {
    // SAFETY: pushes exactly one value on a valid state.
    unsafe {
        match v {
            Value::Node(n) => push_child(state, view, *n)?,
            // Numbers and booleans allocate nothing; a string, module or handle may.
            leaf @ (Value::Nil | Value::Bool(_) | Value::Int(_) | Value::Num(_)) => {
                push_leaf(state, leaf)?
            }
            leaf => {
                let mut result = Ok(());
                rawud::protect(state, 0, 1, &mut |state| {
                    result = push_leaf(state, leaf);
                    if result.is_err() {
                        ffi::lua_pushnil(state);
                    }
                })?;
                if result.is_err() {
                    ffi::lua_pop(state, 1);
                }
                result?
            }
        }
        Ok(())
    }
}

unsafe extern "C-unwind" fn index(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`. Upvalue 1 is the methods table.
    unsafe {
        guard(state, |state| {
            let view = &arg::<LuaFrozen>(state, 1, "frozen table")?.0;
            let entry = rawud::key_at(state, 2).and_then(|k| view.get(k));
            if entry.is_none() && ffi::lua_type(state, 2) == ffi::LUA_TSTRING {
                ffi::lua_pushvalue(state, 2);
                ffi::lua_rawget(state, ffi::lua_upvalueindex(1));
                return Ok(1);
            }
            push_entry(state, view, entry)?;
            Ok(1)
        })
    }
}

unsafe extern "C-unwind" fn newindex(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |_| {
            Err(
                "weft: a frozen table is read-only (use t:totable() for a copy you can change)"
                    .into(),
            )
        })
    }
}

unsafe extern "C-unwind" fn len(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let n = arg::<LuaFrozen>(state, 1, "frozen table")?.0.len();
            ffi::lua_pushinteger(state, n as ffi::lua_Integer);
            Ok(1)
        })
    }
}

/// `t:pairs()` / `pairs(t)`: an iterator closure over (view, position).
unsafe extern "C-unwind" fn pairs(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            arg::<LuaFrozen>(state, 1, "frozen table:pairs")?;
            ffi::lua_pushvalue(state, 1);
            // The closure allocates: under protection.
            rawud::protect(state, 1, 1, &mut |state| {
                ffi::lua_pushinteger(state, 0);
                ffi::lua_pushcclosure(state, next, 2);
            })?;
            ffi::lua_pushvalue(state, 1);
            ffi::lua_pushnil(state);
            Ok(3)
        })
    }
}

unsafe extern "C-unwind" fn next(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`. Upvalues: the view and the next position.
    unsafe {
        guard(state, |state| {
            let view =
                &arg::<LuaFrozen>(state, ffi::lua_upvalueindex(1), "frozen table iterator")?.0;
            let pos = ffi::lua_tointeger(state, ffi::lua_upvalueindex(2)) as usize;
            let Some((key, entry, next)) = view.entry_at(pos) else {
                ffi::lua_pushnil(state);
                return Ok(1);
            };
            ffi::lua_pushinteger(state, next as ffi::lua_Integer);
            ffi::lua_replace(state, ffi::lua_upvalueindex(2));
            match key {
                EntryKey::Index(i) => ffi::lua_pushinteger(state, i as ffi::lua_Integer),
                EntryKey::Value(k) => push_value(state, view, k)?,
            }
            push_entry(state, view, Some(entry))?;
            Ok(2)
        })
    }
}

/// `t:totable()`: a plain, deep, mutable copy.
unsafe extern "C-unwind" fn totable(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let view = &arg::<LuaFrozen>(state, 1, "frozen table:totable")?.0;
            let msg = view.to_message();
            decode_one(state, &msg)?;
            Ok(1)
        })
    }
}
