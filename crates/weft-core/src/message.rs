//! The owned form of a group of Lua values, made to cross to another thread.
//!
//! A [`Message`] is a small graph: `values` are the roots (arguments, results, one channel
//! item), and every table or function becomes one [`Node`] that other values point at by
//! index. Pointing instead of nesting is what preserves cycles and shared sub-tables: a
//! table reachable twice is one node, rebuilt once on the other side.

use crate::handle::Handle;
pub use smallvec::{smallvec, SmallVec};
use std::sync::Arc;

/// One value inside a message.
#[derive(Clone, Debug)]
pub enum Value {
    /// `nil`.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer (kept apart from floats for Lua 5.3+; LuaJIT has only floats).
    Int(i64),
    /// A float.
    Num(f64),
    /// A string of up to [`SHORT_STRING`] bytes, stored inline (no allocation).
    ShortStr {
        /// Bytes used in `bytes`.
        len: u8,
        /// The string, zero-padded.
        bytes: [u8; SHORT_STRING],
    },
    /// A longer string: arbitrary bytes, as in Lua.
    Str(Box<[u8]>),
    /// A table or function: an index into [`Message::nodes`].
    Node(u32),
    /// A value found in the sender's `package.loaded`, re-resolved with `require`.
    Module(Box<ModuleRef>),
    /// A weft object, shared by reference.
    Handle(Handle),
}

/// Strings up to this many bytes live inside the [`Value`] itself.
pub const SHORT_STRING: usize = 22;

impl Value {
    /// A string value (inline when short).
    pub fn string(bytes: &[u8]) -> Value {
        if bytes.len() <= SHORT_STRING {
            let mut inline = [0u8; SHORT_STRING];
            inline[..bytes.len()].copy_from_slice(bytes);
            Value::ShortStr {
                len: bytes.len() as u8,
                bytes: inline,
            }
        } else {
            Value::Str(bytes.into())
        }
    }

    /// The bytes of a string value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::ShortStr { len, bytes } => Some(&bytes[..*len as usize]),
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A value found in `package.loaded`, by every name it was reachable under there: the
/// receiver uses the first name that resolves (a C function can be both `unpack` and
/// `table.unpack` in the sender but only one of them in a fresh state).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleRef {
    /// Candidate names, in the order the receiver tries them (never empty).
    pub names: Vec<ModuleName>,
}

/// A module table (`field == None`) or a value inside one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ModuleName {
    /// The key in `package.loaded`, e.g. `"math"` or `"socket.core"`.
    pub module: Box<str>,
    /// The string key inside the module table, e.g. `"sqrt"`.
    pub field: Option<Box<[u8]>>,
}

impl std::fmt::Display for ModuleName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            None => write!(f, "{}", self.module),
            Some(field) => write!(f, "{}.{}", self.module, String::from_utf8_lossy(field)),
        }
    }
}

/// A table or a function.
#[derive(Clone, Debug)]
pub enum Node {
    /// A plain table (no metatable).
    Table(TableNode),
    /// A Lua function.
    Function(FunctionNode),
}

/// The contents of a plain table: the sequence and everything else.
///
/// The sequence is `numbers` (keys `1..=numbers.len()`, a packed run of floats that LuaJIT
/// fills and reads at JIT speed) followed by `array` (the keys after it).
#[derive(Clone, Debug, Default)]
pub struct TableNode {
    /// A leading run of float values, keys `1..=numbers.len()`.
    pub numbers: Vec<f64>,
    /// Values at the following keys, in order (`nil` for a hole inside the border).
    pub array: Sequence,
    /// All other key/value pairs.
    pub hash: Vec<(Value, Value)>,
}

/// A Lua function: its bytecode (shared, so a function sent many times is dumped once)
/// and its upvalues, copied by value.
#[derive(Clone, Debug)]
pub struct FunctionNode {
    /// The dumped chunk.
    pub code: Arc<Bytecode>,
    /// Upvalues in order (`nil` for an upvalue that is `nil`).
    pub upvalues: Vec<Value>,
    /// Lua 5.1/LuaJIT: the function's environment when it is not the sender's globals
    /// (set with `setfenv`), copied like any value; `None`: the receiver's globals.
    pub env: Option<Value>,
}

/// A dumped Lua function, with a hash so receivers can cache the loaded prototype.
#[derive(Debug)]
pub struct Bytecode {
    /// The bytes `lua_dump` produced.
    pub bytes: Box<[u8]>,
    /// FNV-1a over `bytes`: the key of each receiving state's load cache.
    pub hash: u64,
}

impl Bytecode {
    /// Wrap dumped bytes and compute their hash.
    pub fn new(bytes: Vec<u8>) -> Bytecode {
        let hash = fnv1a(&bytes);
        Bytecode {
            bytes: bytes.into_boxed_slice(),
            hash,
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The sequence values of a table after its packed numbers. Two are stored inline: the
/// commonest channel item is a short record such as `{i, "x"}`, and an allocation made by
/// the sending thread and freed by the receiving one cost a third of its trip (glibc's
/// arenas are per thread).
pub type Sequence = SmallVec<[Value; 2]>;

/// Tables and functions of a message. One (the usual channel item: one table) is stored
/// inline, saving an allocation per item.
pub type Nodes = SmallVec<[Node; 1]>;

/// Root values of a message. One value (a channel item, a single result) is stored
/// inline, so a scalar message crosses threads without a heap allocation.
pub type Values = SmallVec<[Value; 1]>;

/// A group of values and the nodes they point into.
#[derive(Clone, Debug, Default)]
pub struct Message {
    /// The root values, in order.
    pub values: Values,
    /// Tables and functions, referenced by [`Value::Node`].
    pub nodes: Nodes,
}

impl Message {
    /// A message holding exactly one value and no nodes.
    pub fn single(value: Value) -> Message {
        Message {
            values: smallvec![value],
            nodes: Nodes::new(),
        }
    }

    /// The node a [`Value::Node`] index names.
    pub fn node(&self, index: u32) -> &Node {
        &self.nodes[index as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_are_inline_and_long_ones_boxed_with_the_same_bytes() {
        let short = Value::string(b"x\0y");
        let long = Value::string(&[7u8; 40]);
        assert!(matches!(short, Value::ShortStr { len: 3, .. }));
        assert!(matches!(long, Value::Str(_)));
        assert_eq!(short.as_bytes(), Some(&b"x\0y"[..]));
        assert_eq!(long.as_bytes(), Some(&[7u8; 40][..]));
        assert_eq!(std::mem::size_of::<Value>(), 24);
    }

    #[test]
    fn identical_bytecode_hashes_alike_and_different_bytecode_does_not() {
        let a = Bytecode::new(b"\x1bLJ\x02abc".to_vec());
        let b = Bytecode::new(b"\x1bLJ\x02abc".to_vec());
        let c = Bytecode::new(b"\x1bLJ\x02abd".to_vec());
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.hash, c.hash);
    }

    #[test]
    fn a_cycle_is_one_node_pointing_at_itself() {
        let mut t = TableNode::default();
        t.hash.push((Value::string(b"self"), Value::Node(0)));
        let m = Message {
            values: smallvec![Value::Node(0)],
            nodes: smallvec![Node::Table(t)],
        };
        match m.node(0) {
            Node::Table(t) => assert!(matches!(t.hash[0].1, Value::Node(0))),
            Node::Function(_) => panic!("expected a table"),
        }
    }
}
