//! LuaJIT FFI entry points for the commonest channel items: numbers, and small flat
//! tables ("rows" such as `{i, "x"}`: keys exactly `1..=n`, `n <= ROW_MAX`, every value a
//! number, string or boolean, no metatable).
//!
//! `lua/weft.lua` casts these addresses to function pointers, checks the shape in Lua and
//! fills an array of [`Cell`]s, so a LuaJIT loop of pushes or pops is compiled to direct
//! calls: no `lua_CFunction` (which ends a trace), no walk of the table through the C API.
//! A row becomes exactly the [`Message`] the general encoder makes of the same table, so
//! either side may use either path; anything else takes the general functions.
//!
//! Result codes: 0 a number (or a pushed item), 1 timeout, 2 closed, 3 cancelled,
//! 4 (pop) the next item is neither a number nor a row and was left for the general pop,
//! 5 (pop) a row, -1 internal error (the caller falls back to the general path). A
//! timeout that is not finite means "no timeout".

use super::{cancellation_point, hold};
use std::cell::RefCell;
use std::ffi::{c_char, c_int};
use std::mem::ManuallyDrop;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use weft_core::channel::{PopError, PushError};
use weft_core::message::{smallvec, Message, Node, Sequence, TableNode, Value};
use weft_core::{cancel, Channel, Deadline};

const DONE: c_int = 0;
const TIMEOUT: c_int = 1;
const CLOSED: c_int = 2;
const CANCELLED: c_int = 3;
const NOT_FAST: c_int = 4;
const ROW: c_int = 5;
const INTERNAL: c_int = -1;

/// The most values a row carries; `lua/weft.lua` allocates this many cells.
pub(crate) const ROW_MAX: usize = 8;

/// [`Cell::kind`] of a number (`num`).
const NUMBER: i32 = 0;
/// [`Cell::kind`] of a string (`str`, `len` bytes).
const STRING: i32 = 1;
/// [`Cell::kind`] of a boolean (`num` 0 or 1).
const BOOLEAN: i32 = 2;

/// One value of a row, as `lua/weft.lua` declares it:
/// `struct { double num; const char *str; size_t len; int32_t kind; }`.
#[repr(C)]
pub(crate) struct Cell {
    num: f64,
    str: *const c_char,
    len: usize,
    kind: i32,
}

thread_local! {
    /// The last row popped on this thread: its strings' bytes stay here, where the popped
    /// cells point, until the next pop on this thread (the caller copies them at once).
    static LAST_ROW: RefCell<Option<Message>> = const { RefCell::new(None) };
}

fn deadline(timeout: f64) -> Deadline {
    Deadline::after_secs(Some(timeout))
}

fn push_code(pushed: Result<(), PushError>) -> c_int {
    match pushed {
        Ok(()) => DONE,
        Err(PushError::Timeout) => TIMEOUT,
        Err(PushError::Closed) => CLOSED,
        Err(PushError::Cancelled) => CANCELLED,
    }
}

fn pop_code(e: PopError) -> c_int {
    match e {
        PopError::Timeout => TIMEOUT,
        PopError::Closed => CLOSED,
        PopError::Cancelled => CANCELLED,
    }
}

/// Push the message `make` builds into the channel behind `ch`, as the running task.
/// Inlined, and the message built in place: a number's whole push is ~80 ns, and moving
/// its message (144 bytes) through an out-of-line call cost ~20 of them.
#[inline(always)]
fn push(ch: *const Channel, make: impl FnOnce() -> Message, timeout: f64) -> c_int {
    // SAFETY: `ch` comes from `channel_ptr` for a handle the caller keeps alive;
    // ManuallyDrop leaves the reference count as it was.
    let ch = ManuallyDrop::new(unsafe { Arc::from_raw(ch) });
    cancel::with_current(|me| {
        push_code(cancellation_point(
            ch.push(make(), deadline(timeout), me),
            me,
        ))
    })
}

/// `int push_number(void *channel, double v, double timeout)`.
pub(crate) extern "C" fn push_number(ch: *const Channel, v: f64, timeout: f64) -> c_int {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        push(ch, || Message::single(Value::Num(v)), timeout)
    }))
    .unwrap_or(INTERNAL)
}

