//! A [`Message`] as bytes, to cross a process boundary (MPI ranks: `weft.mpi`).
//!
//! Within a process a message points at shared objects ([`Handle`]s); between processes
//! nothing can be shared, so [`encode`] copies what can be copied and refuses the rest:
//!
//! - scalars, strings, tables and functions (bytecode, upvalues, environment) as the
//!   message holds them; modules by name (the receiver `require`s them);
//! - an array ([`Handle::Array`]) as its dtype, shape and element bytes in one block (no
//!   per-element encoding); it arrives as a new array owned by the receiver;
//! - any other handle (channel, task, pool, counter, shared or frozen table) is refused:
//!   it names state that lives in the sending process only.
//!
//! Both sides run the same weft build (bytecode is not portable between Lua flavours),
//! so the format has no versioning beyond a magic word; integers are little-endian.
//! [`decode`] checks every length against the bytes it has and fails with a message
//! rather than panicking on a truncated or foreign buffer.

use crate::array::{Array, DType};
use crate::handle::Handle;
use crate::message::{
    Bytecode, FunctionNode, Message, ModuleName, ModuleRef, Node, Nodes, TableNode, Value, Values,
};
use std::sync::Arc;

/// The first bytes of every encoded message.
const MAGIC: &[u8; 4] = b"wft1";

// Value tags.
const NIL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const NUM: u8 = 4;
const STR: u8 = 5;
const NODE: u8 = 6;
const MODULE: u8 = 7;
const ARRAY: u8 = 8;

// Node tags.
const TABLE: u8 = 0;
const FUNCTION: u8 = 1;

/// Why a message cannot be encoded or decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireError {
    /// A handle that names state of this process only.
    #[error("a weft {0} cannot be sent to another process (only arrays are copied; send its contents instead)")]
    Unsendable(&'static str),
    /// The bytes are not a message this build wrote.
    #[error("malformed message bytes ({0})")]
    Malformed(&'static str),
    /// An array could not be allocated on the receiving side.
    #[error("cannot receive an array: {0}")]
    Array(String),
}

/// The message as bytes. Arrays' elements are copied; handles of other kinds are refused.
pub fn encode(msg: &Message) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    encode_into(msg, &mut out)?;
    Ok(out)
}

/// [`encode`] into `out` (cleared first), reusing its memory: a caller sending many
/// large values keeps one buffer instead of faulting in fresh pages for each.
pub fn encode_into(msg: &Message, out: &mut Vec<u8>) -> Result<(), WireError> {
    out.clear();
    out.reserve(64 + payload_hint(msg));
    let mut w = Writer {
        out: std::mem::take(out),
    };
    let result = write_message(&mut w, msg);
    *out = w.out;
    result
}

