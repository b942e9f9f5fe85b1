//! Values that cross by name: module tables in `package.loaded`, and the C functions and
//! userdata stored directly in them (`math.sqrt`, `io.stdout`).
//!
//! The sender looks values up in a per-state index from identity to name; the receiver
//! resolves the name with `require`. The index is built on first need and rebuilt when a
//! lookup for something that can *only* cross by name (a C function, a userdata) misses,
//! which catches modules required after the last build. A pure-Lua module table loaded
//! after the last build and never paired with such a miss is deep-copied instead: the
//! copy behaves the same for plain data, which is the documented limit.

use super::raw::{pcall, push_bytes, str_bytes};
use mlua::ffi;
use rustc_hash::FxHashMap as HashMap;
use std::ffi::{c_int, c_void};
use weft_core::message::{ModuleName, ModuleRef};

/// Identity (`lua_topointer`) → name, for one state.
#[derive(Default)]
pub struct ModuleIndex {
    names: HashMap<*const c_void, ModuleRef>,
    built: bool,
}

unsafe fn push_loaded(state: *mut ffi::lua_State) {
    // SAFETY: the registry always holds _LOADED once the package library is open.
    unsafe { ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, c"_LOADED".as_ptr()) };
}

impl ModuleIndex {
    /// Has the index been built at least once?
    pub fn is_built(&self) -> bool {
        self.built
    }

    fn add(&mut self, value: *const c_void, name: ModuleName) {
        self.names.entry(value).or_default().names.push(name);
    }

    /// Re-read `package.loaded`.
    ///
    /// # Safety
    /// `state` must be valid, with 4 free stack slots.
    pub unsafe fn rebuild(&mut self, state: *mut ffi::lua_State) {
        self.names.clear();
        self.built = true;
        // SAFETY: plain reads of tables, balanced pushes and pops.
        unsafe {
            push_loaded(state);
            if ffi::lua_type(state, -1) != ffi::LUA_TTABLE {
                ffi::lua_pop(state, 1);
                return;
            }
            let loaded = ffi::lua_gettop(state);
            ffi::lua_pushnil(state);
            while ffi::lua_next(state, loaded) != 0 {
                if ffi::lua_type(state, -2) == ffi::LUA_TSTRING {
                    let name: Box<str> = String::from_utf8_lossy(str_bytes(state, -2)).into();
                    self.add_module(state, name);
                }
                ffi::lua_pop(state, 1);
            }
            ffi::lua_pop(state, 1);
            // Module tables first, then by name: a stable order for the receiver to try.
            for m in self.names.values_mut() {
                m.names
                    .sort_by(|a, b| (a.field.is_some(), a).cmp(&(b.field.is_some(), b)));
            }
        }
    }

    /// Index the module value on top of the stack (left in place).
    unsafe fn add_module(&mut self, state: *mut ffi::lua_State, name: Box<str>) {
        // SAFETY: reads the top value and iterates it if it is a table.
        unsafe {
            let module = ffi::lua_gettop(state);
            let t = ffi::lua_type(state, module);
            if t != ffi::LUA_TTABLE && t != ffi::LUA_TFUNCTION && t != ffi::LUA_TUSERDATA {
                return;
            }
            self.add(
                ffi::lua_topointer(state, module),
                ModuleName {
                    module: name.clone(),
                    field: None,
                },
            );
            if t != ffi::LUA_TTABLE {
                return;
            }
            ffi::lua_pushnil(state);
            while ffi::lua_next(state, module) != 0 {
                let vt = ffi::lua_type(state, -1);
                let by_name_only = (vt == ffi::LUA_TFUNCTION
                    && ffi::lua_iscfunction(state, -1) != 0)
                    || vt == ffi::LUA_TUSERDATA;
                if by_name_only && ffi::lua_type(state, -2) == ffi::LUA_TSTRING {
                    let field: Box<[u8]> = str_bytes(state, -2).into();
                    self.add(
                        ffi::lua_topointer(state, -1),
                        ModuleName {
                            module: name.clone(),
                            field: Some(field),
                        },
                    );
                }
                ffi::lua_pop(state, 1);
            }
        }
    }

