//! `weft.channel` and its methods.

use crate::handles::LuaChannel;
use crate::runtime::{Raise, Ret};
use mlua::{AnyUserData, LightUserData, Lua, Value as LuaValue};
use std::ffi::c_void;
use std::sync::Arc;
use weft_core::Channel;

/// `weft.channel([capacity])`: unbounded without a capacity.
pub(crate) fn new_channel(_: &Lua, capacity: LuaValue) -> Ret<LuaChannel> {
    let capacity = match capacity {
        LuaValue::Nil => None,
        LuaValue::Integer(i) if i >= 1 => Some(i as usize),
        LuaValue::Number(n) if n >= 1.0 && n.fract() == 0.0 && n < 9.0e15 => Some(n as usize),
        other => {
            let shown = match &other {
                LuaValue::Integer(i) => i.to_string(),
                LuaValue::Number(n) => n.to_string(),
                v => v.type_name().to_string(),
            };
            return Err(Raise::Usage(format!(
                "weft.channel: capacity must be a positive integer or nil, got {shown}"
            )));
        }
    };
    Ok(LuaChannel(Channel::new(capacity)))
}

fn channel_of(ud: &AnyUserData) -> Ret<Arc<Channel>> {
    ud.borrow::<LuaChannel>()
        .map(|c| c.0.clone())
        .map_err(|_| Raise::Usage("expected a channel (got a userdata of another kind)".into()))
}

/// The channel's address, for the raw push/pop functions in `fast` (the handle stays
/// referenced by the caller while they run).
pub(crate) fn pointer(_: &Lua, ud: AnyUserData) -> Ret<LightUserData> {
    Ok(LightUserData(Arc::as_ptr(&channel_of(&ud)?) as *mut c_void))
}

/// `ch:close()`.
pub(crate) fn close(_: &Lua, ud: AnyUserData) -> Ret<()> {
    channel_of(&ud)?.close();
    Ok(())
}

/// `ch:len()` (same as `#ch`).
pub(crate) fn len(_: &Lua, ud: AnyUserData) -> Ret<usize> {
    Ok(channel_of(&ud)?.len())
}
