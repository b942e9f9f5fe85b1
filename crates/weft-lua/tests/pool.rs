//! Pool behaviour that only shows inside a worker: the task-function cache.

mod common;

use common::state;

#[test]
fn a_function_submitted_repeatedly_is_loaded_once_per_worker_with_fresh_upvalues() {
    let lua = state();
    let (count, same, values): (i64, bool, String) = lua
        .load(
            r#"local weft = require "weft"
            local pool = weft.pool{ size = 1 }
            local function make(k)
              return function()
                SEEN = SEEN or {}
                local me = debug.getinfo(1, "f").func
                SEEN[#SEEN + 1] = me
                KEPT = KEPT or {}
                KEPT[#KEPT + 1] = function() return k end   -- must keep its own k
                return #SEEN, SEEN[1] == me
              end
            end
            local n, same
            for k = 1, 3 do n, same = pool:submit(make(k)):join() end
            local values = pool:submit(function()
              local out = {}
              for i, f in ipairs(KEPT) do out[i] = f() end
              return table.concat(out, ",")
            end):join()
            pool:close()
            return n, same, values"#,
        )
        .eval()
        .unwrap();
    assert_eq!(count, 3);
    assert!(same, "the worker reloaded a function it had cached");
    assert_eq!(
        values, "1,2,3",
        "a later task rebound an earlier task's upvalues"
    );
}

#[test]
fn a_nested_task_of_the_same_code_does_not_share_its_callers_closure() {
    let lua = state();
    let out: String = lua
        .load(
            r#"local weft = require "weft"
            local pool = weft.pool{ size = 1 }
            local function make(tag, child)
              return function(p)
                local below = child and p:submit(child, p):join() or "none"
                return tag .. "(" .. below .. ")"
              end
            end
            local r = pool:submit(make("outer", make("middle", make("inner"))), pool):join()
            pool:close()
            return r"#,
        )
        .eval()
        .unwrap();
    assert_eq!(out, "outer(middle(inner(none)))");
}
