//! Per-state data and the conventions every binding function follows.
//!
//! Errors: an error raised from an mlua callback reaches Lua as a userdata, which breaks
//! the ordinary `local ok, err = pcall(...); err:match(...)`. So binding functions never
//! raise: they return `FAIL, value, level`, and the thin wrappers in `lua/weft.lua` call
//! `error(value, level)`. Users see plain string errors (or the original error value of a
//! failed task), positioned at their own call for usage errors.

use crate::codec::{decode, CodecState, Encoder, Label};
use mlua::{
    ffi, FromLuaMulti, Function, IntoLuaMulti, LightUserData, Lua, MultiValue, Value as LuaValue,
};
use std::ffi::c_void;
use weft_core::message::{Message, Value};

/// Everything weft keeps per Lua state.
#[derive(Default)]
pub(crate) struct StateData {
    pub codec: CodecState,
    /// Whether Lua code in this state asked for weft's module (`require`, or a received
    /// handle, which needs its methods): what a spawn thread reads to build its next
    /// state with weft ready (`spawner`).
    pub used_weft: std::cell::Cell<bool>,
}

/// Registry key of the light userdata pointing at this state's [`StateData`].
pub(crate) const STATE_KEY: &std::ffi::CStr = c"weft.state";

/// This state's [`StateData`], from raw code (mlua code uses [`data_of`]).
///
/// # Safety
/// A valid state that `setup` prepared; the reference must not outlive it.
pub(crate) unsafe fn state_data<'a>(state: *mut ffi::lua_State) -> &'a StateData {
    // SAFETY: setup stored a pointer to a StateData that lives, at a fixed address, as
    // long as the state (boxed in mlua's app data or in the WorkerState).
    unsafe {
        ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, STATE_KEY.as_ptr());
        let p = ffi::lua_touserdata(state, -1) as *const StateData;
        ffi::lua_pop(state, 1);
        &*p
    }
}

/// This state's [`StateData`], from mlua code.
pub(crate) fn data_of(lua: &Lua) -> &StateData {
    let at = lua
        .app_data_ref::<crate::setup::StateRef>()
        .expect("weft state data")
        .data;
    // SAFETY: the StateData a StateRef points at lives as long as the state (see setup).
    unsafe { &*at }
}

static FAIL_MARK: u8 = 0;

/// The sentinel that starts a failure return.
pub(crate) fn fail_mark() -> LightUserData {
    LightUserData(&FAIL_MARK as *const u8 as *mut c_void)
}

/// A failure to report to Lua.
pub(crate) enum Raise {
    /// A usage error, raised as a string at the caller's position.
    Usage(String),
    /// A value re-raised as it is (a task's error, already carrying its traceback).
    Value(LuaValue),
}

impl Raise {
    /// The failure as text (for Rust callers).
    pub(crate) fn into_text(self) -> String {
        match self {
            Raise::Usage(s) => s,
            Raise::Value(LuaValue::String(s)) => s.to_string_lossy(),
            Raise::Value(v) => format!("{v:?}"),
        }
    }
}

impl From<mlua::Error> for Raise {
    fn from(e: mlua::Error) -> Raise {
        Raise::Usage(format!("weft: {}", one_line(&e)))
    }
}

/// An mlua error as the one line a user needs: a Lua error raised inside a call (a
/// metamethod of the user's table) without mlua's "runtime error:" prefix and traceback.
fn one_line(e: &mlua::Error) -> String {
    let text = match e {
        mlua::Error::RuntimeError(m) | mlua::Error::MemoryError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => return one_line(cause),
        other => other.to_string(),
    };
    match text.find("\nstack traceback:") {
        Some(end) => text[..end].to_string(),
        None => text,
    }
}

/// A binding function's result.
pub(crate) type Ret<T> = Result<T, Raise>;

