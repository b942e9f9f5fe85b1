//! The codec between two real LuaJIT states: what goes in comes out, shape preserved.

mod common;

use common::state;
use mlua::{Function, Lua, MultiValue, Table, Value};
use weft_core::message::{Node, Value as MValue};

fn eval(lua: &Lua, code: &str) -> MultiValue {
    lua.load(code).eval::<MultiValue>().unwrap()
}

/// Encode in `from`, decode in `to`, return the values in `to`.
fn cross(from: &Lua, to: &Lua, code: &str) -> MultiValue {
    let msg = weft_lua::encode_values(from, eval(from, code)).unwrap();
    weft_lua::decode_values(to, &msg).unwrap()
}

#[test]
fn cycles_and_shared_subtables_survive() {
    let (a, b) = (state(), state());
    let out = cross(
        &a,
        &b,
        "local s = {1} local t = {x = s, y = s} t.self = t return t",
    );
    b.globals().set("t", out[0].clone()).unwrap();
    let checks: (bool, bool, i64) = b
        .load("return t.self == t, t.x == t.y, t.x[1]")
        .eval()
        .unwrap();
    assert_eq!(checks, (true, true, 1));
}

#[test]
fn a_shared_table_is_one_node() {
    let a = state();
    let msg = weft_lua::encode_values(&a, eval(&a, "local s = {} return {s, s, s}")).unwrap();
    assert_eq!(msg.nodes.len(), 2, "outer table and the one shared table");
    match &msg.nodes[0] {
        Node::Table(t) => assert!(t.array.iter().all(|v| matches!(v, MValue::Node(1)))),
        Node::Function(_) => panic!("expected a table"),
    }
}

#[test]
fn functions_carry_local_helpers_and_module_functions() {
    let (a, b) = (state(), state());
    let out = cross(
        &a,
        &b,
        r#"local sqrt = math.sqrt
           local function fact(n) if n <= 1 then return 1 end return n * fact(n - 1) end
           return function(x) return fact(x) + sqrt(16) end"#,
    );
    let f: Function = match &out[0] {
        Value::Function(f) => f.clone(),
        other => panic!("expected a function, got {other:?}"),
    };
    assert_eq!(f.call::<f64>(5).unwrap(), 124.0);
}

#[test]
fn module_tables_cross_by_name_not_by_copy() {
    let (a, b) = (state(), state());
    let msg = weft_lua::encode_values(&a, eval(&a, "return string, math.floor")).unwrap();
    assert!(msg.nodes.is_empty(), "no table was copied: {msg:?}");
    let out = weft_lua::decode_values(&b, &msg).unwrap();
    b.globals().set("s", out[0].clone()).unwrap();
    b.globals().set("f", out[1].clone()).unwrap();
    let same: (bool, bool) = b
        .load("return s == string, f == math.floor")
        .eval()
        .unwrap();
    assert_eq!(same, (true, true));
}

