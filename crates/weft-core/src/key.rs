//! Table keys that can be hashed and looked up across threads (frozen and shared tables).
//!
//! Lua treats `t[1]` and `t[1.0]` as the same slot, so integral floats are normalised to
//! integers here; that also makes LuaJIT (floats only) and Lua 5.4 (integers) agree.

use crate::message::Value;
use std::hash::{Hash, Hasher};

/// `n` as an integer when it is integral and within i64's range (Lua's float-to-integer
/// rule for keys and for integer arguments).
pub fn integral(n: f64) -> Option<i64> {
    // i64::MIN as f64 is exactly -2^63, so the range is exactly i64's.
    (n.fract() == 0.0 && (i64::MIN as f64..-(i64::MIN as f64)).contains(&n)).then_some(n as i64)
}

/// An owned key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// A boolean key.
    Bool(bool),
    /// An integer, or a float with an integral value.
    Int(i64),
    /// Any other float, by its bits (NaN never becomes a key).
    Num(u64),
    /// A string.
    Str(Box<[u8]>),
}

/// A borrowed key, for lookups that must not allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRef<'a> {
    /// A boolean key.
    Bool(bool),
    /// An integer, or a float with an integral value.
    Int(i64),
    /// Any other float, by its bits.
    Num(u64),
    /// A string.
    Str(&'a [u8]),
}

impl<'a> KeyRef<'a> {
    /// The key a Lua number names; `None` for NaN, which Lua refuses as a key.
    pub fn number(n: f64) -> Option<KeyRef<'a>> {
        if n.is_nan() {
            None
        } else if let Some(i) = integral(n) {
            Some(KeyRef::Int(i))
        } else {
            Some(KeyRef::Num(n.to_bits()))
        }
    }

    /// The key a message value names (`None` for nil, NaN, tables and other non-scalars).
    pub fn from_value(v: &'a Value) -> Option<KeyRef<'a>> {
        match v {
            Value::Bool(b) => Some(KeyRef::Bool(*b)),
            Value::Int(i) => Some(KeyRef::Int(*i)),
            Value::Num(n) => KeyRef::number(*n),
            _ => v.as_bytes().map(KeyRef::Str),
        }
    }

    /// An owned copy.
    pub fn to_key(self) -> Key {
        match self {
            KeyRef::Bool(b) => Key::Bool(b),
            KeyRef::Int(i) => Key::Int(i),
            KeyRef::Num(n) => Key::Num(n),
            KeyRef::Str(s) => Key::Str(s.into()),
        }
    }
}

impl Key {
    /// The borrowed form.
    pub fn as_ref(&self) -> KeyRef<'_> {
        match self {
            Key::Bool(b) => KeyRef::Bool(*b),
            Key::Int(i) => KeyRef::Int(*i),
            Key::Num(n) => KeyRef::Num(*n),
            Key::Str(s) => KeyRef::Str(s),
        }
    }

    /// The key as a message value (for handing keys back to Lua).
    pub fn to_value(&self) -> Value {
        match self {
            Key::Bool(b) => Value::Bool(*b),
            Key::Int(i) => Value::Int(*i),
            Key::Num(n) => Value::Num(f64::from_bits(*n)),
            Key::Str(s) => Value::string(s),
        }
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            KeyRef::Bool(b) => (0u8, *b).hash(state),
            KeyRef::Int(i) => (1u8, *i).hash(state),
            KeyRef::Num(n) => (2u8, *n).hash(state),
            KeyRef::Str(s) => (3u8, *s).hash(state),
        }
    }
}

// Key and KeyRef must hash alike so a KeyRef can find a Key in a map.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state)
    }
}

impl hashbrown::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self == key.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_floats_are_integers_and_lookups_need_no_allocation() {
        assert_eq!(KeyRef::number(3.0), Some(KeyRef::Int(3)));
        assert_eq!(KeyRef::number(-0.0), Some(KeyRef::Int(0)));
        assert_eq!(KeyRef::number(0.5), Some(KeyRef::Num(0.5f64.to_bits())));
        assert_eq!(KeyRef::number(f64::NAN), None);
        assert_eq!(KeyRef::number(1e300), Some(KeyRef::Num(1e300f64.to_bits())));
        let mut map = hashbrown::HashMap::new();
        map.insert(KeyRef::Str(b"name").to_key(), 1);
        map.insert(Key::Int(7), 2);
        assert_eq!(map.get(&KeyRef::Str(b"name")), Some(&1));
        assert_eq!(map.get(&KeyRef::number(7.0).unwrap()), Some(&2));
        assert_eq!(map.get(&KeyRef::Str(b"nam")), None);
    }
}
