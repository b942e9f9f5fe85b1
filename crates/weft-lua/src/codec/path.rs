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
    /// A function's environment (Lua 5.1/LuaJIT `setfenv`; Lua 5.4 has none).
    #[cfg_attr(feature = "lua54", allow(dead_code))]
    Environment,
}

fn is_identifier(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && !bytes[0].is_ascii_digit()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// Paths longer than this many segments show only their two ends.
const LONG: usize = 12;
/// Segments shown at each end of a long path.
const SHOWN: usize = 4;

/// Render segments innermost-last, e.g. `.config.handler`, `[3].name`,
/// ` upvalue 'helper'.x`. A long path (a deep linked list) keeps its first and last few
/// segments and says how deep it goes: `.next.next.next.next ... .next.next.next.x
/// (300 levels)`.
pub(crate) fn render(segments: &[Segment]) -> String {
    if segments.len() <= LONG {
        return render_all(segments);
    }
    let head = render_all(&segments[..SHOWN]);
    let tail = render_all(&segments[segments.len() - SHOWN..]);
    let gap = if tail.starts_with(' ') {
        " ..."
    } else {
        " ... "
    };
    format!("{head}{gap}{tail} ({} levels)", segments.len())
}

fn render_all(segments: &[Segment]) -> String {
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
            Segment::Environment => out.push_str(" environment"),
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

    #[test]
    fn a_long_path_shows_its_ends_and_its_length() {
        let mut p: Vec<Segment> = (0..299).map(|_| Segment::Field(b"next".to_vec())).collect();
        p.push(Segment::Field(b"x".to_vec()));
        assert_eq!(
            render(&p),
            ".next.next.next.next ... .next.next.next.x (300 levels)"
        );
        let mut q: Vec<Segment> = (0..LONG as i64).map(Segment::Index).collect();
        assert_eq!(render(&q), "[0][1][2][3][4][5][6][7][8][9][10][11]");
        q.push(Segment::Upvalue("f".into()));
        assert_eq!(
            render(&q),
            "[0][1][2][3] ... [9][10][11] upvalue 'f' (13 levels)"
        );
    }
}