#[test]
fn a_module_required_after_the_first_send_is_found_by_name() {
    let a = state();
    weft_lua::encode_values(&a, eval(&a, "return math.sqrt")).unwrap();
    // A C function reachable only through a module loaded after the index was built.
    a.load(r#"package.loaded.late = { iter = string.gmatch("a", "a") }"#)
        .exec()
        .unwrap();
    let msg = weft_lua::encode_values(&a, eval(&a, "return package.loaded.late.iter")).unwrap();
    match &msg.values[0] {
        MValue::Module(m) => {
            let names: Vec<String> = m.names.iter().map(|n| n.to_string()).collect();
            assert_eq!(names, ["late.iter"]);
        }
        other => panic!("expected a by-name value, got {other:?}"),
    }
}

#[test]
fn a_function_known_under_two_names_resolves_under_whichever_the_receiver_has() {
    let (a, b) = (state(), state());
    a.load("table.unpack = table.unpack or unpack; _G.my_alias = string.upper")
        .exec()
        .unwrap();
    let msg = weft_lua::encode_values(&a, eval(&a, "return my_alias, unpack")).unwrap();
    let out = weft_lua::decode_values(&b, &msg).unwrap();
    b.globals().set("f", out[0].clone()).unwrap();
    b.globals().set("g", out[1].clone()).unwrap();
    let same: (bool, bool) = b
        .load("return f == string.upper, g == unpack")
        .eval()
        .unwrap();
    assert_eq!(same, (true, true));
}

#[test]
fn refusals_name_the_path_and_the_reason() {
    let a = state();
    let err = weft_lua::encode_values(
        &a,
        eval(
            &a,
            "return 1, { config = { handler = coroutine.create(print) } }",
        ),
    )
    .unwrap_err();
    assert_eq!(
        err,
        "weft: cannot send argument 2 .config.handler (a coroutine)"
    );
    let err = weft_lua::encode_values(
        &a,
        eval(
            &a,
            "local co = coroutine.create(print) return function() return co end",
        ),
    )
    .unwrap_err();
    assert_eq!(
        err,
        "weft: cannot send argument 1 upvalue 'co' (a coroutine)"
    );
    let err =
        weft_lua::encode_values(&a, eval(&a, "return {[1] = setmetatable({}, {})}")).unwrap_err();
    assert!(
        err.starts_with("weft: cannot send argument 1 [1] (a table with a metatable"),
        "{err}"
    );
}

/// Encode a chain of `levels` nested tables on a new thread with a `stack`-byte stack.
fn encode_chain(levels: usize, stack: usize) -> Result<(), String> {
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(move || {
            let a = state();
            let code = format!(
                "local t = {{}} local c = t for i = 2, {levels} do c.n = {{}} c = c.n end return t"
            );
            weft_lua::encode_values(&a, eval(&a, &code)).map(|_| ())
        })
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    // Up to 3000 levels cross on a thread with a big enough stack (a debug build needs
    // much more per level than the release build, which fits in 16 MiB).
    encode_chain(3000, 128 << 20).unwrap();
    let err = encode_chain(3001, 128 << 20).unwrap_err();
    assert!(err.contains("nested more than 3000 levels deep"), "{err}");
    assert!(
        err.starts_with("weft: cannot send argument 1 .n.n.n.n ... .n.n.n.n (3000 levels) ("),
        "{err}"
    );
    // A thread with a small stack refuses before running out of it.
    let err = encode_chain(100_000, 512 << 10).unwrap_err();
    assert!(
        err.contains("more than this thread's stack allows"),
        "{err}"
    );
}

#[test]
fn big_arrays_keep_their_order_and_values() {
    let (a, b) = (state(), state());
    let out = cross(
        &a,
        &b,
        "local t = {} for i = 1, 100000 do t[i] = i * 0.5 end t.n = 7 return t",
    );
    let t: Table = match &out[0] {
        Value::Table(t) => t.clone(),
        other => panic!("expected a table, got {other:?}"),
    };
    assert_eq!(t.raw_len(), 100_000);
    assert_eq!(t.get::<f64>(99_999).unwrap(), 49_999.5);
    assert_eq!(t.get::<i64>("n").unwrap(), 7);
}

#[test]
fn every_received_function_is_its_own_closure_with_its_own_upvalues() {
    let (a, b) = (state(), state());
    a.load("function make(k) return function() return k end end")
        .exec()
        .unwrap();
    let f1 = cross(&a, &b, "return make(1)");
    let f2 = cross(&a, &b, "return make(2)");
    let both = cross(&a, &b, "return make(3), make(4)");
    let call = |v: &Value| match v {
        Value::Function(f) => f.call::<i64>(()).unwrap(),
        other => panic!("expected a function, got {other:?}"),
    };
    assert_eq!((call(&f1[0]), call(&f2[0])), (1, 2));
    assert_eq!((call(&both[0]), call(&both[1])), (3, 4));
    assert_ne!(f1[0], f2[0]);
}

#[test]
fn long_mixed_sequences_survive_the_bulk_number_path() {
    let (a, b) = (state(), state());
    let make = r#"local t = {}
        for i = 1, 1000 do t[i] = i / 3 end
        t[500] = "x"; t[800] = { 1 }; t[801] = -0.0; t[802] = 0/0; t.key = true; t[0] = "zero"
        return t"#;
    let out = cross(&a, &b, make);
    b.globals().set("t", out[0].clone()).unwrap();
    let ok: bool = b
        .load(
            r#"if #t ~= 1000 or t.key ~= true or t[0] ~= "zero" or t[500] ~= "x" or t[800][1] ~= 1 then return false end
               if 1 / t[801] ~= -1 / 0 or t[802] == t[802] then return false end
               for i = 1, 1000 do
                 if i ~= 500 and i < 800 and t[i] ~= i / 3 then return false end
               end
               return t[1000] == 1000 / 3"#,
        )
        .eval()
        .unwrap();
    assert!(ok);
}
