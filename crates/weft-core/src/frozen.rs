//! Frozen tables: immutable deep snapshots that any thread reads without a lock.
//!
//! A snapshot is the [`Message`] the codec made of the table (so cycles and shared
//! sub-tables survive), plus a hash index per table for key lookups. A [`Frozen`] is a
//! view of one table inside a snapshot: reading a nested table gives another view of the
//! same snapshot, never a copy. Nothing in a snapshot changes after it is built, so
//! readers need no synchronisation beyond the `Arc`.

use crate::key::{Key, KeyRef};
use crate::message::{Message, Node, TableNode, Value};
use hashbrown::HashMap;
use std::sync::Arc;

struct Snapshot {
    msg: Message,
    /// Per node: key → position in that table's `hash` (empty for functions).
    index: Vec<HashMap<Key, u32>>,
}

/// A view of one table of a frozen snapshot. Cloning shares.
#[derive(Clone)]
pub struct Frozen {
    snap: Arc<Snapshot>,
    node: u32,
}

impl std::fmt::Debug for Frozen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Frozen(node {} of {:p})",
            self.node,
            Arc::as_ptr(&self.snap)
        )
    }
}

/// What a frozen table holds at a key.
#[derive(Debug)]
pub enum Entry<'a> {
    /// A number from the table's packed numeric run.
    Number(f64),
    /// Any other value; a [`Value::Node`] names a table of the same snapshot
    /// (see [`Frozen::child`]).
    Value(&'a Value),
}

/// Why a table cannot be frozen: what was found, and where.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("cannot freeze {path} ({what})")]
pub struct FreezeError {
    /// Where, e.g. `.config.handler` (empty for the root).
    pub path: String,
    /// What, e.g. `a function`.
    pub what: &'static str,
}

impl Frozen {
    /// Freeze the table that is `msg`'s first value. Functions and modules are refused:
    /// a snapshot holds data (and weft handles), not code.
    pub fn new(msg: Message) -> Result<Frozen, FreezeError> {
        let root = match msg.values.first() {
            Some(Value::Node(n)) if matches!(msg.node(*n), Node::Table(_)) => *n,
            _ => {
                return Err(FreezeError {
                    path: "argument 1".into(),
                    what: "not a table",
                })
            }
        };
        check(&msg, root)?;
        let index = msg
            .nodes
            .iter()
            .map(|node| match node {
                Node::Table(t) => t
                    .hash
                    .iter()
                    .enumerate()
                    .filter_map(|(pos, (k, _))| Some((KeyRef::from_value(k)?.to_key(), pos as u32)))
                    .collect(),
                Node::Function(_) => HashMap::new(),
            })
            .collect();
        Ok(Frozen {
            snap: Arc::new(Snapshot { msg, index }),
            node: root,
        })
    }

    fn table(&self) -> &TableNode {
        match self.snap.msg.node(self.node) {
            Node::Table(t) => t,
            Node::Function(_) => unreachable!("views only name tables (checked at freeze)"),
        }
    }

    /// The view of a table [`Entry::Value`] named with [`Value::Node`].
    pub fn child(&self, node: u32) -> Frozen {
        Frozen {
            snap: self.snap.clone(),
            node,
        }
    }

    /// Whether two views show the same table of the same snapshot.
    pub fn same(&self, other: &Frozen) -> bool {
        Arc::ptr_eq(&self.snap, &other.snap) && self.node == other.node
    }

    /// An identity for per-state caches: the address of this table inside its snapshot,
    /// unique among live snapshots' tables.
    pub fn address(&self) -> *const () {
        self.child_address(self.node)
    }

    /// [`Frozen::address`] of the view [`Frozen::child`] would make, without making it.
    pub fn child_address(&self, node: u32) -> *const () {
        self.snap.msg.node(node) as *const Node as *const ()
    }

    /// `#t`: the sequence length the table had when frozen.
    pub fn len(&self) -> usize {
        let t = self.table();
        t.numbers.len() + t.array.len()
    }

