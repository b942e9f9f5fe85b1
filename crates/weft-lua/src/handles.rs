//! The userdata types Lua sees for weft objects, and their crossing by reference: every
//! `Handle` ⇄ userdata mapping is here, for the mlua kinds (tasks, channels, pools:
//! [`import`], [`export`]) and the raw-userdata kinds built on `rawud` ([`push_handle`]).
//!
//! Each type's metatable takes its `__index` from a methods table built by `lua/weft.lua`
//! (so methods raise plain string errors), and carries `__weft_export`, which the codec
//! calls to learn which shared object a userdata stands for.

use crate::rawud;
use mlua::{ffi, AnyUserData, Lua, MetaMethod, Table, UserData, UserDataFields, UserDataMethods};
use std::sync::Arc;
use weft_core::{Channel, Handle, Pool, Task};

/// A spawned thread or a pool future.
pub struct LuaTask(pub Arc<Task>);
/// A channel.
pub struct LuaChannel(pub Arc<Channel>);
/// A pool of workers.
pub struct LuaPool(pub Arc<Pool>);

fn common_fields<T>(fields: &mut impl UserDataFields<T>, methods_key: &'static str) {
    fields.add_meta_field_with("__index", move |lua| {
        lua.named_registry_value::<Table>(methods_key)
    });
    fields.add_meta_field_with("__weft_export", |lua| {
        lua.named_registry_value::<mlua::Function>("weft.export")
    });
}

impl UserData for LuaTask {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        common_fields(fields, "weft.methods.task");
    }
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            Ok(format!(
                "weft.task ({}): {:p}",
                this.0.status().name(),
                Arc::as_ptr(&this.0)
            ))
        });
        methods.add_meta_function(MetaMethod::Eq, |_, (a, b): (AnyUserData, AnyUserData)| {
            Ok(match (a.borrow::<LuaTask>(), b.borrow::<LuaTask>()) {
                (Ok(a), Ok(b)) => Arc::ptr_eq(&a.0, &b.0),
                _ => false,
            })
        });
    }
}

impl UserData for LuaChannel {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        common_fields(fields, "weft.methods.channel");
    }
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::Len, |_, this, ()| Ok(this.0.len()));
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            Ok(format!(
                "weft.channel ({} queued): {:p}",
                this.0.len(),
                Arc::as_ptr(&this.0)
            ))
        });
        methods.add_meta_function(MetaMethod::Eq, |_, (a, b): (AnyUserData, AnyUserData)| {
            Ok(match (a.borrow::<LuaChannel>(), b.borrow::<LuaChannel>()) {
                (Ok(a), Ok(b)) => Arc::ptr_eq(&a.0, &b.0),
                _ => false,
            })
        });
    }
}

impl UserData for LuaPool {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        common_fields(fields, "weft.methods.pool");
    }
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            Ok(format!(
                "weft.pool ({} workers): {:p}",
                this.0.size(),
                Arc::as_ptr(&this.0)
            ))
        });
        methods.add_meta_function(MetaMethod::Eq, |_, (a, b): (AnyUserData, AnyUserData)| {
            Ok(match (a.borrow::<LuaPool>(), b.borrow::<LuaPool>()) {
                (Ok(a), Ok(b)) => Arc::ptr_eq(&a.0, &b.0),
                _ => false,
            })
        });
    }
}

/// The shared object behind a weft userdata.
pub(crate) fn export(ud: &AnyUserData) -> mlua::Result<Handle> {
    if let Ok(t) = ud.borrow::<LuaTask>() {
        return Ok(Handle::Task(t.0.clone()));
    }
    if let Ok(c) = ud.borrow::<LuaChannel>() {
        return Ok(Handle::Channel(c.0.clone()));
    }
    if let Ok(p) = ud.borrow::<LuaPool>() {
        return Ok(Handle::Pool(p.0.clone()));
    }
    Err(mlua::Error::runtime("not a live weft handle"))
}

/// A new userdata in `lua` for a shared object received from another state.
pub(crate) fn import(lua: &Lua, h: Handle) -> mlua::Result<AnyUserData> {
    match h {
        Handle::Task(t) => lua.create_userdata(LuaTask(t)),
        Handle::Channel(c) => lua.create_userdata(LuaChannel(c)),
        Handle::Pool(p) => lua.create_userdata(LuaPool(p)),
        // The codec pushes the shared-data handles itself (see [`push_handle`]).
        _ => Err(mlua::Error::runtime(
            "a shared-data handle reached the mlua import path",
        )),
    }
}

/// Push a handle of one of the raw-userdata kinds (frozen table, array, counter, shared
/// table) as its userdata, the way the codec receives one; false for the other handle
/// kinds, which [`import`] makes through mlua. A memory
/// error comes back as `Err`, with nothing pushed.
///
/// # Safety
/// A valid state with 4 free slots.
pub(crate) unsafe fn push_handle(state: *mut ffi::lua_State, h: &Handle) -> Result<bool, String> {
    // SAFETY: forwarded contract.
    unsafe {
        match h {
            Handle::Frozen(f) => crate::frozen::push_view(state, (**f).clone())?,
            Handle::Array(a) => rawud::push(state, crate::arrays::LuaArray((**a).clone()))?,
            Handle::Counter(c) => rawud::push(state, crate::counters::LuaCounter(c.clone()))?,
            Handle::Table(t) => {
                rawud::push(state, crate::shared_tables::LuaSharedTable(t.clone()))?
            }
            _ => return Ok(false),
        }
    }
    Ok(true)
}
