//! `weft.table`: the locked, mutable shared table, as a raw userdata (see `rawud`). It
//! takes a lock per operation and copies values in and out through the codec; it is the
//! slow path, kept for effil-style code that needs a shared, changing map.

use crate::codec::decode::{push_all, push_leaf};
use crate::codec::{Encoder, Label};
use crate::rawud::{self, arg, guard, set_fn, RawType};
use mlua::ffi;
use std::ffi::{c_int, CStr};
use std::sync::Arc;
use weft_core::key::KeyRef;
use weft_core::message::Value;
use weft_core::shared_table::SharedTable;
use weft_core::Handle;

/// A shared table as Lua holds it.
pub(crate) struct LuaSharedTable(pub Arc<SharedTable>);

impl RawType for LuaSharedTable {
    const MAGIC: u64 = 0x7765_6674_5442_4c31;
    const NAME: &'static CStr = c"weft.table";

    unsafe fn metatable(state: *mut ffi::lua_State) {
        // SAFETY: builds tables on a valid state with the metatable on top.
        unsafe {
            ffi::lua_createtable(state, 0, 3);
            set_fn(state, c"add", table_add);
            set_fn(state, c"totable", table_totable);
            set_fn(state, c"pairs", table_pairs);
            ffi::lua_pushcclosure(state, table_index, 1);
            ffi::lua_setfield(state, -2, c"__index".as_ptr());
            set_fn(state, c"__newindex", table_newindex);
            set_fn(state, c"__len", table_len);
            set_fn(state, c"__pairs", table_pairs);
        }
    }

    fn handle(&self) -> Option<Handle> {
        Some(Handle::Table(self.0.clone()))
    }

    fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// `weft.table()`.
pub(crate) unsafe extern "C-unwind" fn new_table(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            rawud::push(state, LuaSharedTable(Arc::new(SharedTable::new())))?;
            Ok(1)
        })
    }
}

unsafe fn key_arg<'a>(
    state: *mut ffi::lua_State,
    idx: c_int,
    what: &str,
) -> Result<KeyRef<'a>, String> {
    // SAFETY: reads of a valid index; string keys stay on the stack.
    unsafe {
        rawud::key_at(state, idx).ok_or_else(|| {
            if ffi::lua_type(state, idx) == ffi::LUA_TNUMBER {
                // The only number key_at refuses.
                return format!("{what}: a key must not be NaN");
            }
            format!(
                "{what}: keys of a shared table are strings, numbers or booleans (got {})",
                rawud::type_of(state, idx)
            )
        })
    }
}

/// How a key reads in a message: `s.name`, `s[3]`, `s[true]`.
fn key_text(key: KeyRef<'_>) -> String {
    match key {
        KeyRef::Str(b) => format!("s.{}", String::from_utf8_lossy(b)),
        KeyRef::Int(i) => format!("s[{i}]"),
        KeyRef::Num(n) => format!("s[{}]", f64::from_bits(n)),
        KeyRef::Bool(b) => format!("s[{b}]"),
    }
}

