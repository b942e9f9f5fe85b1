//! LuaJIT: element reads and writes of frozen tables and arrays through the FFI.
//!
//! A C metamethod costs LuaJIT 60–70 ns per call (the JIT cannot compile a call into the
//! Lua C API, so the loop around it falls back to the interpreter). Instead, on LuaJIT the
//! `__index` / `__newindex` of these userdata are small Lua functions that call the entry
//! points below through the FFI, which the JIT compiles into the trace; a userdata passed
//! to a `void *` parameter arrives as its payload address, i.e. our [`Slot`]. Anything the
//! fast path does not answer (strings that are not numbers, nested tables, methods, errors)
//! falls through to the raw C metamethod, so behaviour and error messages are the same.
//!
//! Result codes: 1 = a number was written to `out`; 0 = the key is absent (nil);
//! -1 = not answered here, take the general path.

use crate::arrays::LuaArray;
use crate::frozen::LuaFrozen;
use crate::rawud::{RawType, Slot};
use mlua::ffi;
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use weft_core::array::Scalar;
use weft_core::frozen::Entry;
use weft_core::key::KeyRef;
use weft_core::message::Value;

/// The live value of the slot a Lua function passed: only ever our own userdata (the
/// metamethods are reached only through our protected metatables, and the `get`/`set`
/// methods check the metatable before calling).
unsafe fn value<'a, T: RawType>(slot: *const Slot<T>) -> Option<&'a T> {
    // SAFETY: the pointer is the payload of a userdata of type T (see above); the magic
    // number is checked before the value is read.
    unsafe { crate::rawud::slot_ref(slot) }
}

fn number_of(entry: Option<Entry<'_>>, out: *mut f64) -> c_int {
    let n = match entry {
        None => return 0,
        Some(Entry::Number(n)) => n,
        Some(Entry::Value(Value::Num(n))) => *n,
        Some(Entry::Value(Value::Int(i))) => *i as f64,
        Some(Entry::Value(_)) => return -1,
    };
    // SAFETY: `out` is the caller's one-element double array.
    unsafe { *out = n };
    1
}

extern "C" fn frozen_number(slot: *const Slot<LuaFrozen>, key: f64, out: *mut f64) -> c_int {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `value`.
        let Some(t) = (unsafe { value(slot) }) else {
            return -1;
        };
        match KeyRef::number(key) {
            Some(k) => number_of(t.0.get(k), out),
            None => -1,
        }
    }))
    .unwrap_or(-1)
}

extern "C" fn frozen_field(
    slot: *const Slot<LuaFrozen>,
    key: *const u8,
    len: usize,
    out: *mut f64,
) -> c_int {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `value`; `key` points at the bytes of a Lua string of length `len`,
        // alive for the call.
        let (Some(t), bytes) = (unsafe { value(slot) }, unsafe {
            std::slice::from_raw_parts(key, len)
        }) else {
            return -1;
        };
        match t.0.get(KeyRef::Str(bytes)) {
            // Absent strings may be method names: the general path decides.
            None => -1,
            found => number_of(found, out),
        }
    }))
    .unwrap_or(-1)
}

fn flat_index(a: &weft_core::Array, i: f64) -> Option<usize> {
    let i = weft_core::key::integral(i)?;
    (a.shape().1.is_none() && i >= 1 && (i as u64) <= a.rows() as u64).then(|| (i - 1) as usize)
}

/// The element of the array in `slot` that `locate` finds, written to `out`.
fn read_element(
    slot: *const Slot<LuaArray>,
    locate: impl FnOnce(&weft_core::Array) -> Option<usize>,
    out: *mut f64,
) -> c_int {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `value`.
        let Some(a) = (unsafe { value(slot) }) else {
            return -1;
        };
        let n = match locate(&a.0).and_then(|idx| a.0.get(idx)) {
            Some(Scalar::Num(n)) => n,
            Some(Scalar::Int(i)) => i as f64,
            None => return -1,
        };
        // SAFETY: `out` is the caller's one-element double array.
        unsafe { *out = n };
        1
    }))
    .unwrap_or(-1)
}

