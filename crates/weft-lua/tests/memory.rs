//! Memory exhaustion inside weft's raw C functions: a Lua memory error must come back
//! from the weft call as an ordinary error (catchable with pcall), never unwind into
//! Rust's catch_unwind (which aborts on LuaJIT's foreign exceptions).

mod common;

use common::state;

#[test]
fn a_memory_error_in_a_raw_function_is_an_ordinary_error() {
    let lua = state();
    let used = lua.used_memory();
    lua.set_memory_limit(used + 256 * 1024)
        .expect("the vendored LuaJIT state has memory control");
    let (failures, per_call): (i64, String) = lua
        .load(
            r#"
            local weft = require "weft"
            local a = weft.array("f64", 64)
            local f = weft.freeze { name = "a string read back", list = { "x", "y" }, sub = {} }
            local s = weft.table()
            s.v = { 1, 2, 3 }
            local ch = weft.channel()
            local calls = {
              function() return a:totable() end,
              function() return weft.array("f32", 4) end,
              function() return a:slice(1, 2) end,
              function() return tostring(a) end,
              function() return f:totable() end,
              function() return f.name .. "" end,
              function() return s:totable() end,
              function() return s.v end,
              function() return weft.freeze { 1, 2, 3 } end,
              function() return pcall(weft.topk, a, 2, { threads = 1 }) end,
              function() ch:push({ "an item", 2 }) return ch:pop() end,
            }
            -- Nothing below allocates outside pcall once the loop runs (the wrappers
            -- are made first; a failure drops what was kept before making a new table).
            local keep, failures, kinds = {}, 0, {}
            local wrappers = {}
            for i, call in ipairs(calls) do
              wrappers[i] = function() keep[#keep + 1] = call() end
              kinds[i] = 0
            end
            for _ = 1, 4000 do
              for i = 1, #wrappers do
                local ok, e = pcall(wrappers[i])
                if not ok then
                  if type(e) ~= "string" then error("a non-string error") end
                  failures = failures + 1
                  kinds[i] = kinds[i] + 1
                  keep = nil
                  collectgarbage()
                  keep = {}
                end
              end
            end
            local failed = {}
            for i = 1, #kinds do failed[i] = kinds[i] end
            return failures, table.concat(failed, " ")
            "#,
        )
        .eval()
        .unwrap();
    // Survival is the proof (before the fix LuaJIT aborted: "Rust cannot catch foreign
    // exceptions"); the counts show the limit was really hit inside weft calls.
    assert!(
        failures > 0,
        "the limit was never reached (failures per call: {per_call})"
    );
}
