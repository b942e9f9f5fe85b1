//! Stack-balance checks for raw Lua C API code, in debug builds (as mlua's `StackGuard`
//! and Lanes' `STACK_CHECK`): [`StackCheck::new`] records `lua_gettop` where a stretch of
//! raw code starts, and [`StackCheck::expect`] asserts the stack grew by exactly the
//! number of values that code promises to leave (its documented effect, e.g. `+1` for a
//! push helper). A wrong count is a bug that would otherwise surface far away (a value
//! read from the wrong slot, a slowly growing stack); the assertion names the place.
//! In release builds both compile to nothing.

use mlua::ffi;
use std::ffi::c_int;

/// The stack height where a stretch of raw code started (debug builds only).
#[must_use = "call expect() where the code's stack effect is complete"]
pub(crate) struct StackCheck {
    #[cfg(debug_assertions)]
    state: *mut ffi::lua_State,
    #[cfg(debug_assertions)]
    top: c_int,
}

impl StackCheck {
    /// Record the current stack height of `state`.
    ///
    /// # Safety
    /// `state` is a valid state, used on its own thread.
    #[inline(always)]
    pub(crate) unsafe fn new(state: *mut ffi::lua_State) -> StackCheck {
        #[cfg(not(debug_assertions))]
        let _ = state;
        StackCheck {
            #[cfg(debug_assertions)]
            state,
            // SAFETY: reading the top of a valid state.
            #[cfg(debug_assertions)]
            top: unsafe { ffi::lua_gettop(state) },
        }
    }

    /// Assert (debug builds) that the stack is now `delta` values higher than when the
    /// check was made. Panics otherwise, naming the caller's location.
    ///
    /// # Safety
    /// The state given to [`StackCheck::new`] is still valid.
    #[inline(always)]
    #[track_caller]
    pub(crate) unsafe fn expect(self, delta: c_int) {
        #[cfg(not(debug_assertions))]
        let _ = delta;
        #[cfg(debug_assertions)]
        {
            // SAFETY: the caller keeps the state valid.
            let now = unsafe { ffi::lua_gettop(self.state) };
            assert!(
                now == self.top + delta,
                "weft: Lua stack unbalanced: expected {} value(s) on top of the {} found on \
                 entry, found {}",
                delta,
                self.top,
                now - self.top
            );
        }
    }
}

/// Run `f`, a stretch of raw code that leaves `delta` more values on the stack of `state`
/// when it succeeds, and check that it did (debug builds). Failures may leave the stack
/// as they like: the callers' error paths settle it themselves.
///
/// # Safety
/// `state` is a valid state, used on its own thread, and stays valid during `f`.
#[inline(always)]
#[track_caller]
pub(crate) unsafe fn checked<T, E>(
    state: *mut ffi::lua_State,
    delta: c_int,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    // SAFETY: forwarded contract.
    unsafe {
        let check = StackCheck::new(state);
        let result = f();
        if result.is_ok() {
            check.expect(delta);
        }
        result
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// (balanced stretch passed, unbalanced stretch caught, failure not checked)
    fn run_checks(lua: &mlua::Lua) -> (bool, bool, bool) {
        let mut seen = (false, false, false);
        // SAFETY: raw stack work on the state exec_raw hands over; every value pushed
        // here is popped again.
        unsafe {
            lua.exec_raw::<()>((), |state| {
                let check = StackCheck::new(state);
                ffi::lua_pushnil(state);
                seen.0 = catch_unwind(AssertUnwindSafe(|| check.expect(1))).is_ok();
                let check = StackCheck::new(state);
                ffi::lua_pushnil(state);
                seen.1 = catch_unwind(AssertUnwindSafe(|| check.expect(0))).is_err();
                ffi::lua_pop(state, 2);
                let failed: Result<(), ()> = checked(state, 1, || Err(()));
                seen.2 = failed.is_err() && ffi::lua_gettop(state) == 0;
            })
            .unwrap();
        }
        seen
    }

    #[test]
    fn a_stretch_that_leaves_the_wrong_count_is_caught() {
        let lua = mlua::Lua::new();
        assert_eq!(run_checks(&lua), (true, true, true));
    }
}