/// Store `v` at the element of the array in `slot` that `locate` finds.
fn write_element(
    slot: *const Slot<LuaArray>,
    locate: impl FnOnce(&weft_core::Array) -> Option<usize>,
    v: f64,
) -> c_int {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `value`.
        let Some(a) = (unsafe { value(slot) }) else {
            return -1;
        };
        match locate(&a.0).map(|idx| a.0.set(idx, Scalar::Num(v))) {
            Some(Ok(())) => 1,
            _ => -1,
        }
    }))
    .unwrap_or(-1)
}

extern "C" fn array_get(slot: *const Slot<LuaArray>, i: f64, out: *mut f64) -> c_int {
    read_element(slot, |a| flat_index(a, i), out)
}

extern "C" fn array_set(slot: *const Slot<LuaArray>, i: f64, v: f64) -> c_int {
    write_element(slot, |a| flat_index(a, i), v)
}

/// The flat index of element (i, j) of a 2-D array, 1-based in.
fn flat_index2(a: &weft_core::Array, i: f64, j: f64) -> Option<usize> {
    let (i, j, cols) = (
        weft_core::key::integral(i)?,
        weft_core::key::integral(j)?,
        a.shape().1?,
    );
    let ok = i >= 1 && (i as u64) <= a.rows() as u64 && j >= 1 && (j as u64) <= cols as u64;
    ok.then(|| (i - 1) as usize * cols + (j - 1) as usize)
}

extern "C" fn array_get2(slot: *const Slot<LuaArray>, i: f64, j: f64, out: *mut f64) -> c_int {
    read_element(slot, |a| flat_index2(a, i, j), out)
}

extern "C" fn array_set2(slot: *const Slot<LuaArray>, i: f64, j: f64, v: f64) -> c_int {
    write_element(slot, |a| flat_index2(a, i, j), v)
}

const FROZEN_CHUNK: &str = r#"local raw_index, number_at, field_at = ...
local ffi = require "ffi"
number_at = ffi.cast("int (*)(void *, double, double *)", number_at)
field_at = ffi.cast("int (*)(void *, const char *, size_t, double *)", field_at)
local out, type, setmetatable = ffi.new("double[1]"), type, setmetatable
-- Values the FFI path does not answer (strings, nested tables, methods) come from the C
-- path once per view and key, then from here: a frozen table never changes. Weak keys and
-- weak values, so the cache keeps neither the views nor (through a cycle) their parents.
local cache, weak = setmetatable({}, { __mode = "k" }), { __mode = "v" }
local function slow(t, k)
  local c = cache[t]
  if c == nil then
    c = setmetatable({}, weak)
    cache[t] = c
  end
  local v = c[k]
  if v == nil then
    v = raw_index(t, k)
    if v ~= nil then c[k] = v end
  end
  return v
