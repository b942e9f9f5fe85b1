//! `weft.channel` and its methods.

use crate::codec::Label;
use crate::handles::LuaChannel;
use crate::runtime::{decode, encode, Raise, Ret};
use mlua::{AnyUserData, Lua, MultiValue, Value as LuaValue};
use std::sync::Arc;
use weft_core::channel::{PopError, PushError};
use weft_core::{cancel, Channel, Deadline};

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
        .map_err(|_| Raise::Usage("weft: expected a channel".into()))
}

fn cancelled(lua: &Lua) -> Raise {
    match lua.create_string("cancelled") {
        Ok(s) => Raise::Value(LuaValue::String(s)),
        Err(e) => e.into(),
    }
}

/// `ch:push(v [, timeout])` → true, or false and "timeout" | "closed".
pub(crate) fn push(
    lua: &Lua,
    (ud, value, timeout): (AnyUserData, LuaValue, Option<f64>),
) -> Ret<(bool, Option<&'static str>)> {
    let ch = channel_of(&ud)?;
    if value.is_nil() {
        return Err(Raise::Usage(
            "weft: channel:push: cannot push nil (pop returns nil only for timeout or closed)"
                .into(),
        ));
    }
    let msg = encode(lua, MultiValue::from_iter([value]), Label::Value, 1)?;
    let me = cancel::current();
    match ch.push(msg, Deadline::after_secs(timeout), me.as_deref()) {
        Ok(()) => Ok((true, None)),
        Err(PushError::Timeout) => Ok((false, Some("timeout"))),
        Err(PushError::Closed) => Ok((false, Some("closed"))),
        Err(PushError::Cancelled) => Err(cancelled(lua)),
    }
}

/// `ch:pop([timeout])` → v, or nil and "timeout" | "closed".
pub(crate) fn pop(lua: &Lua, (ud, timeout): (AnyUserData, Option<f64>)) -> Ret<MultiValue> {
    let ch = channel_of(&ud)?;
    let me = cancel::current();
    match ch.pop(Deadline::after_secs(timeout), me.as_deref()) {
        Ok(msg) => decode(lua, &msg),
        Err(PopError::Timeout) => Ok(MultiValue::from_iter([
            LuaValue::Nil,
            LuaValue::String(lua.create_string("timeout")?),
        ])),
        Err(PopError::Closed) => Ok(MultiValue::from_iter([
            LuaValue::Nil,
            LuaValue::String(lua.create_string("closed")?),
        ])),
        Err(PopError::Cancelled) => Err(cancelled(lua)),
    }
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