    /// Whether `#t` is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `t[i]` for an integer key (the hot path of array-like reads).
    pub fn get_int(&self, i: i64) -> Option<Entry<'_>> {
        let t = self.table();
        let n = t.numbers.len() as i64;
        if (1..=n).contains(&i) {
            return Some(Entry::Number(t.numbers[(i - 1) as usize]));
        }
        if i > n && i - n <= t.array.len() as i64 {
            let v = &t.array[(i - n - 1) as usize];
            return (!matches!(v, Value::Nil)).then_some(Entry::Value(v));
        }
        self.lookup(KeyRef::Int(i))
    }

    /// `t[k]` for any key.
    pub fn get(&self, key: KeyRef<'_>) -> Option<Entry<'_>> {
        match key {
            KeyRef::Int(i) => self.get_int(i),
            _ => self.lookup(key),
        }
    }

    fn lookup(&self, key: KeyRef<'_>) -> Option<Entry<'_>> {
        let pos = *self.snap.index[self.node as usize].get(&key)?;
        Some(Entry::Value(&self.table().hash[pos as usize].1))
    }

    /// The `pos`-th entry in iteration order (sequence first, then the other keys in the
    /// order they were frozen), skipping holes; returns the entry and the next position.
    pub fn entry_at(&self, mut pos: usize) -> Option<(EntryKey<'_>, Entry<'_>, usize)> {
        let t = self.table();
        let seq = t.numbers.len() + t.array.len();
        while pos < seq {
            let key = EntryKey::Index(pos as i64 + 1);
            if pos < t.numbers.len() {
                return Some((key, Entry::Number(t.numbers[pos]), pos + 1));
            }
            let v = &t.array[pos - t.numbers.len()];
            if !matches!(v, Value::Nil) {
                return Some((key, Entry::Value(v), pos + 1));
            }
            pos += 1;
        }
        let (k, v) = t.hash.get(pos - seq)?;
        Some((EntryKey::Value(k), Entry::Value(v), pos + 1))
    }

    /// A message holding a plain copy of this table and everything reachable from it
    /// (for `t:totable()`): the snapshot's own message for the root view, otherwise the
    /// reachable nodes renumbered.
    pub fn to_message(&self) -> std::borrow::Cow<'_, Message> {
        let msg = &self.snap.msg;
        if msg
            .values
            .first()
            .is_some_and(|v| matches!(v, Value::Node(n) if *n == self.node))
        {
            return std::borrow::Cow::Borrowed(msg);
        }
        let mut renumber: HashMap<u32, u32> = HashMap::new();
        let mut order = vec![self.node];
        renumber.insert(self.node, 0);
        let mut i = 0;
        while i < order.len() {
            for v in node_values(msg.node(order[i])) {
                if let Value::Node(n) = v {
                    if !renumber.contains_key(n) {
                        renumber.insert(*n, order.len() as u32);
                        order.push(*n);
                    }
                }
            }
            i += 1;
        }
        let remap = |v: &Value| match v {
            Value::Node(n) => Value::Node(renumber[n]),
            other => other.clone(),
        };
        let nodes = order
            .iter()
            .map(|&n| match msg.node(n) {
                Node::Table(t) => Node::Table(TableNode {
                    numbers: t.numbers.clone(),
                    array: t.array.iter().map(remap).collect(),
                    hash: t.hash.iter().map(|(k, v)| (remap(k), remap(v))).collect(),
                }),
                Node::Function(_) => unreachable!("frozen snapshots hold no functions"),
            })
            .collect();
        std::borrow::Cow::Owned(Message {
            values: crate::message::smallvec![Value::Node(0)],
            nodes,
        })
    }
}

/// The key of an entry met while iterating.
#[derive(Debug)]
pub enum EntryKey<'a> {
    /// A sequence position (1-based).
    Index(i64),
    /// Any other key, as frozen (a [`Value::Node`] key is a table of the snapshot).
    Value(&'a Value),
}

fn node_values(node: &Node) -> Box<dyn Iterator<Item = &Value> + '_> {
    match node {
        Node::Table(t) => Box::new(
            t.array
                .iter()
                .chain(t.hash.iter().flat_map(|(k, v)| [k, v])),
        ),
        Node::Function(f) => Box::new(f.upvalues.iter()),
    }
}