/// `int push_row(void *channel, const cell *cells, int n, double timeout)`: the table
/// `{cells[0], ..., cells[n-1]}`.
pub(crate) extern "C" fn push_row(
    ch: *const Channel,
    cells: *const Cell,
    n: c_int,
    timeout: f64,
) -> c_int {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n == 0 || n > ROW_MAX {
            return INTERNAL;
        }
        // SAFETY: `cells` points at the caller's array of at least `n` cells, each string
        // pointer at `len` bytes of a Lua string the caller's table keeps alive.
        let cells = unsafe { std::slice::from_raw_parts(cells, n) };
        let mut array = Sequence::with_capacity(n);
        for c in cells {
            array.push(match c.kind {
                NUMBER => Value::Num(c.num),
                // SAFETY: as above.
                STRING => Value::string(unsafe { std::slice::from_raw_parts(c.str.cast(), c.len) }),
                BOOLEAN => Value::Bool(c.num != 0.0),
                _ => return INTERNAL,
            });
        }
        // What the general encoder makes of a short sequence (no packed numbers: those
        // start at 64 elements).
        let table = TableNode {
            numbers: Vec::new(),
            array,
            hash: Vec::new(),
        };
        let msg = || Message {
            values: smallvec![Value::Node(0)],
            nodes: smallvec![Node::Table(table)],
        };
        push(ch, msg, timeout)
    }))
    .unwrap_or(INTERNAL)
}

fn as_number(m: &Message) -> Option<f64> {
    match (m.values.as_slice(), m.nodes.is_empty()) {
        ([Value::Num(n)], true) => Some(*n),
        ([Value::Int(i)], true) => Some(*i as f64),
        _ => None,
    }
}

/// The row `m` holds, if it is one: a single plain table whose keys are `1..=n`.
fn as_row(m: &Message) -> Option<&TableNode> {
    let ([Value::Node(0)], [Node::Table(t)]) = (m.values.as_slice(), m.nodes.as_slice()) else {
        return None;
    };
    let n = t.numbers.len() + t.array.len();
    let plain = |v: &Value| {
        matches!(
            v,
            Value::Num(_) | Value::Int(_) | Value::Bool(_) | Value::ShortStr { .. } | Value::Str(_)
        )
    };
    (n > 0 && n <= ROW_MAX && t.hash.is_empty() && t.array.iter().all(plain)).then_some(t)
}

/// Describe row `t` in `out` (room for [`ROW_MAX`] cells); returns the count.
fn fill_cells(t: &TableNode, out: &mut [Cell]) -> usize {
    let mut count = 0;
    for &num in &t.numbers {
        out[count] = Cell {
            num,
            str: std::ptr::null(),
            len: 0,
            kind: NUMBER,
        };
        count += 1;
    }
    for v in &t.array {
        let (num, str, len, kind) = match v {
            Value::Num(n) => (*n, std::ptr::null(), 0, NUMBER),
            Value::Int(i) => (*i as f64, std::ptr::null(), 0, NUMBER),
            Value::Bool(b) => (f64::from(u8::from(*b)), std::ptr::null(), 0, BOOLEAN),
            other => {
                let bytes = other.as_bytes().expect("as_row admits only plain values");
                (0.0, bytes.as_ptr().cast(), bytes.len(), STRING)
            }
        };
        out[count] = Cell {
            num,
            str,
            len,
            kind,
        };
        count += 1;
    }
    count
}

/// `int pop_item(void *channel, double timeout, cell *out, int32_t *count)`: a number
/// in `out[0].num` (code 0), or a row in `out[0..*count]` (code 5) whose strings stay
/// valid until the next pop on this thread.
pub(crate) extern "C" fn pop_item(
    ch: *const Channel,
    timeout: f64,
    out: *mut Cell,
    count: *mut i32,
) -> c_int {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as in `push`.
        let ch = ManuallyDrop::new(unsafe { Arc::from_raw(ch) });
        cancel::with_current(
            |me| match cancellation_point(ch.pop(deadline(timeout), me), me) {
                Ok(m) => match as_number(&m) {
                    Some(n) => {
                        // SAFETY: `out` points at the caller's ROW_MAX cells.
                        unsafe { (*out).num = n };
                        DONE
                    }
                    None => popped_other(&ch, m, out, count),
                },
                Err(e) => pop_code(e),
            },
        )
    }))
    .unwrap_or(INTERNAL)
}

