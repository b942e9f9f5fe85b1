//! Hot paths as raw C functions: `channel:push` and `channel:pop`.
//!
//! An mlua callback costs several hundred nanoseconds (argument conversion through
//! `MultiValue`, a registry reference per userdata argument, error wrapping); a channel
//! operation should cost less than that in total. These functions take the channel as a
//! light userdata pointer (obtained once per handle by `lua/weft.lua`, which keeps the
//! handle alive while calling), encode and decode straight from the Lua stack, and follow
//! the same failure convention as every binding: they never raise, they return
//! `FAIL, value, level`.

use crate::codec::decode::push_all;
use crate::codec::{Encoder, Label};
use crate::runtime::{fail_mark, state_data};
use mlua::ffi;
use std::ffi::c_int;
use std::mem::ManuallyDrop;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use weft_core::channel::{PopError, PushError};
use weft_core::{cancel, Channel, Deadline};

unsafe fn fail(state: *mut ffi::lua_State, msg: &str, level: ffi::lua_Integer) -> c_int {
    // SAFETY: pushes three values on a valid state.
    unsafe {
        ffi::lua_pushlightuserdata(state, fail_mark().0);
        // Inside catch_unwind: an allocation must not raise.
        crate::rawud::push_str_or_memory_error(state, msg.as_bytes());
        ffi::lua_pushinteger(state, level);
    }
    3
}

unsafe fn push_status(state: *mut ffi::lua_State, first_nil: bool, word: &str) -> c_int {
    // SAFETY: pushes two values on a valid state.
    unsafe {
        let check = crate::stack::StackCheck::new(state);
        if first_nil {
            ffi::lua_pushnil(state);
        } else {
            ffi::lua_pushboolean(state, 0);
        }
        crate::rawud::push_str_or_memory_error(state, word.as_bytes());
        check.expect(2);
    }
    2
}

/// The channel behind argument 1 without touching its reference count.
unsafe fn channel_arg(state: *mut ffi::lua_State) -> Option<ManuallyDrop<Arc<Channel>>> {
    // SAFETY: argument 1 is a pointer produced by `channel_ptr` from a live handle that the
    // caller keeps referenced during the call; ManuallyDrop keeps the count unchanged.
    unsafe {
        if ffi::lua_type(state, 1) != ffi::LUA_TLIGHTUSERDATA {
            return None;
        }
        let p = ffi::lua_touserdata(state, 1) as *const Channel;
        Some(ManuallyDrop::new(Arc::from_raw(p)))
    }
}

unsafe fn deadline_arg(state: *mut ffi::lua_State, idx: c_int) -> Result<Deadline, ()> {
    // SAFETY: type checks and a number read on a valid index.
    unsafe {
        match ffi::lua_type(state, idx) {
            ffi::LUA_TNONE | ffi::LUA_TNIL => Ok(Deadline::Never),
            ffi::LUA_TNUMBER => Ok(Deadline::after_secs(Some(ffi::lua_tonumber(state, idx)))),
            _ => Err(()),
        }
    }
}

fn guarded(state: *mut ffi::lua_State, what: &str, body: impl FnOnce() -> c_int) -> c_int {
    match std::panic::catch_unwind(AssertUnwindSafe(body)) {
        // Through a byte, to clear the upper half of `rax` (see `rawud::guard`); these
        // functions return at most 3 values.
        Ok(n) => c_int::from(u8::try_from(n).unwrap_or(u8::MAX)),
        // SAFETY: the state is valid; nothing else is pending in this frame.
        Err(_) => unsafe {
            fail(
                state,
                &format!("weft: internal error (a Rust panic) in {what}"),
                2,
            )
        },
    }
}

/// `raw_channel_push(ptr, value [, timeout])`.
pub(crate) unsafe extern "C-unwind" fn channel_push(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua as a lua_CFunction with the documented arguments.
    guarded(state, "channel:push", || unsafe {
        let Some(ch) = channel_arg(state) else {
            return fail(state, "weft: channel:push: not a channel", 2);
        };
        if ffi::lua_type(state, 2) <= ffi::LUA_TNIL {
            return fail(
                state,
                "weft: channel:push: cannot push nil (pop returns nil only for timeout or closed)",
                2,
            );
        }
        let Ok(deadline) = deadline_arg(state, 3) else {
            return fail(
                state,
                "weft: channel:push: timeout must be a number of seconds",
                2,
            );
        };
        // SAFETY (for_held_values): one push, of argument 2, which stays on the stack
        // until `enc` is finished below or dropped on an error return.
        let mut enc = Encoder::for_held_values(&state_data(state).codec);
        // Under protection: a memory error while encoding must not reach catch_unwind.
        if let Err(e) = crate::rawud::encode(state, &mut enc, 2, Label::Value) {
            return fail(state, &e, 2);
        }
        let me = cancel::current();
        match cancellation_point(
            ch.push(enc.finish(), deadline, me.as_deref()),
            me.as_deref(),
        ) {
            Ok(()) => {
                ffi::lua_pushboolean(state, 1);
                1
            }
            Err(PushError::Timeout) => push_status(state, false, "timeout"),
            Err(PushError::Closed) => push_status(state, false, "closed"),
            Err(PushError::Cancelled) => fail(state, "cancelled", 0),
        }
    })
}

