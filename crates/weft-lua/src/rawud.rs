//! Raw-C-API userdata for the shared-data handles (frozen tables, arrays, counters,
//! shared tables), whose element reads must cost tens of nanoseconds, not the several
//! hundred an mlua method call costs.
//!
//! Each value lives in a full userdata as a [`Slot`]: a per-type magic number (checked
//! together with the userdata's size before any access, so a foreign userdata can never
//! be mistaken for ours) and the Rust value. Metatables are built once per state by the
//! type's [`RawType::metatable`] and kept in the registry; `__gc` drops the value.
//!
//! Functions here raise Lua errors directly (they are raw `lua_CFunction`s): [`guard`]
//! runs the Rust body, catches panics, and only calls `lua_error` after every Rust value
//! of the body has been dropped.

use crate::codec::raw::push_bytes;
use mlua::ffi;
use std::ffi::{c_int, CStr};
use std::panic::AssertUnwindSafe;
use weft_core::key::KeyRef;
use weft_core::Handle;

/// How a Rust type appears in Lua as a raw userdata.
pub(crate) trait RawType: Sized + 'static {
    /// Identifies the type inside a userdata.
    const MAGIC: u64;
    /// Registry key of the metatable, and the name in messages (`weft.array`).
    const NAME: &'static CStr;
    /// Fill the metatable on top of the stack (beyond `__gc`, `__metatable` and
    /// `__weft_export`, which [`push`] adds).
    ///
    /// # Safety
    /// A valid state with the new metatable on top.
    unsafe fn metatable(state: *mut ffi::lua_State);
    /// The shared object, for crossing to another thread (`None`: this kind stays in
    /// the state that made it).
    fn handle(&self) -> Option<Handle>;
    /// Whether two userdata stand for the same shared object (`__eq`).
    fn same(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
    /// What `tostring` shows.
    fn describe(&self) -> String {
        format!("{}: {:p}", type_name::<Self>(), self)
    }
}

/// The memory of one userdata.
#[repr(C)]
pub(crate) struct Slot<T> {
    magic: u64,
    /// `None` after `__gc` or an explicit release.
    pub value: Option<T>,
}

/// Push `value` as a new userdata of its type.
///
/// # Safety
/// A valid state with 3 free stack slots.
pub(crate) unsafe fn push<T: RawType>(state: *mut ffi::lua_State, value: T) {
    // SAFETY: the userdata block is sized for Slot<T>, Lua aligns it for any C type, and
    // it is initialised before anything else can see it.
    unsafe {
        let p = ffi::lua_newuserdata(state, std::mem::size_of::<Slot<T>>()) as *mut Slot<T>;
        p.write(Slot {
            magic: T::MAGIC,
            value: Some(value),
        });
        push_metatable::<T>(state);
        ffi::lua_setmetatable(state, -2);
    }
}

/// Push the type's metatable, building it on first use in this state.
///
/// # Safety
/// A valid state with 3 free stack slots.
pub(crate) unsafe fn push_metatable<T: RawType>(state: *mut ffi::lua_State) {
    // SAFETY: balanced registry reads and writes on a valid state.
    unsafe {
        ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, T::NAME.as_ptr());
        if ffi::lua_type(state, -1) == ffi::LUA_TTABLE {
            return;
        }
        ffi::lua_pop(state, 1);
        ffi::lua_createtable(state, 0, 12);
        set_fn(state, c"__gc", collect::<T>);
        set_fn(state, c"__weft_export", export::<T>);
        set_fn(state, c"__eq", eq::<T>);
        set_fn(state, c"__tostring", tostring::<T>);
        ffi::lua_pushstring(state, T::NAME.as_ptr());
        ffi::lua_setfield(state, -2, c"__metatable".as_ptr());
        T::metatable(state);
        ffi::lua_pushvalue(state, -1);
        ffi::lua_setfield(state, ffi::LUA_REGISTRYINDEX, T::NAME.as_ptr());
    }
}

/// `table[name] = f` for the table on top of the stack.
///
/// # Safety
/// A valid state with a table on top and one free slot.
pub(crate) unsafe fn set_fn(state: *mut ffi::lua_State, name: &CStr, f: ffi::lua_CFunction) {
    // SAFETY: pushes a C function and stores it in the table below it.
    unsafe {
        ffi::lua_pushcfunction(state, f);
        ffi::lua_setfield(state, -2, name.as_ptr());
    }
}

