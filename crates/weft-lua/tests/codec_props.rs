//! Property test of the codec between two real LuaJIT states: any tree of nils, booleans,
//! numbers (including -0.0 and extremes), byte strings and nested tables with sequence,
//! holed, integer and string keys decodes to a deep copy of what was encoded.

mod common;

use common::state;
use mlua::{Lua, MultiValue};
use proptest::prelude::*;

/// A Lua value, written out as Lua source by [`lua`].
#[derive(Clone, Debug)]
enum M {
    Nil,
    Bool(bool),
    Num(f64),
    Str(Vec<u8>),
    Table {
        seq: Vec<M>,
        ints: Vec<(i32, M)>,
        named: Vec<(Vec<u8>, M)>,
    },
}

/// Lua source for `m`: numbers in Rust's shortest round-trip form, strings byte by byte.
fn lua(m: &M) -> String {
    match m {
        M::Nil => "nil".into(),
        M::Bool(b) => b.to_string(),
        M::Num(x) if *x == 0.0 && x.is_sign_negative() => "(-0.0)".into(),
        M::Num(x) => format!("({x:?})"),
        M::Str(bytes) => quote(bytes),
        M::Table { seq, ints, named } => {
            let mut parts: Vec<String> = seq.iter().map(lua).collect();
            parts.extend(ints.iter().map(|(k, v)| format!("[{k}] = {}", lua(v))));
            parts.extend(
                named
                    .iter()
                    .map(|(k, v)| format!("[{}] = {}", quote(k), lua(v))),
            );
            format!("{{{}}}", parts.join(", "))
        }
    }
}

fn quote(bytes: &[u8]) -> String {
    let body: String = bytes.iter().map(|b| format!("\\{b:03}")).collect();
    format!("\"{body}\"")
}

fn model() -> impl Strategy<Value = M> {
    let leaf = prop_oneof![
        Just(M::Nil),
        any::<bool>().prop_map(M::Bool),
        prop_oneof![
            any::<f64>().prop_filter("finite", |x| x.is_finite()),
            (-1_000_000i32..1_000_000).prop_map(f64::from),
            Just(-0.0),
            Just(f64::MIN_POSITIVE),
            Just(f64::MAX),
        ]
        .prop_map(M::Num),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(M::Str),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        (
            proptest::collection::vec(inner.clone(), 0..8),
            proptest::collection::vec((-50i32..50, inner.clone()), 0..4),
            proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..12), inner), 0..4),
        )
            .prop_map(|(seq, ints, named)| M::Table { seq, ints, named })
    })
}

/// Deep equality by pairs both ways; numbers by value and by the sign of zero.
const DEQ: &str = r#"
local function deq(x, y)
  if type(x) ~= type(y) then return false end
  if type(x) == "number" then
    if x == 0 and y == 0 then return 1 / x == 1 / y end
    return x == y
  end
  if type(x) ~= "table" then return x == y end
  for k, v in pairs(x) do if not deq(v, y[k]) then return false end end
  for k in pairs(y) do if x[k] == nil then return false end end
  return true
end
return deq(got, want)
"#;

fn eval(lua: &Lua, code: &str) -> MultiValue {
    lua.load(code).eval::<MultiValue>().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_value_tree_round_trips(m in model()) {
        let src = format!("return {}", lua(&m));
        let (a, b) = (state(), state());
        let msg = weft_lua::encode_values(&a, eval(&a, &src)).unwrap();
        let got = weft_lua::decode_values(&b, &msg).unwrap();
        let want = eval(&b, &src);
        prop_assert_eq!(got.len(), 1);
        b.globals().set("got", got[0].clone()).unwrap();
        b.globals().set("want", want[0].clone()).unwrap();
        let same: bool = b.load(DEQ).eval().unwrap();
        prop_assert!(same, "{}", src);
    }
}
