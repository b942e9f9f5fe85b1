//! The Lua half of the module (`lua/weft.lua`) may run twice in one state: a
//! `require "weft"` cancelled half-way through is run again by the next `require` (the
//! stress spec found that a second run failed when the file declared a named C type).

mod common;

#[test]
fn the_module_loads_twice_in_one_state_and_its_channels_still_work() {
    let lua = common::state();
    lua.unset_named_registry_value("weft.module").unwrap();
    let again = weft_lua::open(&lua).expect("the second load of weft.lua");
    lua.globals().set("weft2", again).unwrap();
    let ok: bool = lua
        .load(
            r#"
            local ch = weft2.channel()
            ch:push({ 1, "x" })
            ch:push(2)
            local row, n = ch:pop(0), ch:pop(0)
            return row[1] == 1 and row[2] == "x" and n == 2
            "#,
        )
        .eval()
        .unwrap();
    assert!(ok);
}
