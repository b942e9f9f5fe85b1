//! Setting a Lua state up for weft: its [`StateData`] and the registry entries the codec
//! and the task runner use (`weft.state`, `weft.handler`, `weft.fresh_cell`, `weft.next`,
//! `weft.export`, `weft.import`, and on LuaJIT `weft.load_packing`).
//!
//! One raw routine, [`prepare_raw`], writes them all with the C API. A worker's state
//! (`worker_state`) is prepared with it directly, without mlua; a state mlua already
//! wraps (the host's, on `require "weft"`) through [`prepare_state`], which also records
//! where the StateData is in mlua's app data ([`StateRef`], read by
//! [`crate::runtime::data_of`]). When mlua is attached to a worker's state later,
//! `prepare_state` finds the registry entry and points the app data at the same
//! StateData. The registry functions that need mlua ([`open_weft`], `weft.import`,
//! `weft.export`) are plain C functions that attach it on first use.

use crate::codec::raw::pcall;
use crate::runtime::{StateData, STATE_KEY};
use mlua::{ffi, Function, LightUserData, Lua};
use std::ffi::{c_int, c_void, CStr};
use std::sync::OnceLock;

/// Where a prepared state's [`StateData`] is, in mlua's app data: boxed here for a state
/// prepared through mlua, in its `WorkerState` for a worker's.
pub(crate) struct StateRef {
    pub(crate) data: *const StateData,
    _owned: Option<Box<StateData>>,
}

/// Make a state mlua wraps ready for the codec and for running tasks. Idempotent.
pub(crate) fn prepare_state(lua: &Lua) -> mlua::Result<()> {
    if lua.app_data_ref::<StateRef>().is_some() {
        return Ok(());
    }
    let prepared: Option<LightUserData> =
        lua.named_registry_value(STATE_KEY.to_str().expect("ascii"))?;
    let state_ref = match prepared {
        // A worker's state, prepared with the C API before mlua was attached.
        Some(LightUserData(at)) => StateRef {
            data: at as *const StateData,
            _owned: None,
        },
        None => {
            let owned = Box::new(StateData::default());
            let data: *const StateData = &*owned;
            let mut failure = None;
            // SAFETY: registry writes on this state's thread inside mlua's protected call;
            // `data` is boxed in the app data below, which lives as long as the state.
            unsafe {
                lua.exec_raw::<()>((), |state| {
                    failure = prepare_raw(state, data).err();
                })?;
            }
            if let Some(e) = failure {
                return Err(mlua::Error::runtime(e));
            }
            StateRef {
                data,
                _owned: Some(owned),
            }
        }
    };
    lua.set_app_data(state_ref);
    Ok(())
}

static HANDLER: OnceLock<Vec<u8>> = OnceLock::new();

/// Write weft's registry entries into `state`, `weft.state` (pointing at `data`) last, so
/// that a state whose setup failed is not taken for a prepared one.
///
/// # Safety
/// A valid state on this thread, inside a protected call, with 4 free stack slots; `data`
/// must outlive the state.
pub(crate) unsafe fn prepare_raw(
    state: *mut ffi::lua_State,
    data: *const StateData,
) -> Result<(), String> {
    // SAFETY: the caller's contract; every push below is popped by a setfield.
    unsafe {
        set_named_function(state, c"weft.export", export_handle);
        set_named_function(state, c"weft.import", import_handle);
        #[cfg(feature = "luajit")]
        set_named_function(state, c"weft.load_packing", load_packing);
        push_chunk(
            state,
            &HANDLER,
            c"=weft.handler",
            r#"local traceback, tostring, type = debug.traceback, tostring, type
            local function handler(e)
              local text = type(e) == "string" and e or tostring(e)
              return { e, traceback(text, 2), text }
            end
            local function fresh_cell()
              local v
              return function() return v end
            end
            return handler, fresh_cell"#,
        )?;
        pcall(state, 0, 2)?;
        ffi::lua_setfield(state, ffi::LUA_REGISTRYINDEX, c"weft.fresh_cell".as_ptr());
        ffi::lua_setfield(state, ffi::LUA_REGISTRYINDEX, c"weft.handler".as_ptr());
        // Shared tables iterate a copy with the base library's `next`.
        ffi::lua_getglobal(state, c"next".as_ptr());
        ffi::lua_setfield(state, ffi::LUA_REGISTRYINDEX, c"weft.next".as_ptr());
        ffi::lua_pushlightuserdata(state, data as *mut c_void);
        ffi::lua_setfield(state, ffi::LUA_REGISTRYINDEX, STATE_KEY.as_ptr());
    }
    Ok(())
}

/// `registry[name] = f`.
///
/// # Safety
/// A valid state with a free stack slot, inside a protected call.
unsafe fn set_named_function(state: *mut ffi::lua_State, name: &CStr, f: ffi::lua_CFunction) {
    // SAFETY: the caller's contract.
    unsafe {
        ffi::lua_pushcfunction(state, f);
        ffi::lua_setfield(state, ffi::LUA_REGISTRYINDEX, name.as_ptr());
    }
}

