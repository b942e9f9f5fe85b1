//! `weft.array`, `weft.load_npy`, `weft.memory` and the array userdata.
//!
//! Positions are 1-based here and 0-based in `weft_core::array` (and in `a:ptr()`, a C
//! pointer); this module is where the conversion happens. Element access is a raw C
//! metamethod with a bounds check; loops that touch every element belong on `a:ptr()`
//! under LuaJIT, where the FFI compiles them to plain loads and stores.

use crate::rawud::{self, arg, guard, set_fn, RawType};
use mlua::ffi;
use std::ffi::{c_int, CStr};
use weft_core::array::{ArrayError, Scalar};
use weft_core::{Array, DType, Handle};

/// An array view as Lua holds it.
pub(crate) struct LuaArray(pub Array);

impl RawType for LuaArray {
    const MAGIC: u64 = 0x7765_6674_4152_5231;
    const NAME: &'static CStr = c"weft.array";
    const HOLDS_MEMORY: bool = true;

    unsafe fn metatable(state: *mut ffi::lua_State) {
        // SAFETY: builds tables on a valid state with the metatable on top.
        unsafe {
            ffi::lua_createtable(state, 0, 12);
            set_fn(state, c"get", get);
            set_fn(state, c"set", set);
            set_fn(state, c"shape", shape);
            set_fn(state, c"dtype", dtype);
            set_fn(state, c"slice", slice);
            set_fn(state, c"free", free);
            set_fn(state, c"totable", totable);
            set_fn(state, c"save_npy", save_npy);
            set_fn(state, c"ptr", raw_ptr);
            #[cfg(feature = "luajit")]
            typed_ptr(state);
            let mt = ffi::lua_gettop(state) - 1;
            ffi::lua_pushvalue(state, -1);
            ffi::lua_pushcclosure(state, index, 1);
            ffi::lua_setfield(state, mt, c"__index".as_ptr());
            ffi::lua_pushcfunction(state, newindex);
            ffi::lua_setfield(state, mt, c"__newindex".as_ptr());
            #[cfg(feature = "luajit")]
            crate::jit_reads::install_array(state, mt, mt + 1);
            ffi::lua_pop(state, 1);
            set_fn(state, c"__len", len);
        }
    }

    fn handle(&self) -> Option<Handle> {
        Some(Handle::Array(Box::new(self.0.clone())))
    }

    fn same(&self, other: &Self) -> bool {
        let (a, b) = (&self.0, &other.0);
        a.as_ptr() == b.as_ptr() && a.shape() == b.shape() && a.dtype() == b.dtype()
    }

    fn describe(&self) -> String {
        let a = &self.0;
        let shape = match a.shape() {
            (r, None) => format!("{r}"),
            (r, Some(c)) => format!("{r}x{c}"),
        };
        format!(
            "weft.array ({} {shape}): {:p}",
            a.dtype().name(),
            a.as_ptr()
        )
    }
}

/// On LuaJIT, replace the `ptr` method with a Lua function that casts the raw address to
/// a typed FFI pointer (`float *`, or `const float *` for a read-only mapping).
#[cfg(feature = "luajit")]
unsafe fn typed_ptr(state: *mut ffi::lua_State) {
    const CHUNK: &str = r#"local raw = ...
    local ok, ffi = pcall(require, "ffi")
    if not ok then return raw end
    local cast, typeof, types = ffi.cast, ffi.typeof, {}
    return function(a)
      local address, ctype = raw(a)
      local t = types[ctype]
      if t == nil then t = typeof(ctype); types[ctype] = t end
      return cast(t, address)
    end"#;
    // SAFETY: methods table on top; the chunk is loaded and called under lua_pcall.
    unsafe {
        if ffi::luaL_loadbuffer(
            state,
            CHUNK.as_ptr() as *const _,
            CHUNK.len(),
            c"=weft.ptr".as_ptr(),
        ) != 0
        {
            ffi::lua_pop(state, 1);
            return;
        }
        ffi::lua_pushcfunction(state, raw_ptr);
        if ffi::lua_pcall(state, 1, 1, 0) != 0 {
            ffi::lua_pop(state, 1);
            return;
        }
        ffi::lua_setfield(state, -2, c"ptr".as_ptr());
    }
}

fn describe(e: ArrayError) -> String {
    format!("weft: {e}")
}