/// The slot at `idx` if it is a userdata of type `T`.
///
/// # Safety
/// `idx` is a valid stack index. The reference lives while the userdata stays reachable.
pub(crate) unsafe fn slot<'a, T: RawType>(
    state: *mut ffi::lua_State,
    idx: c_int,
) -> Option<&'a mut Slot<T>> {
    // SAFETY: the type and size are checked before the magic number is read, so the read
    // stays inside the block; the magic number then proves the layout.
    unsafe {
        if ffi::lua_type(state, idx) != ffi::LUA_TUSERDATA
            || ffi::lua_rawlen(state, idx) != std::mem::size_of::<Slot<T>>()
        {
            return None;
        }
        let p = ffi::lua_touserdata(state, idx) as *mut Slot<T>;
        ((*p).magic == T::MAGIC).then(|| &mut *p)
    }
}

/// The live value in a slot reached by address (the LuaJIT FFI passes a userdata as its
/// payload pointer).
///
/// # Safety
/// `p` must be the payload of a live userdata created by [`push`] (for any type: the
/// magic number tells them apart).
#[cfg(feature = "luajit")]
pub(crate) unsafe fn slot_ref<'a, T: RawType>(p: *const Slot<T>) -> Option<&'a T> {
    // SAFETY: every slot starts with its magic number; the value is read only when the
    // number says the layout is Slot<T>.
    unsafe {
        if p.is_null() || (*p).magic != T::MAGIC {
            return None;
        }
        (*p).value.as_ref()
    }
}

/// The live value at `idx`, or an error naming the argument.
///
/// # Safety
/// As for [`slot`].
pub(crate) unsafe fn arg<'a, T: RawType>(
    state: *mut ffi::lua_State,
    idx: c_int,
    what: &str,
) -> Result<&'a T, String> {
    // SAFETY: forwarded contract.
    match unsafe { slot::<T>(state, idx) } {
        Some(Slot { value: Some(v), .. }) => Ok(v),
        Some(_) => Err(format!("{what}: this {} was freed", type_name::<T>())),
        None => Err(format!(
            "{what}: expected a {} (got {})",
            type_name::<T>(),
            // SAFETY: valid index.
            unsafe { type_of(state, idx) }
        )),
    }
}

fn type_name<T: RawType>() -> &'static str {
    T::NAME.to_str().unwrap_or("weft handle")
}

/// Lua's name for the type at `idx`.
///
/// # Safety
/// `idx` is a valid (or none) index.
pub(crate) unsafe fn type_of(state: *mut ffi::lua_State, idx: c_int) -> String {
    // SAFETY: lua_typename returns a static string for any type code.
    unsafe {
        let t = ffi::lua_type(state, idx);
        if t == ffi::LUA_TNONE {
            return "no value".into();
        }
        CStr::from_ptr(ffi::lua_typename(state, t))
            .to_string_lossy()
            .into_owned()
    }
}

/// An integer argument (LuaJIT passes floats: they must be integral).
pub(crate) unsafe fn int_arg(
    state: *mut ffi::lua_State,
    idx: c_int,
    what: &str,
) -> Result<i64, String> {
    // SAFETY: type-checked reads of a valid index.
    unsafe {
        if ffi::lua_type(state, idx) != ffi::LUA_TNUMBER {
            return Err(format!(
                "{what} must be an integer (got {})",
                type_of(state, idx)
            ));
        }
        #[cfg(feature = "lua54")]
        if ffi::lua_isinteger(state, idx) != 0 {
            return Ok(ffi::lua_tointeger(state, idx));
        }
        let n = ffi::lua_tonumber(state, idx);
        weft_core::key::integral(n).ok_or_else(|| format!("{what} must be an integer (got {n})"))
    }
}

