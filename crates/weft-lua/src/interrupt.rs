//! Cancelling Lua code that never calls into weft.
//!
//! An instruction-count hook would notice cancellation, but PUC Lua routes every
//! instruction through its hook check once any count hook is set (a worker ran pure Lua
//! 1.5–2× slower with one). So no hook is set while a task runs normally. `cancel()`
//! sends the running thread a signal, and the handler, on that thread, sets a count hook
//! on the state it is running, which raises "cancelled" at the next instruction. This is
//! how the `lua` and `luajit` interpreters stop a script on Ctrl-C (`lua_sethook` is
//! meant to be called from a signal handler).
//!
//! LuaJIT does not run hooks inside compiled traces: a loop the JIT compiled sees
//! cancellation only through `weft.check()` or a blocking weft call.

use mlua::ffi;
use std::cell::Cell;
use std::sync::{Arc, Once};
use weft_core::cancel::{CancelToken, Interrupt, RunningGuard};

thread_local! {
    /// The Lua state this thread is running a task in (null when none).
    static RUNNING: Cell<*mut ffi::lua_State> = const { Cell::new(std::ptr::null_mut()) };
    /// False while the running task has turned asynchronous interruption off.
    static INTERRUPTIBLE: Cell<bool> = const { Cell::new(true) };
}

fn signal_number() -> libc::c_int {
    // A real-time signal: never sent by the kernel or by common runtimes on their own.
    libc::SIGRTMIN() + 7
}

unsafe extern "C-unwind" fn cancel_hook(state: *mut ffi::lua_State, _: *mut ffi::lua_Debug) {
    if weft_core::cancel::current_is_cancelled() {
        // SAFETY: raising from a count hook is allowed; no Rust value with a destructor is
        // alive in this frame.
        unsafe {
            ffi::lua_pushstring(state, c"cancelled".as_ptr());
            ffi::lua_error(state);
        }
    }
}

extern "C" fn on_signal(_: libc::c_int) {
    // Only async-signal-safe work: a thread-local read (const-initialised, no
    // destructor) and lua_sethook, which Lua documents as safe to call from a handler.
    let state = RUNNING.with(|r| r.get());
    if !state.is_null() && INTERRUPTIBLE.with(|i| i.get()) {
        // SAFETY: `state` is the state this very thread is running (RUNNING is cleared
        // before the state can be closed), and the handler runs on this thread.
        unsafe {
            #[allow(clippy::let_unit_value)]
            let _ = ffi::lua_sethook(state, Some(cancel_hook), ffi::LUA_MASKCOUNT, 1);
        }
    }
}

fn install_handler() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: a plain sigaction with a handler that is async-signal-safe; SA_RESTART
        // keeps interrupted system calls (futex waits) transparent to the thread.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal_number(), &action, std::ptr::null_mut());
        }
    });
}

/// Interrupts one OS thread with the cancellation signal.
struct ThreadSignal(libc::pthread_t);

impl Interrupt for ThreadSignal {
    fn interrupt(&self) {
        // SAFETY: the token calls this with its runner lock held, and the thread removes
        // the runner (under that lock) before leaving the task, so the thread is alive.
        unsafe {
            libc::pthread_kill(self.0, signal_number());
        }
    }
}

/// While alive: `token.cancel()` interrupts this thread.
pub(crate) fn interruptible(token: &CancelToken) -> RunningGuard<'_> {
    install_handler();
    // SAFETY: pthread_self has no preconditions.
    token.running_on(Arc::new(ThreadSignal(unsafe { libc::pthread_self() })))
}

/// Run `f` with `state` as this thread's running state, starting with no hook set (a
/// hook left by an earlier cancelled task is removed).
///
/// # Safety
/// `state` must be the valid state this thread is about to run Lua code in.
pub(crate) unsafe fn running<R>(state: *mut ffi::lua_State, f: impl FnOnce() -> R) -> R {
    // SAFETY: removing a hook from a valid state owned by this thread.
    unsafe {
        #[allow(clippy::let_unit_value)]
        let _ = ffi::lua_sethook(state, None, 0, 0);
    }
    let previous = RUNNING.with(|r| r.replace(state));
    let was_interruptible = INTERRUPTIBLE.with(|i| i.replace(true));
    let result = f();
    INTERRUPTIBLE.with(|i| i.set(was_interruptible));
    RUNNING.with(|r| r.set(previous));
    result
}

/// `weft.interruptible([on])`: with `false`, cancellation of the current task no longer
/// interrupts its Lua code between instructions; it still ends blocking weft calls and
/// `weft.check()`, so the task decides where it may stop (e.g. never between taking an
/// item and recording it). With `true` (the default at every task start) a cancellation
/// that arrived meanwhile takes effect at the next instruction. Returns the previous
/// setting. Outside a task it changes nothing and returns true.
pub(crate) unsafe extern "C-unwind" fn set_interruptible(
    state: *mut ffi::lua_State,
) -> std::ffi::c_int {
    // SAFETY: a lua_CFunction reading its first argument and pushing one boolean.
    unsafe {
        let running = RUNNING.with(|r| r.get());
        let previous = INTERRUPTIBLE.with(|i| i.get());
        if !running.is_null() && ffi::lua_gettop(state) >= 1 {
            let on = ffi::lua_toboolean(state, 1) != 0;
            INTERRUPTIBLE.with(|i| i.set(on));
            if on && weft_core::cancel::current_is_cancelled() {
                #[allow(clippy::let_unit_value)]
                let _ = ffi::lua_sethook(running, Some(cancel_hook), ffi::LUA_MASKCOUNT, 1);
            }
        }
        ffi::lua_pushboolean(state, previous as std::ffi::c_int);
        1
    }
}