end
return function(t, k)
  local tk = type(k)
  if tk == "number" then
    local r = number_at(t, k, out)
    if r == 1 then return out[0] elseif r == 0 then return nil end
  elseif tk == "string" then
    if field_at(t, k, #k, out) == 1 then return out[0] end
  end
  return slow(t, k)
end"#;

const ARRAY_CHUNK: &str = r#"local raw_index, raw_newindex, methods, get_at, set_at, get2, set2 = ...
local ffi = require "ffi"
get_at = ffi.cast("int (*)(void *, double, double *)", get_at)
set_at = ffi.cast("int (*)(void *, double, double)", set_at)
get2 = ffi.cast("int (*)(void *, double, double, double *)", get2)
set2 = ffi.cast("int (*)(void *, double, double, double)", set2)
local out, type = ffi.new("double[1]"), type
local function index(a, i)
  if type(i) == "number" then
    if get_at(a, i, out) == 1 then return out[0] end
  elseif type(i) == "string" then
    return methods[i]
  end
  return raw_index(a, i)
end
local function newindex(a, i, v)
  if type(i) == "number" and type(v) == "number" and set_at(a, i, v) == 1 then return end
  return raw_newindex(a, i, v)
end
local raw_get, raw_set, getmetatable = methods.get, methods.set, getmetatable
-- a:get(i) / a:get(i, j) and a:set(i, v) / a:set(i, j, v); anything unusual (not an
-- array: a method can be called on anything; bad indices, values that do not fit,
-- read-only arrays) takes the C path for its error. The metatable check matters: the FFI
-- would pass a light userdata or a string to `void *` as a raw address.
function methods.get(a, i, j)
  if getmetatable(a) ~= "weft.array" then
  elseif j == nil then
    if type(i) == "number" and get_at(a, i, out) == 1 then return out[0] end
  elseif type(i) == "number" and type(j) == "number" and get2(a, i, j, out) == 1 then
    return out[0]
  end
  return raw_get(a, i, j)
end
function methods.set(a, i, j, v)
  if getmetatable(a) ~= "weft.array" then
  elseif v == nil then
    if type(i) == "number" and type(j) == "number" and set_at(a, i, j) == 1 then return end
  elseif type(i) == "number" and type(j) == "number" and type(v) == "number"
      and set2(a, i, j, v) == 1 then
    return
  end
  return raw_set(a, i, j, v)
end
return index, newindex"#;

/// Replace the C `__index` (and `__newindex`) of the metatable at `mt` with FFI-backed
/// Lua versions: the chunk gets the C functions, then `extra` (a stack index, e.g. the
/// methods table) if any, then the entry points as light userdata. Leaves the C versions
/// if anything fails.
///
/// # Safety
/// A valid state, `mt` an absolute index of the metatable, 8 free slots.
unsafe fn install(
    state: *mut ffi::lua_State,
    mt: c_int,
    chunk: &str,
    extra: Option<c_int>,
    fns: &[*const ()],
    with_newindex: bool,
) {
    // SAFETY: the chunk is loaded and run under lua_pcall; stack use is balanced.
    unsafe {
        let top = ffi::lua_gettop(state);
        if ffi::luaL_loadbuffer(
            state,
            chunk.as_ptr() as *const _,
            chunk.len(),
            c"=weft.jit_reads".as_ptr(),
        ) != 0
        {
            ffi::lua_settop(state, top);
            return;
        }
        ffi::lua_getfield(state, mt, c"__index".as_ptr());
        if with_newindex {
            ffi::lua_getfield(state, mt, c"__newindex".as_ptr());
        }
        if let Some(extra) = extra {
            ffi::lua_pushvalue(state, extra);
        }
        for f in fns {
            ffi::lua_pushlightuserdata(state, *f as *mut std::ffi::c_void);
        }
        let nargs =
            fns.len() as c_int + 1 + c_int::from(with_newindex) + c_int::from(extra.is_some());
        let nresults = 1 + c_int::from(with_newindex);
        if ffi::lua_pcall(state, nargs, nresults, 0) != 0 {
            ffi::lua_settop(state, top);
            return;
        }
        if with_newindex {
            ffi::lua_setfield(state, mt, c"__newindex".as_ptr());
        }
        ffi::lua_setfield(state, mt, c"__index".as_ptr());
    }
}

/// Give the frozen-table metatable on top of the stack its FFI read path.
///
/// # Safety
/// A valid state with the metatable on top and 8 free slots.
pub(crate) unsafe fn install_frozen(state: *mut ffi::lua_State) {
    let fns = [frozen_number as *const (), frozen_field as *const ()];
    // SAFETY: forwarded contract.
    unsafe {
        let mt = ffi::lua_gettop(state);
        install(state, mt, FROZEN_CHUNK, None, &fns, false)
    }
}

/// Give the array metatable at `mt` its FFI element path; `methods` is the stack index of
/// its methods table, whose `get` and `set` get FFI versions too.
///
/// # Safety
/// A valid state, absolute indices, 8 free slots.
pub(crate) unsafe fn install_array(state: *mut ffi::lua_State, mt: c_int, methods: c_int) {
    let fns = [
        array_get as *const (),
        array_set as *const (),
        array_get2 as *const (),
        array_set2 as *const (),
    ];
    // SAFETY: forwarded contract.
    unsafe { install(state, mt, ARRAY_CHUNK, Some(methods), &fns, true) }
}