/// [`pop_item`] of anything but a number: a row goes to `out`, anything else is held for
/// the general pop. Out of line, to keep the number path short.
#[inline(never)]
fn popped_other(ch: &Channel, m: Message, out: *mut Cell, count: *mut i32) -> c_int {
    if as_row(&m).is_none() {
        hold(ch, m);
        return NOT_FAST;
    }
    LAST_ROW.with(|last| {
        let mut last = last.borrow_mut();
        let row = as_row(last.insert(m)).expect("checked above");
        // SAFETY: `out` points at the caller's ROW_MAX cells; the strings they get point
        // into the message kept in LAST_ROW.
        let cells = unsafe { std::slice::from_raw_parts_mut(out, ROW_MAX) };
        let n = fill_cells(row, cells);
        // SAFETY: `count` points at the caller's int32_t.
        unsafe { *count = n as i32 };
    });
    ROW
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(kind: i32, num: f64, s: &[u8]) -> Cell {
        Cell {
            num,
            str: s.as_ptr().cast(),
            len: s.len(),
            kind,
        }
    }

    fn blank() -> Cell {
        cell(NUMBER, 0.0, b"")
    }

    #[test]
    fn a_row_and_a_number_come_back_as_cells() {
        let ch = weft_core::Channel::new(None);
        let long = b"a string longer than the inline limit of a value";
        let cells = [
            cell(NUMBER, 7.5, b""),
            cell(STRING, 0.0, b"x"),
            cell(BOOLEAN, 1.0, b""),
            cell(STRING, 0.0, long),
        ];
        let p = Arc::as_ptr(&ch);
        assert_eq!(push_row(p, cells.as_ptr(), 4, f64::INFINITY), DONE);
        assert_eq!(push_number(p, 3.25, f64::INFINITY), DONE);

        let mut out: Vec<Cell> = (0..ROW_MAX).map(|_| blank()).collect();
        let mut n = 0;
        assert_eq!(pop_item(p, 0.0, out.as_mut_ptr(), &mut n), ROW);
        assert_eq!(n, 4);
        assert_eq!((out[0].kind, out[0].num), (NUMBER, 7.5));
        assert_eq!(out[2].kind, BOOLEAN);
        assert_eq!(out[2].num, 1.0);
        for (c, want) in [(&out[1], &b"x"[..]), (&out[3], &long[..])] {
            assert_eq!(c.kind, STRING);
            // SAFETY: the popped row is kept in LAST_ROW until the next pop.
            let bytes = unsafe { std::slice::from_raw_parts(c.str.cast::<u8>(), c.len) };
            assert_eq!(bytes, want);
        }
        assert_eq!(pop_item(p, 0.0, out.as_mut_ptr(), &mut n), DONE);
        assert_eq!(out[0].num, 3.25);
        assert_eq!(pop_item(p, 0.0, out.as_mut_ptr(), &mut n), TIMEOUT);
        ch.close();
        assert_eq!(push_number(p, 1.0, 0.0), CLOSED);
        assert_eq!(pop_item(p, 0.0, out.as_mut_ptr(), &mut n), CLOSED);
    }

    #[test]
    fn a_row_is_the_message_the_general_encoder_makes_of_the_same_table() {
        // SAFETY: a test state with the full standard library, as weft workers have.
        let lua = unsafe { mlua::Lua::unsafe_new() };
        crate::open(&lua).unwrap();
        let long = "a string longer than the inline limit of a value";
        let table: mlua::MultiValue = lua
            .load(format!("return {{7.5, 'x', true, '{long}'}}"))
            .eval()
            .unwrap();
        let general = crate::encode_values(&lua, table).unwrap();

        let ch = weft_core::Channel::new(None);
        let cells = [
            cell(NUMBER, 7.5, b""),
            cell(STRING, 0.0, b"x"),
            cell(BOOLEAN, 1.0, b""),
            cell(STRING, 0.0, long.as_bytes()),
        ];
        assert_eq!(push_row(Arc::as_ptr(&ch), cells.as_ptr(), 4, 0.0), DONE);
        let fast = ch.try_pop().expect("pushed");
        assert_eq!(format!("{fast:?}"), format!("{general:?}"));
    }

    #[test]
    fn bad_rows_are_refused_without_pushing() {
        let ch = weft_core::Channel::new(None);
        let p = Arc::as_ptr(&ch);
        let cells: Vec<Cell> = (0..ROW_MAX + 1).map(|_| blank()).collect();
        assert_eq!(push_row(p, cells.as_ptr(), 0, 0.0), INTERNAL);
        assert_eq!(
            push_row(p, cells.as_ptr(), ROW_MAX as c_int + 1, 0.0),
            INTERNAL
        );
        let odd = [cell(9, 0.0, b"")];
        assert_eq!(push_row(p, odd.as_ptr(), 1, 0.0), INTERNAL);
        assert!(ch.is_empty());
    }

    #[test]
    fn other_items_are_left_for_the_general_pop() {
        let ch = weft_core::Channel::new(None);
        let p = Arc::as_ptr(&ch);
        let mut nested = TableNode::default();
        nested.hash.push((Value::string(b"k"), Value::Num(1.0)));
        let msg = Message {
            values: smallvec![Value::Node(0)],
            nodes: smallvec![Node::Table(nested)],
        };
        ch.push(msg, Deadline::Never, None).unwrap();
        let mut out: Vec<Cell> = (0..ROW_MAX).map(|_| blank()).collect();
        let mut n = 0;
        assert_eq!(pop_item(p, 0.0, out.as_mut_ptr(), &mut n), NOT_FAST);
        let held = super::super::take_held(&ch).expect("held for the general pop");
        assert!(matches!(&held.nodes[0], Node::Table(t) if t.hash.len() == 1));
    }
}
