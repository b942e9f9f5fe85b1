//! `weft.spawn` and the methods shared by thread handles and pool futures.

use crate::codec::Label;
use crate::handles::LuaTask;
use crate::runtime::{decode, encode, Raise, Ret};
use crate::worker::{run_as_task, run_call};
use crate::worker_state::inherit;
use mlua::{AnyUserData, Lua, MultiValue, Value as LuaValue};
use std::sync::Arc;
use weft_core::pool::wait_task;
use weft_core::task::{Outcome, WaitEnd};
use weft_core::{cancel, Deadline, Message, Task};

/// `weft.spawn(fn, ...)`: a new OS thread with its own state runs `fn(...)`.
pub(crate) fn spawn(lua: &Lua, args: MultiValue) -> Ret<LuaTask> {
    match args.front() {
        Some(LuaValue::Function(_)) => {}
        other => {
            return Err(Raise::Usage(format!(
                "weft.spawn: argument 1 must be a function, got {}",
                other.map_or("no value", crate::pools::lua_type)
            )))
        }
    }
    let call = encode(lua, args, Label::Argument, 1)?;
    let inherit = inherit(lua);
    // Queued until its thread claims it, as a pool job is: a joiner then knows whether
    // the thread has started and on which CPU, and spins only while that helps
    // (weft-core's `backoff.rs`). A thread cancelled before it starts never runs.
    let task = Task::new(false);
    let job_task = task.clone();
    crate::spawner::spawn(Box::new(move |state| {
        if !job_task.start() {
            return false;
        }
        // The state is closed only after the outcome is published: closing costs tens of
        // microseconds that a joiner should not wait for.
        let mut used = None;
        run_as_task(&job_task, || match state {
            Ok(lua) => {
                let outcome = match inherit.apply(&lua) {
                    Ok(()) => run_call(&lua, &call, &Message::default()),
                    Err(e) => crate::worker::failed(format!(
                        "weft.spawn: cannot set up the thread's Lua state: {e}"
                    )),
                };
                used = Some(lua);
                outcome
            }
            Err(e) => crate::worker::failed(format!(
                "weft.spawn: cannot create the thread's Lua state: {e}"
            )),
        });
        used.is_some_and(|state| state.used_weft())
    }))
    .map_err(|e| Raise::Usage(format!("weft.spawn: cannot start a thread: {e}")))?;
    Ok(LuaTask(task))
}

pub(crate) fn task_of(ud: &AnyUserData) -> Ret<Arc<Task>> {
    ud.borrow::<LuaTask>()
        .map(|t| t.0.clone())
        .map_err(|_| Raise::Usage("weft: expected a thread or future handle".into()))
}

/// The results of a finished task, or its error re-raised.
pub(crate) fn results(lua: &Lua, task: &Task) -> Ret<MultiValue> {
    match task.outcome() {
        Some(Outcome::Returned(m)) => decode(lua, m),
        Some(Outcome::Failed(f)) => {
            let is_text = f
                .error
                .values
                .first()
                .is_some_and(|v| v.as_bytes().is_some());
            if is_text {
                Err(Raise::Value(LuaValue::String(
                    lua.create_string(&f.traceback)?,
                )))
            } else {
                let v = decode(lua, &f.error)?;
                Err(Raise::Value(v.into_iter().next().unwrap_or(LuaValue::Nil)))
            }
        }
        Some(Outcome::Cancelled) => Err(Raise::Value(LuaValue::String(
            lua.create_string("cancelled")?,
        ))),
        None => Err(Raise::Usage("weft: task has no outcome yet".into())),
    }
}

/// `handle:join([timeout])`.
pub(crate) fn join(lua: &Lua, (ud, timeout): (AnyUserData, Option<f64>)) -> Ret<MultiValue> {
    let task = task_of(&ud)?;
    let me = cancel::current();
    match wait_task(&task, Deadline::after_secs(timeout), me.as_deref()) {
        WaitEnd::Finished => results(lua, &task),
        WaitEnd::TimedOut => Ok(MultiValue::from_iter([
            LuaValue::Nil,
            LuaValue::String(lua.create_string("timeout")?),
        ])),
        WaitEnd::Cancelled => Err(Raise::Value(LuaValue::String(
            lua.create_string("cancelled")?,
        ))),
    }
}

/// `handle:wait([timeout]) -> finished?`; never raises.
pub(crate) fn wait(_: &Lua, (ud, timeout): (AnyUserData, Option<f64>)) -> Ret<bool> {
    let task = task_of(&ud)?;
    let me = cancel::current();
    Ok(wait_task(&task, Deadline::after_secs(timeout), me.as_deref()) == WaitEnd::Finished)
}

/// `handle:status()`: the status name, plus the error text with traceback when failed.
pub(crate) fn status(lua: &Lua, ud: AnyUserData) -> Ret<MultiValue> {
    let task = task_of(&ud)?;
    let mut out = MultiValue::new();
    out.push_back(LuaValue::String(lua.create_string(task.status().name())?));
    if let Some(Outcome::Failed(f)) = task.outcome() {
        out.push_back(LuaValue::String(lua.create_string(&f.traceback)?));
    }
    Ok(out)
}

/// `handle:cancel()`.
pub(crate) fn cancel(_: &Lua, ud: AnyUserData) -> Ret<()> {
    task_of(&ud)?.cancel();
    Ok(())
}

/// `weft.check()`: raise "cancelled" inside a cancelled task. A raw C function: it is
/// meant for hot loops, and an mlua callback costs several times more.
pub(crate) unsafe extern "C-unwind" fn check(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    if cancel::current_is_cancelled() {
        // SAFETY: no Rust value with a destructor is alive in this frame.
        unsafe {
            mlua::ffi::lua_pushstring(state, c"cancelled".as_ptr());
            mlua::ffi::lua_error(state);
        }
    }
    0
}
