//! `weft.read_jsonl(path [, {frozen = true}])`: a JSON Lines file as a Lua list of
//! values, or straight into a frozen table (no Lua tables built at all), parsed in Rust
//! by [`parse`] (the file into one `Message`, which no other crate reads).

mod parse;

use crate::rawud::{self, guard};
use mlua::ffi;
use std::ffi::c_int;
use weft_core::Frozen;

/// `weft.read_jsonl(path [, opts])`.
pub(crate) unsafe extern "C-unwind" fn read_jsonl(state: *mut ffi::lua_State) -> c_int {
    const WHAT: &str = "weft.read_jsonl";
    // SAFETY: raw function body; see `guard`.
    unsafe {
        guard(state, |state| {
            let path = crate::arrays::path_arg(state, 1, WHAT)?;
            let frozen = match ffi::lua_type(state, 2) {
                ffi::LUA_TNONE | ffi::LUA_TNIL => false,
                ffi::LUA_TTABLE => {
                    // Through metamethods, as compute options are; a raising `__index`
                    // is this call's error.
                    rawud::get_field(state, 2, c"frozen")
                        .map_err(|e| format!("{WHAT}: options.frozen: {e}"))?;
                    let on = ffi::lua_toboolean(state, -1) != 0;
                    ffi::lua_pop(state, 1);
                    on
                }
                _ => {
                    return Err(format!(
                        "{WHAT}: options must be a table (got {})",
                        rawud::type_of(state, 2)
                    ))
                }
            };
            let msg =
                parse::read(std::path::Path::new(&path)).map_err(|e| format!("{WHAT}: {e}"))?;
            if frozen {
                let view = Frozen::new(msg).map_err(|e| format!("{WHAT}: {e}"))?;
                crate::frozen::push_view(state, view)?;
            } else {
                crate::frozen::decode_one(state, &msg)?;
            }
            Ok(1)
        })
    }
}