/// Make a binding function named `name` (used in argument-conversion errors).
pub(crate) fn export<A, R, F>(lua: &Lua, name: &'static str, f: F) -> mlua::Result<Function>
where
    A: FromLuaMulti,
    R: IntoLuaMulti,
    F: Fn(&Lua, A) -> Ret<R> + 'static,
{
    lua.create_function(move |lua, args: MultiValue| {
        let result = A::from_lua_multi(args, lua)
            .map_err(|e| Raise::Usage(format!("weft: bad arguments to {name}: {e}")))
            .and_then(|a| f(lua, a));
        match result {
            Ok(r) => r.into_lua_multi(lua),
            Err(Raise::Usage(msg)) => (fail_mark(), msg, 2).into_lua_multi(lua),
            Err(Raise::Value(v)) => (fail_mark(), v, 0).into_lua_multi(lua),
        }
    })
}

fn scalar(v: &LuaValue) -> Option<Value> {
    Some(match v {
        LuaValue::Nil => Value::Nil,
        LuaValue::Boolean(b) => Value::Bool(*b),
        #[cfg(feature = "lua54")]
        LuaValue::Integer(i) => Value::Int(*i),
        #[cfg(not(feature = "lua54"))]
        LuaValue::Integer(i) => Value::Num(*i as f64),
        LuaValue::Number(n) => Value::Num(*n),
        LuaValue::String(s) => Value::string(&s.as_bytes()),
        _ => return None,
    })
}

/// Encode `values` as one message; numbering for errors starts at `first_number`.
pub(crate) fn encode(
    lua: &Lua,
    values: MultiValue,
    label: Label,
    first_number: usize,
) -> Ret<Message> {
    if values.len() == 1 {
        if let Some(v) = scalar(&values[0]) {
            return Ok(Message::single(v));
        }
    }
    let data = data_of(lua);
    let mut out: Option<Result<Message, String>> = None;
    // SAFETY: runs on this state's thread inside mlua's protected call; the encoder only
    // reads the stack slots 1..=n that exec_raw pushed.
    unsafe {
        lua.exec_raw::<()>(values, |state| {
            let n = ffi::lua_gettop(state);
            // SAFETY (for_held_values): slots 1..=n stay until the settop after the loop.
            let mut enc = Encoder::for_held_values(&data.codec);
            for i in 1..=n {
                if let Err(e) = enc.push(state, i, label, first_number + i as usize - 1) {
                    out = Some(Err(e));
                    ffi::lua_settop(state, 0);
                    return;
                }
            }
            ffi::lua_settop(state, 0);
            out = Some(Ok(enc.finish()));
        })?;
    }
    match out {
        Some(Ok(m)) => Ok(m),
        Some(Err(e)) => Err(Raise::Usage(e)),
        None => Err(Raise::Usage("weft: encoding was interrupted".into())),
    }
}

/// Decode a message into Lua values in this state.
pub(crate) fn decode(lua: &Lua, msg: &Message) -> Ret<MultiValue> {
    if msg.nodes.is_empty()
        && msg
            .values
            .iter()
            .all(|v| !matches!(v, Value::Module(_) | Value::Handle(_)))
    {
        let mut out = MultiValue::with_capacity(msg.values.len());
        for v in &msg.values {
            out.push_back(match v {
                Value::Nil => LuaValue::Nil,
                Value::Bool(b) => LuaValue::Boolean(*b),
                Value::Int(i) => LuaValue::Integer(*i as _),
                Value::Num(n) => LuaValue::Number(*n),
                Value::Str(_) | Value::ShortStr { .. } => {
                    LuaValue::String(lua.create_string(v.as_bytes().unwrap_or_default())?)
                }
                _ => unreachable!("filtered above"),
            });
        }
        return Ok(out);
    }
    let data = data_of(lua);
    let mut err = None;
    // SAFETY: runs on this state's thread inside a protected call; push_all leaves exactly
    // the decoded values on the stack, which exec_raw returns.
    let values = unsafe {
        lua.exec_raw::<MultiValue>((), |state| {
            if let Err(e) = decode::push_all(state, &data.codec, msg) {
                err = Some(e);
                ffi::lua_settop(state, 0);
            }
        })?
    };
    match err {
        Some(e) => Err(Raise::Usage(e)),
        None => Ok(values),
    }
}