/// A size argument: a non-negative integer.
unsafe fn size_arg(state: *mut ffi::lua_State, idx: c_int, what: &str) -> Result<usize, String> {
    // SAFETY: forwarded.
    let n = unsafe { rawud::int_arg(state, idx, what)? };
    usize::try_from(n).map_err(|_| format!("{what} must not be negative (got {n})"))
}

/// A 1-based position in `1..=len` → 0-based.
fn position(i: i64, len: usize, what: &'static str) -> Result<usize, String> {
    if i >= 1 && (i as u64) <= len as u64 {
        Ok((i - 1) as usize)
    } else {
        Err(describe(ArrayError::OutOfRange {
            index: i,
            len,
            what,
        }))
    }
}

unsafe fn scalar_arg(state: *mut ffi::lua_State, idx: c_int) -> Result<Scalar, String> {
    // SAFETY: type-checked reads of a valid index.
    unsafe {
        if ffi::lua_type(state, idx) != ffi::LUA_TNUMBER {
            return Err(format!(
                "weft: array elements are numbers (got {})",
                rawud::type_of(state, idx)
            ));
        }
        #[cfg(feature = "lua54")]
        if ffi::lua_isinteger(state, idx) != 0 {
            return Ok(Scalar::Int(ffi::lua_tointeger(state, idx)));
        }
        Ok(Scalar::Num(ffi::lua_tonumber(state, idx)))
    }
}

unsafe fn push_scalar(state: *mut ffi::lua_State, s: Scalar) {
    // SAFETY: pushes one number.
    unsafe {
        let check = crate::stack::StackCheck::new(state);
        match s {
            Scalar::Int(i) => ffi::lua_pushinteger(state, i as ffi::lua_Integer),
            Scalar::Num(n) => ffi::lua_pushnumber(state, n),
        }
        check.expect(1);
    }
}

/// The flat 0-based element index for `a:get(i[, j])` / `a:set(i[, j], v)`; returns it
/// and the stack index of the next argument.
unsafe fn element_index(
    state: *mut ffi::lua_State,
    a: &Array,
    what: &str,
) -> Result<(usize, c_int), String> {
    // SAFETY: forwarded reads of valid indices.
    unsafe {
        let i = rawud::int_arg(state, 2, &format!("{what}: row"))?;
        match a.shape() {
            (rows, None) => Ok((position(i, rows, "elements")?, 3)),
            (rows, Some(cols)) => {
                let r = position(i, rows, "rows")?;
                let j = rawud::int_arg(state, 3, &format!("{what}: column"))?;
                Ok((r * cols + position(j, cols, "columns")?, 4))
            }
        }
    }
}

/// `weft.array(dtype, rows [, cols])`.
pub(crate) unsafe extern "C-unwind" fn new_array(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let name = if ffi::lua_type(state, 1) == ffi::LUA_TSTRING {
                String::from_utf8_lossy(crate::codec::raw::str_bytes(state, 1)).into_owned()
            } else {
                return Err(format!(
                    "weft.array: dtype must be a string (got {})",
                    rawud::type_of(state, 1)
                ));
            };
            let dtype = DType::parse(&name)
                .ok_or_else(|| format!("weft.array: {}", ArrayError::UnknownDType(name.clone())))?;
            let rows = size_arg(state, 2, "weft.array: rows")?;
            let cols = match ffi::lua_type(state, 3) {
                ffi::LUA_TNONE | ffi::LUA_TNIL => None,
                _ => Some(size_arg(state, 3, "weft.array: cols")?),
            };
            let a = Array::zeros(dtype, rows, cols).map_err(|e| format!("weft.array: {e}"))?;
            rawud::push(state, LuaArray(a))?;
            Ok(1)
        })
    }
}