/// Refuse functions and modules anywhere reachable from `root`, naming the first path.
fn check(msg: &Message, root: u32) -> Result<(), FreezeError> {
    let mut parent: HashMap<u32, (u32, String)> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([root]);
    parent.insert(root, (u32::MAX, String::new()));
    let path_to = |parent: &HashMap<u32, (u32, String)>, mut n: u32, last: String| {
        let mut segments = vec![last];
        while let Some((p, seg)) = parent.get(&n) {
            segments.push(seg.clone());
            n = *p;
        }
        segments.reverse();
        segments.concat()
    };
    while let Some(n) = queue.pop_front() {
        let Node::Table(t) = msg.node(n) else {
            unreachable!("only tables are queued")
        };
        // Segments are only formatted for tables and refusals: a 10⁶-element list of
        // numbers must not cost 10⁶ strings.
        let offset = t.numbers.len();
        let indexed = t
            .array
            .iter()
            .enumerate()
            .map(|(i, v)| (Place::Index(offset + i + 1), v));
        let keyed = t
            .hash
            .iter()
            .flat_map(|(k, v)| [(Place::KeyOf(k), k), (Place::ValueOf(k), v)]);
        for (place, v) in indexed.chain(keyed) {
            let what = match v {
                Value::Module(_) => Some("a module value: freeze data, not code"),
                Value::Node(c) => match msg.node(*c) {
                    Node::Function(_) => Some("a function: freeze data, not code"),
                    Node::Table(_) => {
                        if !parent.contains_key(c) {
                            parent.insert(*c, (n, place.render()));
                            queue.push_back(*c);
                        }
                        None
                    }
                },
                _ => None,
            };
            if let Some(what) = what {
                return Err(FreezeError {
                    path: path_to(&parent, n, place.render()),
                    what,
                });
            }
        }
    }
    Ok(())
}

/// Where a value sits in its table, rendered only when needed.
enum Place<'a> {
    Index(usize),
    KeyOf(&'a Value),
    ValueOf(&'a Value),
}

impl Place<'_> {
    fn render(&self) -> String {
        match self {
            Place::Index(i) => format!("[{i}]"),
            Place::KeyOf(k) => format!("{} (a key)", segment(k)),
            Place::ValueOf(k) => segment(k),
        }
    }
}