unsafe extern "C-unwind" fn table_index(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`. Upvalue 1 is the methods table.
    unsafe {
        guard(state, |state| {
            let t = &arg::<LuaSharedTable>(state, 1, "shared table")?.0;
            let found = match key_arg(state, 2, "shared table") {
                Ok(k) => t.get(k),
                Err(_) => None,
            };
            match found {
                Some(msg) => push_message(state, &msg)?,
                None if ffi::lua_type(state, 2) == ffi::LUA_TSTRING => {
                    ffi::lua_pushvalue(state, 2);
                    ffi::lua_rawget(state, ffi::lua_upvalueindex(1));
                }
                None => ffi::lua_pushnil(state),
            }
            Ok(1)
        })
    }
}

unsafe extern "C-unwind" fn table_newindex(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let t = &arg::<LuaSharedTable>(state, 1, "shared table")?.0;
            let key = key_arg(state, 2, "shared table")?;
            let value = if ffi::lua_type(state, 3) == ffi::LUA_TNIL {
                None
            } else {
                let codec = &crate::runtime::state_data(state).codec;
                let mut encoder = Encoder::new(codec);
                rawud::encode(state, &mut encoder, 3, Label::Value).map_err(|e| {
                    e.replacen(
                        "cannot send value 1",
                        &format!("cannot store {}", key_text(key)),
                        1,
                    )
                })?;
                Some(encoder.finish())
            };
            t.set(key, value);
            Ok(0)
        })
    }
}

unsafe extern "C-unwind" fn table_add(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let t = &arg::<LuaSharedTable>(state, 1, "s:add")?.0;
            let key = key_arg(state, 2, "s:add")?;
            let delta = match ffi::lua_type(state, 3) {
                ffi::LUA_TNUMBER => {
                    let n = ffi::lua_tonumber(state, 3);
                    #[cfg(feature = "lua54")]
                    if ffi::lua_isinteger(state, 3) != 0 {
                        Value::Int(ffi::lua_tointeger(state, 3))
                    } else {
                        Value::Num(n)
                    }
                    #[cfg(not(feature = "lua54"))]
                    Value::Num(n)
                }
                _ => {
                    return Err(format!(
                        "s:add: the amount must be a number (got {})",
                        rawud::type_of(state, 3)
                    ))
                }
            };
            let new = t.add(key, &delta).map_err(|e| format!("s:add: {e}"))?;
            // A sum is a number: pushing it allocates nothing.
            push_leaf(state, &new)?;
            Ok(1)
        })
    }
}

unsafe extern "C-unwind" fn table_len(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let t = &arg::<LuaSharedTable>(state, 1, "#shared table")?.0;
            ffi::lua_pushinteger(state, t.border() as ffi::lua_Integer);
            Ok(1)
        })
    }
}

/// Push the value a shared-table entry holds, decoded under protection (a memory error
/// while building it becomes `Err`, with nothing pushed).
unsafe fn push_message(state: *mut ffi::lua_State, msg: &weft_core::Message) -> Result<(), String> {
    // SAFETY: forwarded contract; on success exactly 1 value(s) are left on top.
    unsafe { crate::stack::checked(state, 1, || push_message_unchecked(state, msg)) }
}

/// [`push_message`] without its debug-build stack check.
unsafe fn push_message_unchecked(
    state: *mut ffi::lua_State,
    msg: &weft_core::Message,
) -> Result<(), String> {
    // SAFETY: state_data reads an existing registry key (no allocation); the decoder
    // runs under protect (see `frozen::decode_one` for what a memory error costs there).
    unsafe {
        let codec = &crate::runtime::state_data(state).codec;
        let mut result = Ok(());
        rawud::protect(state, 0, 1, &mut |state| {
            result = push_all(state, codec, msg).map(drop);
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

/// Push a plain table copy of the shared table at index 1.
unsafe fn push_copy(state: *mut ffi::lua_State, what: &str) -> Result<(), String> {
    // SAFETY: forwarded contract; on success exactly 1 value(s) are left on top.
    unsafe { crate::stack::checked(state, 1, || push_copy_unchecked(state, what)) }
}

/// [`push_copy`] without its debug-build stack check.
unsafe fn push_copy_unchecked(state: *mut ffi::lua_State, what: &str) -> Result<(), String> {
    // SAFETY: reads argument 1; the table is built under protection.
    unsafe {
        let t = &arg::<LuaSharedTable>(state, 1, what)?.0;
        let entries = t.entries();
        let codec = &crate::runtime::state_data(state).codec;
        let mut result = Ok(());
        rawud::protect(state, 0, 1, &mut |state| {
            ffi::lua_createtable(state, 0, entries.len().min(i32::MAX as usize) as c_int);
            for (key, msg) in &entries {
                result = push_leaf(state, &key.to_value());
                if result.is_err() {
                    return;
                }
                result = push_all(state, codec, msg).map(drop);
                if result.is_err() {
                    ffi::lua_pop(state, 1);
                    return;
                }
                ffi::lua_rawset(state, -3);
            }
        })?;
        if result.is_err() {
            ffi::lua_pop(state, 1);
        }
        result
    }
}

/// `s:totable()`: a plain copy of every entry, taken under one lock.
unsafe extern "C-unwind" fn table_totable(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            push_copy(state, "s:totable")?;
            Ok(1)
        })
    }
}

/// `s:pairs()` / `pairs(s)`: iterate over a copy taken under one lock.
unsafe extern "C-unwind" fn table_pairs(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            ffi::lua_settop(state, 1);
            push_copy(state, "s:pairs")?;
            // The key exists (set when the module was opened), so this read allocates
            // nothing.
            ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, c"weft.next".as_ptr());
            if ffi::lua_type(state, -1) != ffi::LUA_TFUNCTION {
                return Err("weft: the next function is missing".into());
            }
            ffi::lua_insert(state, -2);
            ffi::lua_pushnil(state);
            Ok(3)
        })
    }
}
