//! Pool behaviour that only shows inside a worker: the task-function cache.

mod common;

use common::state;

#[test]
fn a_function_submitted_repeatedly_is_loaded_once_per_worker() {
    let lua = state();
    let (count, same): (i64, bool) = lua
        .load(
            r#"local weft = require "weft"
            local pool = weft.pool{ size = 1 }
            local function probe(x)
              SEEN = SEEN or {}
              local me = debug.getinfo(1, "f").func
              SEEN[#SEEN + 1] = me
              return #SEEN, SEEN[1] == me
            end
            local n, same
            for k = 1, 3 do n, same = pool:submit(probe, k):join() end
            pool:close()
            return n, same"#,
        )
        .eval()
        .unwrap();
    assert_eq!(count, 3);
    assert!(same, "the worker reloaded a function it had cached");
}

#[test]
fn closures_made_by_earlier_tasks_keep_their_own_upvalues() {
    let lua = state();
    let values: String = lua
        .load(
            r#"local weft = require "weft"
            local pool = weft.pool{ size = 1 }
            local function make(k)
              return function()
                KEPT = KEPT or {}
                KEPT[#KEPT + 1] = function() return k end
              end
            end
            for k = 1, 3 do pool:submit(make(k)):join() end
            local values = pool:submit(function()
              local out = {}
              for i, f in ipairs(KEPT) do out[i] = f() end
              return table.concat(out, ",")
            end):join()
            pool:close()
            return values"#,
        )
        .eval()
        .unwrap();
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

#[test]
fn on_luajit_a_task_function_with_upvalues_is_a_new_closure_every_time() {
    // The invariant behind the fix below: swapping the upvalues of a reused closure is
    // unsafe under LuaJIT's trace compiler, so such functions are never reused there.
    let lua = state();
    let distinct: bool = lua
        .load(
            r#"local weft = require "weft"
            local pool = weft.pool{ size = 1 }
            local function make(k)
              return function()
                SEEN = SEEN or {}
                SEEN[#SEEN + 1] = debug.getinfo(1, "f").func
                return k
              end
            end
            for k = 1, 3 do assert(pool:submit(make(k)):join() == k) end
            local distinct = pool:submit(function()
              return SEEN[1] ~= SEEN[2] and SEEN[2] ~= SEEN[3] and SEEN[1] ~= SEEN[3]
            end):join()
            pool:close()
            return distinct"#,
        )
        .eval()
        .unwrap();
    assert!(distinct);
}

#[test]
fn repeated_range_chunks_over_upvalue_data_compute_with_their_own_data() {
    // Regression: reused closures with swapped upvalues left LuaJIT traces reading freed
    // upvalues, giving wrong sums or a crash in this shape of workload (the main job's).
    // Statistical: the broken code failed it in about 6 of 10 runs.
    let lua = state();
    let bad: i64 = lua
        .load(
            r#"local weft = require "weft"
            local function build(seed)
              local sets, x = {}, seed
              for i = 1, 400 do
                local words, n = {}, 0
                for _ = 1, 12 do
                  x = (x * 1103515245 + 12345) % 2147483648
                  local w = "w" .. (x % 300)
                  if not words[w] then words[w] = true; n = n + 1 end
                end
                sets[i] = { words = words, n = n }
              end
              return sets
            end
            local function run(sets)
              local n = #sets
              return function(first, last)
                local total = 0
                for i = first, last do
                  local a = sets[i]
                  for j = 1, n do
                    local b = sets[j]
                    local common = 0
                    for w in pairs(a.words) do if b.words[w] then common = common + 1 end end
                    total = total + common * 1000 + a.n + b.n
                  end
                end
                return total
              end
            end
            local bad = 0
            for rep = 1, 20 do
              local sets = build(rep)
              local expect = run(sets)(1, #sets)
              local pool = weft.pool{ size = 2 }
              local parts = pool:range(#sets, run(sets), { chunk = 10 })
              pool:close()
              local got = 0
              for _, p in ipairs(parts) do got = got + p end
              if got ~= expect then bad = bad + 1 end
            end
            return bad"#,
        )
        .eval()
        .unwrap();
    assert_eq!(
        bad, 0,
        "repetitions whose parallel sum differed from the sequential one"
    );
}