fn segment(k: &Value) -> String {
    match k {
        Value::Int(i) => format!("[{i}]"),
        Value::Num(n) => format!("[{n}]"),
        Value::Bool(b) => format!("[{b}]"),
        _ => match k.as_bytes() {
            Some(s) => format!(".{}", String::from_utf8_lossy(s)),
            None => "[a table]".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{smallvec, Bytecode, FunctionNode};

    fn table(numbers: Vec<f64>, array: Vec<Value>, hash: Vec<(Value, Value)>) -> Node {
        Node::Table(TableNode {
            numbers,
            array: array.into(),
            hash,
        })
    }

    #[test]
    fn reads_sequence_hash_and_nested_views() {
        let msg = Message {
            values: smallvec![Value::Node(0)],
            nodes: smallvec::smallvec![
                table(
                    vec![1.5, 2.5],
                    vec![Value::string(b"three"), Value::Nil, Value::Int(5)],
                    vec![
                        (Value::string(b"child"), Value::Node(1)),
                        (Value::Num(7.0), Value::Bool(true)),
                    ],
                ),
                table(
                    vec![],
                    vec![],
                    vec![(Value::string(b"back"), Value::Node(0))]
                ),
            ],
        };
        let f = Frozen::new(msg).unwrap();
        assert_eq!(f.len(), 5);
        assert!(matches!(f.get_int(2), Some(Entry::Number(n)) if n == 2.5));
        assert!(matches!(f.get_int(3), Some(Entry::Value(v)) if v.as_bytes() == Some(b"three")));
        assert!(f.get_int(4).is_none());
        assert!(matches!(
            f.get_int(7),
            Some(Entry::Value(Value::Bool(true)))
        ));
        let Some(Entry::Value(Value::Node(c))) = f.get(KeyRef::Str(b"child")) else {
            panic!()
        };
        let child = f.child(*c);
        let Some(Entry::Value(Value::Node(back))) = child.get(KeyRef::Str(b"back")) else {
            panic!()
        };
        assert!(f.child(*back).same(&f));
        let mut keys = vec![];
        let mut pos = 0;
        while let Some((k, _, next)) = f.entry_at(pos) {
            keys.push(format!("{k:?}"));
            pos = next;
        }
        assert_eq!(
            keys.len(),
            6,
            "{keys:?}: 4 sequence entries (hole skipped) and 2 others"
        );
        let sub = child.to_message();
        assert_eq!(sub.nodes.len(), 2, "the child reaches the root back");
    }

    #[test]
    fn refuses_functions_with_their_path() {
        let code = Arc::new(Bytecode::new(vec![1, 2, 3]));
        let msg = Message {
            values: smallvec![Value::Node(0)],
            nodes: smallvec::smallvec![
                table(
                    vec![],
                    vec![],
                    vec![(Value::string(b"config"), Value::Node(1))]
                ),
                table(
                    vec![],
                    vec![],
                    vec![(Value::string(b"handler"), Value::Node(2))]
                ),
                Node::Function(FunctionNode {
                    code,
                    upvalues: vec![],
                    env: None
                }),
            ],
        };
        let err = Frozen::new(msg).unwrap_err();
        assert_eq!(err.path, ".config.handler");
        assert!(err
            .to_string()
            .starts_with("cannot freeze .config.handler (a function"));
        assert!(Frozen::new(Message::single(Value::Int(1))).is_err());
    }

    /// Property tests: proptest builds flat tables; Miri would take too long on them.
    mod properties {
        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        fn value() -> impl Strategy<Value = Value> {
            prop_oneof![
                any::<i64>().prop_map(Value::Int),
                any::<bool>().prop_map(Value::Bool),
                "[a-z]{0,20}".prop_map(|s| Value::string(s.as_bytes())),
            ]
        }

        fn same(got: Option<Entry<'_>>, want: &Value) -> bool {
            match (got, want) {
                (Some(Entry::Value(Value::Int(a))), Value::Int(b)) => a == b,
                (Some(Entry::Value(Value::Bool(a))), Value::Bool(b)) => a == b,
                (Some(Entry::Value(v)), Value::Str(_) | Value::ShortStr { .. }) => {
                    v.as_bytes() == want.as_bytes()
                }
                _ => false,
            }
        }

        proptest! {
            /// A frozen table answers every key as the table it was made from does (the
            /// numeric run, the sequence with holes, integer and string keys in the hash),
            /// misses every other key, and lists each present entry once.
            #[test]
            #[cfg_attr(miri, ignore = "hundreds of generated cases take too long under Miri")]
            fn lookups_match_the_table(
                numbers in proptest::collection::vec(-1e9f64..1e9, 0..8),
                array in proptest::collection::vec(proptest::option::of(value()), 0..12),
                named in proptest::collection::btree_map("[a-z]{1,12}", value(), 0..12),
                far in proptest::collection::btree_map(100i64..1000, value(), 0..6),
            ) {
                let mut hash: Vec<(Value, Value)> = named
                    .iter()
                    .map(|(k, v)| (Value::string(k.as_bytes()), v.clone()))
                    .collect();
                hash.extend(far.iter().map(|(k, v)| (Value::Int(*k), v.clone())));
                let seq: Vec<Value> = array.iter().map(|v| v.clone().unwrap_or(Value::Nil)).collect();
                let msg = Message {
                    values: smallvec![Value::Node(0)],
                    nodes: smallvec::smallvec![table(numbers.clone(), seq, hash)],
                };
                let f = Frozen::new(msg).unwrap();
                for (i, n) in numbers.iter().enumerate() {
                    let got = f.get_int(i as i64 + 1);
                    prop_assert!(matches!(got, Some(Entry::Number(x)) if x == *n), "key {}", i + 1);
                }
                let mut want: BTreeMap<i64, &Value> = BTreeMap::new();
                for (i, v) in array.iter().enumerate() {
                    let key = (numbers.len() + i + 1) as i64;
                    match v {
                        Some(v) => {
                            prop_assert!(same(f.get_int(key), v), "key {}", key);
                            want.insert(key, v);
                        }
                        None => prop_assert!(f.get_int(key).is_none(), "hole {}", key),
                    }
                }
                for (k, v) in &far {
                    prop_assert!(same(f.get_int(*k), v), "key {}", k);
                    prop_assert!(same(f.get(KeyRef::Int(*k)), v), "key {}", k);
                }
                for (k, v) in &named {
                    prop_assert!(same(f.get(KeyRef::Str(k.as_bytes())), v), "key {}", k);
                }
                prop_assert!(f.get(KeyRef::Str(b"NOT-A-KEY")).is_none());
                prop_assert!(f.get_int(0).is_none() && f.get_int(-1).is_none());
                prop_assert!(f.get_int(1000).is_none());
                let mut listed = 0;
                let mut pos = 0;
                while let Some((_, _, next)) = f.entry_at(pos) {
                    listed += 1;
                    pos = next;
                }
                let present = numbers.len() + want.len() + named.len() + far.len();
                prop_assert_eq!(listed, present);
            }
        }
    }
}