unsafe extern "C-unwind" fn index(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`. Upvalue 1 is the methods table.
    unsafe {
        guard(state, |state| {
            // Methods first: `a:shape()` on a freed array should reach the method and
            // fail there, naming it.
            if ffi::lua_type(state, 2) == ffi::LUA_TSTRING {
                ffi::lua_pushvalue(state, 2);
                ffi::lua_rawget(state, ffi::lua_upvalueindex(1));
                return Ok(1);
            }
            let a = &arg::<LuaArray>(state, 1, "array")?.0;
            let i = rawud::int_arg(state, 2, "weft: array index")?;
            let r = position(
                i,
                a.rows(),
                if a.shape().1.is_some() {
                    "rows"
                } else {
                    "elements"
                },
            )?;
            match a.row(r) {
                Some(row) => rawud::push(state, LuaArray(row))?,
                None => push_scalar(state, a.get(r).expect("position checked the range")),
            }
            Ok(1)
        })
    }
}

unsafe extern "C-unwind" fn newindex(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let a = &arg::<LuaArray>(state, 1, "array")?.0;
            if a.shape().1.is_some() {
                return Err(
                    "weft: a[i] = v needs a 1-D array (use a:set(i, j, v) on a 2-D one)".into(),
                );
            }
            let i = position(
                rawud::int_arg(state, 2, "weft: array index")?,
                a.rows(),
                "elements",
            )?;
            a.set(i, scalar_arg(state, 3)?).map_err(describe)?;
            Ok(0)
        })
    }
}

unsafe extern "C-unwind" fn get(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let a = &arg::<LuaArray>(state, 1, "a:get")?.0;
            let (flat, _) = element_index(state, a, "a:get")?;
            push_scalar(state, a.get(flat).expect("element_index checked the range"));
            Ok(1)
        })
    }
}

unsafe extern "C-unwind" fn set(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let a = &arg::<LuaArray>(state, 1, "a:set")?.0;
            let (flat, value_at) = element_index(state, a, "a:set")?;
            a.set(flat, scalar_arg(state, value_at)?)
                .map_err(describe)?;
            Ok(0)
        })
    }
}

unsafe extern "C-unwind" fn len(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let a = &arg::<LuaArray>(state, 1, "#array")?.0;
            ffi::lua_pushinteger(state, a.rows() as ffi::lua_Integer);
            Ok(1)
        })
    }
}

unsafe extern "C-unwind" fn shape(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let (rows, cols) = arg::<LuaArray>(state, 1, "a:shape")?.0.shape();
            ffi::lua_pushinteger(state, rows as ffi::lua_Integer);
            match cols {
                Some(c) => {
                    ffi::lua_pushinteger(state, c as ffi::lua_Integer);
                    Ok(2)
                }
                None => Ok(1),
            }
        })
    }
}

unsafe extern "C-unwind" fn dtype(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let a = &arg::<LuaArray>(state, 1, "a:dtype")?.0;
            rawud::push_str(state, a.dtype().name().as_bytes())?;
            Ok(1)
        })
    }
}

unsafe extern "C-unwind" fn slice(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let a = &arg::<LuaArray>(state, 1, "a:slice")?.0;
            let first = rawud::int_arg(state, 2, "a:slice: first row")?;
            let last = rawud::int_arg(state, 3, "a:slice: last row")?;
            let rows = a.rows();
            let bad = || describe(ArrayError::BadSlice { first, last, rows });
            if first < 1 || last < first - 1 || last > rows as i64 {
                return Err(bad());
            }
            let view = a
                .slice_rows(first as usize - 1, last as usize)
                .ok_or_else(bad)?;
            rawud::push(state, LuaArray(view))?;
            Ok(1)
        })
    }
}

/// `a:ptr()` before LuaJIT's typed cast: the address and the C pointer type.
unsafe extern "C-unwind" fn raw_ptr(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let a = &arg::<LuaArray>(state, 1, "a:ptr")?.0;
            // A pointer is for writing unless the mapping is read-only: refuse it while a
            // compute call reads the array, as a[i] = v is refused.
            if let (Some(by), None) = (a.busy_reader(), a.read_only_origin()) {
                return Err(format!("a:ptr: array is being read by {by}"));
            }
            ffi::lua_pushlightuserdata(state, a.expose_ptr() as *mut std::ffi::c_void);
            let constness = if a.read_only_origin().is_some() {
                "const "
            } else {
                ""
            };
            let ctype = format!("{constness}{} *", a.dtype().c_type());
            rawud::push_str(state, ctype.as_bytes())?;
            Ok(2)
        })
    }
}

/// `a:free()`: drop this state's reference now instead of at garbage collection. The
/// memory is returned once no other thread holds the array either.
unsafe extern "C-unwind" fn free(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            if rawud::slot::<LuaArray>(state, 1).is_none() {
                arg::<LuaArray>(state, 1, "a:free")?;
            }
            // The check above left no reference behind; this is the only access.
            let taken = rawud::take::<LuaArray>(state, 1);
            drop(taken);
            Ok(0)
        })
    }
}

/// `a:totable()`: numbers in a plain table (a table of row tables for 2-D).
unsafe extern "C-unwind" fn totable(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let a = &arg::<LuaArray>(state, 1, "a:totable")?.0;
            // One row's table under protection (a memory error becomes `Err`); the row
            // views are owned out here, where no Lua error can reach them.
            let fill = |state: *mut ffi::lua_State, v: &Array| {
                rawud::protect(state, 0, 1, &mut |state| {
                    ffi::lua_createtable(state, v.len().min(i32::MAX as usize) as c_int, 0);
                    for i in 0..v.len() {
                        push_scalar(state, v.get(i).expect("in range"));
                        ffi::lua_rawseti(state, -2, i as ffi::lua_Integer + 1);
                    }
                })
            };
            match a.shape().1 {
                None => fill(state, a)?,
                Some(_) => {
                    rawud::protect(state, 0, 1, &mut |state| {
                        ffi::lua_createtable(state, a.rows().min(i32::MAX as usize) as c_int, 0)
                    })?;
                    for r in 0..a.rows() {
                        fill(state, &a.row(r).expect("2-D"))?;
                        // The array part was sized above: storing allocates nothing.
                        ffi::lua_rawseti(state, -2, r as ffi::lua_Integer + 1);
                    }
                }
            }
            Ok(1)
        })
    }
}

unsafe extern "C-unwind" fn save_npy(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let a = &arg::<LuaArray>(state, 1, "a:save_npy")?.0;
            let path = path_arg(state, 2, "a:save_npy")?;
            weft_npy::save(a, std::path::Path::new(&path))
                .map_err(|e| format!("a:save_npy: {e}"))?;
            Ok(0)
        })
    }
}

pub(crate) unsafe fn path_arg(
    state: *mut ffi::lua_State,
    idx: c_int,
    what: &str,
) -> Result<String, String> {
    // SAFETY: type-checked read of a valid index.
    unsafe {
        if ffi::lua_type(state, idx) != ffi::LUA_TSTRING {
            return Err(format!(
                "{what}: path must be a string (got {})",
                rawud::type_of(state, idx)
            ));
        }
        Ok(String::from_utf8_lossy(crate::codec::raw::str_bytes(state, idx)).into_owned())
    }
}

/// `weft.load_npy(path [, {mmap = true}])`.
pub(crate) unsafe extern "C-unwind" fn load_npy(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let path = path_arg(state, 1, "weft.load_npy")?;
            let mmap = match ffi::lua_type(state, 2) {
                ffi::LUA_TNONE | ffi::LUA_TNIL => false,
                ffi::LUA_TTABLE => {
                    // Through metamethods, as compute options are; a raising `__index`
                    // is this call's error.
                    rawud::get_field(state, 2, c"mmap")
                        .map_err(|e| format!("weft.load_npy: options.mmap: {e}"))?;
                    let on = ffi::lua_toboolean(state, -1) != 0;
                    ffi::lua_pop(state, 1);
                    on
                }
                _ => {
                    return Err(format!(
                        "weft.load_npy: options must be a table (got {})",
                        rawud::type_of(state, 2)
                    ))
                }
            };
            let path = std::path::Path::new(&path);
            let array = if mmap {
                // SAFETY: the script asked for a mapping ({mmap = true}); keeping the file
                // unchanged while it is mapped is the user's duty, as documented for
                // weft.load_npy (weft's own writers refuse to replace a mapped file).
                weft_npy::load_mmap(path)
            } else {
                weft_npy::load(path).map(|loaded| loaded.array)
            }
            .map_err(|e| format!("weft.load_npy: {e}"))?;
            rawud::push(state, LuaArray(array))?;
            Ok(1)
        })
    }
}

/// `weft.memory()`: bytes of arrays weft allocated, bytes of files it mapped, and bytes of
/// freed arrays' memory kept for reuse.
pub(crate) unsafe extern "C-unwind" fn memory(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: pushes three numbers.
    unsafe {
        ffi::lua_pushnumber(state, weft_core::memory::owned() as f64);
        ffi::lua_pushnumber(state, weft_core::memory::mapped() as f64);
        ffi::lua_pushnumber(state, weft_core::memory::kept() as f64);
    }
    3
}
