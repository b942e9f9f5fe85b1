//! Helpers shared by the weft-lua integration tests.

use mlua::{Lua, Table};

/// A LuaJIT state with every standard library and `weft` loaded, as a script sees it.
pub fn state() -> Lua {
    // SAFETY: test states get the full standard library, as weft workers do.
    let lua = unsafe { Lua::unsafe_new() };
    let weft = weft_lua::open(&lua).unwrap();
    lua.globals()
        .get::<Table>("package")
        .unwrap()
        .get::<Table>("loaded")
        .unwrap()
        .set("weft", weft)
        .unwrap();
    lua
}