/// Push `source` compiled as a function named `name`, parsed once per process and loaded
/// from its bytecode afterwards: parsing weft's Lua parts dominated the cost of a new
/// worker state. On failure nothing is pushed.
///
/// # Safety
/// A valid state on this thread with a free stack slot.
pub(crate) unsafe fn push_chunk(
    state: *mut ffi::lua_State,
    cache: &'static OnceLock<Vec<u8>>,
    name: &CStr,
    source: &str,
) -> Result<(), String> {
    // SAFETY: the caller's contract; the chunk or the error message is pushed, and the
    // error popped.
    unsafe {
        let status = match cache.get() {
            Some(bytes) => ffi::luaL_loadbuffer(
                state,
                bytes.as_ptr() as *const _,
                bytes.len(),
                name.as_ptr(),
            ),
            None => {
                let status = ffi::luaL_loadbuffer(
                    state,
                    source.as_ptr() as *const _,
                    source.len(),
                    name.as_ptr(),
                );
                if status == ffi::LUA_OK {
                    let mut bytes = Vec::new();
                    // Not stripped: tracebacks keep weft's line numbers.
                    ffi::lua_dump(
                        state,
                        crate::codec::encode::write_chunk,
                        &mut bytes as *mut Vec<u8> as *mut c_void,
                        0,
                    );
                    let _ = cache.set(bytes);
                }
                status
            }
        };
        if status == ffi::LUA_OK {
            return Ok(());
        }
        let message = crate::codec::raw::pop_error_text(state);
        Err(format!("cannot load {}: {message}", name.to_string_lossy()))
    }
}

/// [`push_chunk`] for mlua code: the compiled function.
pub(crate) fn load_cached(
    lua: &Lua,
    cache: &'static OnceLock<Vec<u8>>,
    name: &CStr,
    source: &str,
) -> mlua::Result<Function> {
    let mut failure = None;
    // SAFETY: on this state's thread inside mlua's protected call; leaves the function (or
    // nothing) on the stack, which exec_raw returns.
    let f: Option<Function> = unsafe {
        lua.exec_raw((), |state| {
            failure = push_chunk(state, cache, name, source).err();
        })?
    };
    match (f, failure) {
        (Some(f), None) => Ok(f),
        (_, e) => Err(mlua::Error::runtime(e.unwrap_or_default())),
    }
}

/// `package.preload.weft` in a worker's state: attaches mlua and builds the module.
pub(crate) unsafe extern "C-unwind" fn open_weft(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua as a C function; mlua's entry point catches errors and panics
    // and raises them as Lua errors after its own frames are done.
    unsafe { Lua::entrypoint(state, |lua, ()| crate::open(lua)) }
}

/// `weft.import`: the handle the codec stashed, as a Lua value with weft's methods (which
/// loads the weft module in a worker state that has not required it).
unsafe extern "C-unwind" fn import_handle(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: as in open_weft.
    unsafe {
        Lua::entrypoint(state, |lua, ()| {
            crate::open(lua)?;
            match crate::codec::take_handle() {
                Some(h) => crate::handles::import(lua, h),
                None => Err(mlua::Error::runtime("no handle to import")),
            }
        })
    }
}

/// `weft.export`: stash the handle inside a weft userdata for the codec to send.
unsafe extern "C-unwind" fn export_handle(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: as in open_weft.
    unsafe {
        Lua::entrypoint(state, |_, ud: mlua::AnyUserData| {
            crate::handles::export(&ud).map(|h| {
                crate::codec::stash_handle(h);
                mlua::Value::Nil
            })
        })
    }
}

/// LuaJIT: `weft.load_packing` registers the helpers the codec calls to move long runs of
/// numbers between a table and a Rust buffer at JIT speed (see
/// `codec::encode::bulk_numbers`). They load the FFI library, which most states never
/// need, so the codec loads them on first use (see `codec::raw::push_helper`, which falls
/// back to element-by-element copies when they cannot be had).
#[cfg(feature = "luajit")]
unsafe extern "C-unwind" fn load_packing(state: *mut ffi::lua_State) -> c_int {
    static PACKING: OnceLock<Vec<u8>> = OnceLock::new();
    const SOURCE: &str = r#"local cast, type = require("ffi").cast, type
        local function pack(t, n, p)
          local buf = cast("double *", p)
          for i = 1, n do
            local v = t[i]
            if type(v) ~= "number" then return i - 1 end
            buf[i - 1] = v
          end
          return n
        end
        local function unpack(t, n, p)
          local buf = cast("double *", p)
          for i = 1, n do t[i] = buf[i - 1] end
        end
        local function other_keys(t, len)
          local extra, n = nil, 0
          for k in pairs(t) do
            if type(k) ~= "number" or k < 1 or k > len or k % 1 ~= 0 then
              n = n + 1
              extra = extra or {}
              extra[n] = k
            end
          end
          return extra
        end
        return pack, unpack, other_keys"#;
    // SAFETY: called by Lua (under the codec's lua_pcall) with room for the three
    // results; nothing on this frame needs dropping when a call below raises.
    unsafe {
        if push_chunk(state, &PACKING, c"=weft.packing", SOURCE).is_err()
            || pcall(state, 0, 3).is_err()
        {
            return 0;
        }
        ffi::lua_setfield(state, ffi::LUA_REGISTRYINDEX, c"weft.other_keys".as_ptr());
        ffi::lua_setfield(
            state,
            ffi::LUA_REGISTRYINDEX,
            c"weft.unpack_numbers".as_ptr(),
        );
        ffi::lua_setfield(state, ffi::LUA_REGISTRYINDEX, c"weft.pack_numbers".as_ptr());
    }
    0
}
