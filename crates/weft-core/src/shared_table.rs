//! The mutable shared table: effil-style shared state, one lock per operation.
//!
//! This is the slow path on purpose: every read takes the lock and copies the value out.
//! Data that does not change belongs in a frozen table; numbers that many threads bump
//! belong in a counter. It exists for the patterns that need a shared, changing map.

use crate::key::{Key, KeyRef};
use crate::message::{Message, Value};
use hashbrown::HashMap;
use parking_lot::Mutex;

/// A map from scalar keys to copied values.
#[derive(Debug, Default)]
pub struct SharedTable {
    map: Mutex<HashMap<Key, Message>>,
}

/// Why `add` could not add.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("the value at this key is not a number")]
pub struct NotANumber;

impl SharedTable {
    /// An empty table.
    pub fn new() -> SharedTable {
        SharedTable::default()
    }

    /// A copy of the value at `key`.
    pub fn get(&self, key: KeyRef<'_>) -> Option<Message> {
        self.map.lock().get(&key).cloned()
    }

    /// Store `value` at `key`; `None` removes the key.
    pub fn set(&self, key: KeyRef<'_>, value: Option<Message>) {
        let mut map = self.map.lock();
        match value {
            Some(v) => _ = map.insert(key.to_key(), v),
            None => _ = map.remove(&key),
        }
    }

    /// Add `delta` to the number at `key` (a missing key counts as 0) under the lock, and
    /// return the new value. Integers stay integers (wrapping like Lua 5.4); a float on
    /// either side gives a float.
    pub fn add(&self, key: KeyRef<'_>, delta: &Value) -> Result<Value, NotANumber> {
        let mut map = self.map.lock();
        let old = match map.get(&key).map(|m| m.values.first()) {
            None => Value::Int(0),
            Some(Some(v)) => v.clone(),
            Some(None) => return Err(NotANumber),
        };
        let new = match (&old, delta) {
            (Value::Int(a), Value::Int(b)) => Value::Int(a.wrapping_add(*b)),
            (Value::Int(a), Value::Num(b)) => Value::Num(*a as f64 + b),
            (Value::Num(a), Value::Int(b)) => Value::Num(a + *b as f64),
            (Value::Num(a), Value::Num(b)) => Value::Num(a + b),
            _ => return Err(NotANumber),
        };
        map.insert(key.to_key(), Message::single(new.clone()));
        Ok(new)
    }

    /// `#s`: a border of the integer keys, found as Lua finds one in a hash part
    /// (doubling, then bisection), so appending with `s[#s + 1] = v` stays cheap.
    pub fn border(&self) -> i64 {
        let map = self.map.lock();
        let has = |i: i64| map.contains_key(&KeyRef::Int(i));
        let count = map.len() as i64;
        if count > 0 && has(count) && !has(count + 1) {
            return count;
        }
        let (mut lo, mut hi) = (0i64, 1i64);
        while has(hi) {
            lo = hi;
            if hi > i64::MAX / 2 {
                return lo;
            }
            hi *= 2;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if has(mid) {
                lo = mid
            } else {
                hi = mid
            }
        }
        lo
    }

    /// A copy of every entry, taken under one lock.
    pub fn entries(&self) -> Vec<(Key, Message)> {
        self.map
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn add_is_atomic_and_keeps_integers() {
        // Miri interprets every step: fewer adds there, still interleaved across threads.
        let each: i64 = if cfg!(miri) { 50 } else { 5_000 };
        let s = Arc::new(SharedTable::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..each {
                        s.add(KeyRef::Str(b"hits"), &Value::Int(1)).unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let v = s.get(KeyRef::Str(b"hits")).unwrap();
        assert!(matches!(v.values[0], Value::Int(n) if n == 4 * each));
        assert!(
            matches!(s.add(KeyRef::Str(b"hits"), &Value::Num(0.5)), Ok(Value::Num(n)) if n == (4 * each) as f64 + 0.5)
        );
        s.set(
            KeyRef::Str(b"name"),
            Some(Message::single(Value::string(b"x"))),
        );
        assert!(matches!(
            s.add(KeyRef::Str(b"name"), &Value::Int(1)),
            Err(NotANumber)
        ));
    }

    #[test]
    fn border_follows_appends_and_removals() {
        let s = SharedTable::new();
        assert_eq!(s.border(), 0);
        for i in 1..=100 {
            s.set(
                KeyRef::Int(s.border() + 1),
                Some(Message::single(Value::Int(i))),
            );
        }
        assert_eq!(s.border(), 100);
        s.set(KeyRef::Int(100), None);
        assert_eq!(s.border(), 99);
        s.set(KeyRef::Str(b"x"), Some(Message::single(Value::Bool(true))));
        assert_eq!(s.border(), 99);
    }
}