/// Errors that can stand for "the waiting task was cancelled".
pub(crate) trait TimedOut: Sized {
    /// Is this the timeout error?
    fn is_timeout(&self) -> bool;
    /// The cancellation error of the same operation.
    fn cancelled() -> Self;
}

impl TimedOut for PushError {
    fn is_timeout(&self) -> bool {
        *self == PushError::Timeout
    }
    fn cancelled() -> Self {
        PushError::Cancelled
    }
}

impl TimedOut for PopError {
    fn is_timeout(&self) -> bool {
        *self == PopError::Timeout
    }
    fn cancelled() -> Self {
        PopError::Cancelled
    }
}

/// A push or pop that timed out in a cancelled task reports cancellation instead. A
/// zero, negative or tiny timeout never sleeps, so the channel never looks at the token;
/// without this a polling loop of `ch:pop(0)` could not be cancelled where no hook runs
/// (LuaJIT's compiled traces, `weft.interruptible(false)`). An operation that succeeds
/// still succeeds, exactly as a blocking one that finds an item or room at once.
pub(crate) fn cancellation_point<T, E: TimedOut>(
    r: Result<T, E>,
    me: Option<&weft_core::cancel::CancelToken>,
) -> Result<T, E> {
    match r {
        Err(e) if e.is_timeout() && me.is_some_and(|c| c.is_cancelled()) => Err(E::cancelled()),
        other => other,
    }
}

thread_local! {
    /// An item the FFI number path popped but could not return (not a number), handed
    /// to the general pop that `lua/weft.lua` calls next on this thread for this channel.
    static HELD: std::cell::RefCell<Option<(usize, weft_core::Message)>> = const { std::cell::RefCell::new(None) };
}

#[cfg(feature = "luajit")]
fn hold(ch: &Channel, m: weft_core::Message) {
    HELD.with(|h| *h.borrow_mut() = Some((ch as *const Channel as usize, m)));
}

fn take_held(ch: &Channel) -> Option<weft_core::Message> {
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        match &*h {
            Some((p, _)) if *p == ch as *const Channel as usize => h.take().map(|(_, m)| m),
            _ => None,
        }
    })
}

/// `raw_channel_pop(ptr [, timeout])`.
pub(crate) unsafe extern "C-unwind" fn channel_pop(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua as a lua_CFunction with the documented arguments.
    guarded(state, "channel:pop", || unsafe {
        let Some(ch) = channel_arg(state) else {
            return fail(state, "weft: channel:pop: not a channel", 2);
        };
        let Ok(deadline) = deadline_arg(state, 2) else {
            return fail(
                state,
                "weft: channel:pop: timeout must be a number of seconds",
                2,
            );
        };
        let me = cancel::current();
        let popped = match take_held(&ch) {
            Some(m) => Ok(m),
            None => cancellation_point(ch.pop(deadline, me.as_deref()), me.as_deref()),
        };
        match popped {
            Ok(msg) => {
                ffi::lua_settop(state, 0);
                // Decoded under protection: a memory error becomes a failure return.
                let codec = &state_data(state).codec;
                let mut pushed = Ok(0);
                let done = crate::rawud::protect(state, 0, ffi::LUA_MULTRET, &mut |state| {
                    pushed = push_all(state, codec, &msg);
                });
                match done.and(pushed) {
                    Ok(n) => n,
                    Err(e) => {
                        ffi::lua_settop(state, 0);
                        fail(state, &e, 2)
                    }
                }
            }
            Err(PopError::Timeout) => push_status(state, true, "timeout"),
            Err(PopError::Closed) => push_status(state, true, "closed"),
            Err(PopError::Cancelled) => fail(state, "cancelled", 0),
        }
    })
}

/// LuaJIT FFI entry points: numbers and small flat tables through a channel without the
/// Lua C API (see `fast/ffi_items.rs`).
#[cfg(feature = "luajit")]
pub(crate) mod ffi_items;
