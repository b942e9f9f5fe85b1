//! Small helpers over the C API shared by the encoder and decoder.

use mlua::ffi;
use std::ffi::{c_int, CStr};

/// Push `registry[name]`.
///
/// # Safety
/// `state` must be a valid state with one free stack slot.
pub(crate) unsafe fn push_named(state: *mut ffi::lua_State, name: &CStr) {
    // SAFETY: the caller guarantees a valid state with room on the stack.
    unsafe { ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, name.as_ptr()) };
}

/// The bytes of the string at `idx` (which must be a string, not a number).
///
/// # Safety
/// `idx` must hold a string; the slice lives as long as that string stays on the stack.
pub(crate) unsafe fn str_bytes<'a>(state: *mut ffi::lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0usize;
    // SAFETY: idx holds a string (caller's contract), so lua_tolstring does not convert
    // in place and returns a pointer valid while the string is referenced.
    unsafe {
        let p = ffi::lua_tolstring(state, idx, &mut len);
        std::slice::from_raw_parts(p as *const u8, len)
    }
}

/// Push a Rust string.
///
/// # Safety
/// `state` must be valid with one free stack slot.
pub(crate) unsafe fn push_bytes(state: *mut ffi::lua_State, bytes: &[u8]) {
    // SAFETY: lua_pushlstring copies `len` bytes from a valid pointer.
    unsafe { ffi::lua_pushlstring(state, bytes.as_ptr() as *const _, bytes.len()) };
}

/// `lua_pcall` with a plain string error turned into a Rust `String`; the stack is left
/// with the results on success and without the error value on failure.
///
/// # Safety
/// The function and its `nargs` arguments must be on top of the stack.
pub(crate) unsafe fn pcall(
    state: *mut ffi::lua_State,
    nargs: c_int,
    nresults: c_int,
) -> Result<(), String> {
    // SAFETY: caller put a function and nargs arguments on the stack.
    unsafe {
        if ffi::lua_pcall(state, nargs, nresults, 0) == ffi::LUA_OK {
            return Ok(());
        }
        Err(pop_error_text(state))
    }
}

/// Pop the error value on top of the stack, as text (a string, or a note that it is not
/// one).
///
/// # Safety
/// `state` must be valid with an error value on top.
pub(crate) unsafe fn pop_error_text(state: *mut ffi::lua_State) -> String {
    // SAFETY: the caller's contract; the string is copied before it is popped.
    unsafe {
        let msg = if ffi::lua_type(state, -1) == ffi::LUA_TSTRING {
            String::from_utf8_lossy(str_bytes(state, -1)).into_owned()
        } else {
            "(error object is not a string)".to_string()
        };
        ffi::lua_pop(state, 1);
        msg
    }
}

/// Push the registry function `name`, first running `weft.load_packing` if it is not
/// there yet (the codec's LuaJIT helpers are loaded on first use). False, with nothing
/// pushed, if it cannot be had.
///
/// # Safety
/// `state` must be valid with 2 free stack slots.
pub(crate) unsafe fn push_helper(state: *mut ffi::lua_State, name: &CStr) -> bool {
    // SAFETY: balanced registry reads; the loader runs under lua_pcall.
    unsafe {
        push_named(state, name);
        if ffi::lua_type(state, -1) == ffi::LUA_TFUNCTION {
            return true;
        }
        ffi::lua_pop(state, 1);
        push_named(state, c"weft.load_packing");
        if ffi::lua_type(state, -1) != ffi::LUA_TFUNCTION {
            ffi::lua_pop(state, 1);
            return false;
        }
        if pcall(state, 0, 0).is_err() {
            return false;
        }
        push_named(state, name);
        if ffi::lua_type(state, -1) == ffi::LUA_TFUNCTION {
            return true;
        }
        ffi::lua_pop(state, 1);
        false
    }
}