/// The key at `idx` as a lookup key for frozen and shared tables (`None`: a key neither
/// can hold: nil, NaN, a table, a function).
pub(crate) unsafe fn key_at<'a>(state: *mut ffi::lua_State, idx: c_int) -> Option<KeyRef<'a>> {
    // SAFETY: type-checked reads of a valid index; a string key stays on the stack.
    unsafe {
        match ffi::lua_type(state, idx) {
            ffi::LUA_TNUMBER => {
                #[cfg(feature = "lua54")]
                if ffi::lua_isinteger(state, idx) != 0 {
                    return Some(KeyRef::Int(ffi::lua_tointeger(state, idx)));
                }
                KeyRef::number(ffi::lua_tonumber(state, idx))
            }
            ffi::LUA_TSTRING => Some(KeyRef::Str(crate::codec::raw::str_bytes(state, idx))),
            ffi::LUA_TBOOLEAN => Some(KeyRef::Bool(ffi::lua_toboolean(state, idx) != 0)),
            _ => None,
        }
    }
}

/// Run a raw function's body; raise its error (at the caller's position) or its panic
/// as a Lua error once the body's values are dropped.
///
/// The body returns its result count as a `u8`, widened here. The C ABI leaves the
/// upper half of `rax` undefined for an `int` return, and an optimised
/// `Result<c_int, _>` return did leave garbage there; Debian's LuaJIT 2.1 then crashed
/// in `lj_vm_return` (as in LuaJIT issue #319). Widening a byte always clears it.
///
/// # Safety
/// Call only as the whole body of a `lua_CFunction`.
pub(crate) unsafe fn guard(
    state: *mut ffi::lua_State,
    body: impl FnOnce(*mut ffi::lua_State) -> Result<u8, String>,
) -> c_int {
    let msg = match std::panic::catch_unwind(AssertUnwindSafe(|| body(state))) {
        Ok(Ok(n)) => return c_int::from(n),
        Ok(Err(msg)) => msg,
        Err(_) => "weft: internal error (a panic was caught; please report it)".to_string(),
    };
    // SAFETY: the body's values are gone; `msg` is dropped before lua_error unwinds.
    unsafe {
        ffi::luaL_where(state, 1);
        push_bytes(state, msg.as_bytes());
        drop(msg);
        ffi::lua_concat(state, 2);
        ffi::lua_error(state)
    }
}

unsafe extern "C-unwind" fn collect<T: RawType>(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: `__gc` is called with the userdata; dropping an Arc cannot unwind into Lua
    // (a panic in a destructor is caught here).
    unsafe {
        if let Some(slot) = slot::<T>(state, 1) {
            let value = slot.value.take();
            let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(value)));
        }
    }
    0
}

unsafe extern "C-unwind" fn eq<T: RawType>(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: reads two stack slots and pushes one boolean.
    unsafe {
        let same = match (slot::<T>(state, 1), slot::<T>(state, 2)) {
            (Some(a), Some(b)) => matches!((&a.value, &b.value), (Some(a), Some(b)) if a.same(b)),
            _ => false,
        };
        ffi::lua_pushboolean(state, same as c_int);
    }
    1
}

unsafe extern "C-unwind" fn tostring<T: RawType>(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let text = arg::<T>(state, 1, "tostring")?.describe();
            push_bytes(state, text.as_bytes());
            Ok(1)
        })
    }
}

unsafe extern "C-unwind" fn export<T: RawType>(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see guard.
    unsafe {
        guard(state, |state| {
            let v = arg::<T>(state, 1, "weft")?;
            let h = v.handle().ok_or_else(|| {
                format!(
                    "a {} stays in the thread that made it (open it again there)",
                    type_name::<T>()
                )
            })?;
            crate::codec::stash_handle(h);
            Ok(0)
        })
    }
}

/// Push a handle of one of the raw types; false for the other handle kinds.
///
/// # Safety
/// A valid state with 4 free slots, inside a protected call.
pub(crate) unsafe fn push_handle(state: *mut ffi::lua_State, h: &Handle) -> bool {
    // SAFETY: forwarded contract.
    unsafe {
        match h {
            Handle::Frozen(f) => crate::frozen::push_view(state, (**f).clone()),
            Handle::Array(a) => push(state, crate::arrays::LuaArray((**a).clone())),
            Handle::Counter(c) => push(state, crate::counters::LuaCounter(c.clone())),
            Handle::Table(t) => push(state, crate::counters::LuaSharedTable(t.clone())),
            _ => return false,
        }
    }
    true
}