    /// The names of the value at `idx` under which it is (still) reachable.
    ///
    /// # Safety
    /// `idx` must be an absolute index; 4 free stack slots.
    pub unsafe fn lookup(&self, state: *mut ffi::lua_State, idx: c_int) -> Option<ModuleRef> {
        // SAFETY: pointer read, then balanced table reads to confirm identity (a table
        // freed and its address reused must not be mistaken for the module).
        unsafe {
            let found = self.names.get(&ffi::lua_topointer(state, idx))?;
            let top = ffi::lua_gettop(state);
            let names: Vec<ModuleName> = found
                .names
                .iter()
                .filter(|name| {
                    let same = push_name(state, name, false).is_ok()
                        && ffi::lua_rawequal(state, -1, idx) != 0;
                    ffi::lua_settop(state, top);
                    same
                })
                .cloned()
                .collect();
            (!names.is_empty()).then_some(ModuleRef { names })
        }
    }
}

/// Push the value `m` names, trying its names in order: first among modules the receiver
/// has loaded, then (when `allow_require`) calling `require`.
///
/// # Safety
/// `state` must be valid with 4 free stack slots. On error nothing is left pushed.
pub unsafe fn push_module_value(
    state: *mut ffi::lua_State,
    m: &ModuleRef,
    allow_require: bool,
) -> Result<(), String> {
    let mut first_error = None;
    for require in [false, true] {
        if require && !allow_require {
            break;
        }
        for name in &m.names {
            // SAFETY: forwarded contract.
            match unsafe { push_name(state, name, require) } {
                Ok(()) => return Ok(()),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    Err(first_error.unwrap_or_else(|| "a by-name value without names".into()))
}

/// Push `package.loaded[module]` (calling `require` when `allow_require` and it is not
/// loaded yet), then its field if any.
///
/// # Safety
/// `state` must be valid with 4 free stack slots. On error nothing is left pushed.
unsafe fn push_name(
    state: *mut ffi::lua_State,
    m: &ModuleName,
    allow_require: bool,
) -> Result<(), String> {
    // SAFETY: balanced reads; require runs under lua_pcall.
    unsafe {
        let top = ffi::lua_gettop(state);
        push_loaded(state);
        push_bytes(state, m.module.as_bytes());
        ffi::lua_rawget(state, -2);
        if ffi::lua_type(state, -1) == ffi::LUA_TNIL {
            ffi::lua_pop(state, 1);
            if !allow_require {
                ffi::lua_settop(state, top);
                return Err(format!("module '{}' is not loaded", m.module));
            }
            ffi::lua_getglobal(state, c"require".as_ptr());
            push_bytes(state, m.module.as_bytes());
            if let Err(e) = pcall(state, 1, 1) {
                ffi::lua_settop(state, top);
                return Err(format!(
                    "cannot load module '{}' in the receiving thread: {e}",
                    m.module
                ));
            }
        }
        if let Some(field) = &m.field {
            push_bytes(state, field);
            if ffi::lua_type(state, -2) != ffi::LUA_TTABLE {
                ffi::lua_settop(state, top);
                return Err(format!("module '{}' is not a table", m.module));
            }
            ffi::lua_rawget(state, -2);
            if ffi::lua_type(state, -1) == ffi::LUA_TNIL {
                ffi::lua_settop(state, top);
                return Err(format!(
                    "module '{}' has no field '{}' in the receiving thread",
                    m.module,
                    String::from_utf8_lossy(field)
                ));
            }
        }
        // Leave only the resolved value: drop _LOADED (and the module table for a field).
        let value = ffi::lua_gettop(state);
        ffi::lua_replace(state, top + 1);
        ffi::lua_settop(state, top + 1);
        let _ = value;
        Ok(())
    }
}