fn write_message(w: &mut Writer, msg: &Message) -> Result<(), WireError> {
    w.out.extend_from_slice(MAGIC);
    w.len(msg.values.len());
    for v in &msg.values {
        w.value(v)?;
    }
    w.len(msg.nodes.len());
    for n in &msg.nodes {
        match n {
            Node::Table(t) => {
                w.out.push(TABLE);
                w.len(t.numbers.len());
                for x in &t.numbers {
                    w.out.extend_from_slice(&x.to_le_bytes());
                }
                w.len(t.array.len());
                for v in &t.array {
                    w.value(v)?;
                }
                w.len(t.hash.len());
                for (k, v) in &t.hash {
                    w.value(k)?;
                    w.value(v)?;
                }
            }
            Node::Function(f) => {
                w.out.push(FUNCTION);
                w.bytes(&f.code.bytes);
                w.len(f.upvalues.len());
                for v in &f.upvalues {
                    w.value(v)?;
                }
                match &f.env {
                    None => w.out.push(0),
                    Some(v) => {
                        w.out.push(1);
                        w.value(v)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Bytes the arrays of a message's root values will take (to size the buffer once).
fn payload_hint(msg: &Message) -> usize {
    msg.values
        .iter()
        .map(|v| match v {
            Value::Handle(Handle::Array(a)) => a.byte_len() + 32,
            _ => 0,
        })
        .sum()
}

struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn len(&mut self, n: usize) {
        self.out.extend_from_slice(&(n as u64).to_le_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.out.extend_from_slice(b);
    }

    fn value(&mut self, v: &Value) -> Result<(), WireError> {
        match v {
            Value::Nil => self.out.push(NIL),
            Value::Bool(false) => self.out.push(FALSE),
            Value::Bool(true) => self.out.push(TRUE),
            Value::Int(i) => {
                self.out.push(INT);
                self.out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Num(n) => {
                self.out.push(NUM);
                self.out.extend_from_slice(&n.to_le_bytes());
            }
            Value::ShortStr { .. } | Value::Str(_) => {
                self.out.push(STR);
                self.bytes(v.as_bytes().unwrap_or_default());
            }
            Value::Node(n) => {
                self.out.push(NODE);
                self.out.extend_from_slice(&n.to_le_bytes());
            }
            Value::Module(m) => {
                self.out.push(MODULE);
                self.len(m.names.len());
                for name in &m.names {
                    self.bytes(name.module.as_bytes());
                    match &name.field {
                        None => self.out.push(0),
                        Some(f) => {
                            self.out.push(1);
                            self.bytes(f);
                        }
                    }
                }
            }
            Value::Handle(Handle::Array(a)) => {
                self.out.push(ARRAY);
                let dtype = DType::ALL
                    .iter()
                    .position(|d| *d == a.dtype())
                    .expect("every dtype is in ALL");
                self.out.push(dtype as u8);
                let (rows, cols) = a.shape();
                self.len(rows);
                self.len(cols.map_or(u64::MAX as usize, |c| c));
                // Writes through weft's API wait for the copy (the lease refuses them).
                let _lease = a.lease("weft.mpi");
                // SAFETY: the view's byte_len bytes from as_ptr lie inside its live
                // storage; the lease keeps weft's own writers out while they are copied
                // (raw pointers are the user's duty, as for every compute call).
                let bytes = unsafe { std::slice::from_raw_parts(a.as_ptr(), a.byte_len()) };
                self.out.extend_from_slice(bytes);
            }
            Value::Handle(h) => return Err(WireError::Unsendable(handle_kind(h))),
        }
        Ok(())
    }
}

/// The noun for a handle's kind in errors.
fn handle_kind(h: &Handle) -> &'static str {
    match h {
        Handle::Task(_) => "task",
        Handle::Channel(_) => "channel",
        Handle::Pool(_) => "pool",
        Handle::Frozen(_) => "frozen table",
        Handle::Counter(_) => "counter",
        Handle::Table(_) => "shared table",
        Handle::Array(_) => "array",
    }
}

/// The message [`encode`] wrote into `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4)? != MAGIC {
        return Err(WireError::Malformed("not a weft message"));
    }
    let count = r.count(1)?;
    let mut values = Values::with_capacity(count);
    for _ in 0..count {
        values.push(r.value()?);
    }
    let count = r.count(1)?;
    let mut nodes = Nodes::with_capacity(count);
    for _ in 0..count {
        nodes.push(match r.byte()? {
            TABLE => {
                let n = r.count(8)?;
                let numbers = r
                    .take(n * 8)?
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect();
                let n = r.count(1)?;
                let array = (0..n).map(|_| r.value()).collect::<Result<_, _>>()?;
                let n = r.count(2)?;
                let hash = (0..n)
                    .map(|_| Ok((r.value()?, r.value()?)))
                    .collect::<Result<_, WireError>>()?;
                Node::Table(TableNode {
                    numbers,
                    array,
                    hash,
                })
            }
            FUNCTION => {
                let n = r.count(1)?;
                let code = Arc::new(Bytecode::new(r.take(n)?.to_vec()));
                let n = r.count(1)?;
                let upvalues = (0..n).map(|_| r.value()).collect::<Result<_, _>>()?;
                let env = match r.byte()? {
                    0 => None,
                    1 => Some(r.value()?),
                    _ => return Err(WireError::Malformed("bad environment flag")),
                };
                Node::Function(FunctionNode {
                    code,
                    upvalues,
                    env,
                })
            }
            _ => return Err(WireError::Malformed("unknown node kind")),
        });
    }
    if r.at != bytes.len() {
        return Err(WireError::Malformed("trailing bytes"));
    }
    let msg = Message { values, nodes };
    check_nodes(&msg)?;
    Ok(msg)
}

/// Every node reference points at a node (the decoder indexes without checking).
fn check_nodes(msg: &Message) -> Result<(), WireError> {
    let n = msg.nodes.len() as u32;
    let ok = |v: &Value| !matches!(v, Value::Node(i) if *i >= n);
    let inside = msg.nodes.iter().all(|node| match node {
        Node::Table(t) => t.array.iter().all(ok) && t.hash.iter().all(|(k, v)| ok(k) && ok(v)),
        Node::Function(f) => f.upvalues.iter().all(ok) && f.env.as_ref().is_none_or(ok),
    });
    if inside && msg.values.iter().all(ok) {
        Ok(())
    } else {
        Err(WireError::Malformed("a reference to a missing table"))
    }
}

struct Reader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], WireError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(WireError::Malformed("truncated"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// A count of items that take at least `min_bytes` each: larger than what is left
    /// means the bytes are bad (and must not size an allocation).
    fn count(&mut self, min_bytes: usize) -> Result<usize, WireError> {
        let n = self.u64()?;
        let left = (self.bytes.len() - self.at) as u64;
        if n.saturating_mul(min_bytes as u64) > left {
            return Err(WireError::Malformed("a count larger than the message"));
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<&'b [u8], WireError> {
        let n = self.count(1)?;
        self.take(n)
    }

    fn value(&mut self) -> Result<Value, WireError> {
        Ok(match self.byte()? {
            NIL => Value::Nil,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            INT => Value::Int(self.u64()? as i64),
            NUM => Value::Num(f64::from_bits(self.u64()?)),
            STR => Value::string(self.string()?),
            NODE => Value::Node(u32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            )),
            MODULE => {
                let n = self.count(9)?;
                let mut names = Vec::with_capacity(n);
                for _ in 0..n {
                    let module = std::str::from_utf8(self.string()?)
                        .map_err(|_| WireError::Malformed("a module name is not UTF-8"))?;
                    let field = match self.byte()? {
                        0 => None,
                        1 => Some(self.string()?.into()),
                        _ => return Err(WireError::Malformed("bad module field flag")),
                    };
                    names.push(ModuleName {
                        module: module.into(),
                        field,
                    });
                }
                if names.is_empty() {
                    return Err(WireError::Malformed("a module value without a name"));
                }
                Value::Module(Box::new(ModuleRef { names }))
            }
            ARRAY => {
                let dtype = *DType::ALL
                    .get(self.byte()? as usize)
                    .ok_or(WireError::Malformed("unknown dtype"))?;
                let rows = self.u64()?;
                let cols = match self.u64()? {
                    u64::MAX => None,
                    c => Some(c),
                };
                let len = rows
                    .checked_mul(cols.unwrap_or(1))
                    .and_then(|n| n.checked_mul(dtype.size() as u64))
                    .filter(|&b| b <= (self.bytes.len() - self.at) as u64)
                    .ok_or(WireError::Malformed("an array larger than the message"))?;
                let data = self.take(len as usize)?;
                let mut a = Array::zeros_resident(dtype, rows as usize, cols.map(|c| c as usize))
                    .map_err(|e| WireError::Array(e.to_string()))?;
                a.bytes_mut()
                    .expect("a fresh array is unique and writable")
                    .copy_from_slice(data);
                Value::Handle(Handle::Array(Box::new(a)))
            }
            _ => return Err(WireError::Malformed("unknown value kind")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::Scalar;
    use crate::message::smallvec;

    fn round_trip(msg: &Message) -> Message {
        decode(&encode(msg).unwrap()).unwrap()
    }

    #[test]
    fn scalars_strings_and_modules_come_back_equal() {
        let module = Value::Module(Box::new(ModuleRef {
            names: vec![
                ModuleName {
                    module: "string".into(),
                    field: Some(b"rep"[..].into()),
                },
                ModuleName {
                    module: "math".into(),
                    field: None,
                },
            ],
        }));
        let long = vec![0xffu8; 300];
        let msg = Message {
            values: smallvec![
                Value::Nil,
                Value::Bool(true),
                Value::Bool(false),
                Value::Int(-7),
                Value::Num(f64::NAN),
                Value::Num(-0.0),
                Value::string(b"a\0b"),
                Value::string(&long),
                module.clone(),
            ],
            nodes: Nodes::new(),
        };
        let back = round_trip(&msg);
        assert_eq!(back.values.len(), 9);
        assert!(matches!(back.values[0], Value::Nil));
        assert!(matches!(back.values[1], Value::Bool(true)));
        assert!(matches!(back.values[2], Value::Bool(false)));
        assert!(matches!(back.values[3], Value::Int(-7)));
        assert!(matches!(back.values[4], Value::Num(n) if n.is_nan()));
        assert!(matches!(back.values[5], Value::Num(n) if n == 0.0 && n.is_sign_negative()));
        assert_eq!(back.values[6].as_bytes(), Some(&b"a\0b"[..]));
        assert_eq!(back.values[7].as_bytes(), Some(&long[..]));
        match (&back.values[8], &module) {
            (Value::Module(a), Value::Module(b)) => assert_eq!(a, b),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cyclic_table_and_a_function_keep_their_shape() {
        // node 0: {1.5, 2.5, "x", [node 0] = node 1}; node 1: a function whose upvalue is node 0
        let table = Node::Table(TableNode {
            numbers: vec![1.5, 2.5],
            array: smallvec![Value::string(b"x")],
            hash: vec![
                (Value::string(b"self"), Value::Node(0)),
                (Value::Node(0), Value::Node(1)),
            ],
        });
        let function = Node::Function(FunctionNode {
            code: Arc::new(Bytecode::new(vec![27, 76, 74, 2, 9])),
            upvalues: vec![Value::Node(0), Value::Nil],
            env: Some(Value::Node(0)),
        });
        let msg = Message {
            values: smallvec![Value::Node(1)],
            nodes: smallvec![table, function],
        };
        let back = round_trip(&msg);
        assert!(matches!(back.values[0], Value::Node(1)));
        match &back.nodes[0] {
            Node::Table(t) => {
                assert_eq!(t.numbers, [1.5, 2.5]);
                assert_eq!(t.array[0].as_bytes(), Some(&b"x"[..]));
                assert!(matches!(t.hash[0].1, Value::Node(0)));
                assert!(matches!(
                    (&t.hash[1].0, &t.hash[1].1),
                    (Value::Node(0), Value::Node(1))
                ));
            }
            other => panic!("{other:?}"),
        }
        match &back.nodes[1] {
            Node::Function(f) => {
                assert_eq!(&*f.code.bytes, &[27, 76, 74, 2, 9]);
                assert_eq!(f.code.hash, Bytecode::new(vec![27, 76, 74, 2, 9]).hash);
                assert!(matches!(f.upvalues[..], [Value::Node(0), Value::Nil]));
                assert!(matches!(f.env, Some(Value::Node(0))));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn arrays_of_every_dtype_arrive_as_new_arrays_with_the_same_elements() {
        for d in DType::ALL {
            for cols in [None, Some(3)] {
                let a = Array::zeros(d, 5, cols).unwrap();
                for i in 0..a.len() {
                    a.set(i, Scalar::Int(i as i64 * 7 % 100)).unwrap();
                }
                // a view into the middle rows: only its own bytes travel
                let view = a.slice_rows(1, 4).unwrap();
                let msg = Message::single(Value::Handle(Handle::Array(Box::new(view.clone()))));
                let back = round_trip(&msg);
                let Value::Handle(Handle::Array(b)) = &back.values[0] else {
                    panic!("{:?}", back.values[0])
                };
                assert_eq!((b.dtype(), b.shape()), (d, (3, cols)));
                assert!(!b.shares_storage(&a));
                for i in 0..b.len() {
                    assert_eq!(b.get(i), view.get(i), "{d:?} {cols:?} element {i}");
                }
            }
        }
    }

    #[test]
    fn handles_that_live_in_one_process_are_refused_by_kind() {
        let msg = Message::single(Value::Handle(Handle::Counter(Arc::new(
            crate::counter::Counter::new(3),
        ))));
        let err = encode(&msg).unwrap_err();
        assert_eq!(err, WireError::Unsendable("counter"));
        assert!(err.to_string().contains("weft counter cannot be sent"));
    }

    #[test]
    fn truncated_or_foreign_bytes_fail_without_panicking() {
        let a = Array::zeros(DType::F64, 4, None).unwrap();
        let msg = Message {
            values: smallvec![Value::Node(0), Value::Handle(Handle::Array(Box::new(a)))],
            nodes: smallvec![Node::Table(TableNode {
                numbers: vec![1.0; 3],
                array: smallvec![Value::string(&[1u8; 40])],
                hash: vec![],
            })],
        };
        let bytes = encode(&msg).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(
            decode(b"{\"json\": 1}").unwrap_err(),
            WireError::Malformed("not a weft message")
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode(&longer).unwrap_err(),
            WireError::Malformed("trailing bytes")
        );
        // a node reference past the nodes
        let dangling = Message {
            values: smallvec![Value::Node(5)],
            nodes: Nodes::new(),
        };
        assert!(decode(&encode(&dangling).unwrap()).is_err());
    }
}
