//! Where inside a sent value the encoder refused something: built only on failure, on
//! the way back up, so successful encodes pay nothing for it.

use std::fmt::Write;

/// One step from a value to one of its parts.
pub(crate) enum Segment {
    /// A string key.
    Field(Vec<u8>),
    /// An integer key.
    Index(i64),
    /// Any other key (a float, boolean, table…).
    OtherKey,
    /// A key itself (as opposed to the value stored under it).
    Key,
    /// A function's upvalue, by name.
    Upvalue(String),
}

fn is_identifier(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && !bytes[0].is_ascii_digit()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// Render segments innermost-last, e.g. `.config.handler`, `[3].name`,
/// ` upvalue 'helper'.x`.
pub(crate) fn render(segments: &[Segment]) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Field(b) if is_identifier(b) => {
                let _ = write!(out, ".{}", String::from_utf8_lossy(b));
            }
            Segment::Field(b) => {
                let _ = write!(out, "[{:?}]", String::from_utf8_lossy(b));
            }
            Segment::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
            Segment::OtherKey => out.push_str("[?]"),
            Segment::Key => out.push_str(" (a table key)"),
            Segment::Upvalue(name) => {
                let _ = write!(out, " upvalue '{name}'");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fields_indices_and_upvalues() {
        let p = [
            Segment::Upvalue("conf".into()),
            Segment::Field(b"handler".to_vec()),
            Segment::Index(3),
            Segment::Field(b"two words".to_vec()),
        ];
        assert_eq!(render(&p), " upvalue 'conf'.handler[3][\"two words\"]");
    }
}
