//! The raw-stack code's own guarantees, in a debug build against a vendored LuaJIT: the
//! encoder keeps every table it recognises by address alive while it runs (so an address
//! can never be reused for another value mid-message), and the debug-build stack checks
//! hold across the paths the codec and the raw functions take.

mod common;

use common::state;
use mlua::ffi;
use weft_lua::codec::{CodecState, Encoder, Label};

/// Whether `weak[1]` (a weak-valued table's only entry) still holds its table after a full
/// collection.
fn still_alive(lua: &mlua::Lua) -> bool {
    lua.gc_collect().unwrap();
    lua.gc_collect().unwrap();
    lua.load("return weak[1] ~= nil").eval().unwrap()
}

#[test]
fn the_encoder_keeps_tables_it_knows_by_address_alive_until_dropped() {
    let lua = state();
    lua.load("weak = setmetatable({}, {__mode = 'v'})")
        .exec()
        .unwrap();
    let codec = CodecState::default();
    let mut encoder = Encoder::new(&codec);
    // SAFETY: raw stack work on the state exec_raw hands over (a protected call on this
    // thread); the encoder is used with this state only and dropped below, inside a
    // later exec_raw of the same state.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            // A table referenced only by the weak table and by the stack slot pushed from.
            ffi::lua_getglobal(state, c"weak".as_ptr());
            ffi::lua_createtable(state, 0, 1);
            ffi::lua_pushinteger(state, 7);
            ffi::lua_setfield(state, -2, c"x".as_ptr());
            ffi::lua_pushvalue(state, -1);
            ffi::lua_rawseti(state, -3, 1);
            encoder.push(state, -1, Label::Argument, 1).unwrap();
            // The caller lets go of it: only the encoder knows it now.
            ffi::lua_settop(state, 0);
        })
        .unwrap();
    }
    assert!(
        still_alive(&lua),
        "a table the encoder recorded by address was collected while the encoder lives"
    );
    // SAFETY: as above; dropping releases the anchor through the same state.
    unsafe {
        lua.exec_raw::<()>((), |_| {
            let msg = std::mem::replace(&mut encoder, Encoder::new(&codec)).finish();
            assert_eq!(msg.nodes.len(), 1);
        })
        .unwrap();
        lua.exec_raw::<()>((), |_| drop(encoder)).unwrap();
    }
    assert!(
        !still_alive(&lua),
        "the encoder released the table when dropped"
    );
}

#[test]
fn codec_and_raw_functions_keep_the_stack_balanced() {
    // Every push helper, protected call and encoder push checks its stack effect in this
    // (debug) build; a wrong count would panic and fail the script.
    let lua = state();
    let out: (i64, i64, f64, i64, bool) = lua
        .load(
            r#"
            local weft = require "weft"
            local shared = { 1, 2, { deep = { "x", true } } }
            shared[4] = shared[3]
            local f = weft.freeze(shared)
            local a = weft.array("f64", 3)
            a[2] = 2.5
            local ch = weft.channel()
            for i = 1, 5 do ch:push({ n = i, t = shared }) end
            local sum = 0
            for _ = 1, 5 do sum = sum + ch:pop().n end
            local got = weft.spawn(function(t) return #t, t[3].deep[1] end, shared):join(30)
            return sum, f[1] + f[2], a[2], got, f[3] == f[4]
            "#,
        )
        .eval()
        .unwrap();
    assert_eq!(out, (15, 3, 2.5, 4, true));
}
